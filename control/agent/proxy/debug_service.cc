#include "control/agent/proxy/debug_service.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <filesystem>


namespace sluice::agent {

namespace {

std::string scopeName(FrontendScope s) {
  switch (s) {
    case FrontendScope::kNodePort: return "NodePort";
    case FrontendScope::kLoadBalancer: return "LoadBalancer";
    case FrontendScope::kExternalIp: return "ExternalIP";
    case FrontendScope::kClusterIp: break;
  }
  return "ClusterIP";
}

std::string stateName(BackendState s) {
  switch (s) {
    case BackendState::kTerminating: return "terminating";
    case BackendState::kQuarantined: return "quarantined";
    case BackendState::kActive: break;
  }
  return "active";
}

void fillBackend(debug::Backend& out, const DescribedBackend& b) {
  out.set_id(b.id);
  out.set_address(b.endpoint.toString());
  out.set_state(stateName(b.state));
  out.set_node_local(b.nodeLocal);
  out.set_slot(b.slot);
  out.set_weight(b.weight);
  out.set_active_connections(b.activeConnections);
  out.set_inactive_connections(b.inactiveConnections);
}

grpc::Status status(const Error& e) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (e.code) {
    case ErrorCode::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case ErrorCode::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case ErrorCode::kAlreadyExists: code = grpc::StatusCode::ALREADY_EXISTS; break;
    case ErrorCode::kResourceExhausted: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    case ErrorCode::kFailedPrecondition: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    case ErrorCode::kAborted: code = grpc::StatusCode::ABORTED; break;
    case ErrorCode::kOutOfRange: code = grpc::StatusCode::OUT_OF_RANGE; break;
    case ErrorCode::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
    case ErrorCode::kInternal: code = grpc::StatusCode::INTERNAL; break;
  }
  return grpc::Status(code, e.message);
}

}  // namespace

debug::ListServicesResponse describeServices(std::string_view mode,
                                             const std::vector<DescribedFrontend>& frontends) {
  debug::ListServicesResponse out;
  out.set_mode(std::string(mode));
  for (const DescribedFrontend& d : frontends) {
    debug::Frontend* f = out.add_frontends();
    f->set_address(Endpoint{d.frontend.address, d.frontend.port}.toString());
    f->set_protocol(std::string(toString(d.frontend.protocol)));
    f->set_scope(scopeName(d.frontend.scope));
    f->set_service(d.service);
    f->set_service_id(d.serviceId);
    if (d.affinity) f->add_flags("affinity");
    if (d.local) f->add_flags("local");
    if (d.maglev) f->add_flags("maglev");
    f->set_active(d.active);
    f->set_terminating(d.terminating);
    f->set_affinity_timeout_s(d.affinityTimeoutSeconds);
    f->set_maglev_size(d.maglevSize);
    f->set_scheduler(d.scheduler);
    for (const DescribedBackend& b : d.backends) fillBackend(*f->add_backends(), b);
  }
  return out;
}

Result<ServiceKey> findServiceKey(const ServiceTable& table, const std::string& name) {
  for (const auto& [key, svc] : table) {
    if (key.toString() == name) return key;
  }
  // "ns/name" for a service with one port.
  std::optional<ServiceKey> only;
  for (const auto& [key, svc] : table) {
    if (key.ns + "/" + key.name == name) {
      if (only) return Error::notFound("service " + name + ": it has several ports, name one (ns/name:port)");
      only = key;
    }
  }
  if (!only) return Error::notFound("service " + name + ": not programmed");
  return *only;
}

debug::GetMaglevResponse describeMaglev(const DescribedSelection& sel) {
  debug::GetMaglevResponse out;
  out.set_service(sel.service);
  out.set_service_id(sel.serviceId);
  for (const SelectionTable& t : sel.tables) {
    debug::MaglevTable* m = out.add_tables();
    m->set_set_id(t.id);
    m->set_family(t.family == IpFamily::kV6 ? "IPv6" : "IPv4");
    m->set_node_local(t.nodeLocal);
    m->set_size(static_cast<uint32_t>(t.slots.size()));
    for (uint32_t id : t.slots) m->add_slots(id);
  }
  for (const DescribedBackend& b : sel.backends) fillBackend(*out.add_backends(), b);
  return out;
}

