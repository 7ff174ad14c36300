/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Ethernet / IPv4 / IPv6 / TCP / UDP parsing into struct sl_pkt.
 *
 * Policy for odd input (the datapath never rewrites or forwards a malformed
 * packet as if it were valid, and never faults on one):
 *   - Not IP (ARP, LLDP, VLAN-tagged: pod veths carry no tags), or IP that
 *     is not TCP/UDP (ICMP, IGMP, SCTP): SL_PARSE_PASS, left to the stack.
 *   - Malformed IP (truncated, version/EtherType mismatch, IHL < 5, total
 *     length past the buffer): dropped with a reason. The stack's ip_rcv()
 *     drops these too; dropping here counts them.
 *   - Malformed TCP/UDP headers: dropped. For forwarded traffic the stack
 *     would not look, but a truncated or self-inconsistent L4 header has
 *     no legitimate sender (Cilium drops them as DROP_INVALID).
 *   - IPv4 options, first fragments, IPv6 routing headers with segments
 *     left: parsed (ports are readable) and flagged; the program drops them
 *     if they belong to a service flow and passes them otherwise (IGMP with
 *     Router Alert and fragmented UDP to non-services must keep working).
 *     Refusing options matches the userspace/DPDK paths and Katran.
 *   - Non-first fragments carry no ports: SL_PARSE_PASS. If the datagram
 *     was for a service, its first fragment was dropped, so the rest can
 *     never be reassembled into anything.
 */
#ifndef SLUICE_BPF_LIB_PARSE_H
#define SLUICE_BPF_LIB_PARSE_H

#include "bpf/lib/ctx.h"
#include "bpf/abi/lb.h"
#include "bpf/abi/metrics.h"

#define SL_PARSE_OK   0
#define SL_PARSE_PASS (-1) /* not ours: hand to the stack unchanged */
/* > 0: an enum sl_drop_reason */

#define SL_PKT_F_IPV4_OPTIONS (1 << 0)
#define SL_PKT_F_FRAGMENT     (1 << 1) /* first fragment (offset 0) */
#define SL_PKT_F_ROUTING      (1 << 2) /* IPv6 routing header, segments left > 0 */

/* IPv6 extension headers (include/uapi/linux/in6.h: macros, not in BTF). */
#define SL_IPPROTO_HOPOPTS  0
#define SL_IPPROTO_ROUTING  43
#define SL_IPPROTO_FRAGMENT 44
#define SL_IPPROTO_DSTOPTS  60
/* HBH, Destination (twice), Routing, Fragment is the most RFC 8200 section
 * 4.1 orders before the upper layer; one spare. A verifier-bounded loop. */
#define SL_IPV6_MAX_EXT 6

/* IPv4 frag_off bits, host order after bpf_ntohs(). */
#define SL_IP_MF     0x2000
#define SL_IP_OFFSET 0x1fff

/* Largest IP length field: beyond it the length is 0 and the skb's length
 * counts (BIG TCP, IPv4 since 6.3 and IPv6 since 5.19). */
#define SL_IP_MAX_LEN 65535

struct sl_pkt {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 family;	/* SL_FAMILY_V4 / SL_FAMILY_V6 */
	__u8 proto;	/* IPPROTO_TCP / IPPROTO_UDP */
	__u8 tcp_flags; /* TCP header byte 13 (FIN 0x01 SYN 0x02 RST 0x04 ACK 0x10) */
	__u8 flags;	/* SL_PKT_F_* */
	__u32 l3_off;	/* IP header, bytes from the frame start */
	__u32 l4_off;	/* TCP/UDP header */
	__u32 l3_len;	/* IP header + payload, as the IP header says */
};

#define SL_TCP_FIN 0x01
#define SL_TCP_SYN 0x02
#define SL_TCP_RST 0x04
#define SL_TCP_ACK 0x10

/* TCP header as bytes (struct tcphdr's flag bitfields are endian-dependent). */
struct sl_tcphdr {
	__be16 sport;
	__be16 dport;
	__be32 seq;
	__be32 ack;
	__u8 doff;  /* data offset in the high nibble */
	__u8 flags; /* SL_TCP_* */
	__be16 window;
	__be16 check;
	__be16 urg;
};

static __always_inline int parse_l4(struct sl_ctx *ctx, struct sl_pkt *pkt)
{
	__u32 l3_end = pkt->l3_off + pkt->l3_len;
	__u32 l4_len;

	if (pkt->l4_off > l3_end)
		return SL_DROP_TRUNCATED_L4;
	l4_len = l3_end - pkt->l4_off;

	if (pkt->proto == IPPROTO_TCP) {
		struct sl_tcphdr th;
		__u32 hlen;

		if (l4_len < sizeof(th) ||
		    ctx_load_bytes(ctx, pkt->l4_off, &th, sizeof(th)) < 0)
			return SL_DROP_TRUNCATED_L4;
		hlen = (th.doff >> 4) * 4;
		if (hlen < sizeof(th))
			return SL_DROP_BAD_TCP_HEADER_LENGTH;
		if (hlen > l4_len)
			return SL_DROP_TRUNCATED_L4;
		pkt->sport = th.sport;
		pkt->dport = th.dport;
		pkt->tcp_flags = th.flags;
		return SL_PARSE_OK;
	}

	/* UDP */
	{
		struct udphdr uh;
		__u32 ulen;

		if (l4_len < sizeof(uh) ||
		    ctx_load_bytes(ctx, pkt->l4_off, &uh, sizeof(uh)) < 0)
			return SL_DROP_TRUNCATED_L4;
		ulen = bpf_ntohs(uh.len);
		/* A first fragment holds only part of the datagram: its UDP
		 * length legitimately exceeds what is here. */
		if (!(pkt->flags & SL_PKT_F_FRAGMENT) &&
		    (ulen < sizeof(uh) || ulen > l4_len))
			return SL_DROP_BAD_UDP_LENGTH;
		pkt->sport = uh.source;
		pkt->dport = uh.dest;
		return SL_PARSE_OK;
	}
}

