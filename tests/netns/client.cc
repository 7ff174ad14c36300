#include "tests/netns/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>

namespace sluice::netns {
namespace {

constexpr int kIoTimeoutS = 3;

struct Target {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
};

bool parseTarget(const std::string& text, uint16_t port, Target* t) {
  auto* v4 = reinterpret_cast<sockaddr_in*>(&t->addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&t->addr);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    t->len = sizeof(*v4);
    t->family = AF_INET;
    return true;
  }
  if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    t->len = sizeof(*v6);
    t->family = AF_INET6;
    return true;
  }
  return false;
}

std::string addrText(const sockaddr_storage& a) {
  char text[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
  ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
  return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6->sin6_port));
}

void setTimeouts(int fd) {
  timeval tv{kIoTimeoutS, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// "web-a 10.244.0.11\n" -> backend, seenAs.
void parseReply(const std::string& line, Answer* a) {
  std::istringstream in(line);
  in >> a->backend >> a->seenAs;
}

Answer failed(const char* call) {
  Answer a;
  a.err = errno;
  a.failedAt = call;
  return a;
}

// Reads one '\n'-terminated line (TCP).
bool readLine(int fd, std::string* line) {
  char c;
  while (line->size() < 1024) {
    const ssize_t n = ::read(fd, &c, 1);
    if (n <= 0) return false;
    if (c == '\n') return true;
    line->push_back(c);
  }
  return false;
}

Answer peerOf(int fd, Answer a) {
  sockaddr_storage peer{};
  socklen_t len = sizeof(peer);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) a.peer = addrText(peer);
  return a;
}

Answer tcpOnce(const Target& t) {
  const int fd = ::socket(t.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return failed("socket");
  setTimeouts(fd);
  Answer a;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.len) != 0) {
    a = failed("connect");
  } else if (::send(fd, "hello\n", 6, MSG_NOSIGNAL) != 6) {
    a = failed("send");
  } else {
    std::string line;
    if (!readLine(fd, &line)) {
      a = failed("recv");
    } else {
      parseReply(line, &a);
      a = peerOf(fd, a);
    }
  }
  ::close(fd);
  return a;
}

Answer udpOnce(const Target& t, bool connected) {
  const int fd = ::socket(t.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return failed("socket");
  setTimeouts(fd);
  Answer a;
  char buf[512] = {};
  sockaddr_storage from{};
  socklen_t fromLen = sizeof(from);
  ssize_t n = -1;
  if (connected) {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.len) != 0) {
      a = failed("connect");
    } else if (::send(fd, "hello\n", 6, 0) != 6) {
      a = failed("send");
    } else if ((n = ::recv(fd, buf, sizeof(buf) - 1, 0)) < 0) {
      a = failed("recv");
    }
  } else {
    if (::sendto(fd, "hello\n", 6, 0, reinterpret_cast<const sockaddr*>(&t.addr), t.len) != 6) {
      a = failed("sendto");
    } else if ((n = ::recvfrom(fd, buf, sizeof(buf) - 1, 0, reinterpret_cast<sockaddr*>(&from),
                               &fromLen)) < 0) {
      a = failed("recvfrom");
    }
  }
  if (n >= 0) {
    parseReply(std::string(buf, static_cast<size_t>(n)), &a);
    if (connected) {
      a = peerOf(fd, a);
    } else {
      a.from = addrText(from);
    }
  }
  ::close(fd);
  return a;
}

// Answers travel from the child as one line each: fields separated by \t.
std::string encode(const Answer& a) {
  return std::to_string(a.err) + "\t" + a.failedAt + "\t" + a.backend + "\t" + a.seenAs + "\t" +
         a.peer + "\t" + a.from + "\n";
}

