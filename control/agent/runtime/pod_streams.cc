#include "control/agent/runtime/pod_streams.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "control/agent/runtime/cgroups.h"
#include "control/agent/runtime/pod_worker.h"

namespace sluice::agent {

namespace fs = std::filesystem;
using streaming::ExecOptions;
using streaming::ExecProcess;

namespace {

std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// The newest persisted pod named ns/name (a pod re-created under the same
// name has a new uid; the one still terminating is older).
Result<PersistedPod> findPod(const std::string& dataDir, const std::string& ns, const std::string& name) {
  std::optional<PersistedPod> best;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dataDir + "/pods", ec)) {
    auto p = PersistedPod::load(entry.path().string() + "/state.json");
    if (!p || p->ns != ns || p->name != name) continue;
    if (!best || p->startTimeMs > best->startTimeMs) best = std::move(p);
  }
  if (!best) return Error::notFound("pod " + ns + "/" + name + " is not running on this node");
  return *best;
}

Result<ContainerRecord> findContainer(const PersistedPod& pod, const std::string& container) {
  for (const auto& c : pod.containers) {
    if (c.name == container) return c;
  }
  return Error::notFound("container " + container + " is not valid for pod " + pod.name);
}

std::string logPath(const std::string& dataDir, const PersistedPod& pod, const std::string& container,
                    int instance) {
  return dataDir + "/pods/" + pod.uid + "/logs/" + container + "/" + std::to_string(instance) + ".log";
}

// "KEY=VALUE" entries of a process's environment.
std::vector<std::string> processEnviron(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::vector<std::string> env;
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    if (!entry.empty()) env.push_back(entry);
  }
  return env;
}

class ExecChild final : public ExecProcess {
 public:
  ExecChild(pid_t pid, int in, int out, int err, bool tty) : pid_(pid), in_(in), out_(out), err_(err), tty_(tty) {}
  ~ExecChild() override {
    if (!reaped_) {
      kill();
      (void)wait();
    }
    if (tty_) {
      closeFd(out_);  // in_ is the same master
      in_ = -1;
    } else {
      closeFd(in_);
      closeFd(out_);
    }
    closeFd(err_);
  }
  int stdinFd() const override { return in_; }
  int stdoutFd() const override { return out_; }
  int stderrFd() const override { return err_; }
  void closeStdin() override {
    if (tty_) {
      // The terminal's EOF character, as a user typing ^D.
      struct termios t {};
      char eof = 4;
      if (::tcgetattr(out_, &t) == 0) eof = static_cast<char>(t.c_cc[VEOF]);
      (void)!::write(out_, &eof, 1);
      return;
    }
    // Only the reader thread uses in_; it stops using it after this.
    closeFd(in_);
  }
  Result<void> resize(uint16_t width, uint16_t height) override {
    if (!tty_) return okResult();
    struct winsize ws {};
    ws.ws_col = width;
    ws.ws_row = height;
    if (::ioctl(out_, TIOCSWINSZ, &ws) != 0) return Error::internal(errnoText("TIOCSWINSZ"));
    return okResult();
  }
  int wait() override {
    std::lock_guard<std::mutex> lock(waitMu_);
    if (reaped_) return code_;
    // Wait for the exit without reaping, so kill() (another thread) can
    // never signal a pid that was reaped and reused; reap under reapMu_.
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    int status = 0;
    std::lock_guard<std::mutex> reap(reapMu_);
    while (::waitpid(pid_, &status, 0) < 0) {
      if (errno != EINTR) {
        status = 0;
        break;
      }
    }
    reaped_ = true;
    code_ = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
    return code_;
  }
  void kill() override {
    std::lock_guard<std::mutex> reap(reapMu_);
    if (reaped_) return;
    if (tty_) ::kill(-pid_, SIGKILL);  // its session (setsid'd): the shell and its jobs
    ::kill(pid_, SIGKILL);
  }

 private:
  pid_t pid_;
  int in_, out_, err_;
  bool tty_;
  std::mutex waitMu_;   // one waiter
  std::mutex reapMu_;   // reaping vs kill()
  std::atomic<bool> reaped_{false};
  int code_ = 0;
};

}  // namespace

