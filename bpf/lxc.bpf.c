// SPDX-License-Identifier: GPL-2.0
/*
 * bpf_lxc: tc ingress on the host side of a pod's veth, i.e. every packet a
 * pod sends. Two jobs:
 *
 *   1. Service traffic (destination is a frontend in sl_services): pick a
 *      backend (conntrack for established flows; affinity, Maglev or a
 *      hashed slot for new ones; terminating backends only when nothing is
 *      active), record the flow in sl_ct, DNAT to the backend. No eligible
 *      backend: refuse (TCP RST / ICMP port unreachable back to the pod),
 *      or drop for a Local policy whose backends are all on other nodes
 *      (kube-proxy drops those too).
 *   2. Replies from a backend pod (the packet matches a SL_CT_DIR_REPLY
 *      entry): restore the frontend as the source (reverse NAT). When the
 *      frontend may be an address of this node (NodePort, LoadBalancer,
 *      externalIP), the reply is routed here (bpf_fib_lookup +
 *      bpf_redirect_neigh): the stack would drop a packet with a local
 *      source arriving on a veth as a martian.
 *   3. Hairpin, a pod reaching itself through a service: the source is also
 *      rewritten (to SL_HAIRPIN_*, abi/lb.h) and restored on its answers.
 *   4. ICMP errors a backend pod (or a router) sends about a translated
 *      flow (port unreachable, fragmentation needed, time exceeded) are
 *      reverse-translated like replies, so the client's socket gets them
 *      (lib/icmp_err.h).
 *
 * Because both the client's and the backend's packets enter the host
 * through a pod veth's ingress, one hook serves both directions for
 * backends on this node; no program on the pod-facing egress is needed.
 * Backends on other nodes answer through the uplink, where bpf_host uses
 * the same pinned sl_ct; local backends of flows bpf_host SNATed (outside
 * clients, eTP=Cluster) answer here, and get their destination restored
 * to the client too (SL_CT_F_SNAT).
 *
 * Backend selection is lb_choose() (lib/lb.h), the same routine bpf_sock
 * runs at connect(): both paths follow one set of rules.
 *
 * Everything else passes unchanged (TC_ACT_OK). See lib/parse.h for what
 * happens to malformed packets.
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

/* Packets whose headers parse but that the NAT paths refuse (parse.h). */
static __always_inline enum sl_drop_reason lxc_refused(const struct sl_pkt *pkt)
{
	if (pkt->flags & SL_PKT_F_IPV4_OPTIONS)
		return SL_DROP_IPV4_OPTIONS;
	if (pkt->flags & SL_PKT_F_FRAGMENT)
		return SL_DROP_FRAGMENT;
	if (pkt->flags & SL_PKT_F_ROUTING)
		return SL_DROP_IPV6_ROUTING_HEADER;
	return SL_DROP_NONE;
}

static __always_inline int lxc_service(struct __sk_buff *ctx, const struct sl_pkt *pkt,
				       const struct sl_svc_value *svc)
{
	enum sl_drop_reason reason = lxc_refused(pkt);
	struct lb_choice choice = {};
	struct lb_client client = { .kind = pkt->family };
	struct sl_backend *be = NULL;
	struct sl_ct_entry *ct;
	struct sl_ct_key key;
	__be32 hairpin[4];
	__u32 backend_id;
	__u64 now;

	if (reason != SL_DROP_NONE)
		return metrics_drop(ctx, reason);
	now = bpf_ktime_get_ns();

	ct_key_of(&key, pkt, SL_CT_DIR_SERVICE);
	ct = ct_lookup(&key, now);
	if (ct) {
		backend_id = ct->backend_id;
		be = bpf_map_lookup_elem(&sl_backends, &backend_id);
		/* The backend must still exist and still belong to this
		 * service; terminating and quarantined ones keep their flows. */
		if (be && lb_backend_of(be, svc, pkt->family)) {
			ct_touch(ct, pkt->tcp_flags, now);
			metrics_event(ctx, SL_EV_SVC_ESTABLISHED);
			goto dnat;
		}
		metrics_event(ctx, SL_EV_SVC_RESELECT);
	}

	/* Pods honour internalTrafficPolicy on ClusterIPs; their traffic to
	 * external addresses is treated as Cluster (kube-proxy does the same). */
	__builtin_memcpy(client.addr, pkt->saddr, sizeof(client.addr));
	reason = lb_choose(svc, pkt->family, lb_local_for_node_client(svc), &client,
			   sl_flow_hash(pkt->saddr, pkt->daddr, pkt->sport, pkt->dport,
					pkt->proto),
			   now, &choice);
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
	nat_hairpin_addr(hairpin, pkt->family);
	if (ct_create(pkt, be, backend_id, choice.set_id, now,
		      addr_equal(be->addr, pkt->saddr) ? hairpin : NULL,
		      (svc->flags & SL_SVC_F_CLUSTER_IP) ? 0 : SL_CT_F_NODE_FRONTEND) < 0)
		return metrics_drop(ctx, SL_DROP_CT_FULL);
	metrics_event(ctx, SL_EV_SVC_NEW);

dnat:
	if (nat_rewrite(ctx, pkt, SL_NAT_DST, be->addr, be->port) < 0)
		return metrics_drop(ctx, SL_DROP_NAT_FAILED);
	/* Hairpin: the pod reached itself; see SL_HAIRPIN_* in abi/lb.h. */
	if (addr_equal(be->addr, pkt->saddr)) {
		nat_hairpin_addr(hairpin, pkt->family);
		if (nat_rewrite(ctx, pkt, SL_NAT_SRC, hairpin, pkt->sport) < 0)
			return metrics_drop(ctx, SL_DROP_NAT_FAILED);
		metrics_event(ctx, SL_EV_HAIRPIN);
	}
	return CTX_ACT_OK;
}

