#include "tests/bpf/icmp_err_cases.h"

#include <linux/pkt_cls.h>

#include <algorithm>

namespace sluice::testing::icmp_err {
namespace {
constexpr uint32_t kOk = TC_ACT_OK;
constexpr uint32_t kDrop = TC_ACT_SHOT;
}  // namespace

std::vector<uint8_t> frame(const PacketSpec& s) { return buildPacket(s); }

PacketSpec to(PacketSpec s, const char* addr, uint16_t port) {
  s.dst = ip(addr);
  s.dport = port;
  return s;
}
PacketSpec from(PacketSpec s, const char* addr, uint16_t port) {
  s.src = ip(addr);
  s.sport = port;
  return s;
}

// An ICMP(v6) error sent by `sender` about `quoted` (an IP packet as its
// destination received it): addressed to the quoted packet's source,
// quoting its first quoteLen bytes from the IP header on (all of it if
// shorter). Linux quotes as much as fits in 576 (IPv4) / 1280 bytes.
PacketSpec errorAbout(const PacketSpec& quoted, const char* sender, uint8_t type, uint8_t code,
                      size_t quoteLen) {
  const std::vector<uint8_t> f = buildPacket(quoted);
  const size_t n = std::min(quoteLen, f.size() - 14);
  PacketSpec s;
  s.src = ip(sender);
  s.dst = quoted.src;
  s.proto = quoted.src.isV6() ? Protocol::kIcmpV6 : Protocol::kIcmp;
  s.icmpType = type;
  s.icmpCode = code;
  s.payload.assign(f.begin() + 14, f.begin() + 14 + static_cast<long>(n));
  s.srcMac = kHostMac;  // errors travel towards the client: any MACs do
  s.dstMac = kPodMac;
  return s;
}

// Recomputes the ICMP (v4) checksum of a frame without IPv4 options, after
// an edit of its body.
void setIcmpChecksum(std::vector<uint8_t>& f) {
  constexpr size_t icmp = 14 + 20;
  put16(f, icmp + 2, 0);
  uint32_t sum = 0;
  for (size_t i = icmp; i < f.size(); i += 2) {
    sum += static_cast<uint32_t>(f[i] << 8) | (i + 1 < f.size() ? f[i + 1] : 0);
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  put16(f, icmp + 2, static_cast<uint16_t>(~sum));
}

PacketSpec withData(PacketSpec s) {
  s.tcpFlags = kTcpAck | kTcpPsh;
  s.seq = 1001;
  s.ack = 5001;
  s.payload = {'G', 'E', 'T', ' ', '/', '\r', '\n'};
  return s;
}

ServiceTable podServices() {
  ServiceTable t;
  auto add = [&t](Service s) { EXPECT_TRUE(t.upsert(std::move(s)).ok()); };
  add(service("dns", Protocol::kUdp, {frontend("10.96.0.53", 53, Protocol::kUdp)},
              {backend("10.0.1.7", 5353)}));
  add(service("web", Protocol::kTcp, {frontend("10.96.0.10", 80)}, {backend("10.0.1.5", 8080)}));
  add(service("dns6", Protocol::kUdp, {frontend("fd00:96::53", 53, Protocol::kUdp)},
              {backend("fd00:1::7", 5353)}));
  add(service("web6", Protocol::kTcp, {frontend("fd00:96::10", 80)}, {backend("fd00:1::5", 8080)}));
  add(service("self", Protocol::kTcp, {frontend("10.96.0.70", 80)}, {backend(kClient, 8080)}));
  return t;
}

// Pod clients through bpf_lxc: each flow's first packet, then errors about it.
std::vector<PacketCase> podCases() {
  std::vector<PacketCase> c;
  const PacketSpec query = udp(kClient, 5000, "10.96.0.53", 53);
  const PacketSpec atBackend = to(query, "10.0.1.7", 5353);
  c.push_back({"UDP query to a ClusterIP opens the flow", frame(query), kOk, frame(atBackend),
               "event.svc_new"});
  c.push_back({"the backend's port unreachable reads as the ClusterIP's, quoting the query",
               frame(errorAbout(atBackend, "10.0.1.7", kUnreach, kPortUnreach)), kOk,
               frame(errorAbout(query, "10.96.0.53", kUnreach, kPortUnreach)),
               "event.icmp_err_rev"});
  c.push_back({"a minimal quote (IP header + 8 bytes) is translated the same way",
               frame(errorAbout(atBackend, "10.0.1.7", kUnreach, kPortUnreach, 28)), kOk,
               frame(errorAbout(query, "10.96.0.53", kUnreach, kPortUnreach, 28)),
               "event.icmp_err_rev"});
  PacketSpec noCsum = udp(kClient, 5001, "10.96.0.53", 53);
  noCsum.udpZeroChecksum = true;
  c.push_back({"UDP without a checksum opens a flow", frame(noCsum), kOk,
               frame(to(noCsum, "10.0.1.7", 5353)), "event.svc_new"});
  c.push_back({"an error quoting UDP checksum 0 (none) keeps it 0",
               frame(errorAbout(to(noCsum, "10.0.1.7", 5353), "10.0.1.7", kUnreach, kPortUnreach)),
               kOk, frame(errorAbout(noCsum, "10.96.0.53", kUnreach, kPortUnreach)),
               "event.icmp_err_rev"});

  const PacketSpec syn = tcp(kClient, 40000, "10.96.0.10", 80);
  const PacketSpec seg = withData(syn);
  c.push_back({"TCP SYN to a ClusterIP opens the flow", frame(syn), kOk,
               frame(to(syn, "10.0.1.5", 8080)), "event.svc_new"});
  c.push_back(
      {"a router's fragmentation-needed keeps the router as sender; the quoted segment "
       "and its TCP checksum are the client's again",
       frame(errorAbout(to(seg, "10.0.1.5", 8080), kRouter, kUnreach, kFragNeeded)), kOk,
       frame(errorAbout(seg, kRouter, kUnreach, kFragNeeded)), "event.icmp_err_rev"});
  c.push_back({"time exceeded quoting 8 TCP bytes (no TCP checksum in the quote)",
               frame(errorAbout(to(seg, "10.0.1.5", 8080), kRouter, kTimeExceeded, 0, 28)), kOk,
               frame(errorAbout(seg, kRouter, kTimeExceeded, 0, 28)), "event.icmp_err_rev"});

  const PacketSpec query6 = udp(kClient6, 5000, "fd00:96::53", 53);
  const PacketSpec atBackend6 = to(query6, "fd00:1::7", 5353);
  c.push_back(
      {"IPv6 UDP query opens the flow", frame(query6), kOk, frame(atBackend6), "event.svc_new"});
  c.push_back({"ICMPv6 port unreachable: sender, quote and pseudo-header checksum translated",
               frame(errorAbout(atBackend6, "fd00:1::7", kUnreach6, kPortUnreach6)), kOk,
               frame(errorAbout(query6, "fd00:96::53", kUnreach6, kPortUnreach6)),
               "event.icmp_err_rev"});
  const PacketSpec syn6 = tcp(kClient6, 40000, "fd00:96::10", 80);
  c.push_back({"IPv6 TCP SYN opens the flow", frame(syn6), kOk, frame(to(syn6, "fd00:1::5", 8080)),
               "event.svc_new"});
  c.push_back({"a router's ICMPv6 packet too big about the segment",
               frame(errorAbout(to(withData(syn6), "fd00:1::5", 8080), kRouter6, kTooBig6, 0)), kOk,
               frame(errorAbout(withData(syn6), kRouter6, kTooBig6, 0)), "event.icmp_err_rev"});

  // Hairpin: the pod reached itself, so its own error goes to the hairpin
  // source and must come back from the ClusterIP to the pod.
  const PacketSpec self = tcp(kClient, 40100, "10.96.0.70", 80);
  const PacketSpec selfAt = to(from(self, "169.254.42.1", 40100), kClient, 8080);
  c.push_back({"hairpin SYN opens the flow", frame(self), kOk, frame(selfAt), "event.hairpin"});
  c.push_back({"hairpin: the pod's error to the hairpin address returns to it from the ClusterIP",
               frame(errorAbout(selfAt, kClient, kUnreach, kPortUnreach)), kOk,
               frame(errorAbout(self, "10.96.0.70", kUnreach, kPortUnreach)),
               "event.icmp_err_rev"});
  return c;
}

// Errors that must pass untouched (or be dropped by the parser), never
// rewritten.
std::vector<PacketCase> untouchedCases() {
  std::vector<PacketCase> c;
  const PacketSpec query = udp(kClient, 6000, "10.96.0.53", 53);
  const PacketSpec atBackend = to(query, "10.0.1.7", 5353);
  c.push_back({"UDP query opens the flow the errors below quote", frame(query), kOk,
               frame(atBackend), "event.svc_new"});
  const std::vector<uint8_t> good =
      frame(errorAbout(atBackend, "10.0.1.7", kUnreach, kPortUnreach));
  constexpr size_t icmp = 14 + 20;    // outer ICMP header
  constexpr size_t quote = icmp + 8;  // quoted IP header

  c.push_back({"error quoting a flow to a non-service address",
               frame(errorAbout(to(query, "10.0.0.3", 53), "10.0.0.3", kUnreach, kPortUnreach)),
               kOk, std::nullopt, "event.pass_non_service"});
  c.push_back({"error quoting a service flow's tuple with a port no flow used",
               frame(errorAbout(to(from(query, kClient, 6001), "10.0.1.7", 5353), "10.0.1.7",
                                kUnreach, kPortUnreach)),
               kOk, std::nullopt, "event.pass_non_service"});
  c.push_back({"quote cut inside the UDP header (IP header + 4 bytes)",
               frame(errorAbout(atBackend, "10.0.1.7", kUnreach, kPortUnreach, 24)), kOk,
               std::nullopt, "event.pass_non_service"});
  c.push_back({"quote cut inside the quoted IP header",
               frame(errorAbout(atBackend, "10.0.1.7", kUnreach, kPortUnreach, 12)), kOk,
               std::nullopt, "event.pass_non_service"});
  {
    PacketSpec opts = atBackend;
    opts.ipv4Options = {0x94, 0x04, 0x00, 0x00};
    c.push_back({"quoted IPv4 header with options (no such flow is ever translated)",
                 frame(errorAbout(opts, "10.0.1.7", kUnreach, kPortUnreach)), kOk, std::nullopt,
                 "event.pass_non_service"});
  }
  {
    PacketSpec later = atBackend;
    later.ipv4Frag = 0x0003;
    c.push_back({"quoted non-first fragment: no ports to match",
                 frame(errorAbout(later, "10.0.1.7", kUnreach, kPortUnreach)), kOk, std::nullopt,
                 "event.pass_non_service"});
  }
  {
    // Found by the differential fuzzer (issue 18): IPv4 quotes of first
    // fragments were translated while IPv6 ones and the userspace datapath
    // refuse them. Both datapaths drop service fragments, so no translated
    // flow's packet is ever quoted as one.
    PacketSpec first = atBackend;
    first.ipv4Frag = 0x2000;  // MF, offset 0: ports present
    c.push_back({"quoted first fragment: no translated flow sends fragments",
                 frame(errorAbout(first, "10.0.1.7", kUnreach, kPortUnreach)), kOk, std::nullopt,
                 "event.pass_non_service"});
  }
  {
    auto f = good;
    put16(f, quote + 2, 27);  // quoted total length < header + 8
    c.push_back({"quoted IPv4 total length shorter than header + 8", f, kOk, std::nullopt,
                 "event.pass_non_service"});
  }
  {
    auto f = good;
    f[quote] = 0x65;  // version 6 in the quoted IPv4 header
    c.push_back(
        {"quoted header of the wrong IP version", f, kOk, std::nullopt, "event.pass_non_service"});
  }
  {
    PacketSpec echo = errorAbout(atBackend, "10.0.1.7", 0, 0);  // echo reply carrying a quote
    c.push_back({"ICMP echo reply whose data looks like a quote: not an error", frame(echo), kOk,
                 std::nullopt, "event.pass_non_service"});
  }
  {
    PacketSpec elsewhere = errorAbout(atBackend, "10.0.1.7", kUnreach, kPortUnreach);
    elsewhere.dst = ip("10.0.0.9");
    c.push_back({"error addressed to someone other than the quoted source", frame(elsewhere), kOk,
                 std::nullopt, "event.pass_non_service"});
  }
  {
    PacketSpec frag = errorAbout(atBackend, "10.0.1.7", kUnreach, kPortUnreach);
    frag.ipv4Frag = 0x2000;
    c.push_back({"the error itself is a first fragment", frame(frag), kOk, std::nullopt,
                 "event.pass_non_service"});
  }
  {
    auto f = good;
    put16(f, 14 + 2, static_cast<uint16_t>(f.size() - 14 + 1));
    setIpv4HeaderChecksum(f);
    c.push_back({"outer total length one byte past the frame", f, kDrop, std::nullopt,
                 "drop.bad_ip_total_length"});
  }
  {
    auto f = good;
    put16(f, 14 + 2, 20 + 8 + 20 + 4);  // outer length ends the quote inside the UDP ports
    setIpv4HeaderChecksum(f);
    c.push_back({"outer total length ends inside the quoted UDP header", f, kOk, std::nullopt,
                 "event.pass_non_service"});
  }
  {
    const PacketSpec q6 = udp(kClient6, 6000, "fd00:96::53", 53);
    c.push_back({"IPv6 UDP query opens a flow", frame(q6), kOk, frame(to(q6, "fd00:1::7", 5353)),
                 "event.svc_new"});
    PacketSpec ext = to(q6, "fd00:1::7", 5353);
    ext.ipv6Ext = {{60, {1, 4, 0, 0, 0, 0}}};
    c.push_back({"quoted IPv6 header followed by an extension header",
                 frame(errorAbout(ext, "fd00:1::7", kUnreach6, kPortUnreach6)), kOk, std::nullopt,
                 "event.pass_non_service"});
    c.push_back(
        {"ICMPv6 quote cut inside the quoted IPv6 header",
         frame(errorAbout(to(q6, "fd00:1::7", 5353), "fd00:1::7", kUnreach6, kPortUnreach6, 30)),
         kOk, std::nullopt, "event.pass_non_service"});
  }
  return c;
}

ServiceTable hostServices() {
  ServiceTable t;
  EXPECT_TRUE(t.upsert(service("np-udp", Protocol::kUdp,
                               {frontend(kNode, 30053, Protocol::kUdp, FrontendScope::kNodePort),
                                frontend(kNode6, 30053, Protocol::kUdp, FrontendScope::kNodePort)},
                               {backend("10.0.2.7", 5353), backend("fd00:2::7", 5353)}))
                  .ok());
  EXPECT_TRUE(t.upsert(service("np", Protocol::kTcp,
                               {frontend(kNode, 30080, Protocol::kTcp, FrontendScope::kNodePort)},
                               {backend("10.0.2.5", 8080)}))
                  .ok());
  return t;
}

std::vector<PacketCase> hostCases() {
  std::vector<PacketCase> c;
  // Under BPF_PROG_TEST_RUN the FIB has no answer, so routed packets are
  // handed to the stack: TC_ACT_OK (as in host_packet_test.cc).
  const PacketSpec query = udp(kOutside, 5000, kNode, 30053);
  const PacketSpec atBackend = from(to(query, "10.0.2.7", 5353), kNode, 5000);
  c.push_back({"NodePort UDP from outside: DNAT + SNAT", frame(query), kOk, frame(atBackend),
               "event.snat"});
  c.push_back(
      {"the remote backend's port unreachable goes to the client from the node port, "
       "quoting the client's own datagram",
       frame(errorAbout(atBackend, "10.0.2.7", kUnreach, kPortUnreach)), kOk,
       frame(errorAbout(query, kNode, kUnreach, kPortUnreach)), "event.icmp_err_rev"});
  const PacketSpec seg = withData(tcp(kOutside, 40000, kNode, 30080));
  const PacketSpec segAt = from(to(seg, "10.0.2.5", 8080), kNode, 40000);
  c.push_back({"NodePort TCP segment from outside: DNAT + SNAT", frame(seg), kOk, frame(segAt),
               "event.snat"});
  c.push_back({"a router's fragmentation-needed about the SNATed segment reaches the client",
               frame(errorAbout(segAt, kRouter, kUnreach, kFragNeeded)), kOk,
               frame(errorAbout(seg, kRouter, kUnreach, kFragNeeded)), "event.icmp_err_rev"});
  const PacketSpec query6 = udp(kOutside6, 5000, kNode6, 30053);
  const PacketSpec atBackend6 = from(to(query6, "fd00:2::7", 5353), kNode6, 5000);
  c.push_back({"IPv6 NodePort UDP from outside: DNAT + SNAT", frame(query6), kOk, frame(atBackend6),
               "event.snat"});
  c.push_back({"ICMPv6 port unreachable about the SNATed datagram reaches the client",
               frame(errorAbout(atBackend6, "fd00:2::7", kUnreach6, kPortUnreach6)), kOk,
               frame(errorAbout(query6, kNode6, kUnreach6, kPortUnreach6)), "event.icmp_err_rev"});
  c.push_back({"an error about a tuple no flow has passes unchanged",
               frame(errorAbout(from(to(query, "10.0.2.7", 5353), kNode, 5999), "10.0.2.7",
                                kUnreach, kPortUnreach)),
               kOk, std::nullopt, "event.pass_non_service"});
  return c;
}

}  // namespace sluice::testing::icmp_err
