// What the streaming protocols (WebSocket v4/v5.channel.k8s.io, SPDY) need
// from the pod runtime: a process started inside a running container's
// namespaces (exec), and a TCP connection opened inside a pod's network
// namespace (port-forward). The runtime implements them; the protocols only
// pump bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/result.h"

namespace sluice::agent::streaming {

struct ExecOptions {
  std::vector<std::string> command;
  bool stdin = false;
  bool stdout = true;
  bool stderr = true;
  bool tty = false;
};

class ExecProcess {
 public:
  virtual ~ExecProcess() = default;
  // Descriptors to pump, -1 when that stream was not requested. With a tty,
  // stdinFd() and stdoutFd() are the same pty master and stderrFd() is -1
  // (a terminal merges the two, as kubelet does).
  virtual int stdinFd() const = 0;
  virtual int stdoutFd() const = 0;
  virtual int stderrFd() const = 0;
  // End of input: the process reads EOF (closes the pipe; with a tty, sends
  // the terminal's EOF character).
  virtual void closeStdin() = 0;
  // Terminal size in character cells (tty only; a no-op otherwise).
  virtual Result<void> resize(uint16_t width, uint16_t height) = 0;
  // Blocks until the process exited: its exit code, 128 + signal if killed.
  virtual int wait() = 0;
  // Kills the process (the client went away); wait() still reaps it.
  virtual void kill() = 0;
};

// Starts `options.command` in the container; fails with kNotFound for a
// missing executable, as `kubectl exec` reports it.
using ExecLauncher = std::function<Result<std::unique_ptr<ExecProcess>>(const ExecOptions&)>;

// A connected TCP socket to `port` on the pod's loopback, opened inside the
// pod's network namespace (the caller owns the descriptor).
using PortDialer = std::function<Result<int>(uint16_t port)>;

// The metav1.Status the exec error channel carries when the process ended:
// {"status":"Success"} for 0, else reason NonZeroExitCode with an ExitCode
// cause, from which kubectl takes its own exit code.
std::string execExitStatusJson(int exitCode);
// A Failure status for an exec that could not run (missing binary ...).
std::string execErrorStatusJson(const std::string& message);

}  // namespace sluice::agent::streaming
