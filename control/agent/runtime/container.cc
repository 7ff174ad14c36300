#include "control/agent/runtime/container.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "control/agent/runtime/cgroups.h"

namespace sluice::agent {
namespace {

// The shim's clone() stack: the container child only runs setup code on it
// before exec (no deep recursion, no large frames).
constexpr size_t kCloneStackBytes = 256 * 1024;

struct TopEntry {
  std::string source;  // "/usr"
  std::string target;  // rootDir + "/usr"
  enum class Kind { kDir, kFile, kSymlink } kind = Kind::kDir;
  std::string linkTarget;
};

struct PreparedMount {
  std::string source;
  std::string target;               // absolute, under rootDir
  std::vector<std::string> mkdirs;  // each prefix of target under rootDir, in order
  bool readOnly = false;
};

// Everything the child processes need, as C strings, built before fork().
struct Prepared {
  const ContainerLaunch* launch = nullptr;
  std::vector<TopEntry> top;
  std::vector<PreparedMount> mounts;
  std::string procDir, devDir, sysDir, runNetnsDir;
  std::string exitTmp;
  std::vector<char*> argv;
  std::vector<char*> envp;
  int netnsFd = -1;
  int logFd = -1;
  int syncWrite = -1;
  int cgroupFds[kMaxCgroupFiles] = {-1, -1, -1, -1};
  size_t cgroupCount = 0;
  long maxFd = 1024;
};

void writeAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    data += w;
    n -= static_cast<size_t>(w);
  }
}

void writeStr(int fd, const char* s) { writeAll(fd, s, std::strlen(s)); }

