// The lab's adapter for sluice's own modes (ebpf, ipvs; dpdk as it
// arrives): the Datapath the agent's mode factory creates, driven through
// the same interfaces the agent uses (dataplane/datapath.h) — pod interfaces
// attached as sluice-cni wires pods (the client's veth and every backend
// veth), sync() and apply() of the dataplane model, cleanup() after. No
// control plane. The only per-mode knowledge here is labFlags(): where a
// mode keeps its state for the lab (a private bpffs, so the lab never meets
// a running agent's maps) and how large its tables must be at this scale.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>

#include "bench/lab/lab_mode.h"
#include "control/agent/proxy/mode_factory.h"
#include "dataplane/service_diff.h"
#include "tests/bpf/bpffs.h"

namespace sluice::lab {
namespace {

// Map capacities for an ebpf point: what S services x E endpoints need, plus
// a quarter and 1,024 entries of headroom (a change adds the new backend
// before the old one goes; an agent would size for growth too). Hash maps
// are preallocated at max_entries, so this is what the kernel memory column
// sees grow with S. Flow state (conntrack, affinity, socket reverse NAT)
// depends on traffic, not S: those keep the defaults. Maglev
// (--maglev-table-size): one inner map of M slots per service, and no
// sl_slots entries; with random selection sl_maglev keeps its default.
ModeFlagValues ebpfLabFlags(LabScale scale, const std::string& pinDir) {
  const auto withHeadroom = [](uint64_t n) {
    return std::to_string(std::min<uint64_t>(n + n / 4 + 1024, 1u << 26));
  };
  const uint64_t endpoints = static_cast<uint64_t>(scale.services) * std::max(1u, scale.endpoints);
  ModeFlagValues f = {{"pin-dir", pinDir},
                      {"socket-lb", "false"},  // the lab's client is a pod: per-packet path
                      {"max-frontends", withHeadroom(scale.services)},
                      {"max-slots", withHeadroom(endpoints)},
                      {"max-backends", withHeadroom(endpoints)}};
  if (scale.maglevTableSize > 0) f["max-maglev-tables"] = withHeadroom(scale.services);
  return f;
}

// The dpdk mode in the lab: its own sluice-dpdk (files named after the
// lab's PID), whose uplink is a null device that never receives (the lab
// has no outside: the client pod's traffic reaches the process through the
// TAP, the service CIDR routed into it, and the backends behind it), and
// tables sized for S services x E endpoints with the same headroom as ebpf.
ModeFlagValues dpdkLabFlags(LabScale scale) {
  const std::string id = std::to_string(::getpid());
  const uint64_t endpoints = static_cast<uint64_t>(scale.services) * std::max(1u, scale.endpoints);
  return {{"uplink-vdev", "net_null0,no-rx=1"},
          {"socket", "/tmp/sluice-lab-" + id + ".sock"},
          {"state-file", "/dev/shm/sluice-lab-" + id + ".state"},
          {"tap", "sllab" + id},
          {"kernel-routes", "10.96.0.0/12"},
          {"max-backends", std::to_string(std::min<uint64_t>(endpoints + endpoints / 4 + 1024, 1u << 20))}};
}

class DatapathLabMode final : public LabMode {
 public:
  DatapathLabMode(std::string name, LabScale scale) : name_(std::move(name)), scale_(scale) {}

  std::string_view name() const override { return name_; }

  Result<void> setUp(const LabTopology& topology) override {
    auto flags = labFlags();
    if (!flags) return flags.error();
    NodeConfig node;
    node.nodeName = "lab-node";
    node.instance = "lab-" + std::to_string(::getpid());
    auto dp = agent::createDatapath(name_, node, {{name_, *flags}});
    if (!dp) return dp.error();
    datapath_ = std::move(*dp);
    veths_ = {topology.clientHostVeth()};
    for (const BackendNetns& b : topology.backends()) veths_.push_back(b.hostVeth);
    for (const std::string& v : veths_) {
      if (auto r = datapath_->attachPodInterface(v); !r) return r;
    }
    return {};
  }

