// Fuzz target for packet parsing and NAT. Every input is parsed both as an
// Ethernet frame and as a bare IP packet; whatever parses is DNATed, SNATed
// and reverse NATed on exact-size copies (so ASan sees any out-of-bounds
// access), and these invariants must hold, else the process traps:
//
//  - offsets lie inside the buffer, in header order;
//  - NAT of a parsed packet succeeds, and a fresh parse of the result finds
//    the same headers and the tuple NAT reported;
//  - NAT touches nothing outside the IP packet (L2 header, padding);
//  - every checksum's residue (the ones'-complement sum over what it covers,
//    field included) is unchanged. A valid checksum has residue 0xffff, so
//    for valid packets this is "incremental update == full recomputation";
//    for invalid ones, "still wrong by the same amount". UDP's "no checksum"
//    0 must stay 0 instead, and no UDP checksum may become 0.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <vector>

#include "dataplane/checksum.h"
#include "dataplane/nat.h"
#include "dataplane/packet.h"

namespace {

using sluice::DropReason;
using sluice::FlowTuple;
using sluice::Framing;
using sluice::IpAddress;
using sluice::IpFamily;
using sluice::ParsedPacket;
using sluice::Protocol;

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "packet_fuzz invariant violated: %s\n", what);
  __builtin_trap();
}

uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// Residue of a checksum, taken modulo 0xffff so that +0 and -0 agree.
uint16_t residue(uint16_t folded) { return folded == 0 ? 0xffff : folded; }

// One IP header + L4 in the buffer: the packet's own, or an error's quote.
struct Layer {
  size_t ip;
  size_t l4;
  size_t l4Length;  // bytes the L4 checksum covers
  Protocol protocol;
};

// Residues of every checksum in the packet, in a fixed order; 0 marks a
// checksum that is absent (UDP "none", a quote cut before the field, IPv6's
// missing header checksum) so that position still compares.
struct Residues {
  uint16_t values[4] = {0, 0, 0, 0};
  bool operator==(const Residues&) const = default;
};

uint16_t headerResidue(std::span<const uint8_t> b, const ParsedPacket& p, size_t ip) {
  if (p.family != IpFamily::kV4) return 0;
  return residue(sluice::onesComplementSum(b.subspan(ip, sluice::kIpv4HeaderLength)));
}

uint16_t l4Residue(std::span<const uint8_t> b, const ParsedPacket& p, const Layer& l) {
  const bool v4 = p.family == IpFamily::kV4;
  size_t checkOffset = l.protocol == Protocol::kTcp ? 16 : l.protocol == Protocol::kUdp ? 6 : 2;
  if (checkOffset + 2 > l.l4Length) return 0;
  if (l.protocol == Protocol::kUdp && load16(&b[l.l4 + checkOffset]) == 0) return 0;
  uint16_t pseudo = 0;
  if (l.protocol != Protocol::kIcmp) {
    size_t n = v4 ? 4 : 16;
    pseudo = sluice::pseudoHeaderSum(b.subspan(l.ip + (v4 ? 12 : 8), n),
                                     b.subspan(l.ip + (v4 ? 16 : 24), n), l.protocol,
                                     static_cast<uint32_t>(l.l4Length));
  }
  return residue(sluice::onesComplementSum(b.subspan(l.l4, l.l4Length), pseudo));
}

Residues residues(std::span<const uint8_t> b, const ParsedPacket& p) {
  Residues r;
  r.values[0] = headerResidue(b, p, p.l3Offset);
  r.values[1] = l4Residue(b, p, {p.l3Offset, p.l4Offset, p.l4Length, p.protocol});
  if (p.isIcmpError) {
    r.values[2] = headerResidue(b, p, p.innerL3Offset);
    r.values[3] = l4Residue(
        b, p, {p.innerL3Offset, p.innerL4Offset, p.l3End - p.innerL4Offset, p.innerProtocol});
  }
  return r;
}

bool udpChecksumIsNone(std::span<const uint8_t> b, size_t l4) { return load16(&b[l4 + 6]) == 0; }

void checkOffsets(const ParsedPacket& p, size_t size) {
  require(p.l3Offset < p.l4Offset && p.l4Offset <= p.l3End && p.l3End <= size,
          "l3 < l4 <= end <= size");
  require(p.l4Offset + p.l4Length <= p.l3End, "l4 length inside the packet");
  if (p.isIcmpError) {
    require(p.innerL3Offset == p.l4Offset + sluice::kIcmpHeaderLength, "quote follows ICMP header");
    require(p.innerL3Offset < p.innerL4Offset, "inner l3 < inner l4");
    require(p.innerL4Offset + sluice::kIcmpQuotedL4Length <= p.l3End, "8 quoted L4 bytes");
  }
  require(p.tuple.src.family() == p.family && p.tuple.dst.family() == p.family, "tuple family");
}

