#include "tests/bpf/lxc_model.h"

#include <linux/pkt_cls.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <span>

#include "dataplane/nat.h"
#include "tests/bpf/packet_builder.h"

namespace sluice::testing {
namespace {

// bpf/abi/lb.h SL_HAIRPIN_*: the source a pod reaching itself gets.
const IpAddress kHairpin4 = IpAddress::v4({169, 254, 42, 1});
const IpAddress kHairpin6 =
    IpAddress::v6({0xfd, 0x73, 0x6c, 0x75, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});

uint16_t load16(const std::vector<uint8_t>& b, size_t off) {
  return static_cast<uint16_t>(b[off] << 8 | b[off + 1]);
}
uint32_t load32(const std::vector<uint8_t>& b, size_t off) {
  return uint32_t{load16(b, off)} << 16 | load16(b, off + 2);
}

std::string hex(const std::vector<uint8_t>& b) {
  std::string out;
  char buf[4];
  for (uint8_t x : b) {
    std::snprintf(buf, sizeof(buf), "%02x", x);
    out += buf;
  }
  return out;
}

std::string verdictName(uint32_t v) {
  switch (v) {
    case TC_ACT_OK: return "pass";
    case TC_ACT_SHOT: return "drop";
    case TC_ACT_REDIRECT: return "redirect";
    default: return "verdict " + std::to_string(v);
  }
}

std::string describe(const LxcRun& run, const std::vector<uint8_t>& in) {
  std::string s = verdictName(run.verdict);
  if (run.verdict == TC_ACT_SHOT) s += " (" + std::string(toString(run.dropReason)) + ")";
  s += run.out == in ? ", frame unchanged" : ", frame rewritten to " + hex(run.out);
  return s;
}

// Header errors: what a parser reports when a header is inconsistent.
bool isHeaderError(DropReason r) {
  switch (r) {
    case DropReason::kTruncatedL3:
    case DropReason::kBadIpVersion:
    case DropReason::kBadIpv4HeaderLength:
    case DropReason::kBadIpTotalLength:
    case DropReason::kTruncatedL4:
    case DropReason::kBadTcpHeaderLength:
    case DropReason::kBadUdpLength:
    case DropReason::kIpv6ExtHeaderLimit:
      return true;
    default:
      return false;
  }
}

// Refusals of the userspace datapath that are not malformed headers: the
// program hands such packets to the stack unless they are service traffic.
bool mayPass(DropReason r) {
  switch (r) {
    case DropReason::kTruncatedL2:
    case DropReason::kUnsupportedEtherType:
    case DropReason::kStackedVlan:
    case DropReason::kIpv4Options:
    case DropReason::kFragment:
    case DropReason::kIpv6RoutingHeader:
    case DropReason::kIpv6ExtHeaderUnsupported:
    case DropReason::kUnsupportedProtocol:
    case DropReason::kIcmpUnsupportedType:
    case DropReason::kIcmpErrorTruncatedInner:
    case DropReason::kIcmpErrorBadInner:
    case DropReason::kIcmpErrorUnsupportedInner:
      return true;
    default:
      return false;
  }
}

// The L4 protocol number as bpf/lib/parse.h finds it (IPv6: after up to 6
// extension headers), or -1 when it stops earlier or the frame is no IP.
int bpfL4Protocol(const std::vector<uint8_t>& f) {
  if (f.size() < 14) return -1;
  const uint16_t type = load16(f, 12);
  if (type == 0x0800) return f.size() >= 34 ? f[23] : -1;
  if (type != 0x86dd || f.size() < 54) return -1;
  uint8_t next = f[20];
  size_t off = 54;
  for (int i = 0; i < 6; ++i) {
    if (next != 0 && next != 43 && next != 60 && next != 44) return next;
    if (off + 4 > f.size()) return -1;
    if (next == 44 && (load16(f, off + 2) & 0xfff8) != 0) return -1;  // not first: passed
    const size_t len = next == 44 ? 8 : (size_t{f[off + 1]} + 1) * 8;
    next = f[off];
    off += len;
  }
  return next;
}

bool ipv6PayloadZero(const std::vector<uint8_t>& f) {
  return f.size() >= 54 && load16(f, 12) == 0x86dd && load16(f, 18) == 0;
}

// Offsets of the checksum fields in a frame the userspace parser accepts,
// with whether the field is UDP's (where 0 means "none", never "zero").
std::vector<std::pair<size_t, bool>> checksumFields(const std::vector<uint8_t>& f) {
  std::vector<std::pair<size_t, bool>> out;
  ParsedPacket p;
  if (parsePacket(f, Framing::kEthernet, p) != DropReason::kNone) return out;
  auto l4 = [&](Protocol proto, size_t off, size_t end) {
    size_t field = proto == Protocol::kTcp ? 16 : proto == Protocol::kUdp ? 6 : 2;
    if (off + field + 2 <= end) out.emplace_back(off + field, proto == Protocol::kUdp);
  };
  if (p.family == IpFamily::kV4) out.emplace_back(p.l3Offset + 10, false);
  l4(p.protocol, p.l4Offset, p.l3End);
  if (p.isIcmpError) {
    if (p.family == IpFamily::kV4) out.emplace_back(p.innerL3Offset + 10, false);
    l4(p.innerProtocol, p.innerL4Offset, p.l3End);
  }
  return out;
}

}  // namespace

std::string compareFrames(const std::vector<uint8_t>& want, const std::vector<uint8_t>& got) {
  if (want.size() != got.size()) {
    return "length " + std::to_string(got.size()) + ", model " + std::to_string(want.size()) +
           ": got " + hex(got) + ", model " + hex(want);
  }
  const auto fields = checksumFields(want);
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == got[i]) continue;
    auto field = std::find_if(fields.begin(), fields.end(), [&](const auto& f) {
      return i == f.first || i == f.first + 1;
    });
    if (field != fields.end() && !field->second) {
      const uint16_t a = load16(want, field->first), b = load16(got, field->first);
      if ((a == 0 && b == 0xffff) || (a == 0xffff && b == 0)) continue;
    }
    return "byte " + std::to_string(i) + " differs: got " + hex(got) + ", model " + hex(want);
  }
  return "";
}

