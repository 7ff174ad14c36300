// nftables: the structure of kube-proxy's nftables proxier
// (pkg/proxy/nftables/proxier.go), written as one `nft -f` transaction as it
// does. Per packet of a new flow: nat-prerouting -> services, one lookup in
// the verdict map service-ips (ip daddr . l4proto . dport, a hash: no
// linear walk over services) -> service-<hash> (masquerade mark for traffic
// from outside the cluster CIDR; `numgen random mod n vmap` picks the
// endpoint) -> endpoint-<hash> (hairpin mark, dnat). masquerading (from
// nat-postrouting) masquerades marked packets.
//
// Left out, as for iptables: filter chains, NodePorts, firewall/no-endpoint
// maps; the lab programs ClusterIP services only.
#include <string>

#include "bench/lab/lab_mode.h"

namespace sluice::lab {
namespace {

constexpr const char* kTable = "ip kube-proxy";

std::string svcChain(const Service& s) {
  return "service-" + chainHash(s.key.toString() + "tcp") + "-" + s.key.ns + "-" + s.key.name;
}
std::string epChain(const Service& s, const Backend& b) {
  return "endpoint-" + chainHash(s.key.toString() + "tcp" + b.address.toString() + ":" +
                                 std::to_string(b.port));
}

class NftablesLabMode final : public LabMode {
 public:
  std::string_view name() const override { return "nftables"; }

  Result<void> setUp(const LabTopology& /*topology*/) override {
    const std::string t = std::string(kTable);
    std::string s;
    s += "add table " + t + "\n";
    s += "add chain " + t + " mark-for-masquerade\n";
    s += "add rule " + t + " mark-for-masquerade mark set mark or 0x4000\n";
    s += "add chain " + t + " masquerading\n";
    s += "add rule " + t + " masquerading mark and 0x4000 == 0 return\n";
    s += "add rule " + t + " masquerading mark set mark xor 0x4000\n";
    s += "add rule " + t + " masquerading masquerade fully-random\n";
    s += "add chain " + t + " services\n";
    s += "add map " + t +
         " service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }\n";
    s += "add rule " + t + " services ip daddr . meta l4proto . th dport vmap @service-ips\n";
    s += "add chain " + t + " nat-prerouting { type nat hook prerouting priority -100 ; }\n";
    s += "add rule " + t + " nat-prerouting jump services\n";
    s += "add chain " + t + " nat-output { type nat hook output priority -100 ; }\n";
    s += "add rule " + t + " nat-output jump services\n";
    s += "add chain " + t + " nat-postrouting { type nat hook postrouting priority 100 ; }\n";
    s += "add rule " + t + " nat-postrouting jump masquerading\n";
    return pipeTo("nft -f -", s, std::chrono::steady_clock::now() + std::chrono::seconds(60));
  }

  Result<void> sync(const ServiceTable& table, Deadline deadline) override {
    std::string s;
    s.reserve(table.size() * 1500);
    for (const auto& [key, svc] : table) {
      for (const Backend& b : svc.backends) s += endpointChain(svc, b);
      s += "add chain " + std::string(kTable) + " " + svcChain(svc) + "\n";
      s += serviceRules(svc);
      s += mapElements(svc);
    }
    return pipeTo("nft -f -", s, deadline, &syncPeakRss_);
  }

  // One transaction, as kube-proxy's sync: new endpoint chains, the service
  // chain flushed and rewritten, vanished endpoint chains deleted. The
  // service-ips element does not change.
  Result<void> applyOneEndpointChange(const ServiceTable& /*after*/, const Service& before,
                                      const Service& changed, Deadline deadline) override {
    const std::string t = std::string(kTable);
    std::string s;
    for (const Backend& b : changed.backends) s += endpointChain(changed, b);
    s += "flush chain " + t + " " + svcChain(changed) + "\n";
    s += serviceRules(changed);
    for (const Backend& b : before.backends) {
      bool kept = false;
      for (const Backend& c : changed.backends) kept = kept || c.address == b.address;
      if (!kept) {
        s += "flush chain " + t + " " + epChain(before, b) + "\n";
        s += "delete chain " + t + " " + epChain(before, b) + "\n";
      }
    }
    return pipeTo("nft -f -", s, deadline);
  }

  ModeMemory memory() override {
    ModeMemory m;
    if (syncPeakRss_ > 0) m.toolPeakRssBytes = syncPeakRss_;
    if (auto out = capture("nft list table " + std::string(kTable) + " 2>/dev/null")) {
      // Rules are the lines inside chains that are not declarations;
      // map elements are counted by their " : goto " verdicts.
      bool inChain = false;
      size_t start = 0;
      while (start < out->size()) {
        size_t end = out->find('\n', start);
        if (end == std::string::npos) end = out->size();
        std::string line = out->substr(start, end - start);
        start = end + 1;
        const size_t first = line.find_first_not_of(" \t");
        if (first == std::string::npos) continue;
        line = line.substr(first);
        if (line.rfind("chain ", 0) == 0) {
          inChain = true;
        } else if (line == "}") {
          inChain = false;
        } else if (inChain && line.rfind("type ", 0) != 0 && line.rfind("comment ", 0) != 0) {
          ++m.objects;
        }
        for (size_t p = line.find(": goto "); p != std::string::npos;
             p = line.find(": goto ", p + 1)) {
          if (!inChain) ++m.objects;
        }
      }
    }
    return m;
  }

  void tearDown() override {
    (void)pipeTo("nft -f -", "delete table " + std::string(kTable) + "\n",
                 std::chrono::steady_clock::now() + std::chrono::seconds(60));
  }

 private:
  uint64_t syncPeakRss_ = 0;  // nft's peak RSS over the full sync

  static std::string endpointChain(const Service& svc, const Backend& b) {
    const std::string t = std::string(kTable);
    const std::string c = epChain(svc, b);
    const std::string ip = b.address.toString();
    return "add chain " + t + " " + c + "\n" + "add rule " + t + " " + c + " ip saddr " + ip +
           " jump mark-for-masquerade\n" + "add rule " + t + " " + c +
           " meta l4proto tcp dnat to " + ip + ":" + std::to_string(b.port) + "\n";
  }

  static std::string serviceRules(const Service& svc) {
    const std::string t = std::string(kTable);
    const std::string c = svcChain(svc);
    std::string s;
    for (const Frontend& f : svc.frontends) {
      s += "add rule " + t + " " + c + " ip daddr " + f.address.toString() + " tcp dport " +
           std::to_string(f.port) + " ip saddr != " + LabTopology::kClusterCidr +
           " jump mark-for-masquerade\n";
    }
    s += "add rule " + t + " " + c + " numgen random mod " + std::to_string(svc.backends.size()) +
         " vmap {";
    for (size_t i = 0; i < svc.backends.size(); ++i) {
      s += (i ? ", " : " ") + std::to_string(i) + " : goto " + epChain(svc, svc.backends[i]);
    }
    return s + " }\n";
  }

  static std::string mapElements(const Service& svc) {
    std::string s;
    for (const Frontend& f : svc.frontends) {
      s += "add element " + std::string(kTable) + " service-ips { " + f.address.toString() +
           " . tcp . " + std::to_string(f.port) + " : goto " + svcChain(svc) + " }\n";
    }
    return s;
  }
};

}  // namespace

std::unique_ptr<LabMode> makeNftablesLabMode() { return std::make_unique<NftablesLabMode>(); }

}  // namespace sluice::lab
