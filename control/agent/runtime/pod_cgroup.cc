// PodWorker's resource side: each container's cgroup (limits written
// before the container starts, joined before it execs) and the snapshot the
// MetricsReporter samples.
#include "control/agent/runtime/pod_worker.h"

namespace sluice::agent {

Result<void> PodWorker::prepareCgroup(const Json& spec, ContainerRecord& rec, ContainerLaunch& l) {
  auto limits = parseResourceLimits(spec.value("resources", Json::object()));
  if (!limits) {
    return Error{ErrorCode::kInvalidArgument,
                 "container " + rec.name + ": " + limits.error().message};
  }
  if (!env_.cgroups) {
    if (limits->memoryLimitBytes || limits->cpuLimitMilli || limits->cpuRequestMilli > 0) {
      return Error{ErrorCode::kUnavailable,
                   "container " + rec.name + " has resource limits but " + env_.cgroupError};
    }
    return okResult();  // nothing to enforce, and nowhere to measure
  }
  if (state_.cgroup.empty()) {
    state_.cgroup = env_.cgroups->podDirs(state_.uid);
    persist();  // recorded before it exists, so cleanup always finds it
  }
  const CgroupDirs dirs = state_.cgroup.child(rec.name);
  if (auto r = env_.cgroups->create(dirs); !r) return r;
  if (auto r = env_.cgroups->apply(dirs, *limits); !r) return r;
  auto u = env_.cgroups->usage(dirs);
  if (!u) return u.error();
  rec.oomKillsAtStart = u->oomKills;
  l.cgroupProcs = env_.cgroups->procsFiles(dirs);
  return okResult();
}

PodWorker::Snapshot PodWorker::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

void PodWorker::takeSnapshot(const Json& pod) {
  Snapshot s;
  s.uid = state_.uid;
  s.ns = state_.ns;
  s.name = state_.name;
  s.labels = pod["metadata"].value("labels", Json::object());
  if (!state_.cgroup.empty() && !terminating_) {
    for (const ContainerRecord& rec : state_.containers) {
      if (!rec.init && rec.running)
        s.containers.emplace_back(rec.name, state_.cgroup.child(rec.name));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_ = std::move(s);
}

}  // namespace sluice::agent