void LxcModel::reset() {
  service_.clear();
  reply_.clear();
  affinity_.clear();
}

std::string LxcModel::expectPass(const std::vector<uint8_t>& in, const LxcRun& run) {
  if (run.verdict != TC_ACT_OK || run.out != in) {
    return "model: pass unchanged; program: " + describe(run, in);
  }
  ++stats_.passed;
  return "";
}

std::string LxcModel::expectDrop(DropReason reason, const std::vector<uint8_t>& in,
                                 const LxcRun& run) {
  if (run.verdict != TC_ACT_SHOT || run.dropReason != reason) {
    return "model: drop (" + std::string(toString(reason)) + "); program: " + describe(run, in);
  }
  ++stats_.dropped;
  return "";
}

std::string LxcModel::check(const std::vector<uint8_t>& in, const LxcRun& run) {
  ParsedPacket p;
  const DropReason parsed = parsePacket(in, Framing::kEthernet, p);
  if (parsed != DropReason::kNone) return checkRefused(in, parsed, run);
  if (p.hasVlan) return expectPass(in, run);  // pod veths carry no tags: the stack's
  if (p.protocol == Protocol::kIcmp || p.protocol == Protocol::kIcmpV6) {
    return checkIcmpError(in, p, run);
  }
  if (const Service* svc = table_.findByFrontend(p.tuple.dst, p.tuple.dstPort, p.tuple.protocol)) {
    return checkService(in, p, *svc, run);
  }
  return checkReply(in, p, run);
}

