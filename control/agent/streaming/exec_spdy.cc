#include "control/agent/streaming/exec_spdy.h"
#include "control/agent/streaming/fd_io.h"

#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "control/agent/streaming/spdy_session.h"

namespace sluice::agent::streaming {
namespace {

constexpr std::string_view kStreamType = "streamtype";
// Copy buffer per channel: Go's io.Copy size.
constexpr size_t kPumpBuffer = 32 * 1024;
// A resize line longer than this is not a TerminalSize: dropped.
constexpr size_t kMaxResizeLine = 4096;

enum class Channel { kError, kStdin, kStdout, kStderr, kResize };

std::optional<Channel> channelOf(const std::string& type) {
  if (type == "error") return Channel::kError;
  if (type == "stdin") return Channel::kStdin;
  if (type == "stdout") return Channel::kStdout;
  if (type == "stderr") return Channel::kStderr;
  if (type == "resize") return Channel::kResize;
  return std::nullopt;
}


// Process output -> stream until EOF (EIO on a pty master once the
// terminal's last holder exited), then FIN.
void pumpOut(int fd, SpdyStream& stream) {
  std::vector<char> buf(kPumpBuffer);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (!stream.write(std::string_view(buf.data(), static_cast<size_t>(n))).ok()) break;
  }
  (void)stream.closeWrite();
}

// One TerminalSize per line, as Go's json.Encoder writes them; Go's decoder
// matches field names case-insensitively, so do we.
std::optional<std::pair<uint16_t, uint16_t>> parseResize(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto field = [&](const char* upper, const char* lower) -> std::optional<uint16_t> {
    for (const char* k : {upper, lower}) {
      auto it = j.find(k);
      if (it != j.end() && it->is_number_unsigned() && it->get<uint64_t>() <= 0xffff) {
        return static_cast<uint16_t>(it->get<uint64_t>());
      }
    }
    return std::nullopt;
  };
  auto w = field("Width", "width");
  auto h = field("Height", "height");
  if (!w || !h) return std::nullopt;
  return std::make_pair(*w, *h);
}

class ExecServer {
 public:
  ExecServer(ByteStream& conn, const std::string& protocol, const ExecOptions& options,
             ExecLauncher launcher, const ExecSpdyOptions& spdyOptions)
      : session_(conn),
        protocol_(protocol),
        options_(options),
        launcher_(std::move(launcher)),
        spdyOptions_(spdyOptions) {}

  Result<void> run() {
    if (protocol_ != kExecProtocolV4 && protocol_ != kExecProtocolV3 &&
        protocol_ != kExecProtocolV2) {
      return Error::invalid("exec over SPDY: protocol \"" + protocol_ +
                            "\" is not one of v4/v3/v2.channel.k8s.io");
    }
    if (options_.tty) options_.stderr = false;  // a terminal merges them (kubelet)
    if (!options_.stdin && !options_.stdout && !options_.stderr) {
      return Error::invalid("exec: you must specify at least 1 of stdin, stdout, stderr");
    }
    const int expected = 1 + options_.stdin + options_.stdout + options_.stderr +
                         (options_.tty && protocol_ != kExecProtocolV2 ? 1 : 0);

    std::thread reader([this] {
      SpdySession::Handlers h;
      h.onStream = [this](std::shared_ptr<SpdyStream> s) { onStream(std::move(s)); };
      auto r = session_.serve(h);
      std::lock_guard<std::mutex> lock(mu_);
      served_ = true;
      serveResult_ = r;
      // The client went away: nobody reads the output any more.
      if (process_ && !exited_) process_->kill();
      cv_.notify_all();
    });

    Result<void> result = waitForStreams(expected);
    if (result.ok()) result = execute();
    session_.close();
    reader.join();
    return result;
  }

 private:
  void onStream(std::shared_ptr<SpdyStream> s) {
    // kubelet replies to every stream and ignores unknown types.
    auto ch = channelOf(s->header(kStreamType));
    if (!ch) return;
    std::lock_guard<std::mutex> lock(mu_);
    streams_[*ch] = std::move(s);
    ++received_;
    cv_.notify_all();
  }