debug::ListConntrackResponse describeConntrack(const std::vector<DescribedFlow>& flows) {
  debug::ListConntrackResponse out;
  for (const DescribedFlow& f : flows) {
    debug::ConntrackEntry* e = out.add_entries();
    e->set_direction(f.reply ? "reply" : "service");
    e->set_protocol(std::string(toString(f.protocol)));
    e->set_source(f.source.toString());
    e->set_destination(f.destination.toString());
    e->set_backend_id(f.backendId);
    if (f.backend) e->set_backend(f.backend->toString());
    if (f.nat) e->set_nat(f.nat->toString());
    for (const std::string& flag : f.flags) e->add_flags(flag);
    e->set_set_id(f.setId);
    e->set_tcp_flags(f.tcpFlags);
    e->set_idle_ms(f.idleMs);
  }
  return out;
}

debug::GetModeResponse describeMode(const ProxyMode& mode) {
  debug::GetModeResponse out;
  out.set_mode(std::string(mode.name()));
  out.set_epoch(mode.epoch());
  utsname u{};
  if (::uname(&u) == 0) out.set_kernel(u.release);
  const ModeCapabilities caps = mode.capabilities();
  for (const auto& [feature, effect] : caps.missing) {
    debug::MissingFeature* m = out.add_missing();
    m->set_feature(std::string(toString(feature)));
    m->set_effect(effect);
  }
  out.set_fixed_maglev_table_size(caps.fixedMaglevTableSize.value_or(0));
  for (const auto& [name, value] : mode.stats().counters) (*out.mutable_counters())[name] = value;
  return out;
}

// ---------------------------------------------------------------------------

class DebugServer::Impl final : public debug::ProxyDebug::Service {
 public:
  Impl(const ProxyMode& mode, TableSource table) : mode_(mode), table_(std::move(table)) {}

  grpc::Status ListServices(grpc::ServerContext*, const debug::ListServicesRequest*,
                            debug::ListServicesResponse* out) override {
    auto d = mode_.describeFrontends();
    if (!d) return status(d.error());
    *out = describeServices(mode_.name(), *d);
    return grpc::Status::OK;
  }

  grpc::Status GetMaglev(grpc::ServerContext*, const debug::GetMaglevRequest* req,
                         debug::GetMaglevResponse* out) override {
    auto key = findServiceKey(table_(), req->service());
    if (!key) return status(key.error());
    auto sel = mode_.describeSelection(*key);
    if (!sel) return status(sel.error());
    *out = describeMaglev(*sel);
    return grpc::Status::OK;
  }

  grpc::Status ListConntrack(grpc::ServerContext*, const debug::ListConntrackRequest*,
                             debug::ListConntrackResponse* out) override {
    auto flows = mode_.describeFlows(0);
    if (!flows) return status(flows.error());
    *out = describeConntrack(*flows);
    return grpc::Status::OK;
  }

  grpc::Status GetMode(grpc::ServerContext*, const debug::GetModeRequest*,
                       debug::GetModeResponse* out) override {
    *out = describeMode(mode_);
    return grpc::Status::OK;
  }

 private:
  const ProxyMode& mode_;
  TableSource table_;
};

Result<std::unique_ptr<DebugServer>> DebugServer::start(const std::string& socketPath,
                                                        const ProxyMode& mode, TableSource table) {
  std::error_code ec;
  const std::filesystem::path path(socketPath);
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  std::filesystem::remove(path, ec);  // a stale socket of an earlier run
  std::unique_ptr<DebugServer> s(new DebugServer());
  s->socketPath_ = socketPath;
  s->impl_ = std::make_unique<Impl>(mode, std::move(table));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("unix:" + socketPath, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(s->impl_.get());
  // Node-local and root-only (the datapath shows every connection of the
  // node): the socket is created 0600 by bind() under this umask, never
  // reachable by others between bind and a chmod. The umask is the
  // process's; for this moment it only makes other threads' new files
  // stricter, never looser.
  const mode_t old = ::umask(0077);
  s->server_ = builder.BuildAndStart();
  ::umask(old);
  if (!s->server_ || port == 0) {
    return Error::unavailable("debug API: cannot listen on unix:" + socketPath);
  }
  return s;
}

DebugServer::~DebugServer() { stop(); }

void DebugServer::stop() {
  if (server_) {
    server_->Shutdown();
    server_.reset();
    std::error_code ec;
    std::filesystem::remove(socketPath_, ec);
  }
}

}  // namespace sluice::agent
