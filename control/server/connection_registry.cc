#include "control/server/connection_registry.h"

namespace sluice::server {

void ConnectionRegistry::add(const std::shared_ptr<RegisteredConnection>& conn, Slot& slot) {
  std::lock_guard lock(mu_);
  auto& l = list(Stage::kWaiting);
  l.push_back(Entry{conn, &slot});
  slot.it = std::prev(l.end());
  slot.stage = Stage::kWaiting;
  slot.registered = true;
}

std::shared_ptr<RegisteredConnection> ConnectionRegistry::advance(Slot& slot, Stage stage,
                                                                  size_t maxPending) {
  std::lock_guard lock(mu_);
  if (!slot.registered || slot.stage == stage) return nullptr;
  std::shared_ptr<RegisteredConnection> victim;
  if (stage == Stage::kPending && maxPending > 0) {
    // The pending list never contains `slot` here: it is still waiting.
    auto& pending = list(Stage::kPending);
    while (!victim && pending.size() >= maxPending) victim = take(Stage::kPending, pending.begin());
  }
  list(stage).splice(list(stage).end(), list(slot.stage), slot.it);
  slot.stage = stage;
  return victim;
}

void ConnectionRegistry::remove(Slot& slot) {
  std::lock_guard lock(mu_);
  if (!slot.registered) return;
  list(slot.stage).erase(slot.it);
  slot.registered = false;
}

std::shared_ptr<RegisteredConnection> ConnectionRegistry::take(Stage s,
                                                               std::list<Entry>::iterator it) {
  auto conn = it->conn.lock();
  it->slot->registered = false;
  list(s).erase(it);
  return conn;
}

std::shared_ptr<RegisteredConnection> ConnectionRegistry::takeVictim() {
  std::lock_guard lock(mu_);
  for (Stage s : {Stage::kWaiting, Stage::kPending}) {
    auto& l = list(s);
    while (!l.empty()) {
      if (auto c = take(s, l.begin())) return c;
    }
  }
  auto& settled = list(Stage::kSettled);
  for (auto it = settled.begin(); it != settled.end(); ++it) {
    auto c = it->conn.lock();
    if (c && c->idle()) return take(Stage::kSettled, it);
  }
  return nullptr;
}

size_t ConnectionRegistry::size() const {
  std::lock_guard lock(mu_);
  return lists_[0].size() + lists_[1].size() + lists_[2].size();
}

}  // namespace sluice::server
