#include "control/controllers/manager.h"

#include <algorithm>

#include "control/controllers/cluster/register.h"
#include "control/controllers/queue_metrics.h"
#include "control/controllers/workloads/register.h"

namespace sluice::controllers {

ControllerManager::ControllerManager(client::ApiClient& client, ManagerOptions options)
    : options_(std::move(options)), informers_(client) {}

Result<std::unique_ptr<ControllerManager>> ControllerManager::start(client::ApiClient& client,
                                                                    ManagerOptions options) {
  // Before any controller (and its named queue) exists.
  client::setWorkQueueMetricsProvider(&queueMetricsProvider());
  std::unique_ptr<ControllerManager> m(new ControllerManager(client, std::move(options)));
  const Clock& clock = m->options_.clock != nullptr ? *m->options_.clock : m->systemClock_;
  ControllerContext ctx{client, m->informers_, clock, m->options_.workers};
  std::vector<std::unique_ptr<Controller>> all;
  addWorkloadControllers(ctx, all);
  if (auto r = addClusterControllers(ctx, m->options_.nodeIpam, all); !r) return r.error();
  for (auto& c : all) {
    const auto& off = m->options_.disabled;
    const auto& on = m->options_.only;
    bool enabled = (on.empty() || std::find(on.begin(), on.end(), c->name()) != on.end()) &&
                   std::find(off.begin(), off.end(), c->name()) == off.end();
    (enabled ? m->controllers_ : m->idle_).push_back(std::move(c));
  }
  m->informers_.startAll();
  if (!m->informers_.waitForSync(std::chrono::seconds(60))) {
    return Error{ErrorCode::kUnavailable, "controller manager: informers did not sync within 60 s"};
  }
  for (auto& c : m->controllers_) c->start();
  setLeader(true);
  return m;
}

ControllerManager::~ControllerManager() { stop(); }

void ControllerManager::stop() {
  for (auto it = controllers_.rbegin(); it != controllers_.rend(); ++it) (*it)->stop();
  informers_.stopAll();
  setLeader(false);
}

std::vector<std::string> ControllerManager::names() const {
  std::vector<std::string> out;
  for (const auto& c : controllers_) out.emplace_back(c->name());
  return out;
}

}  // namespace sluice::controllers
