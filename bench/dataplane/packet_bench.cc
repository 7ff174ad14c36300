// Packet parse and parse + DNAT throughput, per packet, on bursts of 32
// frames of distinct flows (a DPDK rx burst's usual size). Setup (building
// the frames) is outside the timed loop; DNAT alternates each burst between
// two backends so every iteration really rewrites addresses, ports and
// checksums instead of finding them already set.
//
// Counters: packets/s, time/packet (ns) and bytes/s (frame bytes, L2 included).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/checksum.h"
#include "dataplane/nat.h"
#include "dataplane/packet.h"

namespace sluice {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr size_t kBurst = 32;
constexpr size_t kPayloadLength = 64;  // small packets: the per-packet cost dominates

enum class Shape { kIpv4Tcp, kIpv4Udp, kIpv6Tcp };

void put16(Bytes& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}

IpAddress addr(const char* text) { return IpAddress::parse(text).value(); }

// Ethernet + IP + TCP/UDP + payload with valid checksums (via checksum.h,
// which checksum_test checks against references).
Bytes makeFrame(Shape shape, uint16_t srcPort) {
  const bool v6 = shape == Shape::kIpv6Tcp;
  const bool udp = shape == Shape::kIpv4Udp;
  const IpAddress src = v6 ? addr("fd00::1") : addr("10.0.0.1");
  const IpAddress dst = v6 ? addr("fd00:96::10") : addr("10.96.0.10");
  const size_t l3 = kEthernetHeaderLength;
  const size_t ipLength = v6 ? kIpv6HeaderLength : kIpv4HeaderLength;
  const size_t l4 = l3 + ipLength;
  const size_t l4Length = (udp ? kUdpHeaderLength : kTcpHeaderLength) + kPayloadLength;
  Bytes b(l4 + l4Length, 0);
  put16(b, 12, v6 ? kEtherTypeIpv6 : kEtherTypeIpv4);
  const uint8_t protocol = static_cast<uint8_t>(udp ? Protocol::kUdp : Protocol::kTcp);
  if (v6) {
    b[l3] = 0x60;
    put16(b, l3 + 4, static_cast<uint16_t>(l4Length));
    b[l3 + 6] = protocol;
    b[l3 + 7] = 64;
  } else {
    b[l3] = 0x45;
    put16(b, l3 + 2, static_cast<uint16_t>(ipLength + l4Length));
    put16(b, l3 + 6, 0x4000);  // DF
    b[l3 + 8] = 64;
    b[l3 + 9] = protocol;
  }
  std::copy(src.bytes().begin(), src.bytes().end(),
            b.begin() + static_cast<long>(l3 + (v6 ? 8 : 12)));
  std::copy(dst.bytes().begin(), dst.bytes().end(),
            b.begin() + static_cast<long>(l3 + (v6 ? 24 : 16)));
  if (!v6) put16(b, l3 + 10, internetChecksum(std::span(b).subspan(l3, ipLength)));
  put16(b, l4, srcPort);
  put16(b, l4 + 2, udp ? 53 : 80);
  if (udp) {
    put16(b, l4 + 4, static_cast<uint16_t>(l4Length));
  } else {
    b[l4 + 12] = 0x50;
    b[l4 + 13] = 0x18;
  }
  for (size_t i = 0; i < kPayloadLength; ++i) {
    b[l4 + l4Length - kPayloadLength + i] = static_cast<uint8_t>(i);
  }
  const size_t checkOffset = udp ? 6 : 16;
  put16(b, l4 + checkOffset,
        transportChecksum(src, dst, udp ? Protocol::kUdp : Protocol::kTcp,
                          std::span(b).subspan(l4, l4Length)));
  return b;
}

std::vector<Bytes> makeBurst(Shape shape) {
  std::vector<Bytes> burst;
  for (size_t i = 0; i < kBurst; ++i) {
    burst.push_back(makeFrame(shape, static_cast<uint16_t>(40000 + i)));
  }
  return burst;
}

void setCounters(benchmark::State& state, size_t bytesPerBurst) {
  const auto packets = static_cast<double>(state.iterations() * kBurst);
  state.counters["packets/s"] = benchmark::Counter(packets, benchmark::Counter::kIsRate);
  // Inverted rate: seconds per packet, printed with an SI prefix (e.g. "6.4ns").
  state.counters["time/packet"] =
      benchmark::Counter(packets, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(bytesPerBurst));
}

void BM_Parse(benchmark::State& state, Shape shape) {
  const std::vector<Bytes> burst = makeBurst(shape);
  size_t bytes = 0;
  for (const Bytes& b : burst) bytes += b.size();
  for (auto _ : state) {
    for (const Bytes& frame : burst) {
      ParsedPacket parsed;
      DropReason r = parsePacket(frame, Framing::kEthernet, parsed);
      benchmark::DoNotOptimize(r);
      benchmark::DoNotOptimize(parsed);
    }
  }
  setCounters(state, bytes);
}

void BM_ParseDnat(benchmark::State& state, Shape shape) {
  std::vector<Bytes> burst = makeBurst(shape);
  size_t bytes = 0;
  for (const Bytes& b : burst) bytes += b.size();
  const bool v6 = shape == Shape::kIpv6Tcp;
  const IpAddress backends[2] = {v6 ? addr("fd00:244::5") : addr("10.244.1.5"),
                                 v6 ? addr("fd00:244:7::9") : addr("10.244.7.9")};
  const uint16_t ports[2] = {8080, 9090};
  size_t which = 0;
  for (auto _ : state) {
    for (Bytes& frame : burst) {
      ParsedPacket parsed;
      if (parsePacket(frame, Framing::kEthernet, parsed) != DropReason::kNone) {
        state.SkipWithError("fixture did not parse");
        return;
      }
      DropReason r = dnat(frame, parsed, backends[which], ports[which]);
      benchmark::DoNotOptimize(r);
    }
    benchmark::ClobberMemory();
    which ^= 1;
  }
  setCounters(state, bytes);
}

BENCHMARK_CAPTURE(BM_Parse, ipv4_tcp, Shape::kIpv4Tcp);
BENCHMARK_CAPTURE(BM_Parse, ipv4_udp, Shape::kIpv4Udp);
BENCHMARK_CAPTURE(BM_Parse, ipv6_tcp, Shape::kIpv6Tcp);
BENCHMARK_CAPTURE(BM_ParseDnat, ipv4_tcp, Shape::kIpv4Tcp);
BENCHMARK_CAPTURE(BM_ParseDnat, ipv4_udp, Shape::kIpv4Udp);
BENCHMARK_CAPTURE(BM_ParseDnat, ipv6_tcp, Shape::kIpv6Tcp);

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
