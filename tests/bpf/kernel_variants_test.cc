// The loader on a kernel that lacks a feature: the probes of this kernel
// decide what EbpfMode loads, and what it cannot do is what its
// capabilities list. Kernels without a feature are the vm suite's (6.1 has
// no bpf_sock_destroy); the variants for kernels older than any the suite
// boots (no bpf_set_retval before 5.18, no getpeername hooks before 5.8, no
// XDP helpers before 5.18) are loaded here with that probe's answer
// cleared, and checked on what the kernel actually ran: the translated
// instructions, the hooks attached, the errno a client saw.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bpf/loader/ebpf_datapath.h"
#include "bpf/loader/ebpf_mode.h"
#include "bpf/loader/kernel_features.h"
#include "tests/bpf/cgroup.h"
#include "tests/bpf/lb_fixtures.h"

namespace sluice {
namespace {

using namespace sluice::testing;  // NOLINT(google-build-using-namespace)
using bpf::KernelFeatures;
using bpf::KernelProbe;

// This kernel's probes with one answer cleared: the variant for a kernel
// without that feature.
KernelFeatures without(KernelProbe p) {
  KernelFeatures k = KernelFeatures::probe();
  k.set(p, false, "cleared by the test");
  return k;
}

std::set<ModeFeature> missingOf(const ModeCapabilities& caps) {
  std::set<ModeFeature> out;
  for (const auto& [f, effect] : caps.missing) out.insert(f);
  return out;
}

// What a child process in `cg` saw: connect()'s errno to addr:port, and the
// peer getpeername() then names ("" if the connect failed).
struct Seen {
  int err = -1;
  std::string peer;
};

Seen connectFrom(const ScopedCgroup& cg, const char* addr, uint16_t port) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    char out[64] = {};
    const int procs = ::open(cg.procsFile().c_str(), O_WRONLY | O_CLOEXEC);
    if (procs < 0 || ::write(procs, "0\n", 2) != 2) _exit(1);
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    ::inet_pton(AF_INET, addr, &to.sin_addr);
    const int err = ::connect(s, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0 ? 0 : errno;
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    char ip[INET_ADDRSTRLEN] = {};
    if (err == 0 && ::getpeername(s, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
      ::inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
    }
    const int n = std::snprintf(out, sizeof out, "%d %s:%u", err, ip, ntohs(peer.sin_port));
    (void)!::write(fds[1], out, static_cast<size_t>(n));
    _exit(0);
  }
  ::close(fds[1]);
  char buf[64] = {};
  const ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  Seen seen;
  if (n <= 0) return seen;
  std::istringstream in(buf);
  in >> seen.err;
  if (seen.err == 0) in >> seen.peer;
  return seen;
}

// The imm of a call to the kernel function `fn` in translated instructions:
// the verifier rewrites a helper call's id to fn - __bpf_call_base
// (do_misc_fixups). nullopt where /proc/kallsyms hides addresses.
std::optional<int32_t> helperCallImm(const std::string& fn) {
  std::ifstream syms("/proc/kallsyms");
  std::string line;
  unsigned long long base = 0, target = 0;
  while (std::getline(syms, line) && (base == 0 || target == 0)) {
    std::istringstream f(line);
    std::string addr, type, name;
    f >> addr >> type >> name;
    if (name == "__bpf_call_base") base = std::stoull(addr, nullptr, 16);
    if (name == fn) target = std::stoull(addr, nullptr, 16);
  }
  if (base == 0 || target == 0) return std::nullopt;
  return static_cast<int32_t>(static_cast<long long>(target - base));
}

// The translated instructions of the program behind a pinned link.
std::vector<bpf_insn> xlatedBehindLink(const std::string& pin) {
  std::vector<bpf_insn> insns;
  const int link = bpf_obj_get(pin.c_str());
  if (link < 0) return insns;
  bpf_link_info li{};
  uint32_t len = sizeof li;
  if (bpf_obj_get_info_by_fd(link, &li, &len) == 0) {
    const int prog = bpf_prog_get_fd_by_id(li.prog_id);
    bpf_prog_info pi{};
    len = sizeof pi;
    if (prog >= 0 && bpf_obj_get_info_by_fd(prog, &pi, &len) == 0 && pi.xlated_prog_len > 0) {
      insns.resize(pi.xlated_prog_len / sizeof(bpf_insn));
      bpf_prog_info again{};
      again.xlated_prog_len = pi.xlated_prog_len;
      again.xlated_prog_insns = reinterpret_cast<uintptr_t>(insns.data());
      len = sizeof again;
      if (bpf_obj_get_info_by_fd(prog, &again, &len) != 0) insns.clear();
    }
    if (prog >= 0) ::close(prog);
  }
  ::close(link);
  return insns;
}

size_t callsTo(const std::vector<bpf_insn>& insns, int32_t imm) {
  size_t n = 0;
  for (const bpf_insn& i : insns) {
    n += i.code == (BPF_JMP | BPF_CALL) && i.src_reg == 0 && i.imm == imm;
  }
  return n;
}

class KernelVariantsTest : public EbpfFixture {
 protected:
  void create(std::optional<KernelFeatures> kernel) {
    EbpfOptions o;
    o.kernel = std::move(kernel);
    SetUpMode(o);
  }
};

// On this kernel, as probed: the mode lacks exactly what the probes found
// missing, plus what no kernel gives it (SCTP, DSR, LoadBalancer source ranges).
TEST_F(KernelVariantsTest, CapabilitiesListExactlyWhatThisKernelsProbesFoundMissing) {
  create(std::nullopt);
  if (IsSkipped() || HasFatalFailure()) return;
  std::set<ModeFeature> want = {ModeFeature::kSctp, ModeFeature::kDsr, ModeFeature::kLoadBalancerSourceRanges};
  const auto lost = KernelFeatures::probe().degradations();
  for (const auto& [f, effect] : lost) want.insert(f);
  const ModeCapabilities caps = mode_->capabilities();
  EXPECT_EQ(missingOf(caps), want);
  for (const auto& [f, effect] : lost) EXPECT_EQ(caps.missing.at(f), effect);
  EXPECT_EQ(mode_->socketTermination().ok(), !lost.count(ModeFeature::kUdpStaleFlowCleanup));
}

// Refused: no endpoint. With bpf_set_retval the node process reads
// ECONNREFUSED; the variant for kernels before 5.18 has no call to it left
// after verification (the branch was dead, so an old verifier never looks
// at the helper) and the process reads EPERM.
class SetRetvalVariantTest : public KernelVariantsTest,
                             public ::testing::WithParamInterface<bool> {};

TEST_P(SetRetvalVariantTest, RefusedConnectReadsEconnrefusedOrEpermWithoutTheHelper) {
  const bool helper = GetParam();
  if (helper && !KernelFeatures::probe().has(KernelProbe::kSockSetRetval)) {
    GTEST_SKIP() << "this kernel has no bpf_set_retval for sock_addr programs";
  }
  create(helper ? KernelFeatures::probe() : without(KernelProbe::kSockSetRetval));
  if (IsSkipped() || HasFatalFailure()) return;
  EXPECT_EQ(missingOf(mode_->capabilities()).count(ModeFeature::kSocketLbErrno), helper ? 0u : 1u);
  ScopedCgroup cg;
  if (!cg.ok()) GTEST_SKIP() << cg.error();
  ServiceTable t;
  ASSERT_TRUE(t.upsert(service("empty", Protocol::kTcp, {frontend("10.96.9.1", 80)}, {})).ok());
  program(t);
  auto attached = mode_->attachCgroup(cg.path());
  ASSERT_TRUE(attached.ok()) << attached.error().message;

  EXPECT_EQ(connectFrom(cg, "10.96.9.1", 80).err, helper ? ECONNREFUSED : EPERM);

  auto dir = mode_->cgroupLinkDir(cg.path());
  ASSERT_TRUE(dir.ok());
  const auto insns = xlatedBehindLink(*dir + "/sl_connect4");
  ASSERT_FALSE(insns.empty()) << "no translated instructions behind " << *dir << "/sl_connect4";
  if (auto imm = helperCallImm("bpf_set_retval")) {
    if (helper) {
      EXPECT_GE(callsTo(insns, *imm), 1u);
    } else {
      EXPECT_EQ(callsTo(insns, *imm), 0u) << "bpf_set_retval still called";
    }
  }
  ASSERT_TRUE(mode_->detachCgroup(cg.path()).ok());
}

INSTANTIATE_TEST_SUITE_P(Helper, SetRetvalVariantTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "WithHelper" : "Without"; });

// Before 5.8 there are no getpeername hooks: six links, not eight, and
// getpeername() names the backend the socket was connected to.
TEST_F(KernelVariantsTest, WithoutGetpeernameHooksSixAreAttachedAndThePeerIsTheBackend) {
  create(without(KernelProbe::kAttachGetpeername));
  if (IsSkipped() || HasFatalFailure()) return;
  EXPECT_EQ(missingOf(mode_->capabilities()).count(ModeFeature::kSocketLbPeerName), 1u);
  ScopedCgroup cg;
  if (!cg.ok()) GTEST_SKIP() << cg.error();
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof at;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&at), &len), 0);
  const uint16_t port = ntohs(at.sin_port);
  ServiceTable t;
  ASSERT_TRUE(t.upsert(service("peer", Protocol::kTcp, {frontend("10.96.9.2", 80)},
                               {backend("127.0.0.1", port)}))
                  .ok());
  program(t);
  ASSERT_TRUE(mode_->attachCgroup(cg.path()).ok());
  auto dir = mode_->cgroupLinkDir(cg.path());
  ASSERT_TRUE(dir.ok());
  std::set<std::string> pins;
  for (const auto& e : std::filesystem::directory_iterator(*dir)) pins.insert(e.path().filename());
  EXPECT_EQ(pins, (std::set<std::string>{"sl_connect4", "sl_connect6", "sl_sendmsg4", "sl_sendmsg6",
                                         "sl_recvmsg4", "sl_recvmsg6"}));

  const Seen seen = connectFrom(cg, "10.96.9.2", 80);
  EXPECT_EQ(seen.err, 0) << std::strerror(seen.err);
  EXPECT_EQ(seen.peer, "127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(mode_->detachCgroup(cg.path()).ok());
  ::close(listener);
}

