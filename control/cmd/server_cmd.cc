#include "control/cmd/server_cmd.h"
#include "control/client/kubeconfig.h"
#include "control/api/names.h"
#include "control/server/credentials.h"
#include "control/server/authz.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>

#include "control/logging/logging.h"
#include "dataplane/log.h"

namespace sluice::cmd {

namespace {

struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};

// "127.0.0.1:6443", "[::1]:6443", ":6443" (all addresses).
std::optional<ListenAddress> parseListen(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  ListenAddress a;
  a.host = s.substr(0, colon);
  if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']') a.host = a.host.substr(1, a.host.size() - 2);
  if (a.host.empty()) a.host = "0.0.0.0";
  std::string port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  unsigned long p = std::stoul(port);
  if (p > 65535) return std::nullopt;
  a.port = static_cast<uint16_t>(p);
  return a;
}

Error flagError(const std::string& flag, const std::string& value, const std::string& expected) {
  return Error{ErrorCode::kInvalidArgument, flag + " " + value + ": expected " + expected};
}

}  // namespace

void addServerFlags(CLI::App& app, ServerFlags& f) {
  app.add_option("--data-dir", f.dataDir, "state, credentials and kubeconfig directory")->capture_default_str();
  app.add_option("--listen", f.listen, "HTTPS listen address ADDR:PORT (port 0: any free port)")->capture_default_str();
  app.add_option("--service-cluster-ip-range,--service-cidr", f.serviceCidr, "ClusterIP range")->capture_default_str();
  app.add_option("--service-node-port-range", f.nodePorts, "NodePort range FIRST-LAST")->capture_default_str();
  app.add_option("--lb-pool", f.lbPool, "LoadBalancer ingress address pool (CIDR)")->capture_default_str();
  app.add_option("--cluster-cidr", f.clusterCidr,
                 "pod CIDRs for Nodes without spec.podCIDR are cut from this (empty: no allocation)")
      ->capture_default_str();
  app.add_option("--node-cidr-mask-size", f.nodeCidrMaskSize, "prefix length of each Node's pod CIDR")
      ->capture_default_str();
  app.add_option("--advertise-address", f.advertiseAddress,
                 "address in the `kubernetes` Service's endpoints (default: the listen address unless a wildcard "
                 "or loopback, else the default-route IPv4)");
  app.add_option("--compact-interval", f.compactSeconds, "seconds of history kept for watches (0: keep all)")
      ->capture_default_str();
  app.add_flag("--disable-controllers", f.noControllers,
               "serve the API only (no ReplicaSet, Deployment, ... controllers)");
  app.add_option("--max-requests-inflight", f.maxRequestsInflight,
                 "read-only requests served at once; more are answered 429 (0: no limit)")
      ->capture_default_str();
  app.add_option("--max-mutating-requests-inflight", f.maxMutatingRequestsInflight,
                 "mutating requests served at once; more are answered 429 (0: no limit)")
      ->capture_default_str();
  app.add_option("--max-connections", f.maxConnections,
                 "open client connections at most (0: three quarters of the fd limit)")
      ->capture_default_str();
}

