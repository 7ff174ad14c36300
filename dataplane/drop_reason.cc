#include "dataplane/drop_reason.h"

#include <iterator>

namespace sluice {

std::string_view toString(DropReason reason) {
  static constexpr std::string_view kNames[] = {
#define SL_DROP_NAME(c, cxx, name) #name,
      SL_DROP_REASON_LIST(SL_DROP_NAME)
#undef SL_DROP_NAME
  };
  static_assert(std::size(kNames) == kDropReasonCount);
  const auto i = static_cast<size_t>(reason);
  return i < kDropReasonCount ? kNames[i] : "unknown";
}

}  // namespace sluice
