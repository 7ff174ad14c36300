// SPDX-License-Identifier: GPL-2.0
/*
 * bpf_host: tc ingress on the node's uplink, i.e. every packet arriving at
 * the node from outside. Two jobs:
 *
 *   1. Requests from outside clients to a node-external frontend (NodePort
 *      on a node address, LoadBalancer ingress IP, externalIP; ClusterIPs
 *      are not served from outside and pass to the stack): pick a backend
 *      with lb_choose() (the same routine as bpf_lxc and bpf_sock) over
 *      the set externalTrafficPolicy names, record the flow in sl_ct, DNAT,
 *      and forward it ourselves (lib/fib.h).
 *        - eTP=Local: node-local backends only, the client's address is
 *          kept (no SNAT). No local backend while others exist elsewhere:
 *          dropped and counted (drop.no_local_backend), as kube-proxy does;
 *          the load balancer's health check takes this node out.
 *        - eTP=Cluster: the source is also rewritten to this node's address
 *          of the family (load-time sl_node_addr4/6, set by the loader's
 *          attachUplink()), whether the backend is here or on another node:
 *          kube-proxy masquerades every eTP=Cluster packet, and Cilium's
 *          SNAT does the same for remote backends. A backend on another
 *          node then answers to us, not to the client (who would drop an
 *          answer from an address it never spoke to). The client's port is
 *          kept when its reply tuple is free, else one of a few hash-chosen
 *          ports in [32768, 61000) (host_snat_port()).
 *      Nothing eligible at all: refused (TCP RST / ICMP unreachable back
 *      out of the uplink, lib/reject.h).
 *   2. Replies from backends on other nodes (the packet matches a
 *      SL_CT_DIR_REPLY entry): restore the frontend as the source and, for
 *      SNATed flows, the client as the destination; route back out.
 *      Replies from backends on this node enter through their pod veth,
 *      where bpf_lxc does the same from the same pinned sl_ct.
 *   3. ICMP errors from remote backends or routers about those flows
 *      (lib/icmp_err.h): reverse-translated the same way and routed.
 *
 * Forwarding: a SNATed request carries a node address as its source, which
 * ip_rcv would drop as a martian on the uplink, so every translated packet
 * is sent with bpf_fib_lookup + bpf_redirect_neigh (to the pod's veth, or
 * back out of the uplink for a remote backend); TC_ACT_OK only when the
 * FIB has no forwarding answer.
 *
 * Why tc and not XDP for this path: a veth only delivers XDP_TX / redirected
 * frames when its peer has an XDP program (or GRO) too, and XDP has no
 * bpf_redirect_neigh or checksum-offload state, so tc is the path that works
 * on the veth uplinks of the netns suite and of container-hosted nodes. An
 * XDP object (early lookup and drop) is not part of this slice yet.
 *
 * Everything else passes unchanged. Malformed packets: lib/parse.h.
 */
#include "bpf/lib/ct.h"
#include "bpf/lib/fib.h"
#include "bpf/lib/icmp_err.h"
#include "bpf/lib/lb.h"
#include "bpf/lib/maps.h"
#include "bpf/lib/metrics.h"
#include "bpf/lib/nat.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/reject.h"

/* This node's addresses, the SNAT source of eTP=Cluster flows (network
 * order, lb.h layout). Zero: no address of that family; such flows are
 * then DNATed only, which reaches local backends but not remote ones. */
const volatile __be32 sl_node_addr4 = 0;
const volatile __be32 sl_node_addr6[4] = {};

/* Alternative SNAT ports when the client's own port is taken. 61000 is
 * Linux's default ip_local_port_range end; [32768, 61000) is its range. */
#define HOST_SNAT_PORT_MIN   32768
#define HOST_SNAT_PORT_SPAN  (61000 - 32768)
#define HOST_SNAT_TRIES	     4

static __always_inline enum sl_drop_reason host_refused(const struct sl_pkt *pkt)
{
	if (pkt->flags & SL_PKT_F_IPV4_OPTIONS)
		return SL_DROP_IPV4_OPTIONS;
	if (pkt->flags & SL_PKT_F_FRAGMENT)
		return SL_DROP_FRAGMENT;
	if (pkt->flags & SL_PKT_F_ROUTING)
		return SL_DROP_IPV6_ROUTING_HEADER;
	return SL_DROP_NONE;
}

