#include "control/agent/proxy/mode_factory.h"

#include "bpf/loader/ebpf_datapath.h"
#include "ipvs/ipvs_datapath.h"
#if SLUICE_HAVE_DPDK
#include "dataplane/dpdk/dpdk_mode.h"
#endif

namespace sluice::agent {

const std::vector<ModeDriver>& modeDrivers() {
  static const std::vector<ModeDriver> drivers = {
      bpf::ebpfModeDriver(),
      ipvs::ipvsModeDriver(),
#if SLUICE_HAVE_DPDK
      dpdk::dpdkModeDriver(),
#endif
  };
  return drivers;
}

Result<const ModeDriver*> findMode(const std::string& name) {
  std::string names;
  for (const ModeDriver& d : modeDrivers()) {
    if (d.name == name) return &d;
    names += (names.empty() ? "" : ", ") + d.name;
  }
  return Error::invalid("unknown mode \"" + name + "\": this agent has " + names);
}

namespace {
const ModeFlagValues& valuesOf(const AllModeFlags& flags, const std::string& mode) {
  static const ModeFlagValues none;
  auto it = flags.find(mode);
  return it == flags.end() ? none : it->second;
}
}  // namespace

Result<std::unique_ptr<Datapath>> createDatapath(const std::string& mode, const NodeConfig& node,
                                                 const AllModeFlags& flags) {
  auto d = findMode(mode);
  if (!d) return d.error();
  return (*d)->create(node, valuesOf(flags, mode));
}

Result<void> cleanupDatapath(const std::string& mode, const NodeConfig& node,
                             const AllModeFlags& flags) {
  auto d = findMode(mode);
  if (!d) return d.error();
  return (*d)->cleanup(node, valuesOf(flags, mode));
}

}  // namespace sluice::agent
