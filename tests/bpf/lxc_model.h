// LxcModel: the userspace reference for bpf/lxc.bpf.c, built from the
// dataplane/ model (packet.h parse, nat.h rewrites, the ServiceTable and its
// backend-set rules), that the differential fuzzer (lxc_diff_fuzz_test.cc)
// holds every BPF_PROG_TEST_RUN of the real program against.
//
// What is compared, per frame (the program's verdict, its output frame and
// the drop reason it counted in sl_drops):
//
//  1. Frames the userspace parser accepts (TCP/UDP/ICMP, no VLAN tag):
//     the model predicts exactly.
//     - Service traffic (destination is a frontend): DNAT to a backend of
//       the set the service's rules give for new flows (backendSet(): family,
//       Local policy for ClusterIPs, active else terminating), the same
//       backend for the flow's later packets (conntrack) and for the
//       client's later flows under ClientIP affinity, plus the hairpin SNAT
//       when the backend is the client. Which backend of the set a new flow
//       gets is the program's hash (or Maglev slot): the model checks
//       membership, then expects the exact frame dataplane's dnat()/snat()
//       make for that backend.
//     - No backend: TCP RST / ICMP port unreachable sent back (redirect),
//       with the frame built here; a RST is dropped (no_backend); Local
//       policy with backends only elsewhere is dropped (no_local_backend).
//     - Replies and ICMP errors of a translated flow: dataplane's
//       reverseNat(); verdict pass, or redirect for non-ClusterIP frontends
//       (the program routes those itself; TEST_RUN has no route either way).
//     - Everything else: passed unchanged.
//     Translated frames must equal the model's byte for byte, except that a
//     checksum field may hold either ones'-complement zero (0x0000/0xffff)
//     where the two incremental updates may differ (never UDP's "none").
//  2. Frames the userspace parser refuses with reason R. The program must
//     never translate or redirect them, and may
//     - drop with R itself, or, where the parsers legitimately read in a
//       different order, with a header error found after R's check: R =
//       ipv4_options / fragment / ipv6_routing_header (userspace refuses
//       these before reading on; BPF reads on and refuses them only for
//       service flows), and IPv6 payload length 0 (a jumbogram, bad total
//       length, to userspace; an empty payload, so a truncated L4 or
//       extension header, to BPF). Among options, fragments and routing
//       headers themselves, userspace reports the first it meets, BPF the
//       first of options, fragment, routing header (lxc_refused());
//     - pass them unchanged when the frame is not IP at offset 12 (a VLAN
//       tag: userspace reads behind it, BPF never does: pod veths carry no
//       tags), or when R is not a header error (other L4 protocols, ICMP the userspace datapath does not
//       translate, options / fragments / routing headers of non-service
//       traffic) or the L4 protocol is not TCP/UDP (BPF leaves those to the
//       stack after the IP header checks).
//  3. Out of the model: IPv6 extension header chains userspace refuses by
//     shape (more than 4, Hop-by-Hop not first) that BPF walks (up to 6, any
//     order). Counted, not compared.
//
// State: conntrack and affinity as the program writes them, for one
// sequence of frames; reset() starts the next sequence from empty maps, as
// the fuzzer empties sl_ct and sl_affinity between sequences.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dataplane/drop_reason.h"
#include "dataplane/flow.h"
#include "dataplane/packet.h"
#include "dataplane/service.h"

namespace sluice::testing {

// What BPF_PROG_TEST_RUN reported for one frame.
struct LxcRun {
  uint32_t verdict = 0;          // TC_ACT_*
  std::vector<uint8_t> out;      // the frame as the program left it
  DropReason dropReason = DropReason::kNone;  // the sl_drops counter that grew, if any
};

class LxcModel {
 public:
  // How the comparisons came out, by class (printed by the fuzzer).
  struct Stats {
    uint64_t translated = 0;   // DNAT / reverse NAT / ICMP error translations agreed
    uint64_t rejected = 0;     // RST / port unreachable agreed
    uint64_t dropped = 0;      // drops with agreeing reasons
    uint64_t passed = 0;       // passed unchanged, agreed
    uint64_t outOfModel = 0;   // class 3 above
  };

  explicit LxcModel(const ServiceTable& table) : table_(table) {}

  // Forgets conntrack and affinity: the next frame starts a new sequence.
  void reset();
  // Checks one run of `in`; returns what disagreed, or "" when the program
  // and the model agree. Learns the flows the program created.
  std::string check(const std::vector<uint8_t>& in, const LxcRun& run);

  const Stats& stats() const { return stats_; }

 private:
  struct ReplyEntry {
    FlowTuple original;  // client -> frontend, as the client sent it
    bool nodeFrontend = false;
  };
  struct AffinityKey {
    ServiceKey service;
    IpFamily family;
    bool local;
    IpAddress client;
    friend auto operator<=>(const AffinityKey&, const AffinityKey&) = default;
  };
  struct BackendRef {
    IpAddress address;
    uint16_t port = 0;
  };

  std::string checkService(const std::vector<uint8_t>& in, const ParsedPacket& p,
                           const Service& svc, const LxcRun& run);
  std::string checkReply(const std::vector<uint8_t>& in, const ParsedPacket& p, const LxcRun& run);
  std::string checkIcmpError(const std::vector<uint8_t>& in, const ParsedPacket& p,
                             const LxcRun& run);
  std::string checkRefused(const std::vector<uint8_t>& in, DropReason reason, const LxcRun& run);
  std::string expectPass(const std::vector<uint8_t>& in, const LxcRun& run);
  std::string expectDrop(DropReason reason, const std::vector<uint8_t>& in, const LxcRun& run);

  const ServiceTable& table_;
  std::unordered_map<FlowTuple, BackendRef, FlowTupleHash> service_;  // SL_CT_DIR_SERVICE
  // SL_CT_DIR_REPLY, keyed by the reply tuple (backend -> client or hairpin).
  std::unordered_map<FlowTuple, ReplyEntry, FlowTupleHash> reply_;
  std::map<AffinityKey, BackendRef> affinity_;
  Stats stats_;
};

// Byte-for-byte comparison of two frames that may differ only in checksum
// fields holding the two ones'-complement zeros (see above); "" when equal.
std::string compareFrames(const std::vector<uint8_t>& want, const std::vector<uint8_t>& got);

}  // namespace sluice::testing
