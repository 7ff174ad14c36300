// The open connections of an HttpServer by stage, oldest first, so that the
// connection cap can choose which one to close for a new one: the oldest
// that has sent nothing yet, else the oldest still in its TLS handshake or
// first request header (nothing is known about either client yet), else the
// oldest keep-alive connection idle between requests. A connection inside
// a request or a stream is never chosen.
//
// Threading: every method may be called from any thread (one mutex). The
// Slot lives in its connection and is only touched under that mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>

namespace sluice::server {

// What the registry needs of a connection.
class RegisteredConnection {
 public:
  virtual ~RegisteredConnection() = default;
  // Closes it soon, from any thread.
  virtual void evict() = 0;
  // Waiting for its next request on a keep-alive connection.
  virtual bool idle() const = 0;
};

class ConnectionRegistry {
 public:
  enum class Stage : uint8_t {
    kWaiting,  // accepted, nothing received: no TLS state allocated
    kPending,  // TLS handshake or first request header under way
    kSettled,  // has sent a complete request header
  };
  struct Entry;
  struct Slot {
    std::list<Entry>::iterator it;
    Stage stage = Stage::kWaiting;
    bool registered = false;
  };
  struct Entry {
    std::weak_ptr<RegisteredConnection> conn;
    Slot* slot;
  };

  void add(const std::shared_ptr<RegisteredConnection>& conn, Slot& slot);
  // Moves a registered connection to a later stage. Entering kPending past
  // `maxPending` connections returns the oldest pending one to evict (it
  // is no longer registered then).
  std::shared_ptr<RegisteredConnection> advance(Slot& slot, Stage stage, size_t maxPending);
  void remove(Slot& slot);
  // Unregisters and returns the connection to close for a new one, or
  // nullptr if every open connection is busy.
  std::shared_ptr<RegisteredConnection> takeVictim();
  size_t size() const;

 private:
  std::list<Entry>& list(Stage s) { return lists_[static_cast<size_t>(s)]; }
  std::shared_ptr<RegisteredConnection> take(Stage s, std::list<Entry>::iterator it);

  mutable std::mutex mu_;
  std::list<Entry> lists_[3];
};

}  // namespace sluice::server
