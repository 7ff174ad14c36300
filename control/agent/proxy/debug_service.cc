#include "control/agent/proxy/debug_service.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <time.h>

#include <filesystem>

#include "bpf/loader/lb_layout.h"

namespace sluice::agent {

namespace {

std::string hostPort(const IpAddress& a, uint16_t port) {
  return a.isV4() ? a.toString() + ":" + std::to_string(port)
                  : "[" + a.toString() + "]:" + std::to_string(port);
}

std::string endpoint(const __be32 (&addr)[4], uint8_t family, __be16 port) {
  return hostPort(bpf::loadAddress(addr, family), ntohs(port));
}

std::string protoName(uint8_t p) { return std::string(toString(static_cast<Protocol>(p))); }

std::string stateName(uint8_t s) {
  switch (s) {
    case SL_BACKEND_ACTIVE: return "active";
    case SL_BACKEND_TERMINATING: return "terminating";
    case SL_BACKEND_QUARANTINED: return "quarantined";
  }
  return "state-" + std::to_string(s);
}

std::string scopeName(uint32_t flags) {
  if (flags & SL_SVC_F_NODE_PORT) return "NodePort";
  if (flags & SL_SVC_F_LOADBALANCER) return "LoadBalancer";
  if (flags & SL_SVC_F_EXTERNAL_IP) return "ExternalIP";
  return "ClusterIP";
}

void fillBackend(debug::Backend& out, uint32_t id, const sl_backend& b, uint32_t slot) {
  out.set_id(id);
  out.set_address(endpoint(b.addr, b.family, b.port));
  out.set_state(stateName(b.state));
  out.set_node_local((b.flags & SL_BACKEND_F_LOCAL) != 0);
  out.set_slot(slot);
}

// The service port owning a programmed frontend, by the table.
std::string ownerOf(const ServiceTable& table, const sl_svc_key& k) {
  const IpAddress a = bpf::loadAddress(k.addr, k.family);
  const Service* s = table.findByFrontend(a, ntohs(k.port), static_cast<Protocol>(k.proto));
  return s ? s->key.toString() : std::string();
}

const Service* findService(const ServiceTable& table, const std::string& name) {
  for (const auto& [key, svc] : table) {
    if (key.toString() == name) return &svc;
  }
  // "ns/name" for a service with one port.
  const Service* only = nullptr;
  for (const auto& [key, svc] : table) {
    if (key.ns + "/" + key.name == name) {
      if (only) return nullptr;
      only = &svc;
    }
  }
  return only;
}

}  // namespace

debug::ListServicesResponse describeServices(const EbpfDump& dump, const ServiceTable& table) {
  debug::ListServicesResponse out;
  out.set_mode("ebpf");
  for (const auto& [k, v] : dump.services) {
    debug::Frontend* f = out.add_frontends();
    f->set_address(endpoint(k.addr, k.family, k.port));
    f->set_protocol(protoName(k.proto));
    f->set_scope(scopeName(v.flags));
    f->set_service(ownerOf(table, k));
    f->set_service_id(v.svc_id);
    if (v.flags & SL_SVC_F_AFFINITY) f->add_flags("affinity");
    if (v.flags & SL_SVC_F_LOCAL) f->add_flags("local");
    if (v.flags & SL_SVC_F_MAGLEV) f->add_flags("maglev");
    f->set_active(v.active_count);
    f->set_terminating(v.terminating_count);
    f->set_affinity_timeout_s(v.affinity_timeout_s);
    f->set_maglev_size(v.maglev_size);
    const bool local = (v.flags & SL_SVC_F_LOCAL) != 0;
    const uint32_t set = bpf::setId(v.svc_id, k.family == SL_FAMILY_V6 ? IpFamily::kV6 : IpFamily::kV4, local);
    const uint32_t n = local ? v.local_active_count + v.local_terminating_count
                             : v.active_count + v.terminating_count;
    if (v.flags & SL_SVC_F_MAGLEV) {
      // Maglev sets have no slots: list the service's backends of this
      // frontend's family (and locality) instead, slot 0.
      for (const auto& [id, b] : dump.backends) {
        if ((b.svc_id & SL_SVC_ID_MASK) != (v.svc_id & SL_SVC_ID_MASK) || b.family != k.family) continue;
        if (local && !(b.flags & SL_BACKEND_F_LOCAL)) continue;
        fillBackend(*f->add_backends(), id, b, 0);
      }
      continue;
    }
    for (uint32_t slot = 0; slot < n; ++slot) {
      auto s = dump.slots.find(sl_slot_key{set, slot});
      if (s == dump.slots.end()) continue;
      auto b = dump.backends.find(s->second);
      if (b == dump.backends.end()) continue;
      fillBackend(*f->add_backends(), b->first, b->second, slot + 1);
    }
  }
  return out;
}

Result<debug::GetMaglevResponse> describeMaglev(const EbpfDump& dump, const ServiceTable& table,
                                                const std::string& service) {
  const Service* svc = findService(table, service);
  if (!svc) return Error::notFound("service " + service + ": not programmed (or ambiguous: name the port)");
  uint32_t svcId = 0;
  for (const Frontend& f : svc->frontends) {
    if (auto it = dump.services.find(bpf::frontendKey(f)); it != dump.services.end()) {
      svcId = it->second.svc_id;
      break;
    }
  }
  if (svcId == 0) return Error::notFound("service " + service + ": no frontend in the datapath");
  debug::GetMaglevResponse out;
  out.set_service(svc->key.toString());
  out.set_service_id(svcId);
  for (const auto& [setId, slots] : dump.maglev) {
    if ((setId & SL_SVC_ID_MASK) != svcId) continue;
    debug::MaglevTable* t = out.add_tables();
    t->set_set_id(setId);
    t->set_family((setId & SL_SVC_ID_V6) ? "IPv6" : "IPv4");
    t->set_node_local((setId & SL_SVC_ID_LOCAL) != 0);
    t->set_size(static_cast<uint32_t>(slots.size()));
    for (uint32_t id : slots) t->add_slots(id);
  }
  for (const auto& [id, b] : dump.backends) {
    if ((b.svc_id & SL_SVC_ID_MASK) == svcId) fillBackend(*out.add_backends(), id, b, 0);
  }
  return out;
}

debug::ListConntrackResponse describeConntrack(const EbpfDump& dump, uint64_t nowNs) {
  debug::ListConntrackResponse out;
  for (const auto& [k, v] : dump.conntrack) {
    debug::ConntrackEntry* e = out.add_entries();
    e->set_direction(k.dir == SL_CT_DIR_REPLY ? "reply" : "service");
    e->set_protocol(protoName(k.proto));
    e->set_source(endpoint(k.saddr, k.family, k.sport));
    e->set_destination(endpoint(k.daddr, k.family, k.dport));
    e->set_backend_id(v.backend_id);
    if (auto b = dump.backends.find(v.backend_id); b != dump.backends.end()) {
      e->set_backend(endpoint(b->second.addr, b->second.family, b->second.port));
    }
    const bool hasNat = k.dir == SL_CT_DIR_REPLY || (v.flags & SL_CT_F_SNAT);
    if (hasNat) e->set_nat(endpoint(v.nat_addr, k.family, v.nat_port));
    if (v.flags & SL_CT_F_HAIRPIN) e->add_flags("hairpin");
    if (v.flags & SL_CT_F_NODE_FRONTEND) e->add_flags("node-frontend");
    if (v.flags & SL_CT_F_SNAT) e->add_flags("snat");
    e->set_set_id(v.set_id);
    std::string tf;
    const char* names[] = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"};
    for (int i = 0; i < 8; ++i) {
      if (v.tcp_flags & (1u << i)) tf += (tf.empty() ? "" : "|") + std::string(names[i]);
    }
    e->set_tcp_flags(tf);
    e->set_idle_ms(nowNs > v.last_seen_ns ? (nowNs - v.last_seen_ns) / 1000000 : 0);
  }
  return out;
}

// ---------------------------------------------------------------------------

class DebugServer::Impl final : public debug::ProxyDebug::Service {
 public:
  Impl(EbpfMode* mode, std::string modeName, TableSource table)
      : mode_(mode), modeName_(std::move(modeName)), table_(std::move(table)) {}

