// ebpf: sluice's EbpfMode driven directly through the dataplane model (no
// control plane). bpf_lxc goes on the node side of the client's veth (DNAT
// of the client's packets to services) and of every backend veth (reverse
// NAT of the replies through conntrack), as sluice-cni wires pods. Maps are
// pinned in a private bpffs mount, so the lab never meets a running agent's.
#include <dirent.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>

#include "bench/lab/lab_mode.h"
#include "bpf/loader/ebpf_mode.h"
#include "dataplane/service_diff.h"
#include "tests/bpf/bpffs.h"

namespace sluice::lab {
namespace {

class EbpfLabMode final : public LabMode {
 public:
  explicit EbpfLabMode(LabScale scale) : scale_(scale) {}

  // Map capacities for this point: what S services x E endpoints need, plus
  // a quarter and 1,024 entries of headroom (a change adds the new backend
  // before the old one goes; an agent would size for growth too). Hash maps
  // are preallocated at max_entries, so this is what the kernel memory
  // column sees grow with S. Flow state (conntrack, affinity, socket
  // reverse NAT) depends on traffic, not S: those keep EbpfOptions'
  // defaults. Maglev (--maglev-table-size): one inner map of M slots per
  // service, and no sl_slots entries; with random selection sl_maglev
  // keeps its default 1,024 sets, unused.
  static EbpfOptions optionsFor(LabScale scale) {
    const auto withHeadroom = [](uint64_t n) {
      return static_cast<uint32_t>(std::min<uint64_t>(n + n / 4 + 1024, 1u << 26));
    };
    EbpfOptions o;
    const uint64_t endpoints =
        static_cast<uint64_t>(scale.services) * std::max(1u, scale.endpoints);
    o.maxFrontends = withHeadroom(scale.services);  // one ClusterIP:port per service
    o.maxSlots = withHeadroom(endpoints);           // one set per service (v4, Cluster)
    o.maxBackends = withHeadroom(endpoints);
    if (scale.maglevTableSize > 0) o.maxMaglevTables = withHeadroom(scale.services);
    return o;
  }

  std::string_view name() const override { return "ebpf"; }

  Result<void> setUp(const LabTopology& topology) override {
    fs_ = std::make_unique<testing::ScopedBpffs>();
    if (!fs_->ok()) return Error::unavailable("bpffs: " + fs_->error());
    EbpfOptions options = optionsFor(scale_);
    options.pinDir = fs_->pinDir();
    auto m = EbpfMode::create(options);
    if (!m) return m.error();
    mode_ = std::move(*m);
    veths_ = {topology.clientHostVeth()};
    for (const BackendNetns& b : topology.backends()) veths_.push_back(b.hostVeth);
    for (const std::string& v : veths_) {
      const int ifindex = static_cast<int>(::if_nametoindex(v.c_str()));
      if (ifindex == 0) return Error::internal("no interface " + v + " in the node netns");
      if (auto r = mode_->attachLxc(ifindex); !r) return r;
    }
    return {};
  }

  Result<void> sync(const ServiceTable& table, Deadline /*deadline*/) override {
    return mode_->sync(table);
  }

  // The diff an agent's watch would produce for one EndpointSlice update:
  // one service, before and after (built directly: ServiceDiff::between
  // would compare all S services, which the agent does not do either).
  Result<void> applyOneEndpointChange(const ServiceTable& /*after*/, const Service& before,
                                      const Service& changed, Deadline /*deadline*/) override {
    ServiceDiff diff;
    diff.changes.push_back(ServiceChange{before, changed});
    return mode_->apply(diff);
  }

  ModeMemory memory() override {
    ModeMemory m;
    const ProxyStats st = mode_->stats();
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
    if (mode_) {
      for (const std::string& v : veths_) {
        const int ifindex = static_cast<int>(::if_nametoindex(v.c_str()));
        if (ifindex != 0) (void)mode_->detachLxc(ifindex);
      }
    }
    mode_.reset();
    fs_.reset();
  }

  ~EbpfLabMode() override { tearDown(); }

 private:
  LabScale scale_;
  std::unique_ptr<testing::ScopedBpffs> fs_;
  std::unique_ptr<EbpfMode> mode_;
  std::vector<std::string> veths_;
};

}  // namespace

std::unique_ptr<LabMode> makeEbpfLabMode(LabScale scale) {
  return std::make_unique<EbpfLabMode>(scale);
}

}  // namespace sluice::lab
