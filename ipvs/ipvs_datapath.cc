#include "ipvs/ipvs_datapath.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dataplane/log.h"

namespace sluice::ipvs {

namespace {

const char* kSysctlDir = "/proc/sys/";

std::vector<ModeFlag> ipvsFlags() {
  return {
      {"scheduler",
       "default IPVS scheduler: rr, wrr, lc, wlc, sh, mh, sed, nq (a Service may "
       "pick its own with the annotation sluice.io/ipvs-scheduler)",
       "rr"},
      {"mh-port", "mh (Maglev) hashes the source port too, not only the address (true|false)",
       "true"},
      {"strict-arp",
       "arp_ignore=1 and arp_announce=2 so the node does not answer ARP for "
       "service addresses (true|false)",
       "true"},
      {"tcp-timeout", "IPVS TCP established timeout, seconds (0: the kernel's, 900)", "0"},
      {"tcp-fin-timeout", "IPVS TCP FIN_WAIT timeout, seconds (0: the kernel's, 120)", "0"},
      {"udp-timeout", "IPVS UDP timeout, seconds (0: the kernel's, 300)", "0"},
      {"drain-timeout", "hard cap on draining a removed TCP/SCTP backend, seconds", "300"},
      {"drain-check-ms", "how often draining backends' connection counts are read, ms", "1000"},
      {"interface", "dummy interface for service addresses (default sluice-ipvs0)", ""},
  };
}

Result<uint32_t> numberFlag(const ModeFlagValues& values, const std::string& name, uint32_t max) {
  const std::string text = flagValue(values, ipvsFlags(), name);
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v > max || text[0] == '-') {
    return Error::invalid("--ipvs-" + name + " " + text + ": must be an integer from 0 to " +
                          std::to_string(max));
  }
  return static_cast<uint32_t>(v);
}

Result<bool> boolFlag(const ModeFlagValues& values, const std::string& name) {
  const std::string text = flagValue(values, ipvsFlags(), name);
  if (text != "true" && text != "false") {
    return Error::invalid("--ipvs-" + name + " " + text + ": must be true or false");
  }
  return text == "true";
}

std::string readSysctl(const std::string& key) {
  std::ifstream in(kSysctlDir + key);
  std::string v;
  std::getline(in, v);
  return v;
}

Result<void> writeSysctl(const std::string& key, const std::string& value) {
  std::ofstream out(kSysctlDir + key);
  out << value << "\n";
  out.flush();
  if (!out) return Error::internal("sysctl " + key + " = " + value + ": " + std::strerror(errno));
  return okResult();
}

std::string sysctlStateFile(const NodeConfig& node) {
  return "/run/sluice/ipvs-" + node.instance + ".sysctl";
}

// The sysctls the mode sets, with their values.
std::vector<std::pair<std::string, std::string>> wantedSysctls(bool strictArp) {
  std::vector<std::pair<std::string, std::string>> s = {
      {"net/ipv4/vs/conntrack", "1"},
      {"net/ipv4/vs/expire_nodest_conn", "1"},
      {"net/ipv4/vs/expire_quiescent_template", "1"},
  };
  if (strictArp) {
    s.push_back({"net/ipv4/conf/all/arp_ignore", "1"});
    s.push_back({"net/ipv4/conf/all/arp_announce", "2"});
  }
  return s;
}

// Records the originals once, then sets the wanted values.
Result<void> setSysctls(const NodeConfig& node, bool strictArp) {
  const std::string state = sysctlStateFile(node);
  const auto wanted = wantedSysctls(strictArp);
  std::error_code ec;
  if (!std::filesystem::exists(state, ec)) {
    std::filesystem::create_directories(std::filesystem::path(state).parent_path(), ec);
    std::ofstream out(state + ".tmp");
    for (const auto& [key, value] : wanted) out << key << " " << readSysctl(key) << "\n";
    out.close();
    std::filesystem::rename(state + ".tmp", state, ec);
    if (ec) return Error::internal("record sysctls in " + state + ": " + ec.message());
  }
  for (const auto& [key, value] : wanted) {
    if (readSysctl(key) == value) continue;
    if (auto r = writeSysctl(key, value); !r) return r;
  }
  return okResult();
}

Result<void> restoreSysctls(const NodeConfig& node) {
  const std::string state = sysctlStateFile(node);
  std::ifstream in(state);
  if (!in) return okResult();  // never set, or restored already
  std::string errors;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string key, value;
    if (!(f >> key >> value)) continue;
    if (auto r = writeSysctl(key, value); !r) errors += r.error().message + "; ";
  }
  std::error_code ec;
  std::filesystem::remove(state, ec);
  if (!errors.empty()) return Error::internal(errors);
  return okResult();
}

}  // namespace

