// iptables: the rule structure kube-proxy's iptables proxier writes
// (pkg/proxy/iptables/proxier.go), programmed with iptables-restore as it
// does. Per packet of a new flow: nat PREROUTING -> KUBE-SERVICES (one rule
// per service port, matched linearly) -> KUBE-SVC-<hash> (masquerade mark
// for traffic from outside the cluster CIDR, then endpoint i of n chosen by
// `-m statistic --mode random --probability 1/(n-i)`) -> KUBE-SEP-<hash>
// (hairpin mark, DNAT). KUBE-POSTROUTING masquerades marked packets.
// Conntrack carries the rest of the flow.
//
// Left out: the filter-table chains (KUBE-FORWARD, KUBE-FIREWALL,
// KUBE-EXTERNAL-SERVICES), NodePorts and health checks: the lab programs
// ClusterIP services, whose packets those chains do not touch.
#include <cstdio>
#include <string>

#include "bench/lab/lab_mode.h"

namespace sluice::lab {
namespace {


std::string svcChain(const Service& s) { return "KUBE-SVC-" + chainHash(s.key.toString() + "tcp"); }
std::string sepChain(const Service& s, const Backend& b) {
  return "KUBE-SEP-" + chainHash(s.key.toString() + "tcp" + b.address.toString() + ":" +
                                 std::to_string(b.port));
}

class IptablesLabMode final : public LabMode {
 public:
  std::string_view name() const override { return "iptables"; }

  Result<void> setUp(const LabTopology& /*topology*/) override {
    // kube-proxy creates its jump rules with iptables -N/-I (ensureChain,
    // ensureRule), not with restore.
    const std::string t = "iptables -w -t nat ";
    const bool ok =
        sh(t + "-N KUBE-SERVICES") && sh(t + "-N KUBE-POSTROUTING") &&
        sh(t + "-I PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES") &&
        sh(t + "-I OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES") &&
        sh(t + "-I POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING");
    if (!ok) return Error::internal("iptables: base chains (see the failed command above)");
    return {};
  }

  Result<void> sync(const ServiceTable& table, Deadline deadline) override {
    std::string chains = ":KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n";
    std::string rules =
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n"
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" "
        "-j MASQUERADE --random-fully\n"
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n";
    rules += servicesChain(table);
    for (const auto& [key, svc] : table) {
      chains += ":" + svcChain(svc) + " - [0:0]\n";
      for (const Backend& b : svc.backends) chains += ":" + sepChain(svc, b) + " - [0:0]\n";
      rules += serviceRules(svc);
    }
    return restore(chains + rules, deadline, &syncPeakRss_);
  }

  // kube-proxy's partial sync (1.27+, MinimalSync): KUBE-SERVICES is always
  // rewritten in full; of the per-service chains only the changed service's;
  // chains no longer referenced are flushed and deleted in the same restore.
  Result<void> applyOneEndpointChange(const ServiceTable& after, const Service& before,
                                      const Service& changed, Deadline deadline) override {
    std::string chains = ":KUBE-SERVICES - [0:0]\n:" + svcChain(changed) + " - [0:0]\n";
    for (const Backend& b : changed.backends) chains += ":" + sepChain(changed, b) + " - [0:0]\n";
    std::string deletes;
    for (const Backend& b : before.backends) {
      bool kept = false;
      for (const Backend& c : changed.backends) kept = kept || c.address == b.address;
      if (!kept) {
        chains += ":" + sepChain(before, b) + " - [0:0]\n";
        deletes += "-X " + sepChain(before, b) + "\n";
      }
    }
    return restore(chains + servicesChain(after) + serviceRules(changed) + deletes, deadline);
  }

  ModeMemory memory() override {
    ModeMemory m;
    if (syncPeakRss_ > 0) m.toolPeakRssBytes = syncPeakRss_;
    if (auto out = capture("iptables-save -t nat 2>/dev/null")) {
      size_t pos = 0;
      while ((pos = out->find("\n-A ", pos)) != std::string::npos) {
        ++m.objects;
        ++pos;
      }
    }
    return m;
  }

  void tearDown() override {
    // The namespace goes next and takes its tables with it.
  }

 private:
  uint64_t syncPeakRss_ = 0;  // iptables-restore's peak RSS over the full sync

  static Result<void> restore(const std::string& body, Deadline deadline,
                              uint64_t* peakRss = nullptr) {
    return pipeTo("iptables-restore -w --noflush --counters", "*nat\n" + body + "COMMIT\n",
                  deadline, peakRss);
  }

  static std::string servicesChain(const ServiceTable& table) {
    std::string out;
    out.reserve(table.size() * 160);
    for (const auto& [key, svc] : table) {
      for (const Frontend& f : svc.frontends) {
        out += "-A KUBE-SERVICES -m comment --comment \"" + key.toString() +
               " cluster IP\" -m tcp -p tcp -d " + f.address.toString() + "/32 --dport " +
               std::to_string(f.port) + " -j " + svcChain(svc) + "\n";
      }
    }
    return out;
  }

  static std::string serviceRules(const Service& svc) {
    std::string out;
    const std::string chain = svcChain(svc);
    const std::string name = svc.key.toString();
    for (const Frontend& f : svc.frontends) {
      out += "-A " + chain + " -m comment --comment \"" + name + " cluster IP\" -m tcp -p tcp -d " +
             f.address.toString() + "/32 --dport " + std::to_string(f.port) + " ! -s " +
             LabTopology::kClusterCidr + " -j KUBE-MARK-MASQ\n";
    }
    const size_t n = svc.backends.size();
    for (size_t i = 0; i < n; ++i) {
      const Backend& b = svc.backends[i];
      const std::string ep = b.address.toString() + ":" + std::to_string(b.port);
      out += "-A " + chain + " -m comment --comment \"" + name + " -> " + ep + "\"";
      if (i + 1 < n) {
        char prob[32];
        std::snprintf(prob, sizeof(prob), "%.10f", 1.0 / static_cast<double>(n - i));
        out += std::string(" -m statistic --mode random --probability ") + prob;
      }
      out += " -j " + sepChain(svc, b) + "\n";
      const std::string sep = sepChain(svc, b);
      out += "-A " + sep + " -m comment --comment \"" + name + "\" -s " + b.address.toString() +
             "/32 -j KUBE-MARK-MASQ\n";
      out += "-A " + sep + " -m comment --comment \"" + name +
             "\" -m tcp -p tcp -j DNAT --to-destination " + ep + "\n";
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<LabMode> makeIptablesLabMode() { return std::make_unique<IptablesLabMode>(); }

}  // namespace sluice::lab
