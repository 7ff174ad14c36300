/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sl_ct: service connection tracking, shared by every BPF object and read by
 * the loader (restart adoption, `sluice debug`). LRU_HASH: when full, the
 * least recently used flow is evicted instead of new flows failing.
 *
 * A service flow has two entries, written together on its first packet:
 *   SL_CT_DIR_SERVICE  key = the client's packet before DNAT
 *                      (client -> frontend); value names the backend.
 *   SL_CT_DIR_REPLY    key = the backend's answer before reverse NAT
 *                      (backend -> client); value holds the frontend to
 *                      restore as the source.
 * The direction is part of the key so a flow whose reply tuple happens to
 * equal another flow's service tuple cannot collide with it.
 *
 * See bpf/abi/lb.h for the address layout rules.
 */
#ifndef SLUICE_BPF_ABI_CT_H
#define SLUICE_BPF_ABI_CT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define SL_CT_DIR_SERVICE 0
#define SL_CT_DIR_REPLY	  1

struct sl_ct_key {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family; /* SL_FAMILY_V4 / SL_FAMILY_V6 */
	__u8 dir;    /* SL_CT_DIR_* */
	__u8 pad;
};

/* Idle lifetimes, seconds (Cilium's defaults, bpf/lib/conntrack.h): an entry
 * idle longer than its lifetime is treated as absent and overwritten. */
#define SL_CT_LIFETIME_TCP_S	21600 /* established: 6 h */
#define SL_CT_LIFETIME_SYN_S	60    /* only SYN seen from this side */
#define SL_CT_LIFETIME_CLOSE_S	10    /* RST seen */
#define SL_CT_LIFETIME_NONTCP_S 60    /* UDP, SCTP */
/* last_seen_ns is rewritten at most this often (ns), so established flows do
 * not write a shared cache line on every packet. */
#define SL_CT_REFRESH_NS	1000000000ull

/* The flow is hairpinned: client and backend are the same pod, so the
 * client's source was rewritten to SL_HAIRPIN_* (lb.h) and replies also
 * need their destination restored to client_addr. */
#define SL_CT_F_HAIRPIN 0x01
/* The frontend is not a ClusterIP (NodePort, LoadBalancer, externalIP) and
 * so may be an address of this node. A reply whose source becomes a local
 * address would be dropped by the stack as a martian (a local source
 * arriving from a veth), so such replies are routed by the program itself
 * (bpf_fib_lookup + bpf_redirect_neigh) instead of handed to the stack. */
#define SL_CT_F_NODE_FRONTEND 0x02
/* The client's source was rewritten too: a NodePort / LoadBalancer /
 * externalIP flow from outside the node with externalTrafficPolicy=Cluster
 * (bpf/host.bpf.c), SNATed to the node's address so the backend answers
 * through this node, as kube-proxy's masquerade does.
 *   SL_CT_DIR_SERVICE: nat_addr/nat_port hold that SNAT source.
 *   SL_CT_DIR_REPLY:   client_addr/client_port hold the client, restored as
 *                      the destination of replies (key daddr/dport are the
 *                      SNAT source). */
#define SL_CT_F_SNAT 0x04

struct sl_ct_entry {
	/* SL_CT_DIR_REPLY: the frontend the client connected to, restored as
	 * the source of replies. SL_CT_DIR_SERVICE: zero, or the SNAT source
	 * with SL_CT_F_SNAT. */
	__be32 nat_addr[4];
	/* SL_CT_DIR_REPLY with SL_CT_F_HAIRPIN or SL_CT_F_SNAT: the client
	 * address restored as the destination of replies. Zero otherwise. */
	__be32 client_addr[4];
	__be16 nat_port;
	__u8 tcp_flags; /* union of TCP flags (header byte 13) seen this way */
	__u8 flags;	/* SL_CT_F_* */
	__u32 backend_id;
	__u32 set_id; /* backend set the flow was balanced over (lb.h) */
	/* SL_CT_DIR_REPLY with SL_CT_F_SNAT: the client's port, restored as
	 * the destination port of replies. Zero otherwise. */
	__be16 client_port;
	__u16 pad1;
	__u64 last_seen_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
};

#endif /* SLUICE_BPF_ABI_CT_H */