// Deterministic values for the rewrite, drawn from the input so the fuzzer
// can steer them too.
struct Mixer {
  uint64_t state;
  uint64_t next() {
    state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  IpAddress address(IpFamily family) {
    std::array<uint8_t, 16> bytes;
    uint64_t a = next(), b = next();
    std::memcpy(bytes.data(), &a, 8);
    std::memcpy(bytes.data() + 8, &b, 8);
    if (family == IpFamily::kV4) return IpAddress::v4({bytes[0], bytes[1], bytes[2], bytes[3]});
    return IpAddress::v6(bytes);
  }
};

enum class Op { kDnat, kSnat, kReverse };

void natAndCheck(std::span<const uint8_t> input, Framing framing, const ParsedPacket& parsed, Op op,
                 Mixer& mix) {
  std::vector<uint8_t> copy(input.begin(), input.end());
  std::span<uint8_t> packet(copy);
  ParsedPacket p = parsed;
  const Residues before = residues(packet, p);
  const bool outerUdpNone = p.protocol == Protocol::kUdp && udpChecksumIsNone(packet, p.l4Offset);
  const bool innerUdpNone = p.isIcmpError && p.innerProtocol == Protocol::kUdp &&
                            udpChecksumIsNone(packet, p.innerL4Offset);

  IpAddress addr = mix.address(p.family);
  auto port = static_cast<uint16_t>(mix.next());
  const bool echo = p.isIcmpError ? p.innerIsIcmpEcho : p.isIcmpEcho;
  FlowTuple original{mix.address(p.family), mix.address(p.family), port,
                     echo ? port : static_cast<uint16_t>(mix.next()), p.tuple.protocol};
  DropReason r = DropReason::kNone;
  switch (op) {
    case Op::kDnat:
      r = sluice::dnat(packet, p, addr, port);
      break;
    case Op::kSnat:
      r = sluice::snat(packet, p, addr, port);
      break;
    case Op::kReverse:
      r = sluice::reverseNat(packet, p, original);
      break;
  }
  require(r == DropReason::kNone, "NAT of a parsed packet succeeds");

  require(std::memcmp(copy.data(), input.data(), p.l3Offset) == 0, "L2 header untouched");
  require(std::memcmp(copy.data() + p.l3End, input.data() + p.l3End, input.size() - p.l3End) == 0,
          "bytes after the IP packet untouched");
  require(residues(packet, p) == before, "checksum residues preserved");
  if (p.protocol == Protocol::kUdp) {
    require(udpChecksumIsNone(packet, p.l4Offset) == outerUdpNone,
            "UDP checksum 0 stays 0, and no other value becomes 0");
  }
  if (p.isIcmpError && p.innerProtocol == Protocol::kUdp) {
    require(udpChecksumIsNone(packet, p.innerL4Offset) == innerUdpNone,
            "quoted UDP checksum 0 stays 0, and no other value becomes 0");
  }

  // What was asked for is what the packet now says.
  const FlowTuple& t = p.tuple;
  switch (op) {
    case Op::kDnat:
      require(p.isIcmpError ? (t.src == addr && t.srcPort == port)
                            : (t.dst == addr && t.dstPort == port),
              "DNAT result");
      break;
    case Op::kSnat:
      require(p.isIcmpError ? (t.dst == addr && t.dstPort == port)
                            : (t.src == addr && t.srcPort == port),
              "SNAT result");
      break;
    case Op::kReverse:
      require(p.isIcmpError ? t == original : t == original.reversed(), "reverse NAT result");
      break;
  }

  ParsedPacket again;
  require(sluice::parsePacket(packet, framing, again) == DropReason::kNone, "NATed packet parses");
  require(again.l3Offset == p.l3Offset && again.l4Offset == p.l4Offset && again.l3End == p.l3End &&
              again.innerL4Offset == p.innerL4Offset && again.isIcmpError == p.isIcmpError,
          "NATed packet has the same layout");
  require(again.tuple == p.tuple, "re-parse finds the tuple NAT reported");

  // NAT46/64 is refused without touching the packet.
  std::vector<uint8_t> before46(copy);
  IpAddress other = mix.address(p.family == IpFamily::kV4 ? IpFamily::kV6 : IpFamily::kV4);
  require(sluice::dnat(packet, p, other, port) == DropReason::kNatFamilyMismatch,
          "family change refused");
  require(copy == before46, "refused NAT leaves the packet alone");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> input(data, size);
  for (Framing framing : {Framing::kEthernet, Framing::kIp}) {
    ParsedPacket parsed;
    DropReason r = sluice::parsePacket(input, framing, parsed);
    require(static_cast<size_t>(r) < sluice::kDropReasonCount, "drop reason in range");
    if (r != DropReason::kNone) continue;
    checkOffsets(parsed, size);
    Mixer mix{size * 0x100000001b3ULL ^ (size > 0 ? data[size - 1] : 0)};
    for (Op op : {Op::kDnat, Op::kSnat, Op::kReverse}) natAndCheck(input, framing, parsed, op, mix);
  }
  return 0;
}
