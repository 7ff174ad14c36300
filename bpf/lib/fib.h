/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Forwarding a translated packet ourselves instead of through the stack's
 * input path: bpf_fib_lookup() for the next hop, bpf_redirect_neigh() to
 * send it (the kernel resolves the neighbour, so a missing ARP/ND entry is
 * not a drop). Needed wherever the translated packet carries a source the
 * stack would refuse on input as a martian: a node address (NodePort,
 * LoadBalancer and externalIP replies, SNATed NodePort requests).
 */
#ifndef SLUICE_BPF_LIB_FIB_H
#define SLUICE_BPF_LIB_FIB_H

#include "bpf/lib/ctx.h"
#include "bpf/lib/parse.h"

/* Routes *pkt (already rewritten to src -> dst) to dst. Returns the
 * verdict: TC_ACT_REDIRECT, or TC_ACT_OK (hand to the stack) when the FIB
 * has no forwarding answer (local destination, no route, ...). params:
 * 64 bytes of scratch memory for the lookup (a map value where the stack
 * is short). */
static __always_inline int fib_redirect_via(struct __sk_buff *ctx, const struct sl_pkt *pkt,
					    const __be32 *src, const __be32 *dst,
					    struct bpf_fib_lookup *params)
{
	long ret;

	__builtin_memset(params, 0, sizeof(*params));
	params->family = pkt->family == SL_FAMILY_V4 ? SL_AF_INET : SL_AF_INET6;
	params->l4_protocol = pkt->proto;
	params->tot_len = (__u16)pkt->l3_len;
	params->ifindex = ctx->ingress_ifindex;
	if (pkt->family == SL_FAMILY_V4) {
		params->ipv4_src = src[0];
		params->ipv4_dst = dst[0];
	} else {
		__builtin_memcpy(params->ipv6_src, src, sizeof(params->ipv6_src));
		__builtin_memcpy(params->ipv6_dst, dst, sizeof(params->ipv6_dst));
	}
	ret = bpf_fib_lookup(ctx, params, sizeof(*params), 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return CTX_ACT_OK;
	return bpf_redirect_neigh(params->ifindex, NULL, 0, 0);
}

/* The same with the lookup's parameters on the stack. */
static __always_inline int fib_redirect(struct __sk_buff *ctx, const struct sl_pkt *pkt,
					const __be32 *src, const __be32 *dst)
{
	struct bpf_fib_lookup fib;

	return fib_redirect_via(ctx, pkt, src, dst, &fib);
}

#endif /* SLUICE_BPF_LIB_FIB_H */