std::string LxcModel::checkRefused(const std::vector<uint8_t>& in, DropReason reason,
                                   const LxcRun& run) {
  if (reason == DropReason::kIpv6ExtHeaderLimit || reason == DropReason::kIpv6HopByHopNotFirst) {
    ++stats_.outOfModel;
    return "";
  }
  const std::string why = "userspace refuses it (" + std::string(toString(reason)) + ")";
  if (run.verdict == TC_ACT_SHOT) {
    const DropReason got = run.dropReason;
    // Options, fragments and routing headers: userspace stops at the first
    // it meets; BPF reads on, and refuses a service flow for the first of
    // options, fragment, routing header in that order (lxc_refused()).
    auto refusal = [](DropReason r) {
      return r == DropReason::kIpv4Options || r == DropReason::kFragment ||
             r == DropReason::kIpv6RoutingHeader;
    };
    const bool laterCheck = refusal(reason) && (isHeaderError(got) || refusal(got));
    const bool emptyV6 = reason == DropReason::kBadIpTotalLength && ipv6PayloadZero(in) &&
                         (got == DropReason::kTruncatedL4 || got == DropReason::kTruncatedL3);
    if (got == reason || laterCheck || emptyV6) {
      ++stats_.dropped;
      return "";
    }
    return why + "; program: " + describe(run, in);
  }
  if (run.verdict != TC_ACT_OK || run.out != in) {
    return why + ", yet the program rewrote or redirected it: " + describe(run, in);
  }
  // Not IPv4/IPv6 at offset 12 (a VLAN tag, ARP): the program leaves the
  // frame to the stack whatever userspace finds behind the tag.
  const uint16_t etherType = load16(in, 12);
  if (etherType != 0x0800 && etherType != 0x86dd) {
    ++stats_.passed;
    return "";
  }
  const int l4 = bpfL4Protocol(in);
  if (mayPass(reason) || (l4 != 6 && l4 != 17 && !isHeaderError(reason)) ||
      (l4 != 6 && l4 != 17 && (reason == DropReason::kTruncatedL4 ||
                                reason == DropReason::kBadIpTotalLength))) {
    ++stats_.passed;
    return "";
  }
  return why + " as a header error; program: " + describe(run, in);
}