void addLogFlags(CLI::App& app, LogFlags& f) {
  app.add_option("-v,--v", f.verbosity, "log verbosity: 0 always, 2 steady-state detail, 3 every API request, 4 debug")
      ->capture_default_str();
  app.add_option("--log-format", f.format, "text, logfmt or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "logfmt", "json"}));
  app.add_option("--log-file", f.file, "write logs to this file instead of stderr");
}

Result<void> installLogging(const LogFlags& f) {
  auto format = logging::parseFormat(f.format);
  if (!format) return format.error();
  logging::LogOptions o;
  o.verbosity = f.verbosity;
  o.format = *format;
  o.file = f.file;
  return logging::install(o);
}

Result<std::unique_ptr<ServerProcess>> ServerProcess::start(const ServerFlags& f) {
  auto addr = parseListen(f.listen);
  if (!addr) return flagError("--listen", f.listen, "ADDR:PORT");
  server::ApiServerOptions o;
  o.dataDir = f.dataDir;
  o.listenHost = addr->host;
  o.listenPort = addr->port;
  o.network.serviceCidr = f.serviceCidr;
  o.network.loadBalancerPool = f.lbPool;
  o.maxRequestsInflight = f.maxRequestsInflight;
  o.maxMutatingRequestsInflight = f.maxMutatingRequestsInflight;
  o.http.maxConnections = f.maxConnections;
  controllers::ManagerOptions mo;
  if (!f.noControllers && !f.clusterCidr.empty()) {
    // Checked before anything starts, so a bad flag leaves nothing behind.
    if (auto r = controllers::NodeCidrSet::create(f.clusterCidr, f.nodeCidrMaskSize); !r) return r.error();
    mo.nodeIpam.clusterCidr = f.clusterCidr;
    mo.nodeIpam.nodeCidrMaskSize = f.nodeCidrMaskSize;
  }
  o.advertiseAddress = f.advertiseAddress.empty() ? defaultAdvertiseAddress(addr->host) : f.advertiseAddress;
  {
    in_addr v4{};
    in6_addr v6{};
    if (::inet_pton(AF_INET, o.advertiseAddress.c_str(), &v4) != 1 &&
        ::inet_pton(AF_INET6, o.advertiseAddress.c_str(), &v6) != 1) {
      return flagError("--advertise-address", o.advertiseAddress, "an IPv4 or IPv6 address");
    }
  }
  if (addr->host != "0.0.0.0" && addr->host != "::" && addr->host != o.advertiseAddress) {
    // Not an error (a proxy or NAT may forward it), but usually a mistake.
    log::warning("server",
                 "--advertise-address is not the listen address; the `kubernetes` Service's endpoint may refuse "
                 "connections (listen on 0.0.0.0?)",
                 {{"advertiseAddress", o.advertiseAddress}, {"listen", addr->host}});
  }
  o.compactInterval = std::chrono::seconds(f.compactSeconds);
  size_t dash = f.nodePorts.find('-');
  if (dash == std::string::npos) return flagError("--service-node-port-range", f.nodePorts, "FIRST-LAST");
  o.network.nodePortFirst = std::atoi(f.nodePorts.substr(0, dash).c_str());
  o.network.nodePortLast = std::atoi(f.nodePorts.substr(dash + 1).c_str());

  std::unique_ptr<ServerProcess> p(new ServerProcess());
  auto s = server::ApiServer::start(o);
  if (!s) return s.error();
  p->server_ = std::move(*s);
  if (!f.noControllers) {
    auto kc = client::Kubeconfig::load(p->server_->kubeconfigPath());
    if (!kc) return kc.error();
    auto c = client::ApiClient::create(*kc, "sluice-controller-manager");
    if (!c) return c.error();
    p->client_ = std::move(*c);
    auto m = controllers::ControllerManager::start(*p->client_, mo);
    if (!m) return m.error();
    p->controllers_ = std::move(*m);
  }
  return p;
}

ServerProcess::~ServerProcess() { stop(); }

void ServerProcess::stop() {
  if (controllers_) controllers_->stop();
  controllers_.reset();
  if (server_) server_->stop();
}

void blockSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int waitForSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

std::string selfExe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("/proc/self/exe");
}

std::string primaryIpv4() {
  std::string defaultIf;
  std::ifstream routes("/proc/net/route");
  std::string line;
  std::getline(routes, line);  // header
  while (std::getline(routes, line)) {
    std::istringstream ss(line);
    std::string iface, dest;
    ss >> iface >> dest;
    if (dest == "00000000") {
      defaultIf = iface;
      break;
    }
  }
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string first, onDefault;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if ((a->ifa_flags & IFF_LOOPBACK) != 0 || (a->ifa_flags & IFF_UP) == 0) continue;
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof text);
    if (first.empty()) first = text;
    if (a->ifa_name == defaultIf && onDefault.empty()) onDefault = text;
  }
  ::freeifaddrs(list);
  return onDefault.empty() ? first : onDefault;
}

std::string defaultAdvertiseAddress(const std::string& listenHost) {
  bool wildcard = listenHost.empty() || listenHost == "0.0.0.0" || listenHost == "::";
  // A specific address (loopback included) is advertised as it is: with a
  // loopback listener, host processes reach the `kubernetes` ClusterIP and
  // pods cannot (they need --listen 0.0.0.0:PORT, the default).
  if (!wildcard) return listenHost;
  std::string ip = primaryIpv4();
  return ip.empty() ? "127.0.0.1" : ip;
}

}  // namespace sluice::cmd

namespace sluice::cmd {

Result<std::string> nodeKubeconfig(const std::string& dataDir, const std::string& nodeName,
                                   const std::string& serverUrl) {
  auto read = [&](const std::string& name) -> Result<std::string> {
    std::ifstream f(dataDir + "/" + name);
    if (!f) return Error::notFound(dataDir + "/" + name + ": not readable (is --data-dir the server's?)");
    std::stringstream ss;
    ss << f.rdbuf();
    std::string out = ss.str();
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  };
  if (!api::checkDns1123Subdomain(nodeName).empty()) {
    return Error::invalid("--node-name " + nodeName + ": must be a DNS-1123 subdomain, as a Node's name");
  }
  auto secret = read("node-secret");
  if (!secret) return secret.error();
  auto ca = read("ca.crt");
  if (!ca) return ca.error();
  std::string url = serverUrl;
  if (url.empty()) {
    auto admin = client::Kubeconfig::load(dataDir + "/kubeconfig");
    if (!admin) return admin.error();
    url = admin->url();
  }
  const std::string token = server::Authenticator("", *secret).nodeToken(nodeName);
  return server::kubeconfigYaml(url, *ca + "\n", token, "system:node:" + nodeName);
}

}  // namespace sluice::cmd