/* The SNAT source of *pkt's family; false when none is configured. */
static __always_inline bool host_node_addr(__be32 *addr, __u8 family)
{
	addr[0] = addr[1] = addr[2] = addr[3] = 0;
	if (family == SL_FAMILY_V4) {
		addr[0] = sl_node_addr4;
	} else {
		addr[0] = sl_node_addr6[0];
		addr[1] = sl_node_addr6[1];
		addr[2] = sl_node_addr6[2];
		addr[3] = sl_node_addr6[3];
	}
	return (addr[0] | addr[1] | addr[2] | addr[3]) != 0;
}

/* A free SNAT port for the new flow of *pkt to *be, or 0 if none of the
 * tries is free (the packet is then dropped as ct_full; the client's
 * retransmission tries again). Free: no live reply entry holds the tuple
 * and no frontend is the node address with that port. Sockets of the node
 * itself are not checked: a local connection from the node address to the
 * same backend with the same port would collide (Cilium reserves a port
 * range for this; here the alternatives lie in the kernel's ephemeral
 * range, so a collision needs the first-choice port to be taken too). */
static __always_inline __be16 host_snat_port(const struct sl_pkt *pkt,
					     const struct sl_backend *be,
					     const __be32 *snat, __u32 hash, __u64 now)
{
	__be16 port = pkt->sport;
	int i;

	/* Unrolled, as every loop in these objects: clang lays this one out
	 * with the back-edge as the fall-through after a helper call, which
	 * Linux 6.1's verifier refuses ("back-edge from insn X to X+1":
	 * check_cfg accepted loops only through jump edges until later
	 * releases dropped that restriction). */
#pragma unroll
	for (i = 0; i < HOST_SNAT_TRIES; i++) {
		/* Not a frontend of the node address itself (a client port of
		 * 30080 towards NodePort 30080's backend): its replies would
		 * look like new requests to that frontend. */
		if (!lb_lookup(snat, port, pkt->proto, pkt->family) &&
		    ct_reply_free(pkt, be, snat, port, now))
			return port;
		port = bpf_htons(HOST_SNAT_PORT_MIN + (hash + i) % HOST_SNAT_PORT_SPAN);
	}
	return 0;
}

static __always_inline int host_service(struct __sk_buff *ctx, const struct sl_pkt *pkt,
					const struct sl_svc_value *svc)
{
	enum sl_drop_reason reason = host_refused(pkt);
	struct lb_choice choice = {};
	struct lb_client client = { .kind = pkt->family };
	struct sl_backend *be = NULL;
	struct sl_ct_entry *ct;
	struct sl_ct_key key;
	__be32 snat_addr[4] = {};
	__be16 snat_port = 0;
	bool snat = false;
	__u32 backend_id, hash;
	__u64 now;

	if (reason != SL_DROP_NONE)
		return metrics_drop(ctx, reason);
	now = bpf_ktime_get_ns();

	ct_key_of(&key, pkt, SL_CT_DIR_SERVICE);
	ct = ct_lookup(&key, now);
	if (ct) {
		backend_id = ct->backend_id;
		be = bpf_map_lookup_elem(&sl_backends, &backend_id);
		if (be && lb_backend_of(be, svc, pkt->family)) {
			ct_touch(ct, pkt->tcp_flags, now);
			snat = ct->flags & SL_CT_F_SNAT;
			__builtin_memcpy(snat_addr, ct->nat_addr, sizeof(snat_addr));
			snat_port = ct->nat_port;
			metrics_event(ctx, SL_EV_SVC_ESTABLISHED);
			goto nat;
		}
		metrics_event(ctx, SL_EV_SVC_RESELECT);
	}

	/* Traffic from outside: externalTrafficPolicy decides. */
	__builtin_memcpy(client.addr, pkt->saddr, sizeof(client.addr));
	hash = sl_flow_hash(pkt->saddr, pkt->daddr, pkt->sport, pkt->dport, pkt->proto);
	reason = lb_choose(svc, pkt->family, svc->flags & SL_SVC_F_LOCAL, &client, hash, now,
			   &choice);
	if (choice.flags & LB_F_TERMINATING)
		metrics_event(ctx, SL_EV_TERMINATING_FALLBACK);
	if (choice.flags & LB_F_AFFINITY_HIT)
		metrics_event(ctx, SL_EV_AFFINITY_HIT);
	if (choice.flags & LB_F_REFUSE)
		return reject_no_backend(ctx, pkt);
	if (reason != SL_DROP_NONE)
		return metrics_drop(ctx, reason);
	be = choice.be;
	backend_id = choice.backend_id;
	if (!be) /* never: lb_choose() sets it on success; for the verifier */
		return metrics_drop(ctx, SL_DROP_NO_BACKEND);

	snat = !(svc->flags & SL_SVC_F_LOCAL) && host_node_addr(snat_addr, pkt->family);
	if (snat) {
		snat_port = host_snat_port(pkt, be, snat_addr, hash, now);
		if (!snat_port)
			return metrics_drop(ctx, SL_DROP_CT_FULL);
		if (ct_create_snat(pkt, be, backend_id, choice.set_id, now, snat_addr, snat_port,
				   SL_CT_F_NODE_FRONTEND) < 0)
			return metrics_drop(ctx, SL_DROP_CT_FULL);
	} else if (ct_create(pkt, be, backend_id, choice.set_id, now, NULL,
			     SL_CT_F_NODE_FRONTEND) < 0) {
		return metrics_drop(ctx, SL_DROP_CT_FULL);
	}
	metrics_event(ctx, SL_EV_SVC_NEW);

nat:
	if (nat_rewrite(ctx, pkt, SL_NAT_DST, be->addr, be->port) < 0)
		return metrics_drop(ctx, SL_DROP_NAT_FAILED);
	if (snat) {
		if (nat_rewrite(ctx, pkt, SL_NAT_SRC, snat_addr, snat_port) < 0)
			return metrics_drop(ctx, SL_DROP_NAT_FAILED);
		metrics_event(ctx, SL_EV_SNAT);
	}
	return fib_redirect(ctx, pkt, snat ? snat_addr : pkt->saddr, be->addr);
}

