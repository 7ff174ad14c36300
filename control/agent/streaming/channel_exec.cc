#include "control/agent/streaming/channel_exec.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <nlohmann/json.hpp>
#include <thread>

#include "control/agent/streaming/fd_io.h"

namespace sluice::agent::streaming {

namespace {

enum Channel : uint8_t { kStdin = 0, kStdout = 1, kStderr = 2, kError = 3, kResize = 4, kClose = 255 };

// Copies `fd` to `channel` until EOF (a pty master reports EIO once the
// terminal's last holder exited: also the end).
void pump(WebSocket& ws, int fd, uint8_t channel) {
  std::string msg(1 + 32 * 1024, '\0');
  msg[0] = static_cast<char>(channel);
  for (;;) {
    ssize_t n = ::read(fd, msg.data() + 1, msg.size() - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    if (!ws.writeBinary(std::string_view(msg.data(), 1 + static_cast<size_t>(n)))) return;
  }
}

}  // namespace

const std::vector<std::string>& channelProtocols() {
  static const std::vector<std::string> kProtocols = {"v5.channel.k8s.io", "v4.channel.k8s.io"};
  return kProtocols;
}

std::optional<std::pair<uint16_t, uint16_t>> parseResize(std::string_view json) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto w = j.find("Width");
  auto h = j.find("Height");
  if (w == j.end() || h == j.end() || !w->is_number_unsigned() || !h->is_number_unsigned()) return std::nullopt;
  if (*w > 65535u || *h > 65535u) return std::nullopt;
  return std::make_pair(static_cast<uint16_t>(w->get<unsigned>()), static_cast<uint16_t>(h->get<unsigned>()));
}

void serveExecChannels(WebSocket& ws, const std::string& protocol, const ExecOptions& options,
                       const ExecLauncher& launch) {
  auto proc = launch(options);
  if (!proc) {
    (void)ws.writeBinary(std::string(1, static_cast<char>(kError)) + execErrorStatusJson(proc.error().message));
    (void)ws.close();
    ws.stream().close();
    return;
  }
  ExecProcess& p = **proc;
  const bool v5 = protocol == "v5.channel.k8s.io";

  std::vector<std::thread> pumps;
  if (p.stdoutFd() >= 0) pumps.emplace_back([&] { pump(ws, p.stdoutFd(), kStdout); });
  if (p.stderrFd() >= 0) pumps.emplace_back([&] { pump(ws, p.stderrFd(), kStderr); });

  // Client messages until it closes; the client leaving first kills the
  // process (kubelet does the same when the stream breaks).
  std::atomic<bool> finished{false};
  std::thread reader([&] {
    bool stdinOpen = p.stdinFd() >= 0;
    for (;;) {
      auto m = ws.read();
      if (!m || !m->has_value()) break;
      const std::string& d = (*m)->data;
      if (d.empty()) continue;
      const auto channel = static_cast<uint8_t>(d[0]);
      std::string_view body(d.data() + 1, d.size() - 1);
      if (channel == kStdin && stdinOpen) {
        if (!writeAll(p.stdinFd(), body)) stdinOpen = false;
      } else if (channel == kResize) {
        if (auto size = parseResize(body)) (void)p.resize(size->first, size->second);
      } else if (channel == kClose && v5 && !body.empty() && static_cast<uint8_t>(body[0]) == kStdin) {
        if (stdinOpen) p.closeStdin();
        stdinOpen = false;
      }
    }
    if (!finished.load()) p.kill();
  });

  for (auto& t : pumps) t.join();
  const int code = p.wait();
  finished.store(true);
  (void)ws.writeBinary(std::string(1, static_cast<char>(kError)) + execExitStatusJson(code));
  (void)ws.close();
  // The reader sees the client's close reply (or EOF) and ends; a client
  // that never answers is cut off by shutting the connection.
  ws.stream().close();
  reader.join();
}

}  // namespace sluice::agent::streaming
