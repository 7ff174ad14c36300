// kube-ipvs: the structure kube-proxy's IPVS proxier writes
// (pkg/proxy/ipvs/proxier.go), applied with the real tools: ipvsadm for the
// virtual servers, ip for the kube-ipvs0 dummy interface, ipset for
// KUBE-CLUSTER-IP and KUBE-LOOP-BACK, iptables-restore for the nat rules
// that match them. Every sync is kube-proxy's full sync, whatever changed
// (#73382, #84906): read every bound address, read every virtual server and
// its real servers (ipvsadm -Sn: one service dump and one destination dump
// per service, as GetVirtualServers/GetRealServers), write what differs,
// read and diff both ipsets, and rewrite the nat rules. One endpoint change
// therefore costs the same reads as a full sync.
//
// Netlink messages per change are counted from what these reads and writes
// send to the IPVS family: 1 + S dump requests plus one request per
// ipvsadm -R line (ipvsadm itself opens a socket per run, as libipvs did).
//
// Left out, as in iptables_lab_mode.cc: NodePort, LoadBalancer and
// firewall sets, health checks, graceful termination (a removed endpoint is
// deleted at once here, which only makes the baseline faster).
#include <set>
#include <sstream>
#include <string>

#include "bench/lab/lab_mode.h"

namespace sluice::lab {
namespace {

constexpr const char* kDummy = "kube-ipvs0";

std::string ep(const IpAddress& a, uint16_t port) {
  return a.toString() + ":" + std::to_string(port);
}

class KubeIpvsLabMode final : public LabMode {
 public:
  std::string_view name() const override { return "kube-ipvs"; }

  Result<void> setUp(const LabTopology& /*topology*/) override {
    // kube-proxy's preflight: the dummy link, the ipsets, the sysctls its
    // masquerade rules need, the jump rules (ensureChain/ensureRule).
    const std::string t = "iptables -w -t nat ";
    const bool ok =
        sh("ip link add " + std::string(kDummy) + " type dummy") &&
        sh("sysctl -qw net.ipv4.vs.conntrack=1 net.ipv4.vs.expire_nodest_conn=1") &&
        sh("ipset create KUBE-CLUSTER-IP hash:ip,port -exist") &&
        sh("ipset create KUBE-LOOP-BACK hash:ip,port,ip -exist") && sh(t + "-N KUBE-SERVICES") &&
        sh(t + "-N KUBE-POSTROUTING") && sh(t + "-I PREROUTING -j KUBE-SERVICES") &&
        sh(t + "-I OUTPUT -j KUBE-SERVICES") && sh(t + "-I POSTROUTING -j KUBE-POSTROUTING");
    if (!ok) return Error::internal("kube-ipvs: base objects (see the failed command above)");
    return {};
  }

  Result<void> sync(const ServiceTable& table, Deadline deadline) override {
    return fullSync(table, deadline);
  }

  // kube-proxy's IPVS proxier has no partial sync: the change runs it all.
  Result<void> applyOneEndpointChange(const ServiceTable& after, const Service& /*before*/,
                                      const Service& /*changed*/, Deadline deadline) override {
    const uint64_t before = netlinkRequests_;
    auto r = fullSync(after, deadline);
    lastChangeRequests_ = netlinkRequests_ - before;
    return r;
  }

  ModeMemory memory() override {
    ModeMemory m;
    if (peakRss_ > 0) m.toolPeakRssBytes = peakRss_;
    m.objects = objects_;
    return m;
  }

  std::optional<double> netlinkRequestsPerChange() const override {
    if (lastChangeRequests_ == 0) return std::nullopt;
    return static_cast<double>(lastChangeRequests_);
  }

  void tearDown() override {
    // The node namespace goes next with its IPVS table, link and rules;
    // ipsets are per namespace too.
  }

