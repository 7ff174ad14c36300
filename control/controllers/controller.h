// The controller framework, as kube-controller-manager's: shared informers
// (one list+watch per resource, shared by every controller), a work queue
// per controller, level-triggered reconciles keyed "namespace/name". A
// controller only ever acts on the informers' current state plus what it
// reads from the API, so a restart converges from stored state alone.
//
// Lifecycle: the manager constructs every controller (each registers its
// informer handlers in its constructor), starts the informers, waits for
// their first list, then calls start() on each controller (which starts its
// workers); stop() in reverse.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/client/api_client.h"
#include "control/client/informer.h"
#include "control/client/work_queue.h"
#include "control/controllers/clock.h"

namespace sluice::controllers {

// One informer per resource, created on first use.
class SharedInformers {
 public:
  explicit SharedInformers(client::ApiClient& client) : client_(client) {}
  ~SharedInformers() { stopAll(); }

  // Must be called before startAll().
  client::Informer& get(const client::Resource& r);
  void startAll();
  bool waitForSync(std::chrono::milliseconds timeout);
  void stopAll();

 private:
  client::ApiClient& client_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<client::Informer>> informers_;
};

struct ControllerContext {
  client::ApiClient& client;
  SharedInformers& informers;
  const Clock& clock;
  int workers = 2;
};

class Controller {
 public:
  virtual ~Controller() = default;
  virtual const char* name() const = 0;
  virtual void start() = 0;
  virtual void stop() = 0;
};

// A controller with one work queue and N workers calling reconcile(key).
// reconcile returns an error to retry the key with back-off; success forgets
// the key's failures.
class QueueController : public Controller {
 public:
  QueueController(const ControllerContext& ctx, const char* name) : ctx_(ctx), queue_(name), name_(name) {}
  ~QueueController() override { stop(); }
  const char* name() const override { return name_; }
  void start() override;
  void stop() override;

  void enqueue(const std::string& key) { queue_.add(key); }
  void enqueueAfter(const std::string& key, std::chrono::milliseconds d) { queue_.addAfter(key, d); }

 protected:
  virtual Result<void> reconcile(const std::string& key) = 0;

  ControllerContext ctx_;
  client::WorkQueue queue_;

 private:
  const char* name_;
  std::vector<std::thread> workers_;
  bool started_ = false;
};

// Splits "ns/name" (or "name").
std::pair<std::string, std::string> splitKey(const std::string& key);

}  // namespace sluice::controllers
