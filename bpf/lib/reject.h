/* SPDX-License-Identifier: GPL-2.0 */
/*
 * "Connection refused" for a service with no ready endpoint (Kubernetes
 * semantics: never a silent drop). The client's packet is turned into the
 * answer in place and sent back out of the interface it came in on:
 *   TCP -> RST (RFC 9293 section 3.10.7.1: seq = their ACK if set, else 0
 *          with ACK = their seq + segment length);
 *   UDP -> ICMP / ICMPv6 port unreachable quoting the IP header and the
 *          first 8 bytes of the datagram (RFC 792, RFC 4443 section 3.1).
 * Both come from the frontend address, so the client's socket sees
 * ECONNREFUSED for the address it connected to. A TCP RST is never answered.
 *
 * The packet is resized with bpf_skb_change_tail() and every header is
 * written whole with freshly computed checksums; IPv6 extension headers of
 * the original are not kept.
 */
#ifndef SLUICE_BPF_LIB_REJECT_H
#define SLUICE_BPF_LIB_REJECT_H

#include "bpf/lib/metrics.h"
#include "bpf/lib/parse.h"

#define SL_REJECT_TTL 64
#define SL_IPPROTO_ICMPV6 58 /* uapi in6.h macro, not in BTF */
#define SL_ICMP_DEST_UNREACH 3
#define SL_ICMP_PORT_UNREACH 3
#define SL_ICMPV6_DEST_UNREACH 1
#define SL_ICMPV6_PORT_UNREACH 4
/* What an ICMP error quotes here: the fixed IP header + 8 bytes of L4. */
#define SL_QUOTE4_LEN (20 + 8)
#define SL_QUOTE6_LEN (40 + 8)

struct sl_icmphdr {
	__u8 type;
	__u8 code;
	__be16 check;
	__be32 unused;
};

/* IPv6 pseudo-header (RFC 8200 section 8.1). */
struct sl_pseudo6 {
	__be32 saddr[4];
	__be32 daddr[4];
	__be32 len;
	__be32 nexthdr; /* 3 zero bytes + next header */
};

struct sl_pseudo4 {
	__be32 saddr;
	__be32 daddr;
	__be16 proto; /* zero byte + protocol */
	__be16 len;
};

static __always_inline __u16 csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

static __always_inline int reject_write_l3(struct __sk_buff *ctx, const struct sl_pkt *pkt,
					   __u8 proto, __u16 l4_len)
{
	if (pkt->family == SL_FAMILY_V4) {
		struct iphdr ip = {
			.ihl = 5,
			.version = 4,
			.tot_len = bpf_htons(sizeof(ip) + l4_len),
			.ttl = SL_REJECT_TTL,
			.protocol = proto,
			.saddr = pkt->daddr[0],
			.daddr = pkt->saddr[0],
		};

		ip.check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&ip, sizeof(ip), 0));
		return ctx_store_bytes(ctx, ETH_HLEN, &ip, sizeof(ip));
	} else {
		struct ipv6hdr ip6 = {
			.version = 6,
			.payload_len = bpf_htons(l4_len),
			.nexthdr = proto,
			.hop_limit = SL_REJECT_TTL,
		};

		__builtin_memcpy(&ip6.saddr, pkt->daddr, 16);
		__builtin_memcpy(&ip6.daddr, pkt->saddr, 16);
		return ctx_store_bytes(ctx, ETH_HLEN, &ip6, sizeof(ip6));
	}
}

/* Checksum seed of the reply's pseudo-header (swapped addresses). */
static __always_inline __s64 reject_pseudo_csum(const struct sl_pkt *pkt, __u8 proto, __u16 l4_len)
{
	if (pkt->family == SL_FAMILY_V4) {
		struct sl_pseudo4 ph = {
			.saddr = pkt->daddr[0],
			.daddr = pkt->saddr[0],
			.proto = bpf_htons(proto),
			.len = bpf_htons(l4_len),
		};

		return bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
	} else {
		struct sl_pseudo6 ph = {
			.len = bpf_htonl(l4_len),
			.nexthdr = bpf_htonl(proto),
		};

		__builtin_memcpy(ph.saddr, pkt->daddr, 16);
		__builtin_memcpy(ph.daddr, pkt->saddr, 16);
		return bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
	}
}

static __always_inline int reject_swap_eth(struct __sk_buff *ctx)
{
	__u8 mac[2 * ETH_ALEN];
	__u8 swapped[2 * ETH_ALEN];

	if (ctx_load_bytes(ctx, 0, mac, sizeof(mac)) < 0)
		return -1;
	__builtin_memcpy(swapped, mac + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, mac, ETH_ALEN);
	return ctx_store_bytes(ctx, 0, swapped, sizeof(swapped));
}

