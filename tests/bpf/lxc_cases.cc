#include "tests/bpf/lxc_cases.h"

#include <linux/pkt_cls.h>

namespace sluice::testing::lxc {
namespace {
constexpr uint32_t kOk = TC_ACT_OK;
constexpr uint32_t kDrop = TC_ACT_SHOT;
constexpr uint32_t kRedirect = TC_ACT_REDIRECT;
}  // namespace

std::vector<uint8_t> frame(const PacketSpec& s) { return buildPacket(s); }

// The spec with its destination rewritten: what DNAT must produce.
PacketSpec dnat(PacketSpec s, const char* addr, uint16_t port) {
  s.dst = ip(addr);
  s.dport = port;
  return s;
}
// The spec with its source rewritten: what reverse NAT must produce.
PacketSpec snat(PacketSpec s, const char* addr, uint16_t port) {
  s.src = ip(addr);
  s.sport = port;
  return s;
}

// The refusal of a TCP segment: RST from the frontend back to the client.
PacketSpec rstFor(const PacketSpec& in, uint32_t seq, uint32_t ack, uint8_t flags) {
  PacketSpec s = tcp("0.0.0.0", in.dport, "0.0.0.0", in.sport, flags);
  s.src = in.dst;
  s.dst = in.src;
  s.seq = seq;
  s.ack = ack;
  s.window = 0;
  s.srcMac = in.dstMac;
  s.dstMac = in.srcMac;
  return s;
}

// The refusal of a datagram: ICMP(v6) port unreachable quoting the IP header
// and the first 8 bytes of the UDP datagram.
PacketSpec unreachableFor(const PacketSpec& in) {
  const std::vector<uint8_t> orig = buildPacket(in);
  const size_t quote = in.dst.isV6() ? 48 : 28;
  PacketSpec s;
  s.src = in.dst;
  s.dst = in.src;
  s.proto = in.dst.isV6() ? Protocol::kIcmpV6 : Protocol::kIcmp;
  s.icmpType = in.dst.isV6() ? 1 : 3;
  s.icmpCode = in.dst.isV6() ? 4 : 3;
  s.payload.assign(orig.begin() + 14, orig.begin() + 14 + static_cast<long>(quote));
  s.srcMac = in.dstMac;
  s.dstMac = in.srcMac;
  return s;
}

PacketSpec withPayload(PacketSpec s, uint8_t flags, uint32_t seq, uint32_t ack) {
  s.tcpFlags = flags;
  s.seq = seq;
  s.ack = ack;
  s.payload = {'G', 'E', 'T', ' ', '/', '\r', '\n'};
  return s;
}

// The services every case runs against.
ServiceTable services() {
  ServiceTable t;
  auto add = [&t](Service s) { EXPECT_TRUE(t.upsert(std::move(s)).ok()); };
  add(service("web", Protocol::kTcp, {frontend("10.96.0.10", 80)}, {backend("10.0.1.5", 8080)}));
  add(service("dns", Protocol::kUdp, {frontend("10.96.0.53", 53, Protocol::kUdp)},
              {backend("10.0.1.7", 5353)}));
  add(service("web6", Protocol::kTcp, {frontend("fd00:96::10", 80)}, {backend("fd00:1::5", 8080)}));
  add(service("dns6", Protocol::kUdp, {frontend("fd00:96::53", 53, Protocol::kUdp)},
              {backend("fd00:1::7", 5353)}));
  add(service("empty", Protocol::kTcp, {frontend("10.96.0.20", 80), frontend("fd00:96::20", 80)},
              {}));
  add(service(
      "empty-udp", Protocol::kUdp,
      {frontend("10.96.0.21", 53, Protocol::kUdp), frontend("fd00:96::21", 53, Protocol::kUdp)},
      {}));
  add(service("drain", Protocol::kTcp, {frontend("10.96.0.30", 80)},
              {backend("10.0.1.30", 8080, BackendState::kTerminating)}));
  // A service whose backend is the client pod itself (hairpin).
  add(service("self", Protocol::kTcp, {frontend("10.96.0.70", 80), frontend("fd00:96::70", 80)},
              {backend(kClient, 8080), backend(kClient6, 8080)}));
  Service localNone = service("local-none", Protocol::kTcp, {frontend("10.96.0.41", 80)},
                              {backend("10.0.1.43", 8080)});
  localNone.internalPolicy = TrafficPolicy::kLocal;
  add(localNone);
  Service npLocal =
      service("np-local", Protocol::kTcp,
              {frontend("192.168.1.10", 30080, Protocol::kTcp, FrontendScope::kNodePort)},
              {backend("10.0.1.44", 8080)});
  npLocal.externalPolicy = TrafficPolicy::kLocal;
  add(npLocal);
  return t;
}

std::vector<PacketCase> serviceCases() {
  std::vector<PacketCase> c;
  const PacketSpec syn = tcp(kClient, 40000, "10.96.0.10", 80);
  const PacketSpec data = withPayload(syn, kTcpAck | kTcpPsh, 1001, 5001);
  const PacketSpec synAck = [] {
    PacketSpec s = tcp("10.0.1.5", 8080, kClient, 40000, kTcpSyn | kTcpAck);
    s.seq = 5000;
    s.ack = 1001;
    return s;
  }();
  c.push_back({"ClusterIP TCP SYN is DNATed to the service's only backend", frame(syn), kOk,
               frame(dnat(syn, "10.0.1.5", 8080)), "event.svc_new"});
  c.push_back({"the flow's next segment (with payload) goes to the same backend", frame(data), kOk,
               frame(dnat(data, "10.0.1.5", 8080)), "event.svc_established"});
  c.push_back({"the backend's SYN-ACK is reverse-NATed to come from the ClusterIP", frame(synAck),
               kOk, frame(snat(synAck, "10.96.0.10", 80)), "event.rev_nat"});

  PacketSpec padded = tcp(kClient, 40001, "10.96.0.10", 80);
  padded.padTo = 60;
  c.push_back({"a minimum-size frame's Ethernet padding is kept and not checksummed", frame(padded),
               kOk, frame(dnat(padded, "10.0.1.5", 8080)), "event.svc_new"});

  const PacketSpec query = udp(kClient, 5000, "10.96.0.53", 53);
  const PacketSpec answer = udp("10.0.1.7", 5353, kClient, 5000);
  c.push_back({"ClusterIP UDP datagram is DNATed", frame(query), kOk,
               frame(dnat(query, "10.0.1.7", 5353)), "event.svc_new"});
  c.push_back({"the backend's UDP answer is reverse-NATed", frame(answer), kOk,
               frame(snat(answer, "10.96.0.53", 53)), "event.rev_nat"});
  PacketSpec noCsum = udp(kClient, 5001, "10.96.0.53", 53);
  noCsum.udpZeroChecksum = true;
  c.push_back({"IPv4 UDP without a checksum keeps checksum 0 through DNAT", frame(noCsum), kOk,
               frame(dnat(noCsum, "10.0.1.7", 5353)), "event.svc_new"});

  const PacketSpec syn6 = tcp(kClient6, 40000, "fd00:96::10", 80);
  const PacketSpec synAck6 = [] {
    PacketSpec s = tcp("fd00:1::5", 8080, kClient6, 40000, kTcpSyn | kTcpAck);
    s.ack = 1001;
    return s;
  }();
  c.push_back({"IPv6 ClusterIP TCP SYN is DNATed", frame(syn6), kOk,
               frame(dnat(syn6, "fd00:1::5", 8080)), "event.svc_new"});
  c.push_back({"IPv6 SYN-ACK is reverse-NATed", frame(synAck6), kOk,
               frame(snat(synAck6, "fd00:96::10", 80)), "event.rev_nat"});
  const PacketSpec query6 = udp(kClient6, 5000, "fd00:96::53", 53);
  const PacketSpec answer6 = udp("fd00:1::7", 5353, kClient6, 5000);
  c.push_back({"IPv6 UDP datagram is DNATed", frame(query6), kOk,
               frame(dnat(query6, "fd00:1::7", 5353)), "event.svc_new"});
  c.push_back({"IPv6 UDP answer is reverse-NATed", frame(answer6), kOk,
               frame(snat(answer6, "fd00:96::53", 53)), "event.rev_nat"});
  PacketSpec ext6 = tcp(kClient6, 40010, "fd00:96::10", 80);
  ext6.ipv6Ext = {{0, {1, 4, 0, 0, 0, 0}}, {60, {1, 4, 0, 0, 0, 0}}};
  c.push_back({"IPv6 with Hop-by-Hop and Destination Options headers is DNATed past them",
               frame(ext6), kOk, frame(dnat(ext6, "fd00:1::5", 8080)), "event.svc_new"});

  const PacketSpec drain = tcp(kClient, 40000, "10.96.0.30", 80);
  c.push_back({"only terminating backends: the new flow falls back to one", frame(drain), kOk,
               frame(dnat(drain, "10.0.1.30", 8080)), "event.terminating_fallback"});

  const PacketSpec refused = tcp(kClient, 40000, "10.96.0.20", 80);
  c.push_back({"no backend, TCP SYN: RST+ACK from the ClusterIP back to the pod", frame(refused),
               kRedirect, frame(rstFor(refused, 0, 1001, kTcpRst | kTcpAck)), "drop.no_backend"});
  const PacketSpec refusedAck = withPayload(refused, kTcpAck | kTcpPsh, 7000, 9000);
  c.push_back({"no backend, TCP ACK with payload: RST whose seq is the segment's ACK",
               frame(refusedAck), kRedirect, frame(rstFor(refusedAck, 9000, 0, kTcpRst)),
               "event.reject_tcp_rst"});
  const PacketSpec refusedRst = tcp(kClient, 40000, "10.96.0.20", 80, kTcpRst);
  c.push_back({"no backend, TCP RST: dropped, never answered", frame(refusedRst), kDrop,
               std::nullopt, "drop.no_backend"});
  const PacketSpec refusedUdp = udp(kClient, 5000, "10.96.0.21", 53);
  c.push_back({"no backend, UDP: ICMP port unreachable quoting the datagram", frame(refusedUdp),
               kRedirect, frame(unreachableFor(refusedUdp)), "event.reject_icmp"});
  const PacketSpec refused6 = tcp(kClient6, 40000, "fd00:96::20", 80);
  c.push_back({"no backend, IPv6 TCP SYN: RST+ACK", frame(refused6), kRedirect,
               frame(rstFor(refused6, 0, 1001, kTcpRst | kTcpAck)), "event.reject_tcp_rst"});
  const PacketSpec refusedUdp6 = udp(kClient6, 5000, "fd00:96::21", 53);
  c.push_back({"no backend, IPv6 UDP: ICMPv6 port unreachable", frame(refusedUdp6), kRedirect,
               frame(unreachableFor(refusedUdp6)), "event.reject_icmp"});

  const PacketSpec self = tcp(kClient, 40000, "10.96.0.70", 80);
  PacketSpec selfOut = dnat(snat(self, "169.254.42.1", 40000), kClient, 8080);
  PacketSpec selfAnswer = tcp(kClient, 8080, "169.254.42.1", 40000, kTcpSyn | kTcpAck);
  c.push_back({"hairpin: a pod reaching itself gets the hairpin address as source", frame(self),
               kOk, frame(selfOut), "event.hairpin"});
  c.push_back({"hairpin: its answer to the hairpin address returns from the ClusterIP",
               frame(selfAnswer), kOk,
               frame(dnat(snat(selfAnswer, "10.96.0.70", 80), kClient, 40000)), "event.rev_nat"});
  const PacketSpec self6 = tcp(kClient6, 40000, "fd00:96::70", 80);
  PacketSpec selfAnswer6 = tcp(kClient6, 8080, "fd73:6c75::1", 40000, kTcpSyn | kTcpAck);
  c.push_back({"IPv6 hairpin: source becomes fd73:6c75::1", frame(self6), kOk,
               frame(dnat(snat(self6, "fd73:6c75::1", 40000), kClient6, 8080)), "event.hairpin"});
  c.push_back({"IPv6 hairpin answer returns from the ClusterIP", frame(selfAnswer6), kOk,
               frame(dnat(snat(selfAnswer6, "fd00:96::70", 80), kClient6, 40000)),
               "event.rev_nat"});

  c.push_back({"internalTrafficPolicy Local with only remote backends: dropped, not refused",
               frame(tcp(kClient, 40000, "10.96.0.41", 80)), kDrop, std::nullopt,
               "drop.no_local_backend"});
  const PacketSpec np = tcp(kClient, 40000, "192.168.1.10", 30080);
  c.push_back({"a pod reaching an eTP=Local NodePort is balanced over all backends", frame(np), kOk,
               frame(dnat(np, "10.0.1.44", 8080)), "event.svc_new"});

  c.push_back({"TCP to a non-service address passes unchanged",
               frame(tcp(kClient, 40000, "10.0.0.3", 80)), kOk, std::nullopt,
               "event.pass_non_service"});
  c.push_back({"TCP to a ClusterIP's other port passes unchanged",
               frame(tcp(kClient, 40000, "10.96.0.10", 81)), kOk, std::nullopt,
               "event.pass_non_service"});
  PacketSpec ping;
  ping.src = ip(kClient);
  ping.dst = ip("10.96.0.10");
  ping.proto = Protocol::kIcmp;
  ping.icmpType = 8;
  c.push_back({"ICMP echo to a ClusterIP passes unchanged (not balanced)", frame(ping), kOk,
               std::nullopt, "event.pass_non_service"});
  std::vector<uint8_t> arp(42, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  c.push_back({"ARP passes unchanged", arp, kOk, std::nullopt, "event.pass_non_service"});
  return c;
}

// Malformed input: never rewritten, never forwarded as if valid.
std::vector<PacketCase> malformedCases() {
  std::vector<PacketCase> c;
  const PacketSpec syn = tcp(kClient, 41000, "10.96.0.10", 80);
  const std::vector<uint8_t> good = frame(syn);
  constexpr size_t l3 = 14;
  constexpr size_t l4 = 34;

  {
    auto f = good;
    put16(f, l3 + 2, static_cast<uint16_t>(f.size() - l3 + 1));
    setIpv4HeaderChecksum(f);
    c.push_back({"IPv4 total length one byte past the frame", f, kDrop, std::nullopt,
                 "drop.bad_ip_total_length"});
  }
  {
    auto f = good;
    put16(f, l3 + 2, 19);
    setIpv4HeaderChecksum(f);
    c.push_back({"IPv4 total length shorter than its header", f, kDrop, std::nullopt,
                 "drop.bad_ip_total_length"});
  }
  {
    auto f = good;
    f[l3] = 0x44;
    c.push_back({"IPv4 IHL 4: header would end before its addresses", f, kDrop, std::nullopt,
                 "drop.bad_ipv4_header_length"});
  }
  {
    auto f = good;
    f[l3] = 0x65;
    c.push_back({"version 6 under EtherType IPv4", f, kDrop, std::nullopt, "drop.bad_ip_version"});
  }
  PacketSpec opts = syn;
  opts.ipv4Options = {0x94, 0x04, 0x00, 0x00};  // Router Alert
  c.push_back({"IPv4 options on a service flow: dropped", frame(opts), kDrop, std::nullopt,
               "drop.ipv4_options"});
  PacketSpec optsOther = tcp(kClient, 41000, "10.0.0.3", 80);
  optsOther.ipv4Options = {0x94, 0x04, 0x00, 0x00};
  c.push_back({"IPv4 options to a non-service: passed to the stack unchanged", frame(optsOther),
               kOk, std::nullopt, "event.pass_non_service"});
  PacketSpec first = udp(kClient, 5100, "10.96.0.53", 53);
  first.ipv4Frag = 0x2000;
  c.push_back({"first IPv4 fragment (MF) of a service datagram: dropped", frame(first), kDrop,
               std::nullopt, "drop.fragment"});
  PacketSpec later = udp(kClient, 5100, "10.96.0.53", 53);
  later.ipv4Frag = 0x0003;
  c.push_back({"non-first IPv4 fragment: no ports, passed unchanged", frame(later), kOk,
               std::nullopt, "event.pass_non_service"});
  PacketSpec firstOther = udp(kClient, 5100, "10.0.0.3", 9999);
  firstOther.ipv4Frag = 0x2000;
  c.push_back({"first fragment to a non-service: passed unchanged", frame(firstOther), kOk,
               std::nullopt, "event.pass_non_service"});
  {
    auto f = good;
    f[l4 + 12] = 0x40;
    c.push_back({"TCP data offset 4 (< 20-byte header)", f, kDrop, std::nullopt,
                 "drop.bad_tcp_header_length"});
  }
  {
    auto f = good;
    f[l4 + 12] = 0xf0;
    c.push_back(
        {"TCP data offset 15 runs past the segment", f, kDrop, std::nullopt, "drop.truncated_l4"});
  }
  {
    std::vector<uint8_t> f(good.begin(), good.begin() + l4 + 10);
    put16(f, l3 + 2, 30);
    setIpv4HeaderChecksum(f);
    c.push_back({"TCP header cut at 10 bytes, IP length consistent", f, kDrop, std::nullopt,
                 "drop.truncated_l4"});
  }
  const std::vector<uint8_t> dgram = frame(udp(kClient, 5200, "10.96.0.53", 53));
  {
    auto f = dgram;
    put16(f, l4 + 4, 7);
    c.push_back({"UDP length 7 (< header)", f, kDrop, std::nullopt, "drop.bad_udp_length"});
  }
  {
    auto f = dgram;
    put16(f, l4 + 4, static_cast<uint16_t>(f.size() - l4 + 1));
    c.push_back({"UDP length past the IP payload", f, kDrop, std::nullopt, "drop.bad_udp_length"});
  }

  const std::vector<uint8_t> good6 = frame(tcp(kClient6, 41000, "fd00:96::10", 80));
  {
    // A Destination Options header claiming 16 bytes where the packet ends
    // after 8: the extension chain runs past the IP packet.
    PacketSpec cut6 = udp(kClient6, 5300, "fd00:96::53", 53);
    cut6.ipv6Ext = {{60, {1, 4, 0, 0, 0, 0}}};
    auto f = frame(cut6);
    f.resize(14 + 40 + 8);
    f[14 + 40 + 1] = 1;  // hdr ext len 1: 16 bytes
    put16(f, l3 + 4, 8);
    c.push_back({"IPv6 extension header running past the packet", f, kDrop, std::nullopt,
                 "drop.truncated_l3"});
  }
  {
    auto f = good6;
    put16(f, l3 + 4, static_cast<uint16_t>(f.size() - l3 - 40 + 1));
    c.push_back({"IPv6 payload length one byte past the frame", f, kDrop, std::nullopt,
                 "drop.bad_ip_total_length"});
  }
  PacketSpec frag6 = udp(kClient6, 5100, "fd00:96::53", 53);
  frag6.ipv6Ext = {{44, {0x00, 0x01, 0, 0, 0, 1}}};  // offset 0, M=1
  c.push_back({"first IPv6 fragment of a service datagram: dropped", frame(frag6), kDrop,
               std::nullopt, "drop.fragment"});
  PacketSpec later6 = udp(kClient6, 5100, "fd00:96::53", 53);
  later6.ipv6Ext = {{44, {0x00, 0x18, 0, 0, 0, 1}}};  // offset 3 (x8 bytes)
  c.push_back({"non-first IPv6 fragment: passed unchanged", frame(later6), kOk, std::nullopt,
               "event.pass_non_service"});
  PacketSpec routed6 = tcp(kClient6, 41000, "fd00:96::10", 80);
  // Type 0 routing header, segments left 1, one address.
  std::vector<uint8_t> rh = {0, 1, 0, 0, 0, 0};
  rh.resize(6 + 16, 0);
  routed6.ipv6Ext = {{43, rh}};
  c.push_back({"IPv6 routing header with segments left on a service flow: dropped", frame(routed6),
               kDrop, std::nullopt, "drop.ipv6_routing_header"});
  PacketSpec deep6 = tcp(kClient6, 41000, "fd00:96::10", 80);
  for (int i = 0; i < 7; ++i) deep6.ipv6Ext.push_back({60, {1, 4, 0, 0, 0, 0}});
  c.push_back({"seven IPv6 Destination Options headers: past the parser's limit", frame(deep6),
               kDrop, std::nullopt, "drop.ipv6_ext_header_limit"});
  return c;
}

}  // namespace sluice::testing::lxc
