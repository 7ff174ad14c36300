/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP / ICMPv6 errors about translated service flows (tc only: bpf_lxc and
 * bpf_host). When a backend answers a DNATed datagram with "port
 * unreachable", or a router on the way says "fragmentation needed" / "time
 * exceeded", the error quotes the packet as the backend saw it: client ->
 * backend:port (or node:snat_port -> backend for SNATed flows). The client's
 * kernel matches errors to sockets by that quoted tuple, so untranslated it
 * matches nothing (the socket is connected to the frontend) and the
 * application waits for a timeout instead of seeing ECONNREFUSED or
 * learning the path MTU. So the error is reverse-translated like a reply:
 *
 *   quoted destination backend:port   -> frontend:port (ct nat_addr/nat_port)
 *   quoted source (SNAT / hairpin)    -> client:port   (ct client_addr/port)
 *   outer destination (SNAT / hairpin) -> client
 *   outer source, when it is the backend itself -> the frontend. A router's
 *     address is kept: the error really is from that router, and Linux
 *     matches on the quoted header, not on who sent it.
 *
 * The flow is found in sl_ct as the reply it would be: the quoted tuple
 * reversed, SL_CT_DIR_REPLY. The entry is not touched: an error does not
 * keep a flow alive.
 *
 * Checksums, all updated incrementally (RFC 1624) so every rewrite is sum
 * neutral over the packet and a CHECKSUM_COMPLETE skb->csum stays right:
 * the quoted IPv4 header checksum; the quoted UDP checksum (always within
 * the 8 quoted bytes; 0, "none", stays 0) and TCP checksum when the quote
 * reaches it (byte 16 of the TCP header; Linux quotes up to 576 / 1280
 * bytes, RFC 792's minimum 8 does not include it). The quoted L4 checksum
 * covers a datagram the quote usually cuts, so nobody can verify it; it is
 * still kept consistent so a full quote stays valid. Then the ICMP
 * checksum over everything that changed in its body (and, for ICMPv6, in
 * the outer addresses of its pseudo-header), and the outer IPv4 header
 * checksum.
 *
 * Handled: ICMP destination unreachable (all codes, incl. port unreachable
 * and fragmentation needed) and time exceeded; ICMPv6 destination
 * unreachable, packet too big, time exceeded. The ICMP identifier-based
 * types (echo) are not service traffic here.
 *
 * Anything else passes unchanged: an outer fragment, other types, a quote
 * shorter than the IP header + 8 bytes, a quoted IPv4 header with options
 * or a quoted IPv6 header followed by extension headers (the datapath drops
 * such service packets before translating them, so no flow can match), a
 * quoted fragment (the same: service fragments are dropped), lengths that
 * disagree, and every error whose
 * reversed tuple is no service flow's reply. Nothing is rewritten until
 * the whole quote has been checked and the flow found.
 */
#ifndef SLUICE_BPF_LIB_ICMP_ERR_H
#define SLUICE_BPF_LIB_ICMP_ERR_H

#include "bpf/lib/ct.h"
#include "bpf/lib/fib.h"
#include "bpf/lib/metrics.h"
#include "bpf/lib/nat.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/reject.h"

/* RFC 792 / RFC 4443 types (uapi macros, not in BTF). */
#define SL_ICMP_TIME_EXCEEDED	 11
#define SL_ICMPV6_PKT_TOOBIG	 2
#define SL_ICMPV6_TIME_EXCEEDED	 3

/* What icmp_err_rev() returns for a packet that is not an ICMP error of a
 * service flow: the caller passes it on. Verdicts are >= 0. */
#define SL_ICMP_ERR_NONE (-1)

/* The quoted headers as 16-bit words: the fixed IPv4 header + 8 bytes
 * (14 words) or the IPv6 header + 8 bytes (24 words). */
#define SL_ICMP_QUOTE_WORDS 24

struct sl_icmp_err {
	struct sl_pkt outer; /* family, addresses, l3_off, l4_off = ICMP header,
			      * l3_len, proto = ICMP / ICMPv6 */
	struct sl_pkt inner; /* the quoted packet's tuple; l3_off = its IP header */
	__u32 end;	     /* end of the outer IP packet, from the frame start */
};

/* Working memory of one translation: past the 512-byte BPF stack once
 * inlined next to the rest of a program, so it lives in a per-CPU slot
 * (Cilium's pattern; a tc program is not migrated while it runs). Private
 * to each object: not pinned. */
struct sl_icmp_scratch {
	struct sl_icmp_err e;
	struct sl_ct_key key;
	__u16 q[SL_ICMP_QUOTE_WORDS];	/* the quote as rewritten */
	__u16 old[SL_ICMP_QUOTE_WORDS]; /* ... and as received */
	__u16 addrs[16];		/* outer source + destination, rewritten */
	__u16 addrs_old[16];
	__be32 nsrc[4];
	__be32 ndst[4];
	/* Headers as loaded while parsing: outer and quoted. */
	union {
		struct iphdr v4[2];
		struct ipv6hdr v6[2];
	} ip;
	struct sl_icmphdr icmp;
	__be16 ports[2];
	struct bpf_fib_lookup fib;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_icmp_scratch);
} sl_icmp_scratch SEC(".maps");