// Before 5.18 bpf_xdp cannot load: the uplink is served from tc alone, no
// XDP object exists, and attaching one says what the kernel lacks.
TEST_F(KernelVariantsTest, WithoutXdpHelpersTheUplinkHasNoXdpObject) {
  create(without(KernelProbe::kXdpLoadBytes));
  if (IsSkipped() || HasFatalFailure()) return;
  EXPECT_EQ(missingOf(mode_->capabilities()).count(ModeFeature::kXdpEarlyDrop), 1u);
  ASSERT_TRUE(mode_->loadUplink({ip("192.0.2.1")}).ok());
  EXPECT_GE(mode_->uplinkIngressFd(), 0);
  EXPECT_EQ(mode_->uplinkXdpFd(), -1);
  auto r = mode_->attachUplinkXdp(static_cast<int>(if_nametoindex("lo")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message.find("bpf_xdp_load_bytes() in xdp (Linux 5.18)"), std::string::npos)
      << r.error().message;
}

// Before 6.5 (Debian 12's 6.1) there is no bpf_sock_destroy: the
// terminator is not even tried, and says why.
TEST_F(KernelVariantsTest, WithoutBpfSockDestroyTheTerminatorIsNotLoaded) {
  create(without(KernelProbe::kKfuncSockDestroy));
  if (IsSkipped() || HasFatalFailure()) return;
  auto r = mode_->socketTermination();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("kfunc bpf_sock_destroy() (Linux 6.5)"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(missingOf(mode_->capabilities()).count(ModeFeature::kUdpStaleFlowCleanup), 1u);
}

// Without a required feature the mode does not load half of itself: it
// refuses and names the feature.
TEST_F(KernelVariantsTest, AMissingRequiredFeatureRefusesTheModeByName) {
  ScopedBpffs fs;
  if (!fs.ok()) GTEST_SKIP() << fs.error();
  EbpfOptions o;
  o.pinDir = fs.pinDir();
  o.kernel = without(KernelProbe::kTcRedirectNeigh);
  auto m = EbpfMode::create(o);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(m.error().message.find("bpf_redirect_neigh() in tc (Linux 5.10)"), std::string::npos)
      << m.error().message;
}

// The agent's datapath on a kernel older than the tested 6.1 (these probes,
// Ubuntu 22.04's release): refused with the release before anything is
// pinned or attached; the override starts it, attaching nothing here (no
// socket LB, no uplink).
TEST_F(KernelVariantsTest, TheAgentsDatapathRefusesAnUntestedKernelUnlessOverridden) {
  ScopedBpffs fs;
  if (!fs.ok()) GTEST_SKIP() << fs.error();
  KernelFeatures older = KernelFeatures::all("5.15.0-91-generic");
  const KernelFeatures here = KernelFeatures::probe();
  for (const bpf::KernelProbeInfo& p : bpf::kernelProbes()) {
    if (!here.has(p.probe)) older.set(p.probe, false, here.why(p.probe));
  }
  bpf::EbpfDatapathOptions o;
  o.mode.pinDir = fs.pinDir();
  o.mode.kernel = older;
  o.socketLb = false;
  auto refused = bpf::EbpfDatapath::create(NodeConfig{}, o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("5.15.0-91-generic (uname -r)"), std::string::npos)
      << refused.error().message;
  EXPECT_FALSE(std::filesystem::exists(fs.pinDir())) << "refused after pinning";

  o.allowUntestedKernel = true;
  auto started = bpf::EbpfDatapath::create(NodeConfig{}, o);
  ASSERT_TRUE(started.ok()) << started.error().message;
  EXPECT_TRUE((*started)->cleanup().ok());
}

}  // namespace
}  // namespace sluice
