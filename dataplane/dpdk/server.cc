#include "dataplane/dpdk/server.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "dataplane/dpdk/api_codec.h"
#include "dataplane/dpdk/dpdk.grpc.pb.h"

namespace sluice::dpdk {
namespace {

grpc::Status toStatus(const Error& e) {
  static constexpr grpc::StatusCode kCodes[] = {grpc::StatusCode::INVALID_ARGUMENT,
                                                grpc::StatusCode::NOT_FOUND,
                                                grpc::StatusCode::ALREADY_EXISTS,
                                                grpc::StatusCode::RESOURCE_EXHAUSTED,
                                                grpc::StatusCode::FAILED_PRECONDITION,
                                                grpc::StatusCode::ABORTED,
                                                grpc::StatusCode::OUT_OF_RANGE,
                                                grpc::StatusCode::UNAVAILABLE,
                                                grpc::StatusCode::INTERNAL};
  return {kCodes[static_cast<size_t>(e.code)], e.message};
}

grpc::Status staleEpoch(uint64_t asked, uint64_t have) {
  return {grpc::StatusCode::FAILED_PRECONDITION,
          "epoch " + std::to_string(asked) + " is not this process's (" + std::to_string(have) +
              "): it restarted; sync again"};
}

void fillBackend(api::DescribedBackend& p, const DescribedBackend& b) {
  p.set_id(b.id);
  p.set_address(addressBytes(b.endpoint.address));
  p.set_port(b.endpoint.port);
  p.set_weight(b.weight);
  p.set_state(uint32_t(b.state));
  p.set_node_local(b.nodeLocal);
}

}  // namespace

struct ApiServer::Service final : api::Dataplane::Service {
  explicit Service(Dataplane& d) : dp(d) {}
  Dataplane& dp;

  grpc::Status Sync(grpc::ServerContext*, grpc::ServerReader<api::SyncChunk>* reader,
                    api::SyncReply* reply) override {
    ServiceTable table;
    api::SyncChunk chunk;
    while (reader->Read(&chunk)) {
      if (chunk.epoch() != 0 && chunk.epoch() != dp.epoch())
        return staleEpoch(chunk.epoch(), dp.epoch());
      for (const api::Service& p : chunk.services()) {
        auto s = fromProto(p);
        if (!s) return toStatus(s.error());
        if (auto r = table.upsert(std::move(*s)); !r) return toStatus(r.error());
      }
    }
    if (auto r = dp.sync(table); !r) return toStatus(r.error());
    reply->set_epoch(dp.epoch());
    reply->set_services(table.size());
    return grpc::Status::OK;
  }

  grpc::Status Apply(grpc::ServerContext* ctx, const api::ApplyRequest* req,
                     api::ApplyReply* reply) override {
    if (req->epoch() != 0 && req->epoch() != dp.epoch())
      return staleEpoch(req->epoch(), dp.epoch());
    ServiceDiff diff;
    for (const api::ServiceKey& k : req->removals()) {
      sluice::Service before;
      before.key = fromProto(k);
      diff.changes.push_back({before, std::nullopt});
    }
    for (const api::Service& p : req->upserts()) {
      auto s = fromProto(p);
      if (!s) return toStatus(s.error());
      diff.changes.push_back({std::nullopt, std::move(*s)});
    }
    if (ctx->IsCancelled())
      return {grpc::StatusCode::DEADLINE_EXCEEDED, "deadline passed before apply"};
    if (auto r = dp.apply(diff); !r) return toStatus(r.error());
    reply->set_epoch(dp.epoch());
    return grpc::Status::OK;
  }