/* RFC 1624 eqn. 3 over n (<= 24) 16-bit words changed from old to new.
 * One's complement sums do not depend on byte order, so the words are the
 * packet's bytes as loaded. */
static __always_inline __u16 csum_update(__u16 check, const __u16 *old, const __u16 *new, int n)
{
	__u32 sum = (__u16)~check;
	int i;

#pragma unroll
	for (i = 0; i < SL_ICMP_QUOTE_WORDS; i++) {
		if (i >= n)
			break;
		sum += (__u16)~old[i];
		sum += new[i];
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The quoted packet's ports; -1 unless they are there. */
static __always_inline int icmp_err_ports(struct __sk_buff *ctx, struct sl_icmp_scratch *s,
					  __u32 quote_l4)
{
	struct sl_icmp_err *e = &s->e;

	if (quote_l4 + 8 > e->end || ctx_load_bytes(ctx, quote_l4, s->ports, sizeof(s->ports)) < 0)
		return -1;
	e->inner.sport = s->ports[0];
	e->inner.dport = s->ports[1];
	e->inner.l4_off = quote_l4;
	return 0;
}

static __always_inline int icmp_err_parse4(struct __sk_buff *ctx, struct sl_icmp_scratch *s)
{
	struct sl_icmp_err *e = &s->e;
	struct iphdr *ip = &s->ip.v4[0], *in = &s->ip.v4[1];
	__u32 hlen, tot;

	if (ctx_load_bytes(ctx, ETH_HLEN, ip, sizeof(*ip)) < 0)
		return -1;
	if (ip->version != 4 || ip->protocol != IPPROTO_ICMP)
		return -1;
	hlen = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (hlen < sizeof(*ip) || tot < hlen || tot > ctx_len(ctx) - ETH_HLEN)
		return -1;
	if (bpf_ntohs(ip->frag_off) & (SL_IP_MF | SL_IP_OFFSET))
		return -1;
	e->outer.family = SL_FAMILY_V4;
	e->outer.proto = IPPROTO_ICMP;
	e->outer.saddr[0] = ip->saddr;
	e->outer.daddr[0] = ip->daddr;
	e->outer.l3_off = ETH_HLEN;
	e->outer.l3_len = tot;
	e->outer.l4_off = ETH_HLEN + hlen;
	e->end = ETH_HLEN + tot;

	if (e->outer.l4_off + sizeof(s->icmp) + sizeof(*in) > e->end ||
	    ctx_load_bytes(ctx, e->outer.l4_off, &s->icmp, sizeof(s->icmp)) < 0)
		return -1;
	if (s->icmp.type != SL_ICMP_DEST_UNREACH && s->icmp.type != SL_ICMP_TIME_EXCEEDED)
		return -1;

	e->inner.l3_off = e->outer.l4_off + sizeof(s->icmp);
	if (ctx_load_bytes(ctx, e->inner.l3_off, in, sizeof(*in)) < 0)
		return -1;
	if (in->version != 4 || in->ihl != 5)
		return -1;
	if (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP)
		return -1;
	/* A quoted fragment, first or not: both datapaths drop service
	 * fragments, so no translated flow's packet is ever quoted as one
	 * (IPv6 quotes with a fragment header fail the nexthdr test below). */
	if (bpf_ntohs(in->frag_off) & (SL_IP_MF | SL_IP_OFFSET))
		return -1;
	if (bpf_ntohs(in->tot_len) < sizeof(*in) + 8)
		return -1;
	e->inner.family = SL_FAMILY_V4;
	e->inner.proto = in->protocol;
	e->inner.saddr[0] = in->saddr;
	e->inner.daddr[0] = in->daddr;
	return icmp_err_ports(ctx, s, e->inner.l3_off + sizeof(*in));
}

static __always_inline int icmp_err_parse6(struct __sk_buff *ctx, struct sl_icmp_scratch *s)
{
	struct sl_icmp_err *e = &s->e;
	struct ipv6hdr *ip6 = &s->ip.v6[0], *in6 = &s->ip.v6[1];
	__u32 tot;

	if (ctx_load_bytes(ctx, ETH_HLEN, ip6, sizeof(*ip6)) < 0)
		return -1;
	if (ip6->version != 6 || ip6->nexthdr != SL_IPPROTO_ICMPV6)
		return -1;
	tot = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	if (tot > ctx_len(ctx) - ETH_HLEN)
		return -1;
	e->outer.family = SL_FAMILY_V6;
	e->outer.proto = SL_IPPROTO_ICMPV6;
	__builtin_memcpy(e->outer.saddr, &ip6->saddr, 16);
	__builtin_memcpy(e->outer.daddr, &ip6->daddr, 16);
	e->outer.l3_off = ETH_HLEN;
	e->outer.l3_len = tot;
	e->outer.l4_off = ETH_HLEN + sizeof(*ip6);
	e->end = ETH_HLEN + tot;

	if (e->outer.l4_off + sizeof(s->icmp) + sizeof(*in6) > e->end ||
	    ctx_load_bytes(ctx, e->outer.l4_off, &s->icmp, sizeof(s->icmp)) < 0)
		return -1;
	if (s->icmp.type != SL_ICMPV6_DEST_UNREACH && s->icmp.type != SL_ICMPV6_PKT_TOOBIG &&
	    s->icmp.type != SL_ICMPV6_TIME_EXCEEDED)
		return -1;

	e->inner.l3_off = e->outer.l4_off + sizeof(s->icmp);
	if (ctx_load_bytes(ctx, e->inner.l3_off, in6, sizeof(*in6)) < 0)
		return -1;
	if (in6->version != 6)
		return -1;
	if (in6->nexthdr != IPPROTO_TCP && in6->nexthdr != IPPROTO_UDP)
		return -1;
	if (bpf_ntohs(in6->payload_len) < 8)
		return -1;
	e->inner.family = SL_FAMILY_V6;
	e->inner.proto = in6->nexthdr;
	__builtin_memcpy(e->inner.saddr, &in6->saddr, 16);
	__builtin_memcpy(e->inner.daddr, &in6->daddr, 16);
	return icmp_err_ports(ctx, s, e->inner.l3_off + sizeof(*in6));
}

/* Fills s->e from an ICMP(v6) error quoting a TCP/UDP packet; -1 otherwise. */
static __always_inline int icmp_err_parse(struct __sk_buff *ctx, struct sl_icmp_scratch *s)
{
	__be16 proto;

	if (ctx_len(ctx) < ETH_HLEN ||
	    ctx_load_bytes(ctx, 2 * ETH_ALEN, &proto, sizeof(proto)) < 0)
		return -1;
	if (proto == bpf_htons(ETH_P_IP))
		return icmp_err_parse4(ctx, s);
	if (proto == bpf_htons(ETH_P_IPV6))
		return icmp_err_parse6(ctx, s);
	return -1;
}

/*
 * Rewrites the error of s->e as the reverse of flow *ct (see the top of
 * this file); s->nsrc/ndst receive the outer addresses it leaves. v4 is a
 * constant at each call site, so every offset below is one too. Returns 0,
 * or < 0 from a helper (the packet may be half written: drop it).
 */
static __always_inline int icmp_err_rewrite(struct __sk_buff *ctx, struct sl_icmp_scratch *s,
					    const struct sl_ct_entry *ct, const bool v4)
{
	/* Word indexes into the quote q: addresses (v4: source 6, destination
	 * 8; v6: 4 and 12), the L4 header (ports, then UDP length/checksum). */
	const int aw = v4 ? 2 : 8;
	const int sa = v4 ? 6 : 4;
	const int da = v4 ? 8 : 12;
	const int l4 = v4 ? 10 : 20;
	const int qw = v4 ? 14 : 24;
	const struct sl_icmp_err *e = &s->e;
	const __u32 q_off = e->inner.l3_off;
	const bool restore_client = ct->flags & (SL_CT_F_SNAT | SL_CT_F_HAIRPIN);
	__u16 icmp_check, tcp_check = 0, tcp_check_new = 0;
	__u32 tcp_check_off = 0; /* 0: the quote does not reach it */
	__u16 *q = s->q;
	int ret;

	if (v4)
		ret = ctx_load_bytes(ctx, q_off, q, 28);
	else
		ret = ctx_load_bytes(ctx, q_off, q, 48);
	if (ret < 0)
		return ret;
	ret = ctx_load_bytes(ctx, e->outer.l4_off + 2, &icmp_check, sizeof(icmp_check));
	if (ret < 0)
		return ret;
	if (e->inner.proto == IPPROTO_TCP && q_off + l4 * 2 + 18 <= e->end) {
		tcp_check_off = q_off + l4 * 2 + 16;
		ret = ctx_load_bytes(ctx, tcp_check_off, &tcp_check, sizeof(tcp_check));
		if (ret < 0)
			return ret;
	}
	__builtin_memcpy(s->old, q, sizeof(s->old));

	/* The quoted tuple, back to what the client sent. */
	__builtin_memcpy(&q[da], ct->nat_addr, aw * 2);
	q[l4 + 1] = ct->nat_port;
	if (restore_client) {
		__builtin_memcpy(&q[sa], ct->client_addr, aw * 2);
		if (ct->flags & SL_CT_F_SNAT)
			q[l4] = ct->client_port;
	}

	/* Quoted IPv4 header checksum: both addresses (words 6..9). */
	if (v4)
		q[5] = csum_update(q[5], &s->old[6], &q[6], 4);
	/* Quoted L4 checksum: pseudo-header addresses and the ports. */
	if (e->inner.proto == IPPROTO_UDP && q[l4 + 3] != 0) {
		__u16 c = csum_update(q[l4 + 3], &s->old[sa], &q[sa], 2 * aw);

		c = csum_update(c, &s->old[l4], &q[l4], 2);
		q[l4 + 3] = c ? c : 0xffff; /* a computed 0 is sent as all ones */
	}
	if (tcp_check_off) {
		tcp_check_new = csum_update(tcp_check, &s->old[sa], &q[sa], 2 * aw);
		tcp_check_new = csum_update(tcp_check_new, &s->old[l4], &q[l4], 2);
	}

	/* The ICMP checksum covers the whole quote and the TCP checksum. */
	icmp_check = csum_update(icmp_check, s->old, q, qw);
	if (tcp_check_off)
		icmp_check = csum_update(icmp_check, &tcp_check, &tcp_check_new, 1);

	/* Outer addresses. */
	__builtin_memcpy(s->nsrc, e->outer.saddr, 16);
	__builtin_memcpy(s->ndst, e->outer.daddr, 16);
	if (addr_equal(e->outer.saddr, e->inner.daddr))
		__builtin_memcpy(s->nsrc, ct->nat_addr, 16);
	if (restore_client)
		__builtin_memcpy(s->ndst, ct->client_addr, 16);
	__builtin_memcpy(s->addrs_old, e->outer.saddr, 16);
	__builtin_memcpy(&s->addrs_old[8], e->outer.daddr, 16);
	__builtin_memcpy(s->addrs, s->nsrc, 16);
	__builtin_memcpy(&s->addrs[8], s->ndst, 16);

	if (v4) {
		/* IPv4 addresses sit in words 0..1 (source) and 8..9
		 * (destination) of addrs, lb.h's layout. */
		__u16 check;

		ret = ctx_load_bytes(ctx, e->outer.l3_off + __builtin_offsetof(struct iphdr, check),
				     &check, sizeof(check));
		if (ret < 0)
			return ret;
		check = csum_update(check, s->addrs_old, s->addrs, 2);
		check = csum_update(check, &s->addrs_old[8], &s->addrs[8], 2);
		ret = ctx_store_bytes(ctx, e->outer.l3_off + __builtin_offsetof(struct iphdr, check),
				      &check, sizeof(check));
		if (ret < 0)
			return ret;
		ret = ctx_store_bytes(ctx, e->outer.l3_off + __builtin_offsetof(struct iphdr, saddr),
				      s->nsrc, 4);
		if (ret < 0)
			return ret;
		ret = ctx_store_bytes(ctx, e->outer.l3_off + __builtin_offsetof(struct iphdr, daddr),
				      s->ndst, 4);
	} else {
		/* ICMPv6's pseudo-header holds the outer addresses. */
		icmp_check = csum_update(icmp_check, s->addrs_old, s->addrs, 16);
		ret = ctx_store_bytes(ctx, e->outer.l3_off + __builtin_offsetof(struct ipv6hdr, saddr),
				      s->addrs, sizeof(s->addrs));
	}
	if (ret < 0)
		return ret;

	if (v4)
		ret = ctx_store_bytes(ctx, q_off, q, 28);
	else
		ret = ctx_store_bytes(ctx, q_off, q, 48);
	if (ret < 0)
		return ret;
	if (tcp_check_off) {
		ret = ctx_store_bytes(ctx, tcp_check_off, &tcp_check_new, sizeof(tcp_check_new));
		if (ret < 0)
			return ret;
	}
	return ctx_store_bytes(ctx, e->outer.l4_off + 2, &icmp_check, sizeof(icmp_check));
}

/*
 * The reverse translation of an ICMP error about a service flow. Returns
 * SL_ICMP_ERR_NONE when the packet is not one (the caller passes it), else
 * the verdict: forwarded with bpf_fib_lookup + bpf_redirect_neigh when
 * route is set or the flow's frontend may be a node address (its source
 * would be a martian to the stack, as for replies in bpf_lxc), else handed
 * to the stack; dropped when a rewrite helper failed.
 *
 * A BPF-to-BPF call, not inlined: the program's own stack frame stays as
 * it was, and the packet path of non-ICMP traffic does not grow.
 */
static __noinline int icmp_err_rev(struct __sk_buff *ctx, bool route)
{
	struct sl_icmp_scratch *s;
	struct sl_ct_entry *ct;
	__u32 zero = 0;
	int ret;

	s = bpf_map_lookup_elem(&sl_icmp_scratch, &zero);
	if (!s)
		return SL_ICMP_ERR_NONE;
	__builtin_memset(&s->e, 0, sizeof(s->e));
	if (icmp_err_parse(ctx, s) < 0)
		return SL_ICMP_ERR_NONE;
	/* An error goes back to the quoted packet's source; an ICMP packet
	 * to anyone else is no answer to it. */
	if (!addr_equal(s->e.outer.daddr, s->e.inner.saddr))
		return SL_ICMP_ERR_NONE;

	/* The quoted packet went client -> backend: look up its reply. */
	__builtin_memcpy(s->key.saddr, s->e.inner.daddr, sizeof(s->key.saddr));
	__builtin_memcpy(s->key.daddr, s->e.inner.saddr, sizeof(s->key.daddr));
	s->key.sport = s->e.inner.dport;
	s->key.dport = s->e.inner.sport;
	s->key.proto = s->e.inner.proto;
	s->key.family = s->e.inner.family;
	s->key.dir = SL_CT_DIR_REPLY;
	s->key.pad = 0;
	ct = ct_lookup(&s->key, bpf_ktime_get_ns());
	if (!ct)
		return SL_ICMP_ERR_NONE;

	if (s->e.outer.family == SL_FAMILY_V4)
		ret = icmp_err_rewrite(ctx, s, ct, true);
	else
		ret = icmp_err_rewrite(ctx, s, ct, false);
	if (ret < 0)
		return metrics_drop(ctx, SL_DROP_NAT_FAILED);
	metrics_event(ctx, SL_EV_ICMP_ERR_REV);
	if (route || (ct->flags & SL_CT_F_NODE_FRONTEND))
		return fib_redirect_via(ctx, &s->e.outer, s->nsrc, s->ndst, &s->fib);
	return CTX_ACT_OK;
}

#endif /* SLUICE_BPF_LIB_ICMP_ERR_H */