std::string LxcModel::checkService(const std::vector<uint8_t>& in, const ParsedPacket& p,
                                   const Service& svc, const LxcRun& run) {
  const FlowTuple& t = p.tuple;
  const auto fe = std::find_if(svc.frontends.begin(), svc.frontends.end(), [&](const Frontend& f) {
    return f.address == t.dst && f.port == t.dstPort && f.protocol == t.protocol;
  });
  // Pods honour internalTrafficPolicy on ClusterIPs only (lb_local_for_node_client).
  const bool local = fe->scope == FrontendScope::kClusterIp && svc.isLocal(fe->scope);
  std::optional<BackendRef> chosen;
  std::vector<BackendRef> allowed;
  if (auto ct = service_.find(t); ct != service_.end()) {
    chosen = ct->second;
  } else {
    // A copy: forNewFlows() refers into the BackendSet temporary.
    const std::vector<size_t> set = svc.backendSet(local, p.family).forNewFlows();
    if (set.empty()) {
      if (local && !svc.backendSet(false, p.family).forNewFlows().empty()) {
        return expectDrop(DropReason::kNoLocalBackend, in, run);
      }
      const uint8_t flags = t.protocol == Protocol::kTcp ? in[p.l4Offset + 13] : 0;
      if (flags & kTcpRst) return expectDrop(DropReason::kNoBackend, in, run);
      // The refusal: built here from the input, checked byte for byte.
      PacketSpec s;
      s.src = t.dst;
      s.dst = t.src;
      s.srcMac = {in[0], in[1], in[2], in[3], in[4], in[5]};
      s.dstMac = {in[6], in[7], in[8], in[9], in[10], in[11]};
      if (t.protocol == Protocol::kTcp) {
        const uint32_t seq = load32(in, p.l4Offset + 4), ack = load32(in, p.l4Offset + 8);
        uint32_t segment = p.l3End - p.l4Offset - (in[p.l4Offset + 12] >> 4) * 4u;
        segment += (flags & kTcpSyn ? 1 : 0) + (flags & kTcpFin ? 1 : 0);
        s.proto = Protocol::kTcp;
        s.sport = t.dstPort;
        s.dport = t.srcPort;
        s.tcpFlags = flags & kTcpAck ? kTcpRst : kTcpRst | kTcpAck;
        s.seq = flags & kTcpAck ? ack : 0;
        s.ack = flags & kTcpAck ? 0 : seq + segment;
        s.window = 0;
      } else {
        const size_t quote = p.family == IpFamily::kV6 ? 48 : 28;
        s.proto = p.family == IpFamily::kV6 ? Protocol::kIcmpV6 : Protocol::kIcmp;
        s.icmpType = p.family == IpFamily::kV6 ? 1 : 3;
        s.icmpCode = p.family == IpFamily::kV6 ? 4 : 3;
        if (in.size() < 14 + quote) return "";  // cannot happen: parsed UDP is longer
        s.payload.assign(in.begin() + 14, in.begin() + 14 + static_cast<long>(quote));
      }
      const std::vector<uint8_t> want = buildPacket(s);
      if (run.verdict != TC_ACT_REDIRECT || run.dropReason != DropReason::kNoBackend) {
        return "model: refusal (redirect, no_backend counted); program: " + describe(run, in);
      }
      if (auto diff = compareFrames(want, run.out); !diff.empty()) return "refusal: " + diff;
      ++stats_.rejected;
      return "";
    }
    AffinityKey akey{svc.key, p.family, local, t.src};
    if (svc.affinity.clientIp) {
      if (auto a = affinity_.find(akey); a != affinity_.end()) chosen = a->second;
    }
    if (!chosen) {
      for (size_t i : set) allowed.push_back({svc.backends[i].address, svc.backends[i].port});
    }
  }

  if (run.verdict != TC_ACT_OK || run.out == in) {
    return "model: DNAT of service " + svc.key.toString() + "; program: " + describe(run, in);
  }
  ParsedPacket out;
  if (parsePacket(run.out, Framing::kEthernet, out) != DropReason::kNone) {
    return "DNAT output does not parse: " + describe(run, in);
  }
  const BackendRef got{out.tuple.dst, out.tuple.dstPort};
  if (chosen && (chosen->address != got.address || chosen->port != got.port)) {
    return "model: the flow's (or client's) backend " + chosen->address.toString() + ":" +
           std::to_string(chosen->port) + "; program: " + describe(run, in);
  }
  if (!chosen) {
    const bool member = std::any_of(allowed.begin(), allowed.end(), [&](const BackendRef& b) {
      return b.address == got.address && b.port == got.port;
    });
    if (!member) {
      return "program chose " + got.address.toString() + ":" + std::to_string(got.port) +
             ", not a backend of the set for new flows of " + svc.key.toString();
    }
  }
  std::vector<uint8_t> want = in;
  ParsedPacket w = p;
  if (dnat(want, w, got.address, got.port) != DropReason::kNone) return "model DNAT failed";
  const bool hairpin = got.address == t.src;
  const IpAddress& hairpinAddr = p.family == IpFamily::kV4 ? kHairpin4 : kHairpin6;
  if (hairpin && snat(want, w, hairpinAddr, t.srcPort) != DropReason::kNone) {
    return "model hairpin SNAT failed";
  }
  if (auto diff = compareFrames(want, run.out); !diff.empty()) return "DNAT: " + diff;

  service_[t] = got;
  const FlowTuple replyTuple{got.address, hairpin ? hairpinAddr : t.src, got.port, t.srcPort,
                             t.protocol};
  reply_[replyTuple] = {t, fe->scope != FrontendScope::kClusterIp};
  if (svc.affinity.clientIp) affinity_[{svc.key, p.family, local, t.src}] = got;
  ++stats_.translated;
  return "";
}

