/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service load-balancing maps shared by every BPF object (lxc, host, xdp,
 * sock) and the C++ loader. One definition: the BPF programs and the loader
 * both include this file; bpf/loader/abi_layout.h static_asserts every size
 * and offset, and tests/bpf/abi_layout_test.cc compares them against the
 * BTF clang emitted for the objects.
 *
 * Rules (STYLE.md): plain C, fixed-width kernel types, explicit padding, no
 * bitfields or pointers. Multi-byte fields named __be* are network order;
 * everything else is host order.
 *
 * Addresses: one layout for IPv4 and IPv6 (16 bytes + family), IPv4 in
 * addr[0] and addr[1..3] zero. Cilium splits lb4_/lb6_ maps to save 12 bytes
 * per IPv4 key; at this project's scale (10^5 frontends, 10^6 backends) that
 * is ~12 MiB, and one layout halves the maps, the loader code and the
 * datapath branches. Keys are always fully written (zeroed padding), because
 * the kernel hashes every key byte.
 */
#ifndef SLUICE_BPF_ABI_LB_H
#define SLUICE_BPF_ABI_LB_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Address families as stored in maps: the IP version number, as the model's
 * IpFamily (dataplane/ip_address.h). */
#define SL_FAMILY_V4 4
#define SL_FAMILY_V6 6

/*
 * sl_services: frontend -> service. HASH.
 * One entry per frontend (ClusterIP, every node address of a NodePort,
 * LoadBalancer ingress IP, externalIP) of every service port.
 */
struct sl_svc_key {
	__be32 addr[4];
	__be16 port;
	__u8 proto;  /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_SCTP */
	__u8 family; /* SL_FAMILY_V4 / SL_FAMILY_V6 */
};

/* Frontend scope: which kind of Kubernetes address this is. */
#define SL_SVC_F_CLUSTER_IP	(1u << 0)
#define SL_SVC_F_NODE_PORT	(1u << 1)
#define SL_SVC_F_LOADBALANCER	(1u << 2)
#define SL_SVC_F_EXTERNAL_IP	(1u << 3)
/* sessionAffinity: ClientIP; affinity_timeout_s holds the timeout. */
#define SL_SVC_F_AFFINITY	(1u << 4)
/* This frontend's traffic policy is Local: internalTrafficPolicy for a
 * ClusterIP, externalTrafficPolicy otherwise. Traffic it applies to uses the
 * node-local backend set (svc_id | SL_SVC_ID_LOCAL). Pod traffic to an
 * external address ignores externalTrafficPolicy, as kube-proxy does. */
#define SL_SVC_F_LOCAL		(1u << 5)
/* Backends are chosen through the Maglev table in sl_maglev, not slots. */
#define SL_SVC_F_MAGLEV		(1u << 6)

/*
 * Backend sets. A service's backends are grouped into sets by family (a
 * frontend is only ever translated to a backend of its own family: no
 * NAT46/64) and locality (the node-local subset for Local traffic policies).
 * A set's id is the service id with these bits; service ids are therefore
 * 1..2^30-1, and 0 is never allocated.
 */
#define SL_SVC_ID_LOCAL		0x80000000u /* node-local backends only */
#define SL_SVC_ID_V6		0x40000000u /* IPv6 backends */
#define SL_SVC_ID_MASK		0x3fffffffu

struct sl_svc_value {
	/* Service id (no set bits), allocated by the loader upwards from one
	 * past the highest id in the maps, so a live conntrack entry's ids
	 * are not handed to another service while the agent runs. */
	__u32 svc_id;
	/* Cluster-wide set of the frontend's family (id svc_id, | SL_SVC_ID_V6
	 * for IPv6): slots [0, active_count) are active backends,
	 * [active_count, active_count + terminating_count) terminating ones,
	 * which new flows use only when active_count is 0 (the loader then
	 * lays them out from slot 0, so a set is always used from slot 0). */
	__u16 active_count;
	__u16 terminating_count;
	/* The node-local set (| SL_SVC_ID_LOCAL), same layout; programmed only
	 * when some frontend of the service has SL_SVC_F_LOCAL. */
	__u16 local_active_count;
	__u16 local_terminating_count;
	__u32 flags;		  /* SL_SVC_F_* */
	__u32 affinity_timeout_s; /* 1..86400 when SL_SVC_F_AFFINITY */
	/* Slots of each Maglev table of this service (prime), when
	 * SL_SVC_F_MAGLEV; 0 otherwise. */
	__u32 maglev_size;
};