  Result<void> waitForStreams(int expected) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, spdyOptions_.streamCreationTimeout,
                 [&] { return received_ >= expected || served_; });
    if (received_ >= expected) return okResult();
    if (served_) {
      if (!serveResult_.ok()) return serveResult_.error().wrap("exec");
      return Error::unavailable(
          "exec: the client closed the connection before opening its streams");
    }
    // kubelet only logs this; the client sees the connection close.
    return Error::unavailable("exec: timed out waiting for client to create streams (" +
                              std::to_string(received_) + " of " + std::to_string(expected) + ")");
  }

  std::shared_ptr<SpdyStream> stream(Channel ch) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = streams_.find(ch);
    return it == streams_.end() ? nullptr : it->second;
  }

  Result<void> execute() {
    auto error = stream(Channel::kError);
    auto in = options_.stdin ? stream(Channel::kStdin) : nullptr;
    auto out = options_.stdout ? stream(Channel::kStdout) : nullptr;
    auto err = options_.stderr ? stream(Channel::kStderr) : nullptr;
    auto resize = options_.tty ? stream(Channel::kResize) : nullptr;

    auto launched = launcher_(options_);
    if (!launched.ok()) {
      writeStatus(error.get(), std::nullopt,
                  "error executing command in container: " + launched.error().message);
      endStreams({error, in, out, err, resize});
      return okResult();
    }
    std::unique_ptr<ExecProcess> proc = std::move(launched.value());
    {
      std::lock_guard<std::mutex> lock(mu_);
      process_ = proc.get();
      if (served_) proc->kill();  // the client left while we launched
    }

    std::vector<std::thread> outputs;
    if (out && proc->stdoutFd() >= 0) {
      outputs.emplace_back([&proc, out] { pumpOut(proc->stdoutFd(), *out); });
    }
    if (err && proc->stderrFd() >= 0) {
      outputs.emplace_back([&proc, err] { pumpOut(proc->stderrFd(), *err); });
    }
    std::thread input;
    if (in && proc->stdinFd() >= 0) {
      input = std::thread([&proc, in] {
        std::vector<char> buf(kPumpBuffer);
        bool writable = true;
        for (;;) {
          auto n = in->read(buf.data(), buf.size());
          if (!n.ok() || *n == 0) break;
          if (writable && !writeAll(proc->stdinFd(), std::string_view(buf.data(), *n))) writable = false;
        }
        proc->closeStdin();  // the client's FIN is the process's EOF
      });
    }
    std::thread resizer;
    if (resize) {
      resizer = std::thread([&proc, resize] {
        std::string pending;
        std::vector<char> buf(1024);
        for (;;) {
          auto n = resize->read(buf.data(), buf.size());
          if (!n.ok() || *n == 0) break;
          pending.append(buf.data(), *n);
          for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
            if (auto size = parseResize(pending.substr(0, nl))) {
              (void)proc->resize(size->first, size->second);
            }
            pending.erase(0, nl + 1);
          }
          if (pending.size() > kMaxResizeLine) pending.clear();
        }
      });
    }

    const int exitCode = proc->wait();
    {
      std::lock_guard<std::mutex> lock(mu_);
      exited_ = true;
    }
    // Output first: everything the process wrote reaches the client before
    // the status (kubelet's CRI exec returns after its copies finished).
    for (auto& t : outputs) t.join();
    if (in) in->stopReading();
    if (resize) resize->stopReading();
    if (input.joinable()) input.join();
    if (resizer.joinable()) resizer.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      process_ = nullptr;
    }
    writeStatus(error.get(), exitCode, {});
    endStreams({error, in, out, err, resize});
    return okResult();
  }

  // The error channel: v4 a JSON metav1.Status, always; v2/v3 only on
  // failure, as the status message in plain text.
  void writeStatus(SpdyStream* error, std::optional<int> exitCode, const std::string& failure) {
    if (!error) return;
    const bool v4 = protocol_ == kExecProtocolV4;
    std::string body;
    if (exitCode) {
      if (v4) {
        body = execExitStatusJson(*exitCode);
      } else if (*exitCode != 0) {
        body =
            "command terminated with non-zero exit code: exit status " + std::to_string(*exitCode);
      }
    } else {
      // apierrors.NewInternalError's message.
      const std::string message = "Internal error occurred: " + failure;
      body = v4 ? execErrorStatusJson(message) : message;
    }
    if (!body.empty()) (void)error->write(body);
  }

  static void endStreams(std::initializer_list<std::shared_ptr<SpdyStream>> streams) {
    for (const auto& s : streams) {
      if (s) (void)s->closeWrite();
    }
  }

  SpdySession session_;
  const std::string protocol_;
  ExecOptions options_;
  ExecLauncher launcher_;
  const ExecSpdyOptions spdyOptions_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<Channel, std::shared_ptr<SpdyStream>> streams_;
  int received_ = 0;
  bool served_ = false;
  Result<void> serveResult_;
  ExecProcess* process_ = nullptr;  // while running, for kill() on disconnect
  bool exited_ = false;
};

}  // namespace

Result<void> serveExecSpdy(ByteStream& conn, const std::string& protocol,
                           const ExecOptions& options, ExecLauncher launcher,
                           const ExecSpdyOptions& spdyOptions) {
  ExecServer server(conn, protocol, options, std::move(launcher), spdyOptions);
  return server.run();
}

}  // namespace sluice::agent::streaming
