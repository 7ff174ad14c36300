/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The packet context the feature libraries are written against: struct
 * sl_ctx is struct __sk_buff (tc) by default, struct xdp_md in an object
 * that defines SL_CTX_XDP before its first include (bpf/xdp.bpf.c), with
 * ctx_load_bytes / ctx_len / CTX_ACT_* over the hook's own helpers, so
 * parse, ct, lb and metrics compile for both hooks unchanged (Cilium's
 * ctx/). nat, reject and fib use skb-only helpers (checksum offload state,
 * bpf_redirect_neigh) and are tc-only.
 *
 * Packet bytes are read with ctx_load_bytes() into the stack rather than
 * through direct packet pointers: it works on non-linear skbs (GSO, headers
 * in frags) without bpf_skb_pull_data() and keeps every bounds check inside
 * the helper, so a truncated packet is an error return, never a fault.
 */
#ifndef SLUICE_BPF_LIB_CTX_H
#define SLUICE_BPF_LIB_CTX_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* include/uapi/linux/if_ether.h */
#define ETH_HLEN	14
#define ETH_ALEN	6
#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD

/* include/linux/socket.h, for bpf_fib_lookup. */
#define SL_AF_INET  2
#define SL_AF_INET6 10

#ifdef SL_CTX_XDP
#define sl_ctx xdp_md

#define CTX_ACT_OK   XDP_PASS
#define CTX_ACT_DROP XDP_DROP

/* bpf_xdp_load_bytes (5.18) works across multi-buffer frames too. */
#define ctx_load_bytes(ctx, off, to, len) bpf_xdp_load_bytes(ctx, off, to, len)
#define ctx_len(ctx) ((__u32)bpf_xdp_get_buff_len(ctx))
#else
#define sl_ctx __sk_buff

/* include/uapi/linux/pkt_cls.h: macros, so absent from vmlinux.h. */
#define TC_ACT_OK	0
#define TC_ACT_SHOT	2
#define TC_ACT_REDIRECT 7

#define CTX_ACT_OK	 TC_ACT_OK
#define CTX_ACT_DROP	 TC_ACT_SHOT
#define CTX_ACT_REDIRECT TC_ACT_REDIRECT

#define ctx_load_bytes(ctx, off, to, len) bpf_skb_load_bytes(ctx, off, to, len)
#define ctx_store_bytes(ctx, off, from, len) \
	bpf_skb_store_bytes(ctx, off, from, len, 0)
#define ctx_len(ctx) ((ctx)->len)
/* Back out of the interface the packet came in on. */
#define ctx_redirect_back(ctx) bpf_redirect((ctx)->ifindex, 0)
#endif

#endif /* SLUICE_BPF_LIB_CTX_H */