  grpc::Status ListServices(grpc::ServerContext*, const debug::ListServicesRequest*,
                            debug::ListServicesResponse* out) override {
    auto d = dumpOrStatus();
    if (!d.ok()) return status(d.error());
    *out = describeServices(*d, table_());
    return grpc::Status::OK;
  }

  grpc::Status GetMaglev(grpc::ServerContext*, const debug::GetMaglevRequest* req,
                         debug::GetMaglevResponse* out) override {
    auto d = dumpOrStatus();
    if (!d.ok()) return status(d.error());
    auto r = describeMaglev(*d, table_(), req->service());
    if (!r) return status(r.error());
    *out = std::move(*r);
    return grpc::Status::OK;
  }

  grpc::Status ListConntrack(grpc::ServerContext*, const debug::ListConntrackRequest*,
                             debug::ListConntrackResponse* out) override {
    auto d = dumpOrStatus();
    if (!d.ok()) return status(d.error());
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    *out = describeConntrack(*d, static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
                                     static_cast<uint64_t>(ts.tv_nsec));
    return grpc::Status::OK;
  }

 private:
  Result<EbpfDump> dumpOrStatus() {
    if (!mode_) {
      return Error{ErrorCode::kFailedPrecondition,
                   "mode " + modeName_ + " has no datapath introspection yet"};
    }
    return mode_->dump();
  }

  static grpc::Status status(const Error& e) {
    grpc::StatusCode code = grpc::StatusCode::INTERNAL;
    switch (e.code) {
      case ErrorCode::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
      case ErrorCode::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
      case ErrorCode::kAlreadyExists: code = grpc::StatusCode::ALREADY_EXISTS; break;
      case ErrorCode::kResourceExhausted: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
      case ErrorCode::kFailedPrecondition: code = grpc::StatusCode::UNIMPLEMENTED; break;
      case ErrorCode::kAborted: code = grpc::StatusCode::ABORTED; break;
      case ErrorCode::kOutOfRange: code = grpc::StatusCode::OUT_OF_RANGE; break;
      case ErrorCode::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
      case ErrorCode::kInternal: code = grpc::StatusCode::INTERNAL; break;
    }
    return grpc::Status(code, e.message);
  }

  EbpfMode* mode_;
  std::string modeName_;
  TableSource table_;
};

Result<std::unique_ptr<DebugServer>> DebugServer::start(const std::string& socketPath,
                                                        EbpfMode* mode, std::string modeName,
                                                        TableSource table) {
  std::error_code ec;
  const std::filesystem::path path(socketPath);
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  std::filesystem::remove(path, ec);  // a stale socket of an earlier run
  std::unique_ptr<DebugServer> s(new DebugServer());
  s->socketPath_ = socketPath;
  s->impl_ = std::make_unique<Impl>(mode, std::move(modeName), std::move(table));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("unix:" + socketPath, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(s->impl_.get());
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || port == 0) {
    return Error::unavailable("debug API: cannot listen on unix:" + socketPath);
  }
  // Node-local and root-only: the maps show every connection of the node.
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
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
