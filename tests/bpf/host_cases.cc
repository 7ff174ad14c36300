#include "tests/bpf/host_cases.h"

#include <linux/pkt_cls.h>

namespace sluice::testing::host {
namespace {
constexpr uint32_t kOk = TC_ACT_OK;
constexpr uint32_t kDrop = TC_ACT_SHOT;
constexpr uint32_t kRedirect = TC_ACT_REDIRECT;
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

Frontend nodePort(const char* addr, uint16_t port, Protocol proto) {
  return frontend(addr, port, proto, FrontendScope::kNodePort);
}

ServiceTable services() {
  ServiceTable t;
  auto add = [&t](Service s) { EXPECT_TRUE(t.upsert(std::move(s)).ok()); };
  add(service("np", Protocol::kTcp, {nodePort(kNode, 30080), nodePort(kNode6, 30080)},
              {backend("10.0.1.5", 8080), backend("fd00:1::5", 8080)}));
  add(service("np-udp", Protocol::kUdp, {nodePort(kNode, 30053, Protocol::kUdp)},
              {backend("10.0.1.7", 5353)}));
  Service remoteOnly = service("np-local-remote", Protocol::kTcp, {nodePort(kNode, 30081)},
                               {backend("10.0.2.44", 8080)});
  remoteOnly.externalPolicy = TrafficPolicy::kLocal;
  add(remoteOnly);
  Service here = service(
      "np-local", Protocol::kTcp, {nodePort(kNode, 30082)},
      {backend("10.0.1.45", 8080, BackendState::kActive, true), backend("10.0.2.46", 8080)});
  here.externalPolicy = TrafficPolicy::kLocal;
  add(here);
  add(service("lb", Protocol::kTcp,
              {frontend(kLbIp, 80, Protocol::kTcp, FrontendScope::kLoadBalancer)},
              {backend("10.0.1.8", 8080)}));
  add(service("ext", Protocol::kTcp,
              {frontend(kExternalIp, 80, Protocol::kTcp, FrontendScope::kExternalIp)},
              {backend("10.0.1.9", 8080)}));
  add(service("empty", Protocol::kTcp, {nodePort(kNode, 30090)}, {}));
  add(service("cip", Protocol::kTcp, {frontend("10.96.0.10", 80)}, {backend("10.0.1.5", 8080)}));
  return t;
}

std::vector<PacketCase> serviceCases() {
  std::vector<PacketCase> c;
  const PacketSpec syn = tcp(kOutside, 40000, kNode, 30080);
  c.push_back({"NodePort eTP=Cluster SYN: DNAT to the backend and SNAT to the node address",
               frame(syn), kOk, frame(from(to(syn, "10.0.1.5", 8080), kNode, 40000)),
               "event.snat"});
  PacketSpec data = syn;
  data.tcpFlags = kTcpAck | kTcpPsh;
  data.payload = {'G', 'E', 'T', '\r', '\n'};
  c.push_back({"the flow's next segment takes the same translation", frame(data), kOk,
               frame(from(to(data, "10.0.1.5", 8080), kNode, 40000)), "event.svc_established"});
  PacketSpec synAck = tcp("10.0.1.5", 8080, kNode, 40000, kTcpSyn | kTcpAck);
  synAck.ack = 1001;
  c.push_back({"a remote backend's SYN-ACK on the uplink is reversed to the client", frame(synAck),
               kOk, frame(from(to(synAck, kOutside, 40000), kNode, 30080)), "event.rev_nat"});

  const PacketSpec syn6 = tcp(kOutside6, 40000, kNode6, 30080);
  c.push_back({"IPv6 NodePort eTP=Cluster SYN: DNAT + SNAT to the node's IPv6 address", frame(syn6),
               kOk, frame(from(to(syn6, "fd00:1::5", 8080), kNode6, 40000)), "event.snat"});
  const PacketSpec synAck6 = tcp("fd00:1::5", 8080, kNode6, 40000, kTcpSyn | kTcpAck);
  c.push_back({"IPv6 reply reversed to the client", frame(synAck6), kOk,
               frame(from(to(synAck6, kOutside6, 40000), kNode6, 30080)), "event.rev_nat"});

  const PacketSpec query = udp(kOutside, 5000, kNode, 30053);
  c.push_back({"NodePort UDP datagram: DNAT + SNAT", frame(query), kOk,
               frame(from(to(query, "10.0.1.7", 5353), kNode, 5000)), "event.svc_new"});
  const PacketSpec answer = udp("10.0.1.7", 5353, kNode, 5000);
  c.push_back({"the UDP answer is reversed", frame(answer), kOk,
               frame(from(to(answer, kOutside, 5000), kNode, 30053)), "event.rev_nat"});
  PacketSpec noCsum = udp(kOutside, 5001, kNode, 30053);
  noCsum.udpZeroChecksum = true;
  c.push_back({"IPv4 UDP without a checksum keeps checksum 0 through DNAT + SNAT", frame(noCsum),
               kOk, frame(from(to(noCsum, "10.0.1.7", 5353), kNode, 5001)), "event.svc_new"});

  const PacketSpec local = tcp(kOutside, 40001, kNode, 30082);
  c.push_back({"eTP=Local: only the node-local backend, client address kept (no SNAT)",
               frame(local), kOk, frame(to(local, "10.0.1.45", 8080)), "event.svc_new"});
  c.push_back({"eTP=Local with every backend on other nodes: dropped and counted",
               frame(tcp(kOutside, 40002, kNode, 30081)), kDrop, std::nullopt,
               "drop.no_local_backend"});

  const PacketSpec toLb = tcp(kOutside, 40003, kLbIp, 80);
  c.push_back({"LoadBalancer ingress IP: DNAT + SNAT", frame(toLb), kOk,
               frame(from(to(toLb, "10.0.1.8", 8080), kNode, 40003)), "event.svc_new"});
  const PacketSpec lbReply = tcp("10.0.1.8", 8080, kNode, 40003, kTcpSyn | kTcpAck);
  c.push_back({"the LoadBalancer reply comes from the LoadBalancer IP", frame(lbReply), kOk,
               frame(from(to(lbReply, kOutside, 40003), kLbIp, 80)), "event.rev_nat"});
  const PacketSpec toExt = tcp(kOutside, 40004, kExternalIp, 80);
  c.push_back({"externalIP: DNAT + SNAT", frame(toExt), kOk,
               frame(from(to(toExt, "10.0.1.9", 8080), kNode, 40004)), "event.svc_new"});

  const PacketSpec refused = tcp(kOutside, 40005, kNode, 30090);
  PacketSpec rst = tcp(kNode, 30090, kOutside, 40005, kTcpRst | kTcpAck);
  rst.seq = 0;
  rst.ack = 1001;
  rst.window = 0;
  rst.srcMac = refused.dstMac;
  rst.dstMac = refused.srcMac;
  c.push_back({"NodePort with no endpoints: RST+ACK from the node back out of the uplink",
               frame(refused), kRedirect, frame(rst), "event.reject_tcp_rst"});

  c.push_back({"a ClusterIP is not served from outside: passed unchanged",
               frame(tcp(kOutside, 40006, "10.96.0.10", 80)), kOk, std::nullopt,
               "event.pass_non_service"});
  c.push_back({"traffic to the node itself (SSH) passes unchanged",
               frame(tcp(kOutside, 40007, kNode, 22)), kOk, std::nullopt,
               "event.pass_non_service"});
  return c;
}

std::vector<PacketCase> malformedCases() {
  std::vector<PacketCase> c;
  constexpr size_t l3 = 14;
  PacketSpec opts = tcp(kOutside, 41000, kNode, 30080);
  opts.ipv4Options = {1, 1, 1, 0};
  c.push_back({"IPv4 options on a NodePort flow: dropped, not rewritten", frame(opts), kDrop,
               std::nullopt, "drop.ipv4_options"});
  PacketSpec frag = udp(kOutside, 41001, kNode, 30053);
  frag.ipv4Frag = 0x2000;
  c.push_back({"first IPv4 fragment of a NodePort datagram: dropped", frame(frag), kDrop,
               std::nullopt, "drop.fragment"});
  {
    auto f = frame(tcp(kOutside, 41002, kNode, 30080));
    f.resize(l3 + 20 + 10);
    put16(f, l3 + 2, 30);
    setIpv4HeaderChecksum(f);
    c.push_back({"TCP header cut at 10 bytes", f, kDrop, std::nullopt, "drop.truncated_l4"});
  }
  {
    auto f = frame(udp(kOutside, 41003, kNode, 30053));
    put16(f, l3 + 20 + 4, 7);
    c.push_back({"UDP length 7 (< header)", f, kDrop, std::nullopt, "drop.bad_udp_length"});
  }
  {
    auto f = frame(tcp(kOutside, 41004, kNode, 30080));
    put16(f, l3 + 2, static_cast<uint16_t>(f.size() - l3 + 1));
    setIpv4HeaderChecksum(f);
    c.push_back(
        {"IPv4 total length past the frame", f, kDrop, std::nullopt, "drop.bad_ip_total_length"});
  }
  return c;
}

}  // namespace sluice::testing::host
