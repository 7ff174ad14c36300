#include "dataplane/dpdk/dpdk_mode.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dataplane/dpdk/api_codec.h"
#include "dataplane/dpdk/dpdk.grpc.pb.h"
#include "dataplane/dpdk/forwarding.h"
#include "dataplane/log.h"

namespace sluice::dpdk {
namespace {

// Services per SyncChunk: ~200 B each, so a chunk stays near 200 KB, far
// below gRPC's 4 MB default, whatever the cluster's size.
constexpr int kSyncChunk = 1000;
constexpr auto kApplyDeadline = std::chrono::seconds(10);
constexpr auto kPollEvery = std::chrono::milliseconds(500);
// How long a started process has to answer: EAL, ports, TAP, state file.
constexpr auto kStartTimeout = std::chrono::seconds(30);

std::vector<ModeFlag> dpdkFlags() {
  return {
      {"socket", "unix socket of the sluice-dpdk API (default /run/sluice/dpdk-<node>.sock)", ""},
      {"start", "start sluice-dpdk when nothing answers on the socket (true|false)", "true"},
      {"binary", "the sluice-dpdk executable (default: beside the agent, else PATH)", ""},
      {"uplink-vdev", "EAL vdev owning the uplink (default net_af_packet0,iface=<--uplink>)", ""},
      {"uplink-pci", "PCI address of a NIC for the uplink instead of a vdev", ""},
      {"tap", "the exception path's TAP interface (default sl-<node>, 15 chars)", ""},
      {"workers", "worker lcores", "1"},
      {"state-file",
       "shared-memory file keeping flows across restarts (default "
       "/dev/shm/sluice-dpdk-<node>.state)",
       ""},
      {"kernel-addresses",
       "CIDRs on the TAP, comma-separated (default: each node address /24 or /64)", ""},
      {"kernel-routes", "CIDRs routed into the TAP, comma-separated (the service CIDR)", ""},
      {"gateway-mac",
       "next hop MAC for backends on other nodes until the kernel has resolved theirs", ""},
      {"snat-ports", "ports SNAT hands out on the node address", "61000-65535"},
      {"conntrack-capacity", "flows per worker", "262144"},
      {"max-backends", "backend ids (services x endpoints, with headroom)", "65536"},
  };
}

std::vector<std::string> splitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string defaultBinary() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  for (const auto& candidate : {self.parent_path() / "sluice-dpdk",
                                self.parent_path() / "../../dataplane/dpdk/sluice-dpdk"}) {
    if (std::filesystem::exists(candidate, ec))
      return std::filesystem::canonical(candidate, ec).string();
  }
  return "sluice-dpdk";
}

grpc::ClientContext* withDeadline(grpc::ClientContext& ctx, std::chrono::milliseconds d) {
  ctx.set_deadline(std::chrono::system_clock::now() + d);
  return &ctx;
}

Error fromStatus(const std::string& what, const grpc::Status& s) {
  ErrorCode code = ErrorCode::kUnavailable;
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      code = ErrorCode::kInvalidArgument;
      break;
    case grpc::StatusCode::ALREADY_EXISTS:
      code = ErrorCode::kAlreadyExists;
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      code = ErrorCode::kResourceExhausted;
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      code = ErrorCode::kFailedPrecondition;
      break;
    case grpc::StatusCode::NOT_FOUND:
      code = ErrorCode::kNotFound;
      break;
    case grpc::StatusCode::INTERNAL:
      code = ErrorCode::kInternal;
      break;
    default:
      break;
  }
  return {code, "sluice-dpdk " + what + ": " + s.error_message()};
}

// A Service's message to the process; an option value the process would
// not understand is said (once per service and 30 s) and sent on: the
// process NATs the service.
void serviceToProto(const Service& s, api::Service& out) {
  if (!wantsDsr(s)) {
    const std::string key = "dpdk-forwarding/" + s.key.toString();
    log::warning(log::Limit{key}, "dpdk", "unknown sluice.io/dpdk-forwarding value: the service is NATed",
                 {{"service", s.key.toString()}, {"value", s.modeOptions.at(kForwardingOption)},
                  {"want", "dsr|nat"}});
  }
  toProto(s, out);
}