static __always_inline int reject_tcp(struct __sk_buff *ctx, const struct sl_pkt *pkt)
{
	__u32 l3_hlen = pkt->family == SL_FAMILY_V4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	struct sl_tcphdr th, rst = {};
	__u32 seg_len;
	__s64 sum;

	if (ctx_load_bytes(ctx, pkt->l4_off, &th, sizeof(th)) < 0)
		return -1;
	/* Segment length: payload plus one for each of SYN and FIN. */
	seg_len = pkt->l3_off + pkt->l3_len - pkt->l4_off - (th.doff >> 4) * 4;
	if (th.flags & SL_TCP_SYN)
		seg_len++;
	if (th.flags & SL_TCP_FIN)
		seg_len++;

	rst.sport = th.dport;
	rst.dport = th.sport;
	rst.doff = (sizeof(rst) / 4) << 4;
	if (th.flags & SL_TCP_ACK) {
		rst.seq = th.ack;
		rst.flags = SL_TCP_RST;
	} else {
		rst.ack = bpf_htonl(bpf_ntohl(th.seq) + seg_len);
		rst.flags = SL_TCP_RST | SL_TCP_ACK;
	}
	sum = reject_pseudo_csum(pkt, IPPROTO_TCP, sizeof(rst));
	rst.check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&rst, sizeof(rst), sum));

	if (bpf_skb_change_tail(ctx, ETH_HLEN + l3_hlen + sizeof(rst), 0) < 0 ||
	    reject_swap_eth(ctx) < 0 ||
	    reject_write_l3(ctx, pkt, IPPROTO_TCP, sizeof(rst)) < 0 ||
	    ctx_store_bytes(ctx, ETH_HLEN + l3_hlen, &rst, sizeof(rst)) < 0)
		return -1;
	return 0;
}

static __always_inline int reject_udp(struct __sk_buff *ctx, const struct sl_pkt *pkt)
{
	struct sl_icmphdr icmp = {};
	/* Sized for IPv6; IPv4 uses the first SL_QUOTE4_LEN bytes. */
	__be32 quote[SL_QUOTE6_LEN / 4];
	__u32 l3_hlen;
	__s64 sum;

	if (pkt->family == SL_FAMILY_V4) {
		/* Options were refused before: the quote is header + 8 bytes. */
		l3_hlen = sizeof(struct iphdr);
		if (ctx_load_bytes(ctx, pkt->l3_off, quote, SL_QUOTE4_LEN) < 0)
			return -1;
		icmp.type = SL_ICMP_DEST_UNREACH;
		icmp.code = SL_ICMP_PORT_UNREACH;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&icmp, sizeof(icmp), 0);
		icmp.check = csum_fold(bpf_csum_diff(NULL, 0, quote, SL_QUOTE4_LEN, sum));
		if (bpf_skb_change_tail(ctx, ETH_HLEN + l3_hlen + sizeof(icmp) + SL_QUOTE4_LEN, 0) < 0 ||
		    reject_swap_eth(ctx) < 0 ||
		    reject_write_l3(ctx, pkt, IPPROTO_ICMP, sizeof(icmp) + SL_QUOTE4_LEN) < 0 ||
		    ctx_store_bytes(ctx, ETH_HLEN + l3_hlen, &icmp, sizeof(icmp)) < 0 ||
		    ctx_store_bytes(ctx, ETH_HLEN + l3_hlen + sizeof(icmp), quote, SL_QUOTE4_LEN) < 0)
			return -1;
		return 0;
	}

	l3_hlen = sizeof(struct ipv6hdr);
	if (ctx_load_bytes(ctx, pkt->l3_off, quote, SL_QUOTE6_LEN) < 0)
		return -1;
	icmp.type = SL_ICMPV6_DEST_UNREACH;
	icmp.code = SL_ICMPV6_PORT_UNREACH;
	sum = reject_pseudo_csum(pkt, SL_IPPROTO_ICMPV6, sizeof(icmp) + SL_QUOTE6_LEN);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&icmp, sizeof(icmp), sum);
	icmp.check = csum_fold(bpf_csum_diff(NULL, 0, quote, SL_QUOTE6_LEN, sum));
	if (bpf_skb_change_tail(ctx, ETH_HLEN + l3_hlen + sizeof(icmp) + SL_QUOTE6_LEN, 0) < 0 ||
	    reject_swap_eth(ctx) < 0 ||
	    reject_write_l3(ctx, pkt, SL_IPPROTO_ICMPV6, sizeof(icmp) + SL_QUOTE6_LEN) < 0 ||
	    ctx_store_bytes(ctx, ETH_HLEN + l3_hlen, &icmp, sizeof(icmp)) < 0 ||
	    ctx_store_bytes(ctx, ETH_HLEN + l3_hlen + sizeof(icmp), quote, SL_QUOTE6_LEN) < 0)
		return -1;
	return 0;
}

/*
 * Counts no_backend and answers the client. Returns the verdict: redirect
 * of the answer, or drop when there is nothing to answer (a RST) or the
 * answer could not be built (reject_failed also counted; the packet may be
 * half rewritten, so it is dropped either way).
 */
static __always_inline int reject_no_backend(struct __sk_buff *ctx, const struct sl_pkt *pkt)
{
	int ret;

	metrics_drop(ctx, SL_DROP_NO_BACKEND);
	if (pkt->proto == IPPROTO_TCP) {
		if (pkt->tcp_flags & SL_TCP_RST)
			return CTX_ACT_DROP;
		ret = reject_tcp(ctx, pkt);
		if (ret == 0)
			metrics_event(ctx, SL_EV_REJECT_TCP_RST);
	} else {
		ret = reject_udp(ctx, pkt);
		if (ret == 0)
			metrics_event(ctx, SL_EV_REJECT_ICMP);
	}
	if (ret < 0)
		return metrics_drop(ctx, SL_DROP_REJECT_FAILED);
	return ctx_redirect_back(ctx);
}

#endif /* SLUICE_BPF_LIB_REJECT_H */
