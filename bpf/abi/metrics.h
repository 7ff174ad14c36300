/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Datapath counters: why packets were dropped (sl_drops) and what the
 * datapath did with the rest (sl_events). Both are PERCPU_ARRAYs of
 * struct sl_counter indexed by the enums below; the loader sums the CPUs.
 *
 * Each list is an X-macro so the C enum and the C++ names exported as
 * "drop.<name>" / "event.<name>" come from one definition; the drop
 * reasons are dataplane/drop_reasons.h's, shared with every mode.
 * Values are stable (pinned maps outlive the agent): append only.
 */
#ifndef SLUICE_BPF_ABI_METRICS_H
#define SLUICE_BPF_ABI_METRICS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Drop reasons: dataplane/drop_reasons.h, the list every mode shares. */
#include "dataplane/drop_reasons.h"

#define SL_EVENTS(X)                                                           \
	X(SVC_NEW, svc_new)               /* first packet: backend chosen */  \
	X(SVC_ESTABLISHED, svc_established) /* conntrack hit, same backend */ \
	X(SVC_RESELECT, svc_reselect)     /* ct named a gone backend */       \
	X(REV_NAT, rev_nat)               /* reply source restored */         \
	X(AFFINITY_HIT, affinity_hit)     /* ClientIP affinity reused */      \
	X(TERMINATING_FALLBACK, terminating_fallback) /* no active ones */    \
	X(REJECT_TCP_RST, reject_tcp_rst) /* TCP RST sent for no_backend */   \
	X(REJECT_ICMP, reject_icmp)       /* ICMP port unreachable sent */    \
	X(PASS_NON_SERVICE, pass_non_service) /* not a service packet */      \
	X(HAIRPIN, hairpin)               /* a pod reached itself: SNATed */   \
	X(SOCK_FWD, sock_fwd)             /* a socket's frontend -> backend */ \
	X(SOCK_REV, sock_rev)             /* a socket sees the frontend again */ \
	X(SNAT, snat)                     /* outside client SNATed to the node */ \
	X(SOCK_TERM, sock_term)           /* stale connected UDP socket destroyed */ \
	X(ICMP_ERR_REV, icmp_err_rev)     /* ICMP error of a service flow translated */

#define SL__ENUM_DROP(name, cxx, str) SL_DROP_##name,
#define SL__ENUM_EVENT(name, str) SL_EV_##name,
enum sl_drop_reason { SL_DROP_REASON_LIST(SL__ENUM_DROP) SL_DROP_MAX };
enum sl_event { SL_EVENTS(SL__ENUM_EVENT) SL_EV_MAX };
#undef SL__ENUM_DROP
#undef SL__ENUM_EVENT

struct sl_counter {
	__u64 packets; /* packets, or socket calls for the sock hooks */
	__u64 bytes;   /* skb->len: L2 frame bytes; 0 for the sock hooks */
};

#endif /* SLUICE_BPF_ABI_METRICS_H */