Answer decode(const std::string& line) {
  Answer a;
  std::vector<std::string> f;
  std::string cur;
  for (char c : line) {
    if (c == '\t') {
      f.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  f.push_back(cur);
  if (f.size() != 6) {
    a.err = -1;
    a.failedAt = "child said: " + line;
    return a;
  }
  a.err = std::atoi(f[0].c_str());
  a.failedAt = f[1];
  a.backend = f[2];
  a.seenAs = f[3];
  a.peer = f[4];
  a.from = f[5];
  return a;
}

std::vector<Answer> decodeAll(const std::string& text) {
  std::vector<Answer> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(decode(line));
  return out;
}

}  // namespace

std::string Answer::describe() const {
  if (err != 0) {
    return failedAt + ": " + (err > 0 ? std::strerror(err) : "bad answer");
  }
  std::string s = backend + " (saw " + seenAs + ")";
  if (!peer.empty()) s += " peer " + peer;
  if (!from.empty()) s += " from " + from;
  return s;
}

std::vector<Answer> request(const Placement& where, Transport transport, const std::string& addr,
                            uint16_t port, int count) {
  Target t;
  if (!parseTarget(addr, port, &t)) {
    Answer a;
    a.err = EINVAL;
    a.failedAt = "parse " + addr;
    return {a};
  }
  const std::string out = runInChild(where, [&] {
    std::string text;
    for (int i = 0; i < count; ++i) {
      const Answer a = transport == Transport::kTcp ? tcpOnce(t)
                                                    : udpOnce(t, transport == Transport::kUdpConnected);
      text += encode(a);
    }
    return text;
  });
  std::vector<Answer> answers = decodeAll(out);
  if (static_cast<int>(answers.size()) != count) {
    Answer a;
    a.err = -1;
    a.failedAt = out;
    return {a};
  }
  return answers;
}

std::vector<std::pair<std::string, int>> backendsOf(const std::vector<Answer>& answers) {
  std::map<std::string, int> n;
  for (const Answer& a : answers) ++n[a.err == 0 ? a.backend : ""];
  return {n.begin(), n.end()};
}

// ---------------------------------------------------------------------------

namespace {

// The pipes to a session child (StreamClient, UdpSession): commands go down
// `cmd`, one encoded Answer line per command comes back on `result`.
struct SessionChild {
  pid_t pid = -1;
  int cmd = -1;
  int result = -1;
  Answer error;  // why there is no child (pid < 0)
};

// Forks a child placed like `where` — network namespace and cgroup joined
// before `serve` creates its socket, since a socket belongs to its
// creator's — that runs serve(cmdFd, resultFd) and exits. A placement
// failure is the child's first (and only) answer.
template <typename Serve>
SessionChild forkSession(const Placement& where, Serve&& serve) {
  SessionChild s;
  int cmd[2], result[2];
  if (::pipe2(cmd, O_CLOEXEC) != 0) {
    s.error = failed("pipe");
    return s;
  }
  if (::pipe2(result, O_CLOEXEC) != 0) {
    s.error = failed("pipe");
    ::close(cmd[0]);
    ::close(cmd[1]);
    return s;
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(cmd[1]);
    ::close(result[0]);
    auto fail = [&](const char* stage) {
      const std::string line = encode(failed(stage));
      (void)!::write(result[1], line.data(), line.size());
      ::_exit(1);
    };
    if (where.netnsFd >= 0 && ::setns(where.netnsFd, CLONE_NEWNET) != 0) fail("setns");
    if (!where.cgroupProcs.empty()) {
      const int fd = ::open(where.cgroupProcs.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || ::write(fd, "0\n", 2) != 2) fail("join cgroup");
      ::close(fd);
    }
    serve(cmd[0], result[1]);
    ::_exit(0);
  }
  ::close(cmd[0]);
  ::close(result[1]);
  if (pid < 0) {
    s.error = failed("fork");
    ::close(cmd[1]);
    ::close(result[0]);
    return s;
  }
  s.pid = pid;
  s.cmd = cmd[1];
  s.result = result[0];
  return s;
}

// The session child's next answer line; `who` names it in failures.
Answer readAnswer(int fd, const std::string& who) {
  Answer a;
  std::string line;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, (kIoTimeoutS + 5) * 1000) <= 0) {
      a.err = -1;
      a.failedAt = who + " did not answer";
      return a;
    }
    char c;
    if (::read(fd, &c, 1) != 1) {
      a.err = -1;
      a.failedAt = who + " exited";
      return a;
    }
    if (c == '\n') break;
    line.push_back(c);
  }
  return decode(line);
}

}  // namespace

StreamClient::StreamClient(const Placement& where, const std::string& addr, uint16_t port) {
  Target t;
  if (!parseTarget(addr, port, &t)) {
    first_.err = EINVAL;
    first_.failedAt = "parse " + addr;
    return;
  }
  SessionChild c = forkSession(where, [&](int cmdFd, int resultFd) {
    auto report = [&](const Answer& a) {
      const std::string line = encode(a);
      (void)!::write(resultFd, line.data(), line.size());
    };
    const int fd = ::socket(t.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setTimeouts(fd);
    const bool connected =
        ::connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.len) == 0;
    const int connectErr = connected ? 0 : errno;
    char ch;
    while (::read(cmdFd, &ch, 1) == 1 && ch == 'p') {
      Answer a;
      std::string line;
      if (!connected) {
        a.err = connectErr;
        a.failedAt = "connect";
      } else if (::send(fd, "ping\n", 5, MSG_NOSIGNAL) != 5) {
        a = failed("send");
      } else if (!readLine(fd, &line)) {
        a = failed("recv");
      } else {
        parseReply(line, &a);
        a = peerOf(fd, a);
      }
      report(a);
    }
  });
  if (c.pid < 0) {
    first_ = c.error;
    return;
  }
  child_ = ChildProcess(c.pid);
  cmd_ = c.cmd;
  result_ = c.result;
  first_ = ping();
}

