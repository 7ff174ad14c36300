#include "control/agent/streaming/port_forward_spdy.h"
#include "control/agent/streaming/fd_io.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "control/agent/streaming/spdy_session.h"

namespace sluice::agent::streaming {
namespace {

// Header names as they arrive: client-go sets "streamType", "port",
// "requestID"; SPDY lower-cases names on the wire.
constexpr std::string_view kStreamType = "streamtype";
constexpr std::string_view kPort = "port";
constexpr std::string_view kRequestId = "requestid";
constexpr std::string_view kTypeError = "error";
constexpr std::string_view kTypeData = "data";
// Copy buffer per direction: Go's io.Copy size, so frames match kubelet's.
constexpr size_t kPumpBuffer = 32 * 1024;

// "80" -> 80; nullopt unless 1-5 digits with a value <= 65535.
std::optional<uint32_t> parsePort(const std::string& s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return v;
}

// The dialed pod socket. Shut down by whichever thread learns first that
// forwarding must stop (a pump, or the stream's teardown on the reader
// thread); closed once, after both pumps ended, so a late shutdown never
// hits a recycled descriptor.
class PodSocket {
 public:
  explicit PodSocket(int fd) : fd_(fd) {}
  ~PodSocket() { close(); }
  int fd() const { return fd_; }
  void shutdown(int how) {
    std::lock_guard<std::mutex> lock(mu_);
    if (open_) ::shutdown(fd_, how);
  }
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    if (open_) ::close(fd_);
    open_ = false;
  }

 private:
  std::mutex mu_;
  const int fd_;
  bool open_ = true;
};


class PortForwardServer {
 public:
  PortForwardServer(ByteStream& conn, PortDialer dialer, const PortForwardOptions& options)
      : session_(conn), dialer_(std::move(dialer)), options_(options) {}

  Result<void> run() {
    std::thread reaper([this] { reaperLoop(); });
    SpdySession::Handlers handlers;
    handlers.accept = [](const SpdyStream& s) { return validate(s); };
    handlers.onStream = [this](std::shared_ptr<SpdyStream> s) { onStream(std::move(s)); };
    auto result = session_.serve(handlers);
    // serve() tore every stream down: pumps see EOF and their pod sockets
    // are shut down, so the joins below finish.
    std::vector<Worker> workers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      pending_.clear();
      workers.swap(workers_);
      cv_.notify_all();
    }
    reaper.join();
    for (auto& w : workers) w.thread.join();
    return result;
  }

 private:
  struct Pair {
    std::shared_ptr<SpdyStream> error;
    std::shared_ptr<SpdyStream> data;
    std::chrono::steady_clock::time_point deadline;
  };
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  // kubelet's httpStreamReceived: the headers every stream must carry.
  static Result<void> validate(const SpdyStream& s) {
    const std::string port = s.header(kPort);
    if (port.empty()) return Error::invalid("\"port\" header is required");
    auto value = parsePort(port);
    if (!value) return Error::invalid("unable to parse \"" + port + "\" as a port");
    if (*value < 1) return Error::invalid("port \"" + port + "\" must be > 0");
    const std::string type = s.header(kStreamType);
    if (type.empty()) return Error::invalid("\"streamType\" header is required");
    if (type != kTypeError && type != kTypeData) {
      return Error::invalid("invalid stream type \"" + type + "\"");
    }
    return okResult();
  }