Result<std::unique_ptr<ExecProcess>> startExec(pid_t containerPid, const ExecOptions& options) {
  if (options.command.empty()) return Error::invalid("exec: empty command");
  const std::string proc = "/proc/" + std::to_string(containerPid);
  // Opened before forking: the child only calls setns/chroot on them.
  const char* kinds[] = {"net", "uts", "ipc", "mnt"};
  const int types[] = {CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNS};
  int nsFds[4] = {-1, -1, -1, -1};
  int pidNs = -1, rootFd = -1, devNull = -1;
  int inPipe[2] = {-1, -1}, outPipe[2] = {-1, -1}, errPipe[2] = {-1, -1}, failPipe[2] = {-1, -1};
  int master = -1, slave = -1;
  // The container's cgroups (cgroup.procs files), joined first in the child
  // as kubelet's exec does: the session counts against the limits.
  std::vector<int> cgroupFds;
  auto cleanup = [&] {
    for (int& fd : cgroupFds) closeFd(fd);
    for (int& fd : nsFds) closeFd(fd);
    for (int* fd : {&pidNs, &rootFd, &devNull, &inPipe[0], &inPipe[1], &outPipe[0], &outPipe[1], &errPipe[0],
                    &errPipe[1], &failPipe[0], &failPipe[1], &master, &slave}) {
      closeFd(*fd);
    }
  };
  for (int i = 0; i < 4; ++i) {
    nsFds[i] = ::open((proc + "/ns/" + kinds[i]).c_str(), O_RDONLY | O_CLOEXEC);
    if (nsFds[i] < 0) {
      Error e = Error::notFound(errnoText("container process " + std::to_string(containerPid) + " namespaces"));
      cleanup();
      return e;
    }
  }
  for (const std::string& f : cgroupProcsOf(containerPid)) {
    int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) cgroupFds.push_back(fd);
  }
  pidNs = ::open((proc + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC);
  rootFd = ::open((proc + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  devNull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (pidNs < 0 || rootFd < 0 || devNull < 0 || ::pipe2(failPipe, O_CLOEXEC) != 0) {
    Error e = Error::notFound(errnoText("container process " + std::to_string(containerPid)));
    cleanup();
    return e;
  }
  if (options.tty) {
    if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) {
      Error e = Error::internal(errnoText("openpty"));
      cleanup();
      return e;
    }
    ::fcntl(master, F_SETFD, FD_CLOEXEC);
    ::fcntl(slave, F_SETFD, FD_CLOEXEC);
  } else {
    bool ok = (!options.stdin || ::pipe2(inPipe, O_CLOEXEC) == 0) &&
              (!options.stdout || ::pipe2(outPipe, O_CLOEXEC) == 0) &&
              (!options.stderr || ::pipe2(errPipe, O_CLOEXEC) == 0);
    if (!ok) {
      Error e = Error::internal(errnoText("pipe"));
      cleanup();
      return e;
    }
  }
  // Everything the child needs, prepared before fork (the agent is
  // multi-threaded: only async-signal-safe calls after fork).
  std::vector<std::string> args = options.command;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> envs = processEnviron(containerPid);
  if (options.tty) envs.push_back("TERM=xterm");
  std::vector<char*> envp;
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int stdinSrc = options.tty ? slave : (options.stdin ? inPipe[0] : devNull);
  const int stdoutSrc = options.tty ? slave : (options.stdout ? outPipe[1] : devNull);
  const int stderrSrc = options.tty ? slave : (options.stderr ? errPipe[1] : devNull);
  const bool tty = options.tty;

  // Joining a PID namespace applies to the caller's children only, and per
  // thread: a short-lived thread joins it and forks, so the exec'd process
  // is a member (it sees the container's PIDs) and still our child to wait.
  pid_t child = -1;
  int forkErrno = 0;
  std::thread forker([&] {
    if (::setns(pidNs, CLONE_NEWPID) != 0) {
      forkErrno = errno;
      return;
    }
    child = ::fork();
    if (child < 0) {
      forkErrno = errno;
      return;
    }
    if (child != 0) return;
    // Child: single-threaded now.
    auto fail = [&](int stage) {
      int report[2] = {stage, errno};
      (void)!::write(failPipe[1], report, sizeof(report));
      ::_exit(127);
    };
    for (int fd : cgroupFds) {
      if (::write(fd, "0", 1) != 1) fail(5);
    }
    for (int i = 0; i < 4; ++i) {
      if (::setns(nsFds[i], types[i]) != 0) fail(1);
    }
    if (::fchdir(rootFd) != 0 || ::chroot(".") != 0 || ::chdir("/") != 0) fail(2);
    if (tty) {
      ::setsid();
      if (::ioctl(slave, TIOCSCTTY, 0) != 0) fail(3);
    }
    if (::dup2(stdinSrc, 0) < 0 || ::dup2(stdoutSrc, 1) < 0 || ::dup2(stderrSrc, 2) < 0) fail(3);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s = 1; s < NSIG; ++s) ::signal(s, SIG_DFL);
    ::execvpe(argv[0], argv.data(), envp.data());
    fail(4);
  });
  forker.join();
  if (child < 0) {
    errno = forkErrno;
    Error e = Error::internal(errnoText("exec: enter the container's PID namespace / fork"));
    cleanup();
    return e;
  }
  // Parent: drop the child's ends, learn whether exec happened.
  closeFd(slave);
  closeFd(inPipe[0]);
  closeFd(outPipe[1]);
  closeFd(errPipe[1]);
  closeFd(failPipe[1]);
  int report[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(failPipe[0], report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(report)) {
    int status = 0;
    ::waitpid(child, &status, 0);
    std::string what = report[0] == 4   ? "exec: \"" + options.command[0] + "\": "
                       : report[0] == 1 ? "exec: entering the container's namespaces: "
                       : report[0] == 2 ? "exec: entering the container's root: "
                       : report[0] == 5 ? "exec: joining the container's cgroup: "
                                        : "exec: setting up stdio: ";
    Error e{report[0] == 4 && (report[1] == ENOENT || report[1] == EACCES) ? ErrorCode::kNotFound
                                                                           : ErrorCode::kInternal,
            what + (report[0] == 4 && report[1] == ENOENT ? std::string("executable file not found in $PATH")
                                                          : std::strerror(report[1]))};
    cleanup();
    return e;
  }
  std::unique_ptr<ExecProcess> p;
  if (tty) {
    p = std::make_unique<ExecChild>(child, master, master, -1, true);
    master = -1;
  } else {
    p = std::make_unique<ExecChild>(child, options.stdin ? inPipe[1] : -1, options.stdout ? outPipe[0] : -1,
                                    options.stderr ? errPipe[0] : -1, false);
    inPipe[1] = outPipe[0] = errPipe[0] = -1;
  }
  cleanup();
  return p;
}

streaming::StreamingBackend podStreamingBackend(const std::string& dataDir) {
  streaming::StreamingBackend b;
  b.logs = [dataDir](const std::string& ns, const std::string& name, const std::string& container,
                     bool previous) -> Result<streaming::LogSource> {
    auto pod = findPod(dataDir, ns, name);
    if (!pod) return pod.error();
    auto rec = findContainer(*pod, container);
    if (!rec) return rec.error();
    if (!rec->started) {
      return Error{ErrorCode::kFailedPrecondition,
                   "container \"" + container + "\" in pod \"" + name + "\" is waiting to start"};
    }
    streaming::LogSource src;
    if (previous) {
      if (rec->restartCount == 0) {
        return Error{ErrorCode::kFailedPrecondition, "previous terminated container \"" + container +
                                                         "\" in pod \"" + name + "\" not found"};
      }
      src.path = logPath(dataDir, *pod, container, rec->restartCount - 1);
      return src;
    }
    const int instance = rec->restartCount;
    src.path = logPath(dataDir, *pod, container, instance);
    src.running = [dataDir, ns, name, container, instance] {
      auto p = findPod(dataDir, ns, name);
      if (!p) return false;
      auto r = findContainer(*p, container);
      return r.ok() && r->running && r->restartCount == instance;
    };
    return src;
  };
  b.exec = [dataDir](const std::string& ns, const std::string& name,
                     const std::string& container) -> Result<streaming::ExecLauncher> {
    auto pod = findPod(dataDir, ns, name);
    if (!pod) return pod.error();
    auto rec = findContainer(*pod, container);
    if (!rec) return rec.error();
    if (!rec->running || !processAlive(rec->proc)) {
      return Error{ErrorCode::kFailedPrecondition,
                   "container \"" + container + "\" in pod \"" + name + "\" is not running"};
    }
    pid_t pid = rec->proc.pid;
    return streaming::ExecLauncher([pid](const ExecOptions& o) { return startExec(pid, o); });
  };
  b.portForward = [dataDir](const std::string& ns, const std::string& name) -> Result<streaming::PortDialer> {
    auto pod = findPod(dataDir, ns, name);
    if (!pod) return pod.error();
    if (pod->netnsPath.empty() || !pod->networkReady) {
      return Error{ErrorCode::kFailedPrecondition, "pod " + ns + "/" + name + " has no network yet"};
    }
    std::string netns = pod->netnsPath;
    return streaming::PortDialer([netns](uint16_t port) -> Result<int> {
      int nsFd = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
      if (nsFd < 0) return Error::notFound(errnoText("pod network namespace " + netns));
      // A socket belongs to the namespace of the thread that created it: a
      // short-lived thread enters the pod's and connects there.
      Result<int> out = Error::internal("port-forward: not attempted");
      std::thread t([&] {
        if (::setns(nsFd, CLONE_NEWNET) != 0) {
          out = Error::internal(errnoText("enter the pod's network namespace"));
          return;
        }
        int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
          out = Error::internal(errnoText("socket"));
          return;
        }
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
          // kubelet's wording, which kubectl prints.
          out = Error::unavailable("failed to connect to localhost:" + std::to_string(port) +
                                   " inside namespace: " + std::strerror(errno));
          ::close(s);
          return;
        }
        int one = 1;
        ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        out = s;
      });
      t.join();
      ::close(nsFd);
      return out;
    });
  };
  return b;
}

}  // namespace sluice::agent
