/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Address/port rewrite with incremental checksum updates (RFC 1624) through
 * bpf_l3_csum_replace / bpf_l4_csum_replace, which also keep skb->csum
 * right for CHECKSUM_COMPLETE skbs and leave CHECKSUM_PARTIAL ones (TSO
 * from a pod) consistent: the L4 field then holds only the pseudo-header
 * sum, which BPF_F_PSEUDO_HDR updates and port changes must not touch.
 * A wrong checksum stays wrong: nothing here validates or recomputes.
 */
#ifndef SLUICE_BPF_LIB_NAT_H
#define SLUICE_BPF_LIB_NAT_H

#include "bpf/lib/parse.h"

#define SL_NAT_SRC 0
#define SL_NAT_DST 1

static __always_inline bool addr_equal(const __be32 *a, const __be32 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3])) == 0;
}

/* The hairpin source of a family (bpf/abi/lb.h), lb.h's address layout. */
static __always_inline void nat_hairpin_addr(__be32 *addr, __u8 family)
{
	const __u8 v4[4] = SL_HAIRPIN_V4_BYTES;
	const __u8 v6[16] = SL_HAIRPIN_V6_BYTES;

	addr[0] = addr[1] = addr[2] = addr[3] = 0;
	if (family == SL_FAMILY_V4)
		__builtin_memcpy(addr, v4, sizeof(v4));
	else
		__builtin_memcpy(addr, v6, sizeof(v6));
}

static __always_inline __u32 nat_l4_csum_off(const struct sl_pkt *pkt)
{
	return pkt->l4_off + (pkt->proto == IPPROTO_TCP ?
			      __builtin_offsetof(struct sl_tcphdr, check) :
			      __builtin_offsetof(struct udphdr, check));
}

/* Rewrites the source (SL_NAT_SRC) or destination (SL_NAT_DST) address and
 * port of *pkt to addr/port (addr in the packet's family, lb.h layout).
 * Returns 0 or a negative errno from a helper; the packet may then be half
 * rewritten and must be dropped. */
static __always_inline int nat_rewrite(struct __sk_buff *ctx, const struct sl_pkt *pkt,
				       int which, const __be32 *addr, __be16 port)
{
	const __be32 *old_addr = which == SL_NAT_DST ? pkt->daddr : pkt->saddr;
	__be16 old_port = which == SL_NAT_DST ? pkt->dport : pkt->sport;
	__u32 csum_off = nat_l4_csum_off(pkt);
	/* UDP: a zero checksum means "none" (IPv4) and stays zero; a computed
	 * zero is sent as 0xffff. */
	__u64 mangled = pkt->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__be32 new_addr[4];
	int ret;

	__builtin_memcpy(new_addr, addr, sizeof(new_addr));
	if (pkt->family == SL_FAMILY_V4) {
		__u32 off = pkt->l3_off + (which == SL_NAT_DST ?
					   __builtin_offsetof(struct iphdr, daddr) :
					   __builtin_offsetof(struct iphdr, saddr));

		ret = bpf_l3_csum_replace(ctx, pkt->l3_off + __builtin_offsetof(struct iphdr, check),
					  old_addr[0], new_addr[0], sizeof(__be32));
		if (ret < 0)
			return ret;
		ret = bpf_l4_csum_replace(ctx, csum_off, old_addr[0], new_addr[0],
					  BPF_F_PSEUDO_HDR | mangled | sizeof(__be32));
		if (ret < 0)
			return ret;
		ret = ctx_store_bytes(ctx, off, &new_addr[0], sizeof(__be32));
	} else {
		__u32 off = pkt->l3_off + (which == SL_NAT_DST ?
					   __builtin_offsetof(struct ipv6hdr, daddr) :
					   __builtin_offsetof(struct ipv6hdr, saddr));
		__be32 old[4];
		__s64 diff;

		__builtin_memcpy(old, old_addr, sizeof(old));
		diff = bpf_csum_diff(old, sizeof(old), new_addr, sizeof(new_addr), 0);
		if (diff < 0)
			return (int)diff;
		ret = bpf_l4_csum_replace(ctx, csum_off, 0, diff, BPF_F_PSEUDO_HDR | mangled);
		if (ret < 0)
			return ret;
		ret = ctx_store_bytes(ctx, off, new_addr, sizeof(new_addr));
	}
	if (ret < 0 || old_port == port)
		return ret;

	ret = bpf_l4_csum_replace(ctx, csum_off, old_port, port, mangled | sizeof(__be16));
	if (ret < 0)
		return ret;
	return ctx_store_bytes(ctx, pkt->l4_off + (which == SL_NAT_DST ?
						   __builtin_offsetof(struct udphdr, dest) :
						   __builtin_offsetof(struct udphdr, source)),
			       &port, sizeof(port));
}

#endif /* SLUICE_BPF_LIB_NAT_H */
