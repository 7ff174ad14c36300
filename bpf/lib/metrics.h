/* SPDX-License-Identifier: GPL-2.0 */
/* Per-CPU counters: no atomics needed, the loader sums the CPUs. */
#ifndef SLUICE_BPF_LIB_METRICS_H
#define SLUICE_BPF_LIB_METRICS_H

#include "bpf/lib/maps.h"

static __always_inline void metrics_count(void *map, __u32 index, __u32 bytes)
{
	struct sl_counter *c = bpf_map_lookup_elem(map, &index);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline void metrics_event(struct sl_ctx *ctx, enum sl_event ev)
{
	metrics_count(&sl_events, ev, ctx_len(ctx));
}

/* Hooks without a packet (the cgroup socket hooks) count calls, 0 bytes. */
static __always_inline void metrics_event_nopkt(enum sl_event ev)
{
	metrics_count(&sl_events, ev, 0);
}

static __always_inline void metrics_drop_nopkt(enum sl_drop_reason reason)
{
	metrics_count(&sl_drops, reason, 0);
}

/* Counts the drop and returns the verdict that drops it. */
static __always_inline int metrics_drop(struct sl_ctx *ctx, enum sl_drop_reason reason)
{
	metrics_count(&sl_drops, reason, ctx_len(ctx));
	return CTX_ACT_DROP;
}

#endif /* SLUICE_BPF_LIB_METRICS_H */