static __always_inline int parse_ipv4(struct sl_ctx *ctx, struct sl_pkt *pkt)
{
	__u32 avail = ctx_len(ctx) - pkt->l3_off;
	struct iphdr ip;
	__u32 hlen, tot;
	__u16 frag;

	if (ctx_load_bytes(ctx, pkt->l3_off, &ip, sizeof(ip)) < 0)
		return SL_DROP_TRUNCATED_L3;
	if (ip.version != 4)
		return SL_DROP_BAD_IP_VERSION;
	hlen = ip.ihl * 4;
	if (hlen < sizeof(ip))
		return SL_DROP_BAD_IPV4_HEADER_LENGTH;
	tot = bpf_ntohs(ip.tot_len);
	if (tot == 0 && avail > SL_IP_MAX_LEN)
		tot = avail; /* BIG TCP */
	if (tot < hlen || tot > avail)
		return SL_DROP_BAD_IP_TOTAL_LENGTH;
	if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)
		return SL_PARSE_PASS;

	frag = bpf_ntohs(ip.frag_off);
	if (frag & SL_IP_OFFSET)
		return SL_PARSE_PASS;
	if (frag & SL_IP_MF)
		pkt->flags |= SL_PKT_F_FRAGMENT;
	if (hlen > sizeof(ip))
		pkt->flags |= SL_PKT_F_IPV4_OPTIONS;

	pkt->family = SL_FAMILY_V4;
	pkt->proto = ip.protocol;
	pkt->saddr[0] = ip.saddr;
	pkt->daddr[0] = ip.daddr;
	pkt->l3_len = tot;
	pkt->l4_off = pkt->l3_off + hlen;
	return parse_l4(ctx, pkt);
}

static __always_inline int parse_ipv6(struct sl_ctx *ctx, struct sl_pkt *pkt)
{
	__u32 avail = ctx_len(ctx) - pkt->l3_off;
	struct ipv6hdr ip6;
	__u32 off, tot;
	__u8 nexthdr;
	int i;

	if (ctx_load_bytes(ctx, pkt->l3_off, &ip6, sizeof(ip6)) < 0)
		return SL_DROP_TRUNCATED_L3;
	if (ip6.version != 6)
		return SL_DROP_BAD_IP_VERSION;
	tot = sizeof(ip6) + bpf_ntohs(ip6.payload_len);
	if (tot == sizeof(ip6) && avail > SL_IP_MAX_LEN + sizeof(ip6))
		tot = avail; /* BIG TCP */
	if (tot > avail)
		return SL_DROP_BAD_IP_TOTAL_LENGTH;

	off = pkt->l3_off + sizeof(ip6);
	nexthdr = ip6.nexthdr;
#pragma unroll
	for (i = 0; i < SL_IPV6_MAX_EXT; i++) {
		__u8 hdr[4];

		if (nexthdr != SL_IPPROTO_HOPOPTS && nexthdr != SL_IPPROTO_ROUTING &&
		    nexthdr != SL_IPPROTO_DSTOPTS && nexthdr != SL_IPPROTO_FRAGMENT)
			break;
		if (off + sizeof(hdr) > pkt->l3_off + tot ||
		    ctx_load_bytes(ctx, off, hdr, sizeof(hdr)) < 0)
			return SL_DROP_TRUNCATED_L3;
		if (nexthdr == SL_IPPROTO_FRAGMENT) {
			__u16 frag = ((__u16)hdr[2] << 8) | hdr[3];

			if (frag & 0xfff8) /* fragment offset != 0 */
				return SL_PARSE_PASS;
			pkt->flags |= SL_PKT_F_FRAGMENT;
			off += 8;
		} else {
			if (nexthdr == SL_IPPROTO_ROUTING && hdr[3] != 0)
				pkt->flags |= SL_PKT_F_ROUTING;
			off += ((__u32)hdr[1] + 1) * 8;
		}
		if (off > pkt->l3_off + tot)
			return SL_DROP_TRUNCATED_L3;
		nexthdr = hdr[0];
	}
	if (nexthdr == SL_IPPROTO_HOPOPTS || nexthdr == SL_IPPROTO_ROUTING ||
	    nexthdr == SL_IPPROTO_DSTOPTS || nexthdr == SL_IPPROTO_FRAGMENT)
		return SL_DROP_IPV6_EXT_HEADER_LIMIT;
	if (nexthdr != IPPROTO_TCP && nexthdr != IPPROTO_UDP)
		return SL_PARSE_PASS;

	pkt->family = SL_FAMILY_V6;
	pkt->proto = nexthdr;
	__builtin_memcpy(pkt->saddr, &ip6.saddr, 16);
	__builtin_memcpy(pkt->daddr, &ip6.daddr, 16);
	pkt->l3_len = tot;
	pkt->l4_off = off;
	return parse_l4(ctx, pkt);
}

/* Fills *pkt from the frame. Returns SL_PARSE_OK, SL_PARSE_PASS, or a drop
 * reason (> 0). */
static __always_inline int parse_packet(struct sl_ctx *ctx, struct sl_pkt *pkt)
{
	__be16 proto;

	if (ctx_load_bytes(ctx, 2 * ETH_ALEN, &proto, sizeof(proto)) < 0)
		return SL_PARSE_PASS;
	pkt->l3_off = ETH_HLEN;
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(ctx, pkt);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(ctx, pkt);
	return SL_PARSE_PASS;
}

#endif /* SLUICE_BPF_LIB_PARSE_H */