StreamClient::~StreamClient() {
  if (cmd_ >= 0) {
    (void)!::write(cmd_, "q", 1);
    ::close(cmd_);
  }
  if (result_ >= 0) ::close(result_);
}

Answer StreamClient::ping() {
  Answer a;
  if (cmd_ < 0) {
    a.err = -1;
    a.failedAt = "no stream child";
    return a;
  }
  if (::write(cmd_, "p", 1) != 1) return failed("write to stream child");
  return readAnswer(result_, "stream child");
}

namespace {

// One connected UDP socket: send a line, read the answer.
Answer udpPing(int fd) {
  Answer a;
  char buf[512] = {};
  if (fd < 0) return failed("socket");
  if (::send(fd, "hello\n", 6, 0) != 6) return failed("send");
  const ssize_t n = ::recv(fd, buf, sizeof(buf) - 1, 0);
  if (n < 0) return failed("recv");
  parseReply(std::string(buf, static_cast<size_t>(n)), &a);
  return peerOf(fd, a);
}

int udpConnect(const Target& t) {
  const int fd = ::socket(t.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  setTimeouts(fd);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.len) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// The child's loop: one command line in, one encoded Answer line out.
[[noreturn]] void udpSessionChild(const Target& service, int cmdFd, int resultFd) {
  auto report = [&](const Answer& a) {
    const std::string s = encode(a);
    (void)!::write(resultFd, s.data(), s.size());
  };
  int fd = udpConnect(service);
  const int connectErr = fd < 0 ? errno : 0;
  int other = -1;
  std::string line;
  char c;
  while (::read(cmdFd, &c, 1) == 1) {
    if (c != '\n') {
      line.push_back(c);
      continue;
    }
    std::istringstream in(line);
    std::string verb;
    in >> verb;
    line.clear();
    Answer a;
    if (verb == "ping") {
      if (fd < 0) {
        a.err = connectErr;
        a.failedAt = "connect";
      } else {
        a = udpPing(fd);
      }
    } else if (verb == "error") {
      char buf[512];
      if (::recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0) {
        a = failed("recv");
      } else {
        a.failedAt = "recv: a datagram was waiting";
      }
    } else if (verb == "reconnect") {
      if (fd >= 0) ::close(fd);
      fd = udpConnect(service);
      a = fd < 0 ? failed("connect") : udpPing(fd);
    } else if (verb == "other") {
      std::string addr;
      int port = 0;
      in >> addr >> port;
      Target t;
      if (other < 0 && parseTarget(addr, static_cast<uint16_t>(port), &t)) other = udpConnect(t);
      int soErr = 0;
      socklen_t len = sizeof(soErr);
      if (other < 0) {
        a = failed("connect");
      } else if (::getsockopt(other, SOL_SOCKET, SO_ERROR, &soErr, &len) == 0 && soErr != 0) {
        a.err = soErr;
        a.failedAt = "SO_ERROR";
      } else {
        a = udpPing(other);
      }
    } else {
      break;
    }
    report(a);
  }
  ::_exit(0);
}

}  // namespace

UdpSession::UdpSession(const Placement& where, const std::string& addr, uint16_t port) {
  Target t;
  if (!parseTarget(addr, port, &t)) {
    first_.err = EINVAL;
    first_.failedAt = "parse " + addr;
    return;
  }
  SessionChild c = forkSession(where, [&](int cmdFd, int resultFd) { udpSessionChild(t, cmdFd, resultFd); });
  if (c.pid < 0) {
    first_ = c.error;
    return;
  }
  child_ = ChildProcess(c.pid);
  cmd_ = c.cmd;
  result_ = c.result;
  first_ = ping();
}

UdpSession::~UdpSession() {
  if (cmd_ >= 0) {
    (void)!::write(cmd_, "quit\n", 5);
    ::close(cmd_);
  }
  if (result_ >= 0) ::close(result_);
}

Answer UdpSession::command(const std::string& text) {
  Answer a;
  if (cmd_ < 0) {
    a.err = -1;
    a.failedAt = "no session child";
    return a;
  }
  const std::string line = text + "\n";
  if (::write(cmd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    return failed("write to session child");
  }
  return readAnswer(result_, "session child");
}

Answer UdpSession::ping() { return command("ping"); }
Answer UdpSession::pendingError() { return command("error"); }
Answer UdpSession::reconnect() { return command("reconnect"); }
Answer UdpSession::pingOther(const std::string& addr, uint16_t port) {
  return command("other " + addr + " " + std::to_string(port));
}

}  // namespace sluice::netns
