#include "dataplane/mode_description.h"

namespace sluice {

std::string Endpoint::toString() const {
  const std::string a = address.toString();
  return (address.isV6() ? "[" + a + "]" : a) + ":" + std::to_string(port);
}

}  // namespace sluice