Result<IpvsDatapathOptions> IpvsDatapathOptions::fromFlags(const ModeFlagValues& values) {
  const auto flags = ipvsFlags();
  for (const auto& [name, value] : values) {
    bool known = false;
    for (const ModeFlag& f : flags) known = known || f.name == name;
    if (!known) return Error::invalid("--ipvs-" + name + ": no such flag of the ipvs mode");
  }
  IpvsDatapathOptions o;
  o.mode.plan.defaultScheduler = flagValue(values, flags, "scheduler");
  if (!knownScheduler(o.mode.plan.defaultScheduler)) {
    return Error::invalid("--ipvs-scheduler " + o.mode.plan.defaultScheduler +
                          ": must be one of rr, wrr, lc, wlc, sh, mh, sed, nq");
  }
  auto mhPort = boolFlag(values, "mh-port");
  if (!mhPort) return mhPort.error();
  o.mode.plan.mhPort = *mhPort;
  auto strict = boolFlag(values, "strict-arp");
  if (!strict) return strict.error();
  o.strictArp = *strict;
  // 31 days: the kernel's timeout fields are seconds in an int of jiffies.
  constexpr uint32_t kMaxTimeout = 31 * 86400;
  uint32_t* timeouts[] = {&o.mode.timeouts.tcpSeconds, &o.mode.timeouts.tcpFinSeconds,
                          &o.mode.timeouts.udpSeconds};
  const char* names[] = {"tcp-timeout", "tcp-fin-timeout", "udp-timeout"};
  for (int i = 0; i < 3; ++i) {
    auto v = numberFlag(values, names[i], kMaxTimeout);
    if (!v) return v.error();
    *timeouts[i] = *v;
  }
  auto drain = numberFlag(values, "drain-timeout", kMaxTimeout);
  if (!drain) return drain.error();
  o.mode.plan.drainTimeout = std::chrono::seconds(*drain);
  auto period = numberFlag(values, "drain-check-ms", 3'600'000);
  if (!period) return period.error();
  if (*period == 0) return Error::invalid("--ipvs-drain-check-ms 0: must be at least 1");
  o.mode.drainCheckPeriod = std::chrono::milliseconds(*period);
  o.interface = flagValue(values, flags, "interface");
  if (o.interface.size() > 15) {
    return Error::invalid("--ipvs-interface " + o.interface + ": at most 15 characters (IFNAMSIZ)");
  }
  o.mode.sourceRangesEnforced = true;
  return o;
}

std::string IpvsDatapath::interfaceName(const NodeConfig& node, const IpvsDatapathOptions& o) {
  if (!o.interface.empty()) return o.interface;
  if (node.instance.empty() || node.instance == "default") return "sluice-ipvs0";
  return ("slipvs-" + node.instance).substr(0, 15);
}

std::string IpvsDatapath::tableName(const NodeConfig& node) {
  std::string t = "sluice_ipvs";
  if (!node.instance.empty() && node.instance != "default") {
    t += "_";
    for (char c : node.instance) t += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  }
  return t;
}

Result<std::unique_ptr<IpvsDatapath>> IpvsDatapath::create(const NodeConfig& node,
                                                           IpvsDatapathOptions options) {
  std::unique_ptr<IpvsDatapath> dp(new IpvsDatapath(node, options));
  // The masquerade rule exists before the first virtual server does (and,
  // after a restart, its sets keep what the last agent wrote).
  auto nft = NftTable::create(tableName(node));
  if (!nft) return nft.error().wrap("ipvs mode");
  dp->nft_ = std::move(*nft);
  auto mode = IpvsMode::create(options.mode);
  if (!mode) return mode.error();
  dp->mode_ = std::move(*mode);
  // After IpvsMode: /proc/sys/net/ipv4/vs exists once ip_vs is loaded.
  if (auto r = setSysctls(node, options.strictArp); !r) return r.error().wrap("ipvs mode");
  const std::string reuse = readSysctl("net/ipv4/vs/conn_reuse_mode");
  if (reuse != "1") {
    log::warning("ipvs", "net.ipv4.vs.conn_reuse_mode is not the kernel default 1; left as it is",
                 {{"conn_reuse_mode", reuse}});
  }
  auto addrs = ServiceAddresses::create(interfaceName(node, options));
  if (!addrs) return addrs.error().wrap("ipvs mode");
  dp->addresses_ = std::move(*addrs);
  return dp;
}

