// SPDX-License-Identifier: GPL-2.0
/*
 * bpf_xdp: XDP on the node's uplink, in front of bpf_host (tc). Early
 * lookup and drop only: what bpf_host would drop anyway is dropped here,
 * before the kernel allocates an skb for it; everything else passes to tc
 * unchanged (XDP_PASS), where bpf_host translates and forwards.
 *
 * Dropped here (counted in sl_drops under the same reasons bpf_host uses):
 *   - malformed IP / TCP / UDP headers (lib/parse.h);
 *   - IPv4 options, first fragments, IPv6 routing headers on a flow to a
 *     node-external frontend;
 *   - a new or established flow to an externalTrafficPolicy=Local frontend
 *     while this node has none of its backends (drop.no_local_backend).
 *
 * Why no NAT here: forwarding from XDP needs XDP_TX or bpf_redirect into
 * the pod's veth, and a veth only delivers such frames when its peer runs
 * XDP (or has GRO) too; XDP also has no bpf_redirect_neigh and no skb
 * checksum state to keep right. bpf_host does the NAT path on tc, which
 * works on every device (see bpf/host.bpf.c).
 *
 * Passes are not counted (bpf_host counts them), so one packet never
 * ticks two counters.
 */
#define SL_CTX_XDP
#include "bpf/lib/lb.h"
#include "bpf/lib/maps.h"
#include "bpf/lib/metrics.h"
#include "bpf/lib/parse.h"

SEC("xdp")
int sl_xdp_uplink(struct xdp_md *ctx)
{
	struct sl_pkt pkt = {};
	struct sl_svc_value *svc;
	struct lb_set set;
	int ret;

	ret = parse_packet(ctx, &pkt);
	if (ret == SL_PARSE_PASS)
		return XDP_PASS;
	if (ret != SL_PARSE_OK)
		return metrics_drop(ctx, (enum sl_drop_reason)ret);

	svc = lb_lookup_service(&pkt);
	if (!svc || (svc->flags & SL_SVC_F_CLUSTER_IP))
		return XDP_PASS;
	if (pkt.flags & SL_PKT_F_IPV4_OPTIONS)
		return metrics_drop(ctx, SL_DROP_IPV4_OPTIONS);
	if (pkt.flags & SL_PKT_F_FRAGMENT)
		return metrics_drop(ctx, SL_DROP_FRAGMENT);
	if (pkt.flags & SL_PKT_F_ROUTING)
		return metrics_drop(ctx, SL_DROP_IPV6_ROUTING_HEADER);
	if (svc->flags & SL_SVC_F_LOCAL) {
		lb_set_of(&set, svc, pkt.family, true);
		/* Same rule as lb_choose(): no local backend while the service
		 * has some elsewhere. None at all is refused by bpf_host. */
		if (set.active == 0 && set.terminating == 0 &&
		    (svc->active_count || svc->terminating_count))
			return metrics_drop(ctx, SL_DROP_NO_LOCAL_BACKEND);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