Result<DescribedBackend> backendFrom(const api::DescribedBackend& b, uint32_t slot) {
  auto address = addressFrom(b.address());
  if (!address) return address.error();
  return DescribedBackend{b.id(),         Endpoint{*address, uint16_t(b.port())},
                          uint16_t(b.weight()), static_cast<BackendState>(b.state()),
                          b.node_local(), slot};
}

}  // namespace

Result<DpdkModeOptions> DpdkModeOptions::fromFlags(const NodeConfig& node,
                                                   const ModeFlagValues& values) {
  const auto flags = dpdkFlags();
  for (const auto& [name, value] : values) {
    bool known = false;
    for (const ModeFlag& f : flags) known = known || f.name == name;
    if (!known) return Error::invalid("--dpdk-" + name + ": no such flag of the dpdk mode");
  }
  auto get = [&](const std::string& n) { return flagValue(values, flags, n); };
  DpdkModeOptions o;
  const std::string instance = node.instance.empty() ? "default" : node.instance;
  o.socket = get("socket").empty() ? "/run/sluice/dpdk-" + instance + ".sock" : get("socket");
  if (get("start") != "true" && get("start") != "false") {
    return Error::invalid("--dpdk-start " + get("start") + ": must be true or false");
  }
  o.start = get("start") == "true";
  o.binary = get("binary").empty() ? defaultBinary() : get("binary");
  o.stateFile =
      get("state-file").empty() ? "/dev/shm/sluice-dpdk-" + instance + ".state" : get("state-file");
  o.pidFile = o.socket + ".pid";
  std::string tap = get("tap").empty() ? "sl-" + instance : get("tap");
  if (tap.size() > 15) tap.resize(15);  // IFNAMSIZ - 1
  auto& a = o.processArgs;
  if (!get("uplink-pci").empty()) {
    a.insert(a.end(), {"--uplink-pci", get("uplink-pci")});
  } else if (!get("uplink-vdev").empty()) {
    a.insert(a.end(), {"--uplink-vdev", get("uplink-vdev")});
  } else if (!node.uplink.empty()) {
    a.insert(a.end(), {"--uplink-vdev", "net_af_packet0,iface=" + node.uplink});
  } else if (o.start) {
    return Error::invalid(
        "the dpdk mode needs an uplink: --uplink, --dpdk-uplink-vdev or --dpdk-uplink-pci");
  }
  a.insert(a.end(),
           {"--tap", tap, "--socket", o.socket, "--state-file", o.stateFile, "--workers",
            get("workers"), "--conntrack-capacity", get("conntrack-capacity"), "--snat-ports",
            get("snat-ports"), "--file-prefix", "sluice-dpdk-" + instance});
  std::vector<std::string> kernelAddresses = splitCommas(get("kernel-addresses"));
  if (kernelAddresses.empty()) {
    for (const IpAddress& n : node.nodeAddresses)
      kernelAddresses.push_back(n.toString() + (n.isV4() ? "/24" : "/64"));
  }
  for (const std::string& k : kernelAddresses) a.insert(a.end(), {"--kernel-address", k});
  for (const std::string& r : splitCommas(get("kernel-routes")))
    a.insert(a.end(), {"--kernel-route", r});
  for (const IpAddress& n : node.nodeAddresses) a.insert(a.end(), {"--node-address", n.toString()});
  if (!get("gateway-mac").empty()) a.insert(a.end(), {"--gateway-mac", get("gateway-mac")});
  return o;
}

struct DpdkMode::Client {
  std::unique_ptr<api::Dataplane::Stub> stub;
};