  void onStream(std::shared_ptr<SpdyStream> stream) {
    const std::string type = stream->header(kStreamType);
    std::string requestId = stream->header(kRequestId);
    if (requestId.empty()) {
      // Clients before requestid: consecutive odd ids, error first.
      requestId = std::to_string(type == kTypeError ? stream->id() : stream->id() - 2);
    }
    std::shared_ptr<SpdyStream> errorStream;
    std::string duplicate;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto [it, created] = pending_.try_emplace(requestId);
      Pair& p = it->second;
      if (created) {
        p.deadline = std::chrono::steady_clock::now() + options_.streamCreationTimeout;
        cv_.notify_all();
      }
      auto& slot = type == kTypeError ? p.error : p.data;
      if (slot) {
        duplicate = std::string(type) + " stream already assigned";
        errorStream = p.error;
      } else {
        slot = stream;
        if (p.error && p.data) {
          Pair ready = std::move(p);
          pending_.erase(it);
          startWorkerLocked(std::move(ready.error), std::move(ready.data));
        }
      }
    }
    if (!duplicate.empty()) {
      // As kubelet: the message goes to the pair's error stream; the extra
      // stream is dropped.
      if (errorStream) {
        (void)errorStream->write("error processing stream for request " + requestId + ": " +
                                 duplicate);
      }
      stream->reset();
    }
  }

  void startWorkerLocked(std::shared_ptr<SpdyStream> error, std::shared_ptr<SpdyStream> data) {
    // Join workers that finished, so a long session does not pile up threads.
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread t([this, error, data, done] {
      forward(*error, *data);
      done->store(true);
    });
    workers_.push_back({std::move(t), done});
  }

  // Pairs whose partner never came: kubelet writes "timed out waiting for
  // streams" on the error stream. We also end the streams, so the client's
  // read of the error stream finishes.
  void reaperLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      if (pending_.empty()) {
        cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
        continue;
      }
      auto earliest = std::chrono::steady_clock::time_point::max();
      for (auto& [id, p] : pending_) earliest = std::min(earliest, p.deadline);
      cv_.wait_until(lock, earliest);
      if (stopping_) break;
      const auto now = std::chrono::steady_clock::now();
      std::vector<std::pair<std::string, Pair>> expired;
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.deadline <= now) {
          expired.emplace_back(it->first, std::move(it->second));
          it = pending_.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      for (auto& [id, p] : expired) {
        if (p.error) {
          (void)p.error->write("request " + id + ": timed out waiting for streams");
          (void)p.error->closeWrite();
        }
        if (p.data) p.data->reset();
      }
      lock.lock();
    }
  }

  void forward(SpdyStream& error, SpdyStream& data) {
    const std::string portText = data.header(kPort);
    const uint16_t port = static_cast<uint16_t>(parsePort(portText).value_or(0));
    auto fd = dialer_(port);
    if (!fd.ok()) {
      std::string msg = "error forwarding port " + portText;
      if (!options_.podName.empty()) {
        msg += " to pod " + options_.podName + ", uid " + options_.podUid;
      }
      msg += ": " + fd.error().message;
      (void)error.write(msg);
      (void)error.closeWrite();
      (void)data.closeWrite();
      return;
    }
    auto sock = std::make_shared<PodSocket>(*fd);
    data.setOnTeardown([sock] { sock->shutdown(SHUT_RDWR); });

    std::mutex m;
    std::condition_variable cv;
    bool clientDone = false;
    std::thread podToClient([&] {
      std::vector<char> buf(kPumpBuffer);
      for (;;) {
        ssize_t n = ::recv(sock->fd(), buf.data(), buf.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (!data.write(std::string_view(buf.data(), static_cast<size_t>(n))).ok()) break;
      }
      (void)data.closeWrite();  // the pod's EOF, passed on as FIN
      std::unique_lock<std::mutex> lock(m);
      if (!cv.wait_for(lock, options_.halfCloseGrace, [&] { return clientDone; })) {
        lock.unlock();
        data.stopReading();
      }
    });

    std::vector<char> buf(kPumpBuffer);
    bool podWritable = true;
    for (;;) {
      auto n = data.read(buf.data(), buf.size());
      if (!n.ok() || *n == 0) break;
      // A pod that stopped reading: drain the client's data until it stops.
      if (podWritable && !sendAll(sock->fd(), std::string_view(buf.data(), *n))) podWritable = false;
    }
    // The client's FIN half-closes the pod socket so the pod sees EOF and
    // answers; its RST aborts both ways.
    sock->shutdown(data.resetByPeer() ? SHUT_RDWR : SHUT_WR);
    {
      std::lock_guard<std::mutex> lock(m);
      clientDone = true;
      cv.notify_all();
    }
    podToClient.join();
    // kubelet's order on return: the error stream's FIN, then the data's.
    (void)error.closeWrite();
    (void)data.closeWrite();
    sock->close();
  }

  SpdySession session_;
  PortDialer dialer_;
  const PortForwardOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Pair> pending_;
  std::vector<Worker> workers_;
  bool stopping_ = false;
};

}  // namespace

Result<void> servePortForwardSpdy(ByteStream& conn, PortDialer dialer) {
  return servePortForwardSpdy(conn, std::move(dialer), PortForwardOptions{});
}

Result<void> servePortForwardSpdy(ByteStream& conn, PortDialer dialer,
                                  const PortForwardOptions& options) {
  PortForwardServer server(conn, std::move(dialer), options);
  return server.run();
}

}  // namespace sluice::agent::streaming
