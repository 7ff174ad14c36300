// PersistedPod <-> DATA/pods/<uid>/state.json.
#include <fstream>

#include "control/agent/runtime/pod_worker.h"

namespace sluice::agent {
namespace {

Json terminatedJson(const TerminatedInfo& t) {
  return {{"exitCode", t.exitCode},       {"signal", t.signal},
          {"reason", t.reason},           {"message", t.message},
          {"startedAtMs", t.startedAtMs}, {"finishedAtMs", t.finishedAtMs}};
}

TerminatedInfo terminatedFrom(const Json& j) {
  TerminatedInfo t;
  t.exitCode = j.value("exitCode", 0);
  t.signal = j.value("signal", 0);
  t.reason = j.value("reason", "");
  t.message = j.value("message", "");
  t.startedAtMs = j.value("startedAtMs", int64_t{0});
  t.finishedAtMs = j.value("finishedAtMs", int64_t{0});
  return t;
}

}  // namespace

Json PersistedPod::toJson() const {
  Json cs = Json::array();
  for (const ContainerRecord& c : containers) {
    Json j = {{"name", c.name},
              {"init", c.init},
              {"restartCount", c.restartCount},
              {"started", c.started},
              {"running", c.running},
              {"ready", c.ready},
              {"pid", c.proc.pid},
              {"startTime", c.proc.startTime},
              {"startedAtMs", c.startedAtMs},
              {"oomKillsAtStart", c.oomKillsAtStart}};
    if (c.terminated) j["terminated"] = terminatedJson(*c.terminated);
    if (c.last) j["last"] = terminatedJson(*c.last);
    cs.push_back(j);
  }
  return {{"uid", uid},
          {"namespace", ns},
          {"name", name},
          {"netnsPath", netnsPath},
          {"podIP", podIp},
          {"hostInterface", hostInterface},
          {"networkReady", networkReady},
          {"initDone", initDone},
          {"initFailed", initFailed},
          {"startTimeMs", startTimeMs},
          {"cgroup", {{"cpu", cgroup.cpu}, {"cpuacct", cgroup.cpuacct}, {"memory", cgroup.memory}}},
          {"containers", cs}};
}

std::optional<PersistedPod> PersistedPod::fromJson(const Json& j) {
  if (!j.is_object() || !j.contains("uid")) return std::nullopt;
  try {
    PersistedPod p;
    p.uid = j.value("uid", "");
    p.ns = j.value("namespace", "");
    p.name = j.value("name", "");
    p.netnsPath = j.value("netnsPath", "");
    p.podIp = j.value("podIP", "");
    p.hostInterface = j.value("hostInterface", "");
    p.networkReady = j.value("networkReady", false);
    p.initDone = j.value("initDone", false);
    p.initFailed = j.value("initFailed", false);
    p.startTimeMs = j.value("startTimeMs", int64_t{0});
    if (j.contains("cgroup") && j["cgroup"].is_object()) {
      const Json& g = j["cgroup"];
      p.cgroup = {g.value("cpu", ""), g.value("cpuacct", ""), g.value("memory", "")};
    }
    for (const Json& c : j.value("containers", Json::array())) {
      ContainerRecord r;
      r.name = c.value("name", "");
      r.init = c.value("init", false);
      r.restartCount = c.value("restartCount", 0);
      r.started = c.value("started", false);
      r.running = c.value("running", false);
      r.ready = c.value("ready", false);
      r.proc.pid = c.value("pid", 0);
      r.proc.startTime = c.value("startTime", uint64_t{0});
      r.startedAtMs = c.value("startedAtMs", int64_t{0});
      r.oomKillsAtStart = c.value("oomKillsAtStart", uint64_t{0});
      if (c.contains("terminated")) r.terminated = terminatedFrom(c["terminated"]);
      if (c.contains("last")) r.last = terminatedFrom(c["last"]);
      p.containers.push_back(r);
    }
    if (p.uid.empty()) return std::nullopt;
    return p;
  } catch (const Json::exception&) {
    return std::nullopt;
  }
}

std::optional<PersistedPod> PersistedPod::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  Json j = Json::parse(in, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return fromJson(j);
}

}  // namespace sluice::agent
