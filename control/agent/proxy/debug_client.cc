#include "control/agent/proxy/debug_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "control/agent/proxy/debug.grpc.pb.h"

namespace sluice::agent {

namespace {

// Left-aligned columns, two spaces apart; rows of unequal length allowed.
std::string columns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string join(const google::protobuf::RepeatedPtrField<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

Error fromStatus(const grpc::Status& s, const std::string& socketPath) {
  const std::string msg = s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::NOT_FOUND: return Error::notFound(msg);
    case grpc::StatusCode::INVALID_ARGUMENT: return Error::invalid(msg);
    case grpc::StatusCode::FAILED_PRECONDITION: return Error{ErrorCode::kFailedPrecondition, msg};
    case grpc::StatusCode::UNIMPLEMENTED:
      return Error{ErrorCode::kFailedPrecondition, "the agent does not serve this call: " + msg};
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Error::unavailable("agent at unix:" + socketPath + " not reachable (is `sluice agent` "
                                "or `sluice up` running?): " + msg);
    default: return Error::internal(msg);
  }
}

std::unique_ptr<debug::ProxyDebug::Stub> stub(const std::string& socketPath) {
  return debug::ProxyDebug::NewStub(
      grpc::CreateChannel("unix:" + socketPath, grpc::InsecureChannelCredentials()));
}

void deadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

}  // namespace

std::string renderServices(const debug::ListServicesResponse& r) {
  std::vector<std::vector<std::string>> rows = {
      {"SERVICE ADDRESS", "SERVICE", "BACKEND ADDRESS (ID) (SLOT)"}};
  for (const debug::Frontend& f : r.frontends()) {
    std::string info = f.scope();
    info += ", active=" + std::to_string(f.active()) +
            ", terminating=" + std::to_string(f.terminating());
    if (f.flags_size() > 0) info += ", " + join(f.flags());
    if (f.affinity_timeout_s() != 0) info += ", timeout=" + std::to_string(f.affinity_timeout_s()) + "s";
    if (f.maglev_size() != 0) info += ", maglev=" + std::to_string(f.maglev_size());
    if (!f.scheduler().empty()) info += ", scheduler=" + f.scheduler();
    rows.push_back({f.address() + "/" + f.protocol(), f.service().empty() ? "-" : f.service(),
                    "0.0.0.0:0 (" + std::to_string(f.service_id()) + ") (0) [" + info + "]"});
    for (const debug::Backend& b : f.backends()) {
      std::string line = b.address() + " (" + std::to_string(b.id()) + ") (" +
                         std::to_string(b.slot()) + ")";
      if (b.state() != "active") line += " [" + b.state() + "]";
      if (b.node_local()) line += " [local]";
      if (b.weight() > 1) line += " [weight=" + std::to_string(b.weight()) + "]";
      if (b.active_connections() != 0 || b.inactive_connections() != 0) {
        line += " [conns=" + std::to_string(b.active_connections()) + "/" +
                std::to_string(b.inactive_connections()) + "]";
      }
      rows.push_back({"", "", line});
    }
  }
  return columns(rows);
}

std::string renderMaglev(const debug::GetMaglevResponse& r) {
  std::string out = "Service " + r.service() + " (id " + std::to_string(r.service_id()) + ")\n";
  std::map<uint32_t, std::string> addr;
  for (const debug::Backend& b : r.backends()) addr[b.id()] = b.address();
  for (const debug::MaglevTable& t : r.tables()) {
    out += "\nTable " + std::to_string(t.set_id()) + " (" + t.family() +
           (t.node_local() ? ", node-local" : "") + ", " + std::to_string(t.size()) + " slots)\n";
    std::map<uint32_t, uint64_t> share;
    for (uint32_t id : t.slots()) ++share[id];
    std::vector<std::vector<std::string>> rows = {{"BACKEND ID", "ADDRESS", "SLOTS", "SHARE"}};
    for (const auto& [id, n] : share) {
      char pct[32];
      std::snprintf(pct, sizeof pct, "%.2f%%", t.size() ? 100.0 * static_cast<double>(n) / t.size() : 0.0);
      rows.push_back({std::to_string(id), id == 0 ? "(empty)" : addr.count(id) ? addr[id] : "?",
                      std::to_string(n), pct});
    }
    out += columns(rows);
    // The first slots, as `cilium bpf lb maglev get` prints them.
    std::string first = "slots[0..]:";
    for (int i = 0; i < t.slots_size() && i < 32; ++i) first += " " + std::to_string(t.slots(i));
    if (t.slots_size() > 32) first += " ...";
    out += first + "\n";
  }
  if (r.tables_size() == 0) out += "no Maglev table (the service uses random selection)\n";
  return out;
}

std::string renderConntrack(const debug::ListConntrackResponse& r) {
  std::vector<std::vector<std::string>> rows = {
      {"PROTO", "DIR", "SOURCE", "DESTINATION", "BACKEND (ID)", "NAT", "FLAGS", "TCP", "IDLE"}};
  for (const debug::ConntrackEntry& e : r.entries()) {
    rows.push_back({e.protocol(), e.direction(), e.source(), e.destination(),
                    (e.backend().empty() ? "?" : e.backend()) + " (" +
                        std::to_string(e.backend_id()) + ")",
                    e.nat().empty() ? "-" : e.nat(), e.flags_size() ? join(e.flags()) : "-",
                    e.tcp_flags().empty() ? "-" : e.tcp_flags(),
                    std::to_string(e.idle_ms() / 1000) + "s"});
  }
  return columns(rows);
}

std::string renderMode(const debug::GetModeResponse& r) {
  std::string out = "Mode:   " + r.mode() + "\nEpoch:  " + std::to_string(r.epoch()) + "\n";
  if (!r.kernel().empty()) out += "Kernel: " + r.kernel() + "\n";
  if (r.fixed_maglev_table_size() != 0) {
    out += "Maglev: tables of " + std::to_string(r.fixed_maglev_table_size()) + " slots (fixed)\n";
  }
  if (r.missing_size() == 0) {
    out += "Missing features: none\n";
  } else {
    out += "Missing features:\n";
    std::vector<std::vector<std::string>> rows = {{"  FEATURE", "EFFECT"}};
    for (const debug::MissingFeature& m : r.missing()) rows.push_back({"  " + m.feature(), m.effect()});
    out += columns(rows);
  }
  return out;
}

Result<debug::ListServicesResponse> fetchServices(const std::string& socketPath) {
  grpc::ClientContext ctx;
  deadline(ctx);
  debug::ListServicesResponse out;
  grpc::Status s = stub(socketPath)->ListServices(&ctx, debug::ListServicesRequest(), &out);
  if (!s.ok()) return fromStatus(s, socketPath);
  return out;
}

Result<debug::GetMaglevResponse> fetchMaglev(const std::string& socketPath,
                                             const std::string& service) {
  grpc::ClientContext ctx;
  deadline(ctx);
  debug::GetMaglevRequest req;
  req.set_service(service);
  debug::GetMaglevResponse out;
  grpc::Status s = stub(socketPath)->GetMaglev(&ctx, req, &out);
  if (!s.ok()) return fromStatus(s, socketPath);
  return out;
}

Result<debug::ListConntrackResponse> fetchConntrack(const std::string& socketPath) {
  grpc::ClientContext ctx;
  deadline(ctx);
  debug::ListConntrackResponse out;
  grpc::Status s = stub(socketPath)->ListConntrack(&ctx, debug::ListConntrackRequest(), &out);
  if (!s.ok()) return fromStatus(s, socketPath);
  return out;
}

Result<debug::GetModeResponse> fetchMode(const std::string& socketPath) {
  grpc::ClientContext ctx;
  deadline(ctx);
  debug::GetModeResponse out;
  grpc::Status s = stub(socketPath)->GetMode(&ctx, debug::GetModeRequest(), &out);
  if (!s.ok()) return fromStatus(s, socketPath);
  return out;
}

Result<std::string> runDebugCommand(const std::string& socketPath,
                                    const std::vector<std::string>& args) {
  const char* usage = "usage: sluice debug [--socket S] lb list | maglev SERVICE | ct list | mode";
  if (args.size() == 1 && args[0] == "mode") {
    auto r = fetchMode(socketPath);
    if (!r) return r.error();
    return renderMode(*r);
  }
  if (args.size() == 2 && args[0] == "lb" && args[1] == "list") {
    auto r = fetchServices(socketPath);
    if (!r) return r.error();
    return renderServices(*r);
  }
  if (args.size() == 2 && args[0] == "maglev") {
    auto r = fetchMaglev(socketPath, args[1]);
    if (!r) return r.error();
    return renderMaglev(*r);
  }
  if (args.size() == 2 && args[0] == "ct" && args[1] == "list") {
    auto r = fetchConntrack(socketPath);
    if (!r) return r.error();
    return renderConntrack(*r);
  }
  return Error::invalid(usage);
}

}  // namespace sluice::agent
