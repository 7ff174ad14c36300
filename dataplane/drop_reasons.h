/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one list of reasons any datapath stage drops a packet: the BPF
 * programs (enum sl_drop_reason, bpf/abi/metrics.h), the userspace packet
 * code and the DPDK path (enum class DropReason, dataplane/drop_reason.h)
 * are both generated from it, so a value and its name mean the same drop
 * in every mode, and /metrics labels them alike ("drop.<name>").
 * tests/bpf/abi_layout_test.cc checks the enum in the BPF objects' BTF
 * against DropReason.
 *
 * Plain C (no C++): BPF programs include it. Values index per-CPU and
 * per-lcore counter arrays that outlive a process (pinned maps, shared
 * memory): append only.
 *
 * X(C name, C++ enumerator without its k, counter name)
 */
#ifndef SLUICE_DATAPLANE_DROP_REASONS_H
#define SLUICE_DATAPLANE_DROP_REASONS_H

#define SL_DROP_REASON_LIST(X)                                                                     \
	X(NONE, None, none) /* never counted */                                                    \
	/* L2 */                                                                                   \
	X(TRUNCATED_L2, TruncatedL2, truncated_l2)        /* < Ethernet header (14 B) or its VLAN tag */ \
	X(UNSUPPORTED_ETHERTYPE, UnsupportedEtherType, unsupported_ethertype) /* ARP, LLDP: the stack's */ \
	X(STACKED_VLAN, StackedVlan, stacked_vlan)        /* 802.1ad or a second 802.1Q tag */     \
	/* L3 */                                                                                   \
	X(TRUNCATED_L3, TruncatedL3, truncated_l3)        /* < fixed IP header, or ext header past end */ \
	X(BAD_IP_VERSION, BadIpVersion, bad_ip_version)   /* not 4/6, or not the EtherType's */    \
	X(BAD_IPV4_HEADER_LENGTH, BadIpv4HeaderLength, bad_ipv4_header_length) /* IHL < 5 */       \
	X(IPV4_OPTIONS, Ipv4Options, ipv4_options)        /* IHL > 5: refused, as Cilium/Katran */ \
	X(BAD_IP_TOTAL_LENGTH, BadIpTotalLength, bad_ip_total_length) /* < header or past buffer */ \
	X(FRAGMENT, Fragment, fragment)                   /* no ports, no reassembly: cannot NAT */ \
	X(IPV6_HOP_BY_HOP_NOT_FIRST, Ipv6HopByHopNotFirst, ipv6_hop_by_hop_not_first) /* RFC 8200 4.3 */ \
	X(IPV6_EXT_HEADER_UNSUPPORTED, Ipv6ExtHeaderUnsupported, ipv6_ext_header_unsupported)      \
	X(IPV6_EXT_HEADER_LIMIT, Ipv6ExtHeaderLimit, ipv6_ext_header_limit) /* too many to walk */  \
	X(IPV6_ROUTING_HEADER, Ipv6RoutingHeader, ipv6_routing_header) /* segments left > 0 */     \
	/* L4 */                                                                                   \
	X(UNSUPPORTED_PROTOCOL, UnsupportedProtocol, unsupported_protocol) /* not TCP/UDP/ICMP */  \
	X(TRUNCATED_L4, TruncatedL4, truncated_l4)        /* L4 header past the IP packet */       \
	X(BAD_TCP_HEADER_LENGTH, BadTcpHeaderLength, bad_tcp_header_length) /* data offset < 5 */  \
	X(BAD_UDP_LENGTH, BadUdpLength, bad_udp_length)   /* < 8 or past the IP packet */          \
	X(ICMP_UNSUPPORTED_TYPE, IcmpUnsupportedType, icmp_unsupported_type) /* the stack's */     \
	X(ICMP_ERROR_TRUNCATED_INNER, IcmpErrorTruncatedInner, icmp_error_truncated_inner)         \
	X(ICMP_ERROR_BAD_INNER, IcmpErrorBadInner, icmp_error_bad_inner)                           \
	X(ICMP_ERROR_UNSUPPORTED_INNER, IcmpErrorUnsupportedInner, icmp_error_unsupported_inner)   \
	/* NAT */                                                                                  \
	X(NAT_FAMILY_MISMATCH, NatFamilyMismatch, nat_family_mismatch) /* NAT46/64: unsupported */ \
	X(NAT_BUFFER_MISMATCH, NatBufferMismatch, nat_buffer_mismatch) /* caller bug, counted */   \
	X(TTL_EXCEEDED, TtlExceeded, ttl_exceeded)        /* forwarding stages (DPDK) */           \
	/* Service selection and state */                                                          \
	X(NO_BACKEND, NoBackend, no_backend)              /* refused: no ready endpoint */         \
	X(NO_LOCAL_BACKEND, NoLocalBackend, no_local_backend) /* Local policy, none on this node */ \
	X(MAGLEV_MISSING, MaglevMissing, maglev_missing)  /* table absent: loader race */          \
	X(CT_FULL, CtFull, ct_full)                       /* conntrack insert failed */            \
	X(NAT_FAILED, NatFailed, nat_failed)              /* a rewrite helper failed */            \
	X(REJECT_FAILED, RejectFailed, reject_failed)     /* could not build the RST/ICMP */       \
	X(SOCK_REVNAT_FULL, SockRevnatFull, sock_revnat_full) /* sl_sock_rev insert failed */   \
	/* The DPDK path */                                                                        \
	X(SNAT_PORTS_EXHAUSTED, SnatPortsExhausted, snat_ports_exhausted) /* lcore's share taken */ \
	X(NO_NEXT_HOP, NoNextHop, no_next_hop)           /* remote backend, no gateway MAC */      \
	X(HANDOFF_RING_FULL, HandoffRingFull, handoff_ring_full) /* to the flow's lcore */          \
	X(EXCEPTION_RING_FULL, ExceptionRingFull, exception_ring_full) /* to the kernel path */    \
	X(TX_QUEUE_FULL, TxQueueFull, tx_queue_full)     /* the port did not take the burst */     \
	X(ENCAP_FAILED, EncapFailed, encap_failed)       /* DSR: no headroom or MTU exceeded */

#endif /* SLUICE_DATAPLANE_DROP_REASONS_H */
