// In-place NAT of a parsed packet, for the userspace datapaths.
//
// Every checksum is updated incrementally (RFC 1624 eqn. 3, checksum.h): the
// IPv4 header checksum, the L4 checksum's pseudo-header and port words, and
// for ICMP errors the quoted packet's checksums and the outer ICMP checksum
// that covers them. Cost is a few dozen word operations whatever the payload
// size, and a checksum that was wrong stays wrong by the same amount, so the
// receiver still drops it.
//
// Ports are host order. For ICMP echo the identifier stands in for both
// ports (flow.h), so rewriting either port rewrites the identifier.
//
// For an ICMP error, `parsed.tuple` is the quoted packet's, which travelled
// the opposite way to the error itself. The functions below are named for
// the flow, not the error: dnat() of an error rewrites the outer destination
// and the quoted source, which is what the flow's DNAT means for a packet
// going back the other way (see each function).
//
// All return DropReason::kNone on success. On a drop the packet is left
// untouched. On success `parsed` is updated to describe the rewritten packet
// (offsets do not move; the tuple changes), so rewrites can be chained.
// Nothing allocates or throws; there is no shared state, so any number of
// lcores may rewrite (their own) packets at once. Changing the address family
// (NAT46/64) is out of scope and returns kNatFamilyMismatch.
#pragma once

#include <cstdint>
#include <span>

#include "dataplane/drop_reason.h"
#include "dataplane/flow.h"
#include "dataplane/ip_address.h"
#include "dataplane/packet.h"

namespace sluice {

// Forward DNAT: destination becomes dst:dstPort (a service frontend to its
// chosen backend). On an ICMP error: the outer destination becomes dst and
// the quoted source dst:dstPort.
DropReason dnat(std::span<uint8_t> packet, ParsedPacket& parsed, const IpAddress& dst,
                uint16_t dstPort);

// Forward SNAT: source becomes src:srcPort (masquerade, or hairpin to a
// node-local backend). On an ICMP error: the outer source becomes src and the
// quoted destination src:srcPort.
DropReason snat(std::span<uint8_t> packet, ParsedPacket& parsed, const IpAddress& src,
                uint16_t srcPort);

// dnat() then snat() in one pass: for TCP and UDP one IPv4 header checksum
// and one L4 checksum update instead of two each (the full-NAT flows of a
// NodePort to a remote backend). ICMP echo and errors take the two calls.
// The result, packet and `parsed`, is theirs exactly.
DropReason fullNat(std::span<uint8_t> packet, ParsedPacket& parsed, const IpAddress& dst,
                   uint16_t dstPort, const IpAddress& src, uint16_t srcPort);

// Reply direction of a NATed flow whose first packet, as the client sent it,
// had the tuple `original` (client -> frontend; conntrack keeps it). A reply
// (backend -> client or SNAT address) becomes original.dst:dstPort ->
// original.src:srcPort, undoing DNAT and SNAT at once.
//
// An ICMP error quoting a forward packet as NATed (e.g. backend port
// unreachable, or "fragmentation needed" from a router on the way to the
// backend) gets its quoted tuple restored to `original`, its outer
// destination to original.src, and its outer source to original.dst only if
// the backend sent it itself: a router on the path keeps its own address, so
// traceroute and PMTUD still see the real hop.
DropReason reverseNat(std::span<uint8_t> packet, ParsedPacket& parsed, const FlowTuple& original);

// One direction of a flow's TCP/UDP translation, prepared once: the change
// to the IPv4 header checksum and to the L4 checksum (RFC 1624), each a
// folded ones'-complement sum, 0 when nothing it covers changes. An
// established flow's packets all have the same tuple, so each of them only
// needs its fields written and these added (the DPDK pipeline keeps them
// with the flow).
struct TranslationDeltas {
  uint16_t ipv4Header = 0;
  uint16_t l4 = 0;

  friend bool operator==(const TranslationDeltas&, const TranslationDeltas&) = default;
};

// The deltas of rewriting a packet of tuple `from` into tuple `to` (TCP or
// UDP, both of one family).
TranslationDeltas translationDeltas(const FlowTuple& from, const FlowTuple& to);

// Rewrites a TCP or UDP packet that is not an ICMP error, whose tuple is
// `from`, into `to`, given translationDeltas(from, to): the bytes that
// dnat(), snat(), fullNat() or reverseNat() write for that change, without
// computing the checksum changes again. `parsed` is not updated. Returns
// false, and writes nothing, for any other packet (ICMP, ICMP errors, other
// protocols, a buffer shorter than the packet, another family than `to`'s):
// those take the functions above.
bool applyTranslation(std::span<uint8_t> packet, const ParsedPacket& parsed, const FlowTuple& to,
                      TranslationDeltas deltas);

}  // namespace sluice
