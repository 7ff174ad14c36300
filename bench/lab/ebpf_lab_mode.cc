// ebpf: sluice's EbpfMode driven directly through the dataplane model (no
// control plane). bpf_lxc goes on the node side of the client's veth (DNAT
// of the client's packets to services) and of every backend veth (reverse
// NAT of the replies through conntrack), as sluice-cni wires pods. Maps are
// pinned in a private bpffs mount, so the lab never meets a running agent's.
#include <dirent.h>
#include <net/if.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstring>
#include <string>

#include "bench/lab/lab_mode.h"
#include "bpf/loader/ebpf_mode.h"
#include "dataplane/service_diff.h"
#include "tests/bpf/bpffs.h"

namespace sluice::lab {
namespace {

class EbpfLabMode final : public LabMode {
 public:
  explicit EbpfLabMode(uint32_t capacityHint) : capacityHint_(capacityHint) {}

  std::string_view name() const override { return "ebpf"; }

  Result<void> setUp(const LabTopology& topology) override {
    fs_ = std::make_unique<testing::ScopedBpffs>();
    if (!fs_->ok()) return Error::unavailable("bpffs: " + fs_->error());
    EbpfOptions options;
    options.pinDir = fs_->pinDir();
    // Room for the largest point asked for (maps are sized at load).
    options.maxSlots = std::max<uint32_t>(options.maxSlots, capacityHint_);
    options.maxBackends = std::max<uint32_t>(options.maxBackends, capacityHint_);
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
    // skeletons): "memlock" in /proc/self/fdinfo, bytes the kernel charges.
    uint64_t bytes = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
      while (dirent* e = ::readdir(d)) {
        char target[256] = {};
        const std::string link = std::string("/proc/self/fd/") + e->d_name;
        if (::readlink(link.c_str(), target, sizeof(target) - 1) <= 0) continue;
        if (std::strcmp(target, "anon_inode:bpf-map") != 0) continue;
        FILE* f = std::fopen((std::string("/proc/self/fdinfo/") + e->d_name).c_str(), "r");
        if (f == nullptr) continue;
        char line[256];
        while (std::fgets(line, sizeof(line), f) != nullptr) {
          unsigned long long v = 0;
          if (std::sscanf(line, "memlock: %llu", &v) == 1) bytes += v;
        }
        std::fclose(f);
      }
      ::closedir(d);
    }
    m.kernelBytes = bytes;
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
  uint32_t capacityHint_;
  std::unique_ptr<testing::ScopedBpffs> fs_;
  std::unique_ptr<EbpfMode> mode_;
  std::vector<std::string> veths_;
};

}  // namespace

std::unique_ptr<LabMode> makeEbpfLabMode(uint32_t endpointCapacity) {
  return std::make_unique<EbpfLabMode>(endpointCapacity);
}

}  // namespace sluice::lab