/* A remote backend's answer to a flow this node translated. */
static __always_inline int host_reply(struct __sk_buff *ctx, const struct sl_pkt *pkt)
{
	enum sl_drop_reason reason;
	struct sl_ct_entry *ct;
	struct sl_ct_key key;
	__be32 addr[4], client[4];
	__be16 port, client_port;
	bool snat;

	ct_key_of(&key, pkt, SL_CT_DIR_REPLY);
	ct = ct_lookup(&key, bpf_ktime_get_ns());
	if (!ct) {
		metrics_event(ctx, SL_EV_PASS_NON_SERVICE);
		return CTX_ACT_OK;
	}
	reason = host_refused(pkt);
	if (reason != SL_DROP_NONE)
		return metrics_drop(ctx, reason);

	ct_touch(ct, pkt->tcp_flags, bpf_ktime_get_ns());
	snat = ct->flags & SL_CT_F_SNAT;
	__builtin_memcpy(addr, ct->nat_addr, sizeof(addr));
	__builtin_memcpy(client, ct->client_addr, sizeof(client));
	port = ct->nat_port;
	client_port = ct->client_port;
	if (nat_rewrite(ctx, pkt, SL_NAT_SRC, addr, port) < 0)
		return metrics_drop(ctx, SL_DROP_NAT_FAILED);
	if (snat && nat_rewrite(ctx, pkt, SL_NAT_DST, client, client_port) < 0)
		return metrics_drop(ctx, SL_DROP_NAT_FAILED);
	metrics_event(ctx, SL_EV_REV_NAT);
	return fib_redirect(ctx, pkt, addr, snat ? client : pkt->daddr);
}

/* Packets parse_packet() leaves to the stack (SL_PARSE_PASS); a verdict
 * is >= 0. */
#define HOST_NOT_TCP_UDP (-1)

/* TCP and UDP. A BPF-to-BPF call, as is icmp_err_rev(): each has its own
 * stack frame, where inlining both into the entry point would pass the
 * verifier's 512-byte limit for the frames of one call chain. */
static __noinline int host_l4(struct __sk_buff *ctx)
{
	struct sl_pkt pkt = {};
	struct sl_svc_value *svc;
	int ret;

	ret = parse_packet(ctx, &pkt);
	if (ret == SL_PARSE_PASS)
		return HOST_NOT_TCP_UDP;
	if (ret != SL_PARSE_OK)
		return metrics_drop(ctx, (enum sl_drop_reason)ret);

	svc = lb_lookup_service(&pkt);
	if (svc && !(svc->flags & SL_SVC_F_CLUSTER_IP))
		return host_service(ctx, &pkt, svc);
	return host_reply(ctx, &pkt);
}

SEC("tc")
int sl_host_ingress(struct __sk_buff *ctx)
{
	int ret = host_l4(ctx);

	if (ret != HOST_NOT_TCP_UDP)
		return ret;
	/* ICMP errors about service flows (lib/icmp_err.h). */
	ret = icmp_err_rev(ctx, true);
	if (ret != SL_ICMP_ERR_NONE)
		return ret;
	metrics_event(ctx, SL_EV_PASS_NON_SERVICE);
	return CTX_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