  grpc::Status Status(grpc::ServerContext*, const api::StatusRequest*,
                      api::StatusReply* reply) override {
    const DataplaneStatus s = dp.status();
    reply->set_epoch(s.epoch);
    reply->set_services(s.services);
    reply->set_frontends(s.frontends);
    reply->set_backends(s.backends);
    reply->set_adopted_flows(s.adoptedFlows);
    reply->set_applies(s.applies);
    reply->set_apply_errors(s.applyErrors);
    for (const auto& [name, value] : s.counters) {
      auto* c = reply->add_counters();
      c->set_name(name);
      c->set_value(value);
    }
    for (size_t w = 0; w < s.lcores.size(); ++w) {
      auto* l = reply->add_lcores();
      l->set_worker(uint32_t(w));
      l->set_conntrack_entries(s.lcores[w].conntrackEntries);
      l->set_conntrack_capacity(s.lcores[w].conntrackCapacity);
      for (const auto& [name, value] : s.lcores[w].counters) {
        if (value == 0) continue;
        auto* c = l->add_counters();
        c->set_name(name);
        c->set_value(value);
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status DescribeFrontends(grpc::ServerContext*, const api::DescribeRequest*,
                                 api::FrontendList* reply) override {
    for (const DescribedFrontend& d : dp.describeFrontends()) {
      auto* f = reply->add_frontends();
      f->mutable_frontend()->set_address(addressBytes(d.frontend.address));
      f->mutable_frontend()->set_port(d.frontend.port);
      f->mutable_frontend()->set_protocol(uint32_t(d.frontend.protocol));
      f->mutable_frontend()->set_scope(uint32_t(d.frontend.scope));
      f->set_service(d.service);
      f->set_service_id(d.serviceId);
      f->set_affinity(d.affinity);
      f->set_affinity_timeout_s(d.affinityTimeoutSeconds);
      f->set_local(d.local);
      f->set_maglev(d.maglev);
      f->set_maglev_size(d.maglevSize);
      f->set_active(d.active);
      f->set_terminating(d.terminating);
      for (const DescribedBackend& b : d.backends) fillBackend(*f->add_backends(), b);
    }
    return grpc::Status::OK;
  }

  grpc::Status DescribeSelection(grpc::ServerContext*, const api::ServiceKey* key,
                                 api::Selection* reply) override {
    auto sel = dp.describeSelection(fromProto(*key));
    if (!sel) return toStatus(sel.error());
    reply->set_service(sel->service);
    reply->set_service_id(sel->serviceId);
    for (const SelectionTable& t : sel->tables) {
      auto* p = reply->add_tables();
      p->set_id(t.id);
      p->set_family(t.family == IpFamily::kV6 ? 6 : 4);
      p->set_node_local(t.nodeLocal);
      p->mutable_slots()->Add(t.slots.begin(), t.slots.end());
    }
    for (const DescribedBackend& b : sel->backends) fillBackend(*reply->add_backends(), b);
    return grpc::Status::OK;
  }

  grpc::Status DescribeFlows(grpc::ServerContext*, const api::DescribeFlowsRequest* req,
                             api::FlowList* reply) override {
    for (const DescribedDpdkFlow& d : dp.describeFlows(req->limit())) {
      const ConntrackEntry& e = d.entry;
      auto* f = reply->add_flows();
      f->set_protocol(uint32_t(e.original.protocol));
      f->set_source(addressBytes(e.original.src));
      f->set_source_port(e.original.srcPort);
      f->set_destination(addressBytes(e.original.dst));
      f->set_destination_port(e.original.dstPort);
      f->set_backend(addressBytes(e.reply.src));
      f->set_backend_port(e.reply.srcPort);
      if (auto s = e.snat()) {
        f->set_snat(addressBytes(s->address));
        f->set_snat_port(s->port);
      }
      f->set_backend_id(e.backendId);
      f->set_service_id(d.serviceId);
      f->set_state(std::string(toString(e.state)));
      f->set_idle_ms(d.idleNs / 1'000'000);
      f->set_worker(d.worker);
    }
    return grpc::Status::OK;
  }
};

Result<std::unique_ptr<ApiServer>> ApiServer::start(Dataplane& dataplane, const std::string& path) {
  std::unique_ptr<ApiServer> s(new ApiServer());
  s->path_ = path;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  ::unlink(path.c_str());
  s->service_ = std::make_unique<Service>(dataplane);
  grpc::ServerBuilder b;
  b.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials());
  b.RegisterService(s->service_.get());
  // A full sync streams chunks, each far below this; keep one bad client
  // from making the server buffer gigabytes.
  b.SetMaxReceiveMessageSize(64 << 20);
  s->server_ = b.BuildAndStart();
  if (!s->server_) return Error::unavailable("gRPC server on unix:" + path + " did not start");
  ::chmod(path.c_str(), 0600);
  return s;
}

ApiServer::~ApiServer() { stop(); }

void ApiServer::stop() {
  if (server_) {
    server_->Shutdown();
    server_.reset();
    ::unlink(path_.c_str());
  }
}

}  // namespace sluice::dpdk