/*
 * Hairpin: a pod reaching itself through a service. Its own address as the
 * source would make the kernel drop the DNATed packet as a martian (a local
 * source arriving from outside), so the source becomes this address, which
 * no node or pod may use, and the pod's answers to it come back through
 * its veth to be reverse-translated. Cilium uses the same IPv4 address;
 * the IPv6 one is a ULA prefix ("slu" in ASCII) with the same role.
 * Network order, as stored: 169.254.42.1 and fd73:6c75::1.
 */
#define SL_HAIRPIN_V4_BYTES {169, 254, 42, 1}
#define SL_HAIRPIN_V6_BYTES {0xfd, 0x73, 0x6c, 0x75, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}

/*
 * sl_slots: (backend set, slot) -> backend id. HASH.
 */
struct sl_slot_key {
	__u32 set_id; /* svc_id | SL_SVC_ID_V6? | SL_SVC_ID_LOCAL? */
	__u32 slot;
};

/*
 * sl_backends: backend id -> backend. HASH.
 * A backend belongs to exactly one service (svc_id): the same pod IP:port in
 * two services is two backends, so one service's change never rewrites
 * another's entries. Backends that take no new flows (terminating while
 * others are active, quarantined) stay here so established flows keep them.
 */
#define SL_BACKEND_ACTIVE	0
#define SL_BACKEND_TERMINATING	1
#define SL_BACKEND_QUARANTINED	2

#define SL_BACKEND_F_LOCAL	(1u << 0) /* runs on this node */

struct sl_backend {
	__be32 addr[4];
	__be16 port;
	__u8 family;
	__u8 state; /* SL_BACKEND_* */
	__u8 flags; /* SL_BACKEND_F_* */
	__u8 pad[3];
	/* Owning service: conntrack and affinity entries naming this backend
	 * are honoured only while it still belongs to their service. */
	__u32 svc_id;
};

/*
 * sl_maglev: backend set id -> inner ARRAY map of maglev_size __u32 backend
 * ids (slot -> backend id). HASH_OF_MAPS whose inner maps carry
 * BPF_F_INNER_MAP, so every service may have its own table size. A flow uses
 * slot sl_flow_hash() % maglev_size.
 */

/*
 * sl_affinity: (backend set, client address) -> backend. LRU_HASH.
 * sessionAffinity ClientIP: new flows from one client go to the same backend
 * while it stays eligible and the client was seen within the timeout.
 */
/* sl_affinity_key.family of a client known by its network namespace, not
 * an address: the socket hooks (sock.bpf.c) run at connect(), before the
 * socket has a source address, so they key affinity on the netns cookie
 * (bpf_get_netns_cookie(), host order, in client[0..1]) as Cilium does.
 * All of a netns's addresses are one client: stickier than per address,
 * never less. Packet hooks use SL_FAMILY_V4/V6 and the source address. */
#define SL_AFFINITY_NETNS 0xff

struct sl_affinity_key {
	__u32 set_id;
	__u8 family; /* the client's: SL_FAMILY_V4 / SL_FAMILY_V6 / SL_AFFINITY_NETNS */
	__u8 pad[3];
	__be32 client[4];
};

struct sl_affinity_value {
	__u32 backend_id;
	__u32 pad;
	__u64 last_used_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
};

#endif /* SLUICE_BPF_ABI_LB_H */