 private:
  Result<void> fullSync(const ServiceTable& table, Deadline deadline) {
    // 1. Addresses bound on the dummy interface.
    auto bound = capture("ip -o -4 addr show dev " + std::string(kDummy));
    if (!bound) return bound.error();
    std::set<std::string> addrs;
    {
      std::istringstream in(*bound);
      std::string line;
      while (std::getline(in, line)) {
        const size_t inet = line.find(" inet ");
        if (inet == std::string::npos) continue;
        const size_t start = inet + 6;
        addrs.insert(line.substr(start, line.find('/', start) - start));
      }
    }
    // 2. Every virtual server and real server (GetVirtualServers, then
    //    GetRealServers of each).
    auto saved = capture("ipvsadm -Sn");
    if (!saved) return saved.error();
    std::set<std::string> services, dests;  // "-t VIP:port" and "-t VIP:port -r EP:port"
    {
      std::istringstream in(*saved);
      std::string op, dashT, vs, dashR, rs;
      std::string line;
      while (std::getline(in, line)) {
        std::istringstream f(line);
        f >> op >> dashT >> vs;
        if (op == "-A") services.insert(vs);
        if (op == "-a" && (f >> dashR >> rs)) dests.insert(vs + " " + rs);
      }
    }
    netlinkRequests_ += 1 + services.size();
    // 3. Writes: what differs (kube-proxy compares each object it read).
    std::string ipvs, ip;
    std::set<std::string> wantServices, wantDests, wantEntries;
    objects_ = 0;
    for (const auto& [key, svc] : table) {
      for (const Frontend& f : svc.frontends) {
        const std::string vs = ep(f.address, f.port);
        wantServices.insert(vs);
        if (!services.count(vs)) ipvs += "-A -t " + vs + " -s rr\n";
        if (!addrs.count(f.address.toString())) {
          ip += "addr add " + f.address.toString() + "/32 dev " + kDummy + "\n";
        }
        wantEntries.insert("add KUBE-CLUSTER-IP " + f.address.toString() +
                           ",tcp:" + std::to_string(f.port));
        for (const Backend& b : svc.backends) {
          const std::string rs = ep(b.address, b.port);
          wantDests.insert(vs + " " + rs);
          if (!dests.count(vs + " " + rs)) ipvs += "-a -t " + vs + " -r " + rs + " -m -w 1\n";
          wantEntries.insert("add KUBE-LOOP-BACK " + b.address.toString() +
                             ",tcp:" + std::to_string(b.port) + "," + b.address.toString());
        }
        objects_ += 1 + svc.backends.size();
      }
    }
    for (const std::string& d : dests) {
      if (wantDests.count(d)) continue;
      const size_t sp = d.find(' ');
      if (wantServices.count(d.substr(0, sp)))
        ipvs += "-d -t " + d.substr(0, sp) + " -r " + d.substr(sp + 1) + "\n";
    }
    for (const std::string& s : services) {
      if (!wantServices.count(s)) ipvs += "-D -t " + s + "\n";
    }
    for (char c : ipvs) netlinkRequests_ += c == '\n';
    if (!ip.empty()) {
      if (auto r = pipeTo("ip -batch -", ip, deadline, &peakRss_); !r) return r;
    }
    if (!ipvs.empty()) {
      if (auto r = pipeTo("ipvsadm -R", ipvs, deadline, &peakRss_); !r) return r;
    }
    // 4. ipsets: kube-proxy lists each set's entries and writes the
    //    difference (syncIPSetEntries).
    std::set<std::string> haveEntries;
    for (const char* set : {"KUBE-CLUSTER-IP", "KUBE-LOOP-BACK"}) {
      auto listed = capture(std::string("ipset save ") + set);
      if (!listed) return listed.error();
      std::istringstream in(*listed);
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind("add ", 0) == 0) haveEntries.insert(line);
      }
    }
    std::string ipset;
    for (const std::string& e : wantEntries) {
      if (!haveEntries.count(e)) ipset += e + "\n";
    }
    for (const std::string& e : haveEntries) {
      if (!wantEntries.count(e)) ipset += "del" + e.substr(3) + "\n";
    }
    if (!ipset.empty()) {
      if (auto r = pipeTo("ipset restore", ipset, deadline, &peakRss_); !r) return r;
    }
    // 5. The nat rules, whole, every sync.
    const std::string rules =
        "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n"
        "-A KUBE-POSTROUTING -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE\n"
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n"
        "-A KUBE-POSTROUTING -j MASQUERADE --random-fully\n"
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n"
        "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s " +
        std::string(LabTopology::kClusterCidr) +
        " -j KUBE-MARK-MASQ\n"
        "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT\n"
        "COMMIT\n";
    return pipeTo("iptables-restore -w --noflush", rules, deadline, &peakRss_);
  }

  uint64_t peakRss_ = 0;
  uint64_t objects_ = 0;
  uint64_t netlinkRequests_ = 0;
  uint64_t lastChangeRequests_ = 0;
};

}  // namespace

std::unique_ptr<LabMode> makeKubeIpvsLabMode() { return std::make_unique<KubeIpvsLabMode>(); }

}  // namespace sluice::lab