std::string LxcModel::checkReply(const std::vector<uint8_t>& in, const ParsedPacket& p,
                                 const LxcRun& run) {
  auto r = reply_.find(p.tuple);
  if (r == reply_.end()) return expectPass(in, run);
  const bool routed = r->second.nodeFrontend;
  if (!(run.verdict == TC_ACT_OK || (routed && run.verdict == TC_ACT_REDIRECT))) {
    return "model: reverse NAT (pass" + std::string(routed ? " or redirect" : "") +
           "); program: " + describe(run, in);
  }
  std::vector<uint8_t> want = in;
  ParsedPacket w = p;
  if (reverseNat(want, w, r->second.original) != DropReason::kNone) return "model reverse NAT failed";
  if (auto diff = compareFrames(want, run.out); !diff.empty()) return "reverse NAT: " + diff;
  ++stats_.translated;
  return "";
}

std::string LxcModel::checkIcmpError(const std::vector<uint8_t>& in, const ParsedPacket& p,
                                     const LxcRun& run) {
  if (!p.isIcmpError) return expectPass(in, run);
  // What bpf/lib/icmp_err.h translates: destination unreachable and time
  // exceeded (and ICMPv6 packet too big) quoting TCP/UDP right after a
  // fixed IP header whose length field covers 8 L4 bytes, sent to the
  // quoted source. Parameter problems and quotes with IPv6 extension
  // headers go to the stack untranslated.
  const bool v4 = p.family == IpFamily::kV4;
  const bool type = v4 ? (p.icmpType == 3 || p.icmpType == 11)
                       : (p.icmpType == 1 || p.icmpType == 2 || p.icmpType == 3);
  const bool l4 = p.innerProtocol == Protocol::kTcp || p.innerProtocol == Protocol::kUdp;
  const uint32_t fixed = v4 ? 20 : 40;
  const bool noExt = p.innerL4Offset == p.innerL3Offset + fixed;
  const uint16_t quotedLength = load16(in, p.innerL3Offset + (v4 ? 2 : 4));
  const bool lengthCovers = v4 ? quotedLength >= 28 : quotedLength >= 8;
  const FlowTuple& q = p.tuple;  // client -> backend, as the backend saw it
  // The outer destination, compared with the quoted source as the program does.
  IpAddress outerDst;
  if (v4) {
    outerDst = IpAddress::v4({in[p.l3Offset + 16], in[p.l3Offset + 17], in[p.l3Offset + 18],
                              in[p.l3Offset + 19]});
  } else {
    std::array<uint8_t, 16> a;
    std::copy(in.begin() + p.l3Offset + 24, in.begin() + p.l3Offset + 40, a.begin());
    outerDst = IpAddress::v6(a);
  }
  auto r = reply_.find(q.reversed());
  if (!type || !l4 || !noExt || !lengthCovers || outerDst != q.src || r == reply_.end()) {
    return expectPass(in, run);
  }
  const bool routed = r->second.nodeFrontend;
  if (!(run.verdict == TC_ACT_OK || (routed && run.verdict == TC_ACT_REDIRECT))) {
    return "model: ICMP error reverse NAT (pass" + std::string(routed ? " or redirect" : "") +
           "); program: " + describe(run, in);
  }
  std::vector<uint8_t> want = in;
  ParsedPacket w = p;
  if (reverseNat(want, w, r->second.original) != DropReason::kNone) {
    return "model ICMP error reverse NAT failed";
  }
  if (auto diff = compareFrames(want, run.out); !diff.empty()) return "ICMP error: " + diff;
  ++stats_.translated;
  return "";
}

}  // namespace sluice::testing