static __always_inline int lxc_reply(struct __sk_buff *ctx, const struct sl_pkt *pkt)
{
	enum sl_drop_reason reason;
	struct sl_ct_entry *ct;
	struct sl_ct_key key;
	__be32 addr[4], client[4];
	bool hairpin, snat, routed;
	__be16 port, client_port;

	ct_key_of(&key, pkt, SL_CT_DIR_REPLY);
	ct = ct_lookup(&key, bpf_ktime_get_ns());
	if (!ct) {
		metrics_event(ctx, SL_EV_PASS_NON_SERVICE);
		return CTX_ACT_OK;
	}
	reason = lxc_refused(pkt);
	if (reason != SL_DROP_NONE)
		return metrics_drop(ctx, reason);

	ct_touch(ct, pkt->tcp_flags, bpf_ktime_get_ns());
	hairpin = ct->flags & SL_CT_F_HAIRPIN;
	snat = ct->flags & SL_CT_F_SNAT;
	client_port = snat ? ct->client_port : pkt->dport;
	routed = ct->flags & SL_CT_F_NODE_FRONTEND;
	__builtin_memcpy(client, ct->client_addr, sizeof(client));
	__builtin_memcpy(addr, ct->nat_addr, sizeof(addr));
	port = ct->nat_port;
	if (nat_rewrite(ctx, pkt, SL_NAT_SRC, addr, port) < 0)
		return metrics_drop(ctx, SL_DROP_NAT_FAILED);
	/* Hairpin, or an outside client SNATed by bpf_host: restore it. */
	if ((hairpin || snat) && nat_rewrite(ctx, pkt, SL_NAT_DST, client, client_port) < 0)
		return metrics_drop(ctx, SL_DROP_NAT_FAILED);
	metrics_event(ctx, SL_EV_REV_NAT);
	if (routed)
		return fib_redirect(ctx, pkt, addr, (hairpin || snat) ? client : pkt->daddr);
	return CTX_ACT_OK;
}

/* Packets parse_packet() leaves to the stack (SL_PARSE_PASS); a verdict
 * is >= 0. */
#define LXC_NOT_TCP_UDP (-1)

/* TCP and UDP. A BPF-to-BPF call, as is icmp_err_rev(): each has its own
 * stack frame, where inlining both into the entry point would pass the
 * verifier's 512-byte limit for the frames of one call chain. */
static __noinline int lxc_l4(struct __sk_buff *ctx)
{
	struct sl_pkt pkt = {};
	struct sl_svc_value *svc;
	int ret;

	ret = parse_packet(ctx, &pkt);
	if (ret == SL_PARSE_PASS)
		return LXC_NOT_TCP_UDP;
	if (ret != SL_PARSE_OK)
		return metrics_drop(ctx, (enum sl_drop_reason)ret);

	svc = lb_lookup_service(&pkt);
	if (svc)
		return lxc_service(ctx, &pkt, svc);
	return lxc_reply(ctx, &pkt);
}

SEC("tc")
int sl_lxc_ingress(struct __sk_buff *ctx)
{
	int ret = lxc_l4(ctx);

	if (ret != LXC_NOT_TCP_UDP)
		return ret;
	/* ICMP errors about service flows (lib/icmp_err.h). */
	ret = icmp_err_rev(ctx, false);
	if (ret != SL_ICMP_ERR_NONE)
		return ret;
	metrics_event(ctx, SL_EV_PASS_NON_SERVICE);
	return CTX_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
