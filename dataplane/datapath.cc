#include "dataplane/datapath.h"

namespace sluice {

std::string flagValue(const ModeFlagValues& values, const std::vector<ModeFlag>& flags,
                      const std::string& name) {
  if (auto it = values.find(name); it != values.end()) return it->second;
  for (const ModeFlag& f : flags) {
    if (f.name == name) return f.defaultValue;
  }
  return {};
}

}  // namespace sluice