Result<void> IpvsDatapath::claimServiceAddresses(const ServiceDiff& diff, bool full) {
  std::lock_guard lock(mu_);
  std::string errors;
  if (!nft_) return okResult();  // stopped
  if (auto r = nft_->apply(diff, full); !r) errors = r.error().message;
  // Reference counts per address (a ClusterIP serves every port of its
  // Service): an apply touches only its services' addresses.
  if (full) {
    addressesOf_.clear();
    addressRefs_.clear();
  }
  std::set<IpAddress> touched;
  for (const ServiceChange& c : diff.changes) {
    if (auto it = addressesOf_.find(c.key()); it != addressesOf_.end()) {
      for (const IpAddress& a : it->second) {
        if (--addressRefs_[a] == 0) addressRefs_.erase(a);
        touched.insert(a);
      }
      addressesOf_.erase(it);
    }
    if (!c.after) continue;
    std::set<IpAddress>& mine = addressesOf_[c.key()];
    for (const Frontend& f : c.after->frontends) {
      if (f.scope != FrontendScope::kNodePort) mine.insert(f.address);
    }
    for (const IpAddress& a : mine) {
      ++addressRefs_[a];
      touched.insert(a);
    }
  }
  Result<void> r = okResult();
  if (full) {
    std::set<IpAddress> all;
    for (const auto& [a, n] : addressRefs_) all.insert(a);
    r = addresses_->set(all);
  } else {
    std::set<IpAddress> add, remove;
    for (const IpAddress& a : touched) (addressRefs_.count(a) ? add : remove).insert(a);
    r = addresses_->update(add, remove);
  }
  if (!r) errors += (errors.empty() ? "" : "; ") + r.error().message;
  if (!errors.empty()) return Error::internal("ipvs mode: " + errors);
  return okResult();
}

std::set<IpAddress> IpvsDatapath::claimedAddresses() const {
  std::lock_guard lock(mu_);
  return addresses_ ? addresses_->addresses() : std::set<IpAddress>();
}

void IpvsDatapath::stop() {
  // Everything stays programmed for the next agent; only our sockets go.
  std::lock_guard lock(mu_);
  nft_.reset();
}

Result<void> IpvsDatapath::cleanup() {
  {
    std::lock_guard lock(mu_);
    nft_.reset();
    addresses_.reset();
    addressesOf_.clear();
    addressRefs_.clear();
  }
  mode_.reset();
  return cleanupLeftovers(node_, options_);
}

Result<void> IpvsDatapath::cleanupLeftovers(const NodeConfig& node,
                                            const IpvsDatapathOptions& options) {
  std::string errors;
  auto note = [&](const Result<void>& r) {
    if (!r) errors += (errors.empty() ? "" : "; ") + r.error().message;
  };
  if (auto client = NetlinkClient::create(); client) {
    note((*client)->flush());
  }
  note(NftTable::remove(tableName(node)));
  note(ServiceAddresses::removeLink(interfaceName(node, options)));
  note(restoreSysctls(node));
  if (!errors.empty()) return Error::internal("ipvs cleanup: " + errors);
  return okResult();
}

ModeDriver ipvsModeDriver() {
  ModeDriver d;
  d.name = "ipvs";
  d.flags = ipvsFlags();
  d.create = [](const NodeConfig& node,
                const ModeFlagValues& values) -> Result<std::unique_ptr<Datapath>> {
    auto o = IpvsDatapathOptions::fromFlags(values);
    if (!o) return o.error();
    auto dp = IpvsDatapath::create(node, std::move(*o));
    if (!dp) return dp.error();
    return std::unique_ptr<Datapath>(std::move(*dp));
  };
  d.cleanup = [](const NodeConfig& node, const ModeFlagValues& values) -> Result<void> {
    auto o = IpvsDatapathOptions::fromFlags(values);
    if (!o) return o.error();
    return IpvsDatapath::cleanupLeftovers(node, *o);
  };
  return d;
}

}  // namespace sluice::ipvs