Result<std::unique_ptr<DpdkMode>> DpdkMode::create(const DpdkModeOptions& options) {
  std::unique_ptr<DpdkMode> m(new DpdkMode());
  m->options_ = options;
  m->client_ = std::make_unique<Client>();
  m->client_->stub = api::Dataplane::NewStub(
      grpc::CreateChannel("unix:" + options.socket, grpc::InsecureChannelCredentials()));
  auto epoch = m->fetchEpoch();
  if (!epoch && options.start) {
    // Detached (double fork, own session): it must outlive this agent.
    // Everything is prepared before fork(): between fork and exec only
    // async-signal-safe calls (this process has gRPC's threads).
    std::vector<std::string> args = {options.binary};
    args.insert(args.end(), options.processArgs.begin(), options.processArgs.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string logPath = options.socket + ".log";
    int pidPipe[2];
    if (::pipe2(pidPipe, O_CLOEXEC) != 0)
      return Error::internal(std::string("pipe: ") + std::strerror(errno));
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child < 0) return Error::internal(std::string("fork: ") + std::strerror(errno));
    if (child == 0) {
      ::setsid();
      const pid_t grandchild = ::fork();
      if (grandchild != 0) {
        (void)!::write(pidPipe[1], &grandchild, sizeof grandchild);
        ::_exit(grandchild < 0 ? 1 : 0);
      }
      // The agent blocks its stop signals (sigwait); the process must not inherit that.
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      const int log = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      ::dup2(null, 0);
      ::dup2(log, 1);
      ::dup2(log, 2);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(pidPipe[1]);
    pid_t started = 0;
    if (::read(pidPipe[0], &started, sizeof started) == sizeof started && started > 0) {
      std::ofstream(options.pidFile) << started << "\n";
    }
    ::close(pidPipe[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    while (!(epoch = m->fetchEpoch()) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!epoch) {
      return Error::unavailable("sluice-dpdk (" + options.binary + ") did not answer on " +
                                options.socket + " within 30 s; see " + options.socket + ".log");
    }
  }
  if (!epoch) return epoch.error();
  m->epoch_ = *epoch;
  m->poller_ = std::thread([p = m.get()] { p->poll(); });
  return m;
}

DpdkMode::~DpdkMode() { stop(); }

void DpdkMode::stop() {
  {
    std::lock_guard lock(pollMu_);
    stop_ = true;
  }
  pollCv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

Result<uint64_t> DpdkMode::fetchEpoch() const {
  grpc::ClientContext ctx;
  api::StatusReply reply;
  const grpc::Status s = client_->stub->Status(withDeadline(ctx, std::chrono::milliseconds(500)),
                                               api::StatusRequest(), &reply);
  if (!s.ok()) return fromStatus("status", s);
  return reply.epoch();
}

void DpdkMode::poll() {
  std::unique_lock lock(pollMu_);
  while (!pollCv_.wait_for(lock, kPollEvery, [this] { return stop_; })) {
    lock.unlock();
    auto e = fetchEpoch();
    if (e && *e != epoch_.load()) {
      // A restarted process: its service tables are empty.
      epoch_ = *e;
      std::lock_guard l(listenerMu_);
      if (listener_) listener_();
    }
    lock.lock();
  }
}

void DpdkMode::onStateLost(std::function<void()> listener) {
  std::lock_guard lock(listenerMu_);
  listener_ = std::move(listener);
}

ModeCapabilities DpdkMode::capabilities() const {
  ModeCapabilities c;
  c.missing[ModeFeature::kSocketLb] =
      "no socket-level load balancing: the node's own processes reach services per packet, "
      "through the TAP route (--dpdk-kernel-routes)";
  c.missing[ModeFeature::kSctp] =
      "SCTP is not translated (its CRC32c cannot be updated incrementally)";
  return c;
}

Result<void> DpdkMode::sync(const ServiceTable& table) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  api::SyncReply reply;
  auto writer = client_->stub->Sync(&ctx, &reply);
  api::SyncChunk chunk;
  for (const auto& [key, s] : table) {
    serviceToProto(s, *chunk.add_services());
    if (chunk.services_size() == kSyncChunk) {
      if (!writer->Write(chunk)) break;
      chunk.Clear();
    }
  }
  if (chunk.services_size() > 0 || table.empty()) writer->Write(chunk);
  writer->WritesDone();
  const grpc::Status s = writer->Finish();
  if (!s.ok()) return fromStatus("sync", s);
  syncedEpoch_ = reply.epoch();
  return okResult();
}

Result<void> DpdkMode::apply(const ServiceDiff& diff) {
  api::ApplyRequest req;
  // Against the tables the last sync filled: a restarted process refuses.
  req.set_epoch(syncedEpoch_);
  for (const ServiceChange& c : diff.changes) {
    if (c.removed()) {
      toProto(c.key(), *req.add_removals());
    } else {
      serviceToProto(*c.after, *req.add_upserts());
    }
  }
  grpc::ClientContext ctx;
  api::ApplyReply reply;
  const grpc::Status s = client_->stub->Apply(withDeadline(ctx, kApplyDeadline), req, &reply);
  if (!s.ok()) return fromStatus("apply", s);
  return okResult();
}

ProxyStats DpdkMode::stats() const {
  ProxyStats out;
  grpc::ClientContext ctx;
  api::StatusReply reply;
  if (!client_->stub
           ->Status(withDeadline(ctx, std::chrono::seconds(2)), api::StatusRequest(), &reply)
           .ok()) {
    return out;
  }
  out.services = reply.services();
  out.frontends = reply.frontends();
  out.backends = reply.backends();
  out.applies = reply.applies();
  out.applyErrors = reply.apply_errors();
  for (const auto& c : reply.counters()) out.counters[c.name()] = c.value();
  return out;
}

Result<std::vector<DescribedFrontend>> DpdkMode::describeFrontends() const {
  grpc::ClientContext ctx;
  api::FrontendList list;
  const grpc::Status s = client_->stub->DescribeFrontends(
      withDeadline(ctx, std::chrono::seconds(5)), api::DescribeRequest(), &list);
  if (!s.ok()) return fromStatus("describe", s);
  std::vector<DescribedFrontend> out;
  for (const api::DescribedFrontend& p : list.frontends()) {
    DescribedFrontend d;
    auto a = addressFrom(p.frontend().address());
    if (!a) return a.error();
    d.frontend = {*a, uint16_t(p.frontend().port()), static_cast<Protocol>(p.frontend().protocol()),
                  static_cast<FrontendScope>(p.frontend().scope())};
    d.service = p.service();
    d.serviceId = p.service_id();
    d.affinity = p.affinity();
    d.affinityTimeoutSeconds = p.affinity_timeout_s();
    d.local = p.local();
    d.maglev = p.maglev();
    d.maglevSize = p.maglev_size();
    d.scheduler = p.maglev() ? "maglev" : "hash";
    d.active = p.active();
    d.terminating = p.terminating();
    uint32_t slot = 0;
    for (const api::DescribedBackend& b : p.backends()) {
      auto backend = backendFrom(b, ++slot);
      if (!backend) return backend.error();
      d.backends.push_back(*backend);
    }
    out.push_back(std::move(d));
  }
  return out;
}

Result<DescribedSelection> DpdkMode::describeSelection(const ServiceKey& key) const {
  grpc::ClientContext ctx;
  api::ServiceKey req;
  toProto(key, req);
  api::Selection reply;
  const grpc::Status s =
      client_->stub->DescribeSelection(withDeadline(ctx, std::chrono::seconds(5)), req, &reply);
  if (!s.ok()) return fromStatus("describe selection", s);
  DescribedSelection out;
  out.service = reply.service();
  out.serviceId = reply.service_id();
  for (const api::SelectionTable& t : reply.tables()) {
    out.tables.push_back({t.id(), t.family() == 6 ? IpFamily::kV6 : IpFamily::kV4, t.node_local(),
                          {t.slots().begin(), t.slots().end()}});
  }
  for (const api::DescribedBackend& b : reply.backends()) {
    auto d = backendFrom(b, 0);
    if (!d) return d.error();
    out.backends.push_back(*d);
  }
  return out;
}

Result<std::vector<DescribedFlow>> DpdkMode::describeFlows(size_t limit) const {
  grpc::ClientContext ctx;
  api::DescribeFlowsRequest req;
  req.set_limit(limit);
  api::FlowList list;
  const grpc::Status s =
      client_->stub->DescribeFlows(withDeadline(ctx, std::chrono::seconds(5)), req, &list);
  if (!s.ok()) return fromStatus("describe flows", s);
  std::vector<DescribedFlow> out;
  for (const api::Flow& f : list.flows()) {
    DescribedFlow d;
    d.protocol = static_cast<Protocol>(f.protocol());
    auto src = addressFrom(f.source()), dst = addressFrom(f.destination()),
         be = addressFrom(f.backend());
    if (!src || !dst || !be) continue;
    d.source = {*src, uint16_t(f.source_port())};
    d.destination = {*dst, uint16_t(f.destination_port())};
    d.backend = Endpoint{*be, uint16_t(f.backend_port())};
    d.backendId = f.backend_id();
    if (!f.snat().empty()) {
      if (auto sn = addressFrom(f.snat())) {
        d.nat = Endpoint{*sn, uint16_t(f.snat_port())};
        d.flags.push_back("snat");
      }
    }
    d.flags.push_back("worker=" + std::to_string(f.worker()));
    d.tcpFlags = f.state();
    d.idleMs = f.idle_ms();
    out.push_back(std::move(d));
  }
  return out;
}

Result<std::unique_ptr<DpdkDatapath>> DpdkDatapath::create(const NodeConfig&,
                                                           const DpdkModeOptions& options) {
  auto mode = DpdkMode::create(options);
  if (!mode) return mode.error().wrap("dpdk mode");
  return std::unique_ptr<DpdkDatapath>(new DpdkDatapath(options, std::move(*mode)));
}

Result<void> DpdkDatapath::claimServiceAddresses(const ServiceDiff& diff, bool full) {
  std::lock_guard lock(addressesMu_);
  if (full) addresses_.clear();
  for (const ServiceChange& c : diff.changes) {
    if (c.before) {
      for (const Frontend& f : c.before->frontends) addresses_.erase(f.address);
    }
    if (c.after) {
      for (const Frontend& f : c.after->frontends) {
        if (f.scope == FrontendScope::kLoadBalancer || f.scope == FrontendScope::kExternalIp) {
          addresses_.insert(f.address);
        }
      }
    }
  }
  return okResult();
}

std::set<IpAddress> DpdkDatapath::claimedAddresses() const {
  std::lock_guard lock(addressesMu_);
  return addresses_;
}

Result<void> DpdkDatapath::cleanup() {
  mode_->stop();
  return cleanupLeftovers(options_);
}

Result<void> DpdkDatapath::cleanupLeftovers(const DpdkModeOptions& options) {
  // Only a process this agent started (its PID file), and only if that PID
  // still runs sluice-dpdk: never a process by name.
  std::ifstream pidIn(options.pidFile);
  pid_t pid = 0;
  if (pidIn >> pid && pid > 1) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    if (comm >> name && name == "sluice-dpdk") {
      ::kill(pid, SIGTERM);
      for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) ::usleep(50'000);
      // Still there after 5 s: it does not get to keep the NIC.
      if (::kill(pid, 0) == 0) {
        log::warning("dpdk", "sluice-dpdk did not stop on SIGTERM within 5 s: SIGKILL",
                     {{"pid", std::to_string(pid)}});
        ::kill(pid, SIGKILL);
        for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) ::usleep(10'000);
      }
    }
  }
  std::error_code ec;
  std::filesystem::remove(options.pidFile, ec);
  std::filesystem::remove(options.stateFile, ec);
  std::filesystem::remove(options.socket + ".log", ec);
  return okResult();
}

ModeDriver dpdkModeDriver() {
  ModeDriver d;
  d.name = "dpdk";
  d.flags = dpdkFlags();
  d.create = [](const NodeConfig& node,
                const ModeFlagValues& values) -> Result<std::unique_ptr<Datapath>> {
    auto o = DpdkModeOptions::fromFlags(node, values);
    if (!o) return o.error();
    auto dp = DpdkDatapath::create(node, *o);
    if (!dp) return dp.error();
    return std::unique_ptr<Datapath>(std::move(*dp));
  };
  d.cleanup = [](const NodeConfig& node, const ModeFlagValues& values) -> Result<void> {
    auto o = DpdkModeOptions::fromFlags(node, values);
    if (!o) return o.error();
    return DpdkDatapath::cleanupLeftovers(*o);
  };
  return d;
}

}  // namespace sluice::dpdk