  // As the agent: the mode, then the node answering for what it programmed
  // (IPVS: service addresses on its dummy interface).
  Result<void> sync(const ServiceTable& table, Deadline /*deadline*/) override {
    if (auto r = datapath_->mode().sync(table); !r) return r;
    return datapath_->claimServiceAddresses(ServiceDiff::fullSync(table), true);
  }

  // The diff an agent's watch would produce for one EndpointSlice update:
  // one service, before and after (built directly: ServiceDiff::between
  // would compare all S services, which the agent does not do either).
  Result<void> applyOneEndpointChange(const ServiceTable& /*after*/, const Service& before,
                                      const Service& changed, Deadline /*deadline*/) override {
    ServiceDiff diff;
    diff.changes.push_back(ServiceChange{before, changed});
    const auto requests = [&]() -> std::optional<uint64_t> {
      const auto c = datapath_->mode().stats().counters;
      // What apply() itself sent; a drain's later delete and its dump run
      // on the mode's own thread and are not part of the change.
      auto it = c.find("ipvs.apply_requests");
      if (it == c.end()) return std::nullopt;
      return it->second;
    };
    const auto before0 = requests();
    if (auto r = datapath_->mode().apply(diff); !r) return r;
    if (auto after = requests(); before0 && after) lastRequests_ = static_cast<double>(*after - *before0);
    return datapath_->claimServiceAddresses(diff, false);
  }

  std::optional<double> netlinkRequestsPerChange() const override { return lastRequests_; }

  ModeMemory memory() override {
    ModeMemory m;
    const ProxyStats st = datapath_->mode().stats();
    m.objects = st.frontends + st.backends;
    // Kernel memory of every BPF map this process holds (the loader's
    // skeletons): "memlock" in /proc/self/fdinfo, the bytes the kernel
    // charges. Each map once, by map_id: the lxc and sock objects hold fds
    // of the same pinned maps.
    uint64_t bytes = 0;
    std::set<unsigned long long> seen;
    if (DIR* d = ::opendir("/proc/self/fd")) {
      while (dirent* e = ::readdir(d)) {
        char target[256] = {};
        const std::string link = std::string("/proc/self/fd/") + e->d_name;
        if (::readlink(link.c_str(), target, sizeof(target) - 1) <= 0) continue;
        if (std::strcmp(target, "anon_inode:bpf-map") != 0) continue;
        FILE* f = std::fopen((std::string("/proc/self/fdinfo/") + e->d_name).c_str(), "r");
        if (f == nullptr) continue;
        char line[256];
        unsigned long long memlock = 0, id = 0;
        while (std::fgets(line, sizeof(line), f) != nullptr) {
          unsigned long long v = 0;
          if (std::sscanf(line, "memlock: %llu", &v) == 1) memlock = v;
          if (std::sscanf(line, "map_id: %llu", &v) == 1) id = v;
        }
        std::fclose(f);
        if (seen.insert(id).second) bytes += memlock;
      }
      ::closedir(d);
    }
    m.bpfMapBytes = bytes;
    return m;
  }

  void tearDown() override {
    if (datapath_) {
      for (const std::string& v : veths_) (void)datapath_->detachPodInterface(v);
      (void)datapath_->cleanup();
    }
    datapath_.reset();
    fs_.reset();
  }

  ~DatapathLabMode() override { tearDown(); }

 private:
  Result<ModeFlagValues> labFlags() {
    if (name_ == "ebpf") {
      fs_ = std::make_unique<testing::ScopedBpffs>();
      if (!fs_->ok()) return Error::unavailable("bpffs: " + fs_->error());
      return ebpfLabFlags(scale_, fs_->pinDir());
    }
    if (name_ == "dpdk") return dpdkLabFlags(scale_);
    return ModeFlagValues{};
  }

  std::string name_;
  LabScale scale_;
  std::unique_ptr<testing::ScopedBpffs> fs_;
  std::unique_ptr<Datapath> datapath_;
  std::vector<std::string> veths_;
  std::optional<double> lastRequests_;
};

}  // namespace

std::unique_ptr<LabMode> makeDatapathLabMode(std::string_view name, LabScale scale) {
  return std::make_unique<DatapathLabMode>(std::string(name), scale);
}

}  // namespace sluice::lab
