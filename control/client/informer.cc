#include "control/client/informer.h"

#include "dataplane/log.h"

namespace sluice::client {

Informer::Informer(ApiClient& client, Resource resource, std::string ns, ListOptions opts)
    : client_(client), resource_(std::move(resource)), ns_(std::move(ns)), opts_(std::move(opts)) {}

Informer::~Informer() { stop(); }

void Informer::addHandlers(InformerHandlers handlers) { handlers_.push_back(std::move(handlers)); }

void Informer::start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { run(); });
}

void Informer::stop() {
  stop_ = true;
  client_.cancelWatch(&stop_);
  if (thread_.joinable()) thread_.join();
}

bool Informer::waitForSync(std::chrono::milliseconds timeout) {
  std::unique_lock lock(syncMu_);
  return syncCv_.wait_for(lock, timeout, [this] { return synced_.load(); });
}

ObjectPtr Informer::get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  return it == cache_.end() ? nullptr : it->second;
}

ObjectPtr Informer::get(const std::string& ns, const std::string& name) const {
  return get(ns.empty() ? name : ns + "/" + name);
}

std::vector<ObjectPtr> Informer::list(const std::string& ns) const {
  std::lock_guard lock(mu_);
  std::vector<ObjectPtr> out;
  if (ns.empty()) {
    out.reserve(cache_.size());
    for (const auto& [k, v] : cache_) out.push_back(v);
    return out;
  }
  std::string prefix = ns + "/";
  for (auto it = cache_.lower_bound(prefix); it != cache_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    out.push_back(it->second);
  }
  return out;
}

size_t Informer::size() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

std::string Informer::resourceVersion() const {
  std::lock_guard lock(mu_);
  return resourceVersion_;
}

Result<std::string> Informer::relist() {
  std::map<std::string, ObjectPtr> fresh;
  ListOptions o = opts_;
  o.limit = 500;
  std::string rv;
  std::string kind;
  for (;;) {
    auto page = client_.list(resource_, ns_, o);
    if (!page) return page.error();
    const Json& items = (*page)["items"];
    std::string itemKind = page->value("kind", "");
    if (itemKind.size() > 4 && itemKind.compare(itemKind.size() - 4, 4, "List") == 0) {
      kind = itemKind.substr(0, itemKind.size() - 4);
    }
    if (items.is_array()) {
      for (const auto& item : items) {
        auto obj = std::make_shared<Json>(item);
        // List items carry no apiVersion/kind; fill them as watch events have.
        if (!obj->contains("kind") && !kind.empty()) (*obj)["kind"] = kind;
        if (!obj->contains("apiVersion")) (*obj)["apiVersion"] = resource_.apiVersion();
        fresh[keyOf(*obj)] = std::move(obj);
      }
    }
    const Json& meta = (*page)["metadata"];
    if (rv.empty() && meta.is_object()) rv = meta.value("resourceVersion", "");
    std::string cont = meta.is_object() ? meta.value("continue", "") : "";
    if (cont.empty()) break;
    o.continueToken = cont;
  }
  std::map<std::string, ObjectPtr> old;
  {
    std::lock_guard lock(mu_);
    old = cache_;
    cache_ = fresh;
    resourceVersion_ = rv;
  }
  for (const auto& [k, obj] : fresh) {
    auto it = old.find(k);
    if (it == old.end()) {
      for (auto& h : handlers_) if (h.onAdd) h.onAdd(obj);
    } else {
      for (auto& h : handlers_) if (h.onUpdate) h.onUpdate(it->second, obj);
    }
  }
  for (const auto& [k, obj] : old) {
    if (fresh.count(k) == 0) {
      for (auto& h : handlers_) if (h.onDelete) h.onDelete(obj);
    }
  }
  return rv;
}

void Informer::apply(const std::string& type, const Json& object) {
  const Json& meta = object["metadata"];
  std::string rv = meta.is_object() ? meta.value("resourceVersion", "") : "";
  if (type == "BOOKMARK") {
    std::lock_guard lock(mu_);
    if (!rv.empty()) resourceVersion_ = rv;
    return;
  }
  auto obj = std::make_shared<const Json>(object);
  std::string key = keyOf(*obj);
  ObjectPtr old;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) old = it->second;
    if (type == "DELETED") {
      cache_.erase(key);
    } else {
      cache_[key] = obj;
    }
    if (!rv.empty()) resourceVersion_ = rv;
  }
  if (type == "DELETED") {
    for (auto& h : handlers_) if (h.onDelete) h.onDelete(old != nullptr ? old : obj);
  } else if (old == nullptr) {
    for (auto& h : handlers_) if (h.onAdd) h.onAdd(obj);
  } else {
    for (auto& h : handlers_) if (h.onUpdate) h.onUpdate(old, obj);
  }
}

void Informer::run() {
  bool needList = true;
  int backoffMs = 100;
  while (!stop_) {
    if (needList) {
      auto rv = relist();
      if (!rv) {
        log::warning(log::Limit{"informer/list/" + resource_.plural}, "informer", "list failed",
                     {{"resource", resource_.plural}, {"err", rv.error().message}});
        for (int i = 0; i < backoffMs / 50 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        backoffMs = std::min(backoffMs * 2, 5000);
        continue;
      }
      needList = false;
      backoffMs = 100;
      if (!synced_) {
        std::lock_guard lock(syncMu_);
        synced_ = true;
        syncCv_.notify_all();
      }
    }
    ListOptions o = opts_;
    o.resourceVersion = resourceVersion();
    auto res = client_.watch(
        resource_, ns_, o,
        [this](const std::string& type, const Json& object) {
          apply(type, object);
          return !stop_.load();
        },
        &stop_, std::chrono::seconds(240));
    if (!res) {
      if (res.error().code == ErrorCode::kOutOfRange) {
        needList = true;
      } else if (!stop_) {
        log::warning(log::Limit{"informer/watch/" + resource_.plural}, "informer", "watch failed",
                     {{"resource", resource_.plural}, {"err", res.error().message}});
        needList = true;
        for (int i = 0; i < backoffMs / 50 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        backoffMs = std::min(backoffMs * 2, 5000);
      }
    }
  }
}

}  // namespace sluice::client
