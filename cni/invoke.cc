#include "cni/invoke.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <cstring>

extern char** environ;  // NOLINT: POSIX

namespace sluice::cni {
namespace {

// A delegate's stderr is quoted into error details; keep its tail only.
constexpr size_t kMaxStderrInDetails = 2048;

std::string errnoText(const std::string& what, int err) { return what + ": " + std::strerror(err); }

bool isCniVariable(std::string_view entry) {
  static constexpr std::string_view kNames[] = {"CNI_COMMAND=", "CNI_CONTAINERID=", "CNI_NETNS=",
                                                "CNI_IFNAME=",  "CNI_ARGS=",        "CNI_PATH="};
  return std::any_of(std::begin(kNames), std::end(kNames),
                     [&](std::string_view n) { return entry.substr(0, n.size()) == n; });
}

struct Pipe {
  int fds[2] = {-1, -1};
  ~Pipe() { closeBoth(); }
  bool open() { return ::pipe2(fds, O_CLOEXEC) == 0; }
  void closeEnd(int i) {
    if (fds[i] >= 0) ::close(fds[i]);
    fds[i] = -1;
  }
  void closeBoth() { closeEnd(0); closeEnd(1); }
};

std::string tail(const std::string& s, size_t n) {
  std::string t = s.size() > n ? "..." + s.substr(s.size() - n) : s;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

}  // namespace

std::vector<std::string> splitCniPath(std::string_view path) {
  std::vector<std::string> out;
  while (!path.empty()) {
    const auto colon = path.find(':');
    auto dir = path.substr(0, colon);
    if (!dir.empty()) out.emplace_back(dir);
    if (colon == std::string_view::npos) break;
    path.remove_prefix(colon + 1);
  }
  return out;
}

Result<std::string> findPlugin(std::string_view type, const std::vector<std::string>& dirs) {
  if (type.empty() || type == "." || type == ".." || type.find('/') != std::string_view::npos) {
    return Error::invalid("plugin type '" + std::string(type) + "' is not a plain file name");
  }
  for (const auto& dir : dirs) {
    const std::string candidate = dir + "/" + std::string(type);
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  std::string searched;
  for (const auto& dir : dirs) searched += (searched.empty() ? "" : ":") + dir;
  return Error::notFound("plugin '" + std::string(type) + "' not found in CNI_PATH (" +
                         (searched.empty() ? "empty" : searched) + ")");
}

Result<ExecOutput> execPlugin(const ExecRequest& request) {
  Pipe in, out, err, execStatus;
  if (!in.open() || !out.open() || !err.open() || !execStatus.open()) {
    return Error::internal(errnoText("pipe2", errno));
  }
  // Everything the child touches is built before fork(): after it only
  // async-signal-safe calls are allowed (the parent may have threads).
  std::vector<char*> envp;
  for (const auto& e : request.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  char* argv[] = {const_cast<char*>(request.path.c_str()), nullptr};

  // SIGPIPE is blocked while we write the config, so a plugin that exits
  // without reading stdin gives EPIPE instead of killing the caller.
  sigset_t pipeSet;
  sigemptyset(&pipeSet);
  sigaddset(&pipeSet, SIGPIPE);
  sigset_t oldMask;
  pthread_sigmask(SIG_BLOCK, &pipeSet, &oldMask);

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    pthread_sigmask(SIG_SETMASK, &oldMask, nullptr);
    return Error::internal(errnoText("fork", e));
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &oldMask, nullptr);
    int e = 0;
    if (request.netnsFd >= 0 && ::setns(request.netnsFd, CLONE_NEWNET) != 0) {
      e = errno;
    } else if (::dup2(in.fds[0], 0) < 0 || ::dup2(out.fds[1], 1) < 0 || ::dup2(err.fds[1], 2) < 0) {
      e = errno;
    } else {
      ::execve(request.path.c_str(), argv, envp.data());
      e = errno;
    }
    [[maybe_unused]] auto n = ::write(execStatus.fds[1], &e, sizeof(e));
    ::_exit(127);
  }
  in.closeEnd(0);
  out.closeEnd(1);
  err.closeEnd(1);
  execStatus.closeEnd(1);
  ::fcntl(in.fds[1], F_SETFL, O_NONBLOCK);

  ExecOutput result;
  size_t written = 0;
  if (request.stdinData.empty()) in.closeEnd(1);
  bool sawEpipe = false;
  bool timedOut = false;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(request.timeoutMs);
  while (out.fds[0] >= 0 || err.fds[0] >= 0) {
    pollfd pfds[3];
    int n = 0;
    if (in.fds[1] >= 0) pfds[n++] = {in.fds[1], POLLOUT, 0};
    if (out.fds[0] >= 0) pfds[n++] = {out.fds[0], POLLIN, 0};
    if (err.fds[0] >= 0) pfds[n++] = {err.fds[0], POLLIN, 0};
    int waitMs = -1;
    if (request.timeoutMs > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      waitMs = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    const int ready = ::poll(pfds, static_cast<nfds_t>(n), waitMs);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    if (ready == 0) {
      // Out of time. Stop reading too: a grandchild (iptables, say) may hold
      // the pipes open after the plugin dies.
      timedOut = true;
      ::kill(pid, SIGKILL);
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (pfds[i].revents == 0) continue;
      const int fd = pfds[i].fd;
      if (fd == in.fds[1]) {
        const ssize_t w = ::write(fd, request.stdinData.data() + written,
                                  request.stdinData.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 && errno == EPIPE) sawEpipe = true;
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == request.stdinData.size()) {
          in.closeEnd(1);
        }
        continue;
      }
      char buf[8192];
      const ssize_t r = ::read(fd, buf, sizeof(buf));
      if (r > 0) {
        (fd == out.fds[0] ? result.stdoutData : result.stderrData).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        (fd == out.fds[0] ? out : err).closeEnd(0);
      }
    }
  }
  in.closeEnd(1);
  out.closeEnd(0);
  err.closeEnd(0);
  if (sawEpipe) {
    const timespec zero{};
    sigtimedwait(&pipeSet, nullptr, &zero);  // drop the SIGPIPE we caused
  }
  pthread_sigmask(SIG_SETMASK, &oldMask, nullptr);

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int execErrno = 0;
  if (::read(execStatus.fds[0], &execErrno, sizeof(execErrno)) == sizeof(execErrno)) {
    return Error::internal(errnoText("exec " + request.path, execErrno));
  }
  if (timedOut) {
    return Error::unavailable(request.path + ": no answer within " +
                              std::to_string(request.timeoutMs) + " ms (killed)");
  }
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::vector<std::string> buildEnv(const std::vector<std::string>& base, const Invocation& inv) {
  std::vector<std::string> env;
  for (const auto& e : base) {
    if (!isCniVariable(e)) env.push_back(e);
  }
  env.push_back("CNI_COMMAND=" + std::string(toString(inv.command)));
  if (!inv.containerId.empty()) env.push_back("CNI_CONTAINERID=" + inv.containerId);
  if (!inv.netns.empty()) env.push_back("CNI_NETNS=" + inv.netns);
  if (!inv.ifName.empty()) env.push_back("CNI_IFNAME=" + inv.ifName);
  if (!inv.args.empty()) env.push_back("CNI_ARGS=" + inv.args);
  if (!inv.path.empty()) env.push_back("CNI_PATH=" + inv.path);
  return env;
}

std::vector<std::string> currentEnviron() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

CniResult<Json> invokePlugin(const std::string& pluginPath, const Invocation& inv,
                             const std::vector<std::string>& baseEnv, const std::string& stdinData,
                             std::string_view who, int netnsFd, int timeoutMs) {
  const std::string w(who);
  auto out = execPlugin({pluginPath, buildEnv(baseEnv, inv), stdinData, netnsFd, timeoutMs});
  if (!out) {
    const uint32_t code =
        out.error().code == ErrorCode::kUnavailable ? kCodeTryAgainLater : kCodeDelegateFailed;
    return CniError::make(code, w + ": " + out.error().message);
  }
  const bool blank = std::all_of(out->stdoutData.begin(), out->stdoutData.end(),
                                 [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
  if (out->exitCode == 0) {
    if (blank) return Json();
    auto doc = parseJson(out->stdoutData, w + " output");
    if (!doc) {
      return CniError::make(kCodeDelegateFailed, doc.error().msg, tail(out->stdoutData, 512));
    }
    return doc;
  }
  if (!blank) {
    auto doc = parseJson(out->stdoutData, w + " output");
    if (doc) {
      if (auto e = parseError(*doc)) return e->wrap(w);
    }
  }
  return CniError::make(kCodeDelegateFailed,
                        w + ": exited with status " + std::to_string(out->exitCode) +
                            " without a CNI error object",
                        tail(out->stderrData, kMaxStderrInDetails));
}

CniResult<std::vector<std::string>> queryVersions(const std::string& pluginPath,
                                                  const std::vector<std::string>& baseEnv,
                                                  std::string_view who, int netnsFd) {
  Invocation inv;
  inv.command = Command::kVersion;
  const std::string input = dumpJson(Json{{"cniVersion", std::string(kLatestVersion)}});
  auto doc = invokePlugin(pluginPath, inv, baseEnv, input, who, netnsFd);
  if (!doc) return doc.error();
  std::vector<std::string> versions;
  const Json* list = findField(*doc, "supportedVersions");
  if (list == nullptr || !list->is_array()) {
    return CniError::make(kCodeDelegateFailed,
                          std::string(who) + ": VERSION output has no supportedVersions");
  }
  for (const auto& v : *list) {
    if (v.is_string()) versions.push_back(v.get<std::string>());
  }
  return versions;
}

std::optional<std::string> negotiateVersion(std::string_view wanted,
                                            const std::vector<std::string>& theirs) {
  if (std::find(theirs.begin(), theirs.end(), wanted) != theirs.end()) return std::string(wanted);
  auto w = SpecVersion::parse(wanted);
  if (!w) return std::nullopt;
  std::optional<std::string> best;
  std::optional<SpecVersion> bestVersion;
  for (const auto& v : theirs) {
    auto parsed = SpecVersion::parse(v);
    // Only versions whose result sluice can decode, and never newer than the
    // caller's: it could not read what a newer version adds.
    if (!parsed || !isSupportedVersion(v) || *parsed > *w) continue;
    if (!bestVersion || *parsed > *bestVersion) {
      best = v;
      bestVersion = *parsed;
    }
  }
  return best;
}

}  // namespace sluice::cni