// Decimal digits of v into buf (async-signal-safe); returns the length.
size_t formatInt(int64_t v, char* buf) {
  char tmp[24];
  size_t n = 0;
  bool neg = v < 0;
  uint64_t u = neg ? static_cast<uint64_t>(-(v + 1)) + 1 : static_cast<uint64_t>(v);
  do {
    tmp[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  size_t len = 0;
  if (neg) buf[len++] = '-';
  while (n > 0) buf[len++] = tmp[--n];
  return len;
}

[[noreturn]] void childFail(const char* what) {
  int e = errno;
  writeStr(2, "sluice: container setup failed: ");
  writeStr(2, what);
  writeStr(2, ": ");
  writeStr(2, std::strerror(e));
  writeStr(2, "\n");
  _exit(127);
}

// Runs as the container's first process (PID 1 of its PID namespace).
int containerMain(void* arg) {
  const Prepared& p = *static_cast<const Prepared*>(arg);
  const ContainerLaunch& l = *p.launch;
  // "0": the writing process itself (its pid in this new PID namespace would
  // mean nothing to the cgroup's owner).
  for (size_t i = 0; i < p.cgroupCount; ++i) {
    if (::write(p.cgroupFds[i], "0", 1) != 1) {
      if (::dup2(p.logFd, 2) >= 0) childFail("join the container's cgroup");
      _exit(127);
    }
  }
  if (::dup2(p.logFd, 1) < 0 || ::dup2(p.logFd, 2) < 0) _exit(127);
  int devNull = ::open("/dev/null", O_RDONLY);
  if (devNull >= 0) ::dup2(devNull, 0);
  if (::setns(p.netnsFd, CLONE_NEWNET) != 0) childFail("setns(pod network namespace)");
  if (::sethostname(l.hostname.data(), l.hostname.size()) != 0) childFail("sethostname");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    childFail("make / private");
  const char* root = l.rootDir.c_str();
  if (!l.rootfs.empty()) {
    if (::mount(l.rootfs.c_str(), root, nullptr, MS_BIND | MS_REC, nullptr) != 0)
      childFail("bind rootfs");
  } else {
    if (::mount("tmpfs", root, "tmpfs", 0, "mode=0755") != 0) childFail("tmpfs root");
    for (const TopEntry& e : p.top) {
      if (e.kind == TopEntry::Kind::kSymlink) {
        (void)::symlink(e.linkTarget.c_str(), e.target.c_str());
        continue;
      }
      if (e.kind == TopEntry::Kind::kDir) {
        (void)::mkdir(e.target.c_str(), 0755);
      } else {
        int fd = ::open(e.target.c_str(), O_CREAT | O_WRONLY, 0644);
        if (fd >= 0) ::close(fd);
      }
      (void)::mount(e.source.c_str(), e.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
    }
    // Other pods' namespace files would be pinned by this mount namespace.
    (void)::umount2(p.runNetnsDir.c_str(), MNT_DETACH);
  }
  (void)::mkdir(p.procDir.c_str(), 0555);
  if (::mount("proc", p.procDir.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    childFail("mount /proc");
  }
  if (!l.rootfs.empty()) {
    (void)::mkdir(p.devDir.c_str(), 0755);
    (void)::mount("/dev", p.devDir.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
    (void)::mkdir(p.sysDir.c_str(), 0555);
    (void)::mount("/sys", p.sysDir.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
  }
  for (const PreparedMount& m : p.mounts) {
    for (const std::string& d : m.mkdirs) (void)::mkdir(d.c_str(), 0755);
    if (::mount(m.source.c_str(), m.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      childFail(m.target.c_str());
    }
    if (m.readOnly) {
      (void)::mount(nullptr, m.target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr);
    }
  }
  if (::chroot(root) != 0) childFail("chroot");
  const char* wd = l.workingDir.empty() ? "/" : l.workingDir.c_str();
  if (::chdir(wd) != 0) childFail("chdir to workingDir");
  sigset_t all;
  sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) (void)::sigaction(s, &dfl, nullptr);
  ::execvpe(p.argv[0], p.argv.data(), p.envp.data());
  childFail(p.argv[0]);
}

// The shim: reparented away from the agent, waits for the container and
// records how it ended.
[[noreturn]] void shimMain(Prepared& p, void* stack) {
  // Keep only what the container needs; the agent's sockets must not
  // outlive it in here.
  for (long fd = 3; fd < p.maxFd; ++fd) {
    bool keep = fd == p.logFd || fd == p.netnsFd || fd == p.syncWrite;
    for (size_t i = 0; i < p.cgroupCount; ++i) keep = keep || fd == p.cgroupFds[i];
    if (!keep) ::close(static_cast<int>(fd));
  }
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  (void)::sigaction(SIGCHLD, &dfl, nullptr);  // an ignored SIGCHLD would auto-reap the container
  int flags = CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNS | SIGCHLD;
  pid_t child = ::clone(containerMain, static_cast<char*>(stack) + kCloneStackBytes, flags, &p);
  char buf[64];
  if (child < 0) {
    size_t n = formatInt(-errno, buf);
    buf[n++] = '\n';
    writeAll(p.syncWrite, buf, n);
    _exit(1);
  }
  size_t n = formatInt(child, buf);
  buf[n++] = '\n';
  writeAll(p.syncWrite, buf, n);
  ::close(p.syncWrite);
  ::close(p.logFd);
  ::close(p.netnsFd);
  for (size_t i = 0; i < p.cgroupCount; ++i) ::close(p.cgroupFds[i]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  int code = 255, sig = 0;
  if (WIFEXITED(status)) code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    sig = WTERMSIG(status);
    code = 128 + sig;
  }
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  int64_t ms = static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  char out[96];
  size_t len = formatInt(code, out);
  out[len++] = ' ';
  len += formatInt(sig, out + len);
  out[len++] = ' ';
  len += formatInt(ms, out + len);
  out[len++] = '\n';
  int fd = ::open(p.exitTmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    writeAll(fd, out, len);
    ::close(fd);
    ::rename(p.exitTmp.c_str(), p.launch->exitPath.c_str());
  }
  _exit(0);
}

std::vector<TopEntry> hostTopLevel(const std::string& rootDir) {
  std::vector<TopEntry> out;
  DIR* d = ::opendir("/");
  if (d == nullptr) return out;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || name == "proc") continue;
    TopEntry t;
    t.source = "/" + name;
    t.target = rootDir + "/" + name;
    struct stat st {};
    if (::lstat(t.source.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char link[4096];
      ssize_t n = ::readlink(t.source.c_str(), link, sizeof(link) - 1);
      if (n <= 0) continue;
      t.kind = TopEntry::Kind::kSymlink;
      t.linkTarget.assign(link, static_cast<size_t>(n));
    } else if (S_ISDIR(st.st_mode)) {
      t.kind = TopEntry::Kind::kDir;
    } else if (S_ISREG(st.st_mode)) {
      t.kind = TopEntry::Kind::kFile;
    } else {
      continue;
    }
    out.push_back(std::move(t));
  }
  ::closedir(d);
  return out;
}

std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

int64_t nowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<ProcessIdentity> launchContainer(const ContainerLaunch& launch) {
  if (launch.argv.empty()) return Error{ErrorCode::kInvalidArgument, "no command to run"};
  Prepared p;
  p.launch = &launch;
  if (launch.rootfs.empty()) p.top = hostTopLevel(launch.rootDir);
  p.procDir = launch.rootDir + "/proc";
  p.devDir = launch.rootDir + "/dev";
  p.sysDir = launch.rootDir + "/sys";
  p.runNetnsDir = launch.rootDir + "/run/netns";
  p.exitTmp = launch.exitPath + ".tmp";
  for (const VolumeMount& m : launch.mounts) {
    PreparedMount pm;
    pm.source = m.source;
    pm.readOnly = m.readOnly;
    std::string path = launch.rootDir;
    std::stringstream parts(m.target);
    std::string part;
    while (std::getline(parts, part, '/')) {
      if (part.empty() || part == ".") continue;
      if (part == "..")
        return Error{ErrorCode::kInvalidArgument, "mountPath " + m.target + ": '..' not allowed"};
      path += "/" + part;
      pm.mkdirs.push_back(path);
    }
    pm.target = path;
    p.mounts.push_back(std::move(pm));
  }
  std::vector<std::string> argv = launch.argv;
  std::vector<std::string> env = launch.env;
  for (auto& a : argv) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);
  for (auto& e : env) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    p.maxFd = static_cast<long>(std::min<rlim_t>(rl.rlim_cur, 65536));
  }

  if (launch.cgroupProcs.size() > kMaxCgroupFiles)
    return Error{ErrorCode::kInvalidArgument, "too many cgroups to join"};
  auto closeCgroups = [&] {
    for (size_t i = 0; i < p.cgroupCount; ++i) ::close(p.cgroupFds[i]);
    p.cgroupCount = 0;
  };
  for (const std::string& f : launch.cgroupProcs) {
    int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      std::string err = errnoText("open " + f);
      closeCgroups();
      return Error{ErrorCode::kInternal, err};
    }
    p.cgroupFds[p.cgroupCount++] = fd;
  }
  p.netnsFd = ::open(launch.netnsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (p.netnsFd < 0) {
    std::string err = errnoText("open " + launch.netnsPath);
    closeCgroups();
    return Error{ErrorCode::kNotFound, err};
  }
  // Owner-only: a container's output may hold secrets (private_files.h).
  p.logFd = ::open(launch.logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (p.logFd < 0) {
    std::string err = errnoText("open " + launch.logPath);
    ::close(p.netnsFd);
    closeCgroups();
    return Error{ErrorCode::kInternal, err};
  }
  int sync[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) {
    ::close(p.netnsFd);
    ::close(p.logFd);
    closeCgroups();
    return Error{ErrorCode::kInternal, errnoText("pipe")};
  }
  p.syncWrite = sync[1];
  void* stack = ::mmap(nullptr, kCloneStackBytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  auto closeAll = [&] {
    closeCgroups();
    ::close(p.netnsFd);
    ::close(p.logFd);
    ::close(sync[0]);
    if (sync[1] >= 0) ::close(sync[1]);
    if (stack != MAP_FAILED) ::munmap(stack, kCloneStackBytes);
  };
  if (stack == MAP_FAILED) {
    closeAll();
    return Error{ErrorCode::kInternal, errnoText("mmap clone stack")};
  }
  pid_t first = ::fork();
  if (first < 0) {
    closeAll();
    return Error{ErrorCode::kInternal, errnoText("fork")};
  }
  if (first == 0) {
    ::setsid();
    pid_t shim = ::fork();
    if (shim == 0) shimMain(p, stack);
    _exit(shim < 0 ? 1 : 0);
  }
  ::close(sync[1]);
  sync[1] = -1;
  int status = 0;
  while (::waitpid(first, &status, 0) < 0 && errno == EINTR) {
  }
  std::string reply;
  char buf[64];
  for (;;) {
    ssize_t n = ::read(sync[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  closeAll();
  if (reply.empty()) return Error{ErrorCode::kInternal, "container shim did not start"};
  long long v = std::strtoll(reply.c_str(), nullptr, 10);
  if (v <= 0) {
    return Error{ErrorCode::kInternal,
                 std::string("clone container namespaces: ") + std::strerror(static_cast<int>(-v))};
  }
  ProcessIdentity id;
  id.pid = static_cast<pid_t>(v);
  auto start = processStartTime(id.pid);
  // It may already have exited (a command that fails at once); the exit
  // record will say so.
  id.startTime = start.value_or(0);
  return id;
}

std::optional<uint64_t> processStartTime(pid_t pid) {
  // Plain read(2): a process that exits while its stat file is open makes
  // the read fail with ESRCH, which std::ifstream reports by throwing.
  int fd = ::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 2));
  std::string state;
  rest >> state;
  if (state == "Z" || state == "X") return std::nullopt;
  // Fields after the state: 4 (ppid) ... 22 (starttime): skip 18 more.
  std::string skip;
  for (int i = 0; i < 18; ++i) rest >> skip;
  uint64_t start = 0;
  if (!(rest >> start)) return std::nullopt;
  return start;
}

bool processAlive(const ProcessIdentity& p) {
  if (p.pid <= 0) return false;
  auto start = processStartTime(p.pid);
  return start && (p.startTime == 0 || *start == p.startTime);
}

std::optional<ExitRecord> readExitRecord(const std::string& path) {
  std::ifstream in(path);
  ExitRecord r;
  if (!(in >> r.exitCode >> r.signal >> r.finishedAtMs)) return std::nullopt;
  return r;
}

bool commandExists(const std::string& rootfs, const std::string& argv0) {
  auto executable = [&](const std::string& path) {
    struct stat st {};
    return ::stat((rootfs + path).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           (st.st_mode & 0111) != 0;
  };
  if (argv0.find('/') != std::string::npos) return executable(argv0);
  const char* env = std::getenv("PATH");
  std::string path = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && executable(dir + "/" + argv0)) return true;
  }
  return false;
}

Result<ExecOutput> execInContainer(pid_t containerPid, const std::vector<std::string>& argv,
                                   std::chrono::milliseconds timeout) {
  if (argv.empty()) return Error{ErrorCode::kInvalidArgument, "exec: empty command"};
  const std::string proc = "/proc/" + std::to_string(containerPid);
  const char* kinds[] = {"net", "uts", "ipc", "mnt"};
  const int types[] = {CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNS};
  int fds[4] = {-1, -1, -1, -1};
  int rootFd = -1;
  auto closeFds = [&] {
    for (int& fd : fds) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
    if (rootFd >= 0) ::close(rootFd);
    rootFd = -1;
  };
  for (int i = 0; i < 4; ++i) {
    fds[i] = ::open((proc + "/ns/" + kinds[i]).c_str(), O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) {
      closeFds();
      return Error{ErrorCode::kNotFound,
                   errnoText("container " + std::to_string(containerPid) + " namespaces")};
    }
  }
  rootFd = ::open((proc + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootFd < 0) {
    closeFds();
    return Error{ErrorCode::kNotFound, errnoText("container root")};
  }
  // The container's cgroups too, so what runs in it is limited and
  // accounted like the container (as the kubelet's exec is).
  std::vector<int> cgroupFds;
  for (const std::string& f : cgroupProcsOf(containerPid)) {
    int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) cgroupFds.push_back(fd);
  }
  auto closeCgroupFds = [&] {
    for (int fd : cgroupFds) ::close(fd);
    cgroupFds.clear();
  };
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    closeFds();
    closeCgroupFds();
    return Error{ErrorCode::kInternal, errnoText("pipe")};
  }
  pid_t child = ::fork();
  if (child == 0) {
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    for (int fd : cgroupFds) {
      if (::write(fd, "0", 1) != 1) childFail("join the container's cgroup");
    }
    for (int i = 0; i < 4; ++i) {
      if (::setns(fds[i], types[i]) != 0) childFail("setns into container");
    }
    if (::fchdir(rootFd) != 0 || ::chroot(".") != 0 || ::chdir("/") != 0)
      childFail("enter container root");
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::execvp(cargv[0], cargv.data());
    childFail(cargv[0]);
  }
  ::close(out[1]);
  closeFds();
  closeCgroupFds();
  if (child < 0) {
    ::close(out[0]);
    return Error{ErrorCode::kInternal, errnoText("fork")};
  }
  ExecOutput result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timedOut = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timedOut = true;
      break;
    }
    struct pollfd pfd {
      out[0], POLLIN, 0
    };
    int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    if (result.output.size() < 64 * 1024) result.output.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  if (timedOut) ::kill(child, SIGKILL);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (timedOut) return result;
  if (WIFEXITED(status))
    result.exitCode = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.exitCode = 128 + WTERMSIG(status);
  return result;
}

}  // namespace sluice::agent
