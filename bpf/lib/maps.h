/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every map shared between BPF objects and the loader, defined once. Each
 * object includes this header; LIBBPF_PIN_BY_NAME pins them as
 * <pin_root_path>/<name> (the loader sets pin_root_path at open), so all
 * objects and every agent run share one instance: a restarted agent adopts
 * the maps and established flows keep their backends.
 *
 * max_entries here are defaults; the loader resizes before load from its
 * options. Names are at most 15 characters (BPF_OBJ_NAME_LEN).
 */
#ifndef SLUICE_BPF_LIB_MAPS_H
#define SLUICE_BPF_LIB_MAPS_H

#include "bpf/lib/ctx.h"
#include "bpf/abi/ct.h"
#include "bpf/abi/lb.h"
#include "bpf/abi/metrics.h"
#include "bpf/abi/sock.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sl_svc_key);
	__type(value, struct sl_svc_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct sl_slot_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, __u32);
	__type(value, struct sl_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_backends SEC(".maps");

/* Template of the per-service Maglev tables. BPF_F_INNER_MAP lets each inner
 * map have its own max_entries (the service's table size); the loader
 * creates inner maps with the same type, sizes and flags. */
struct sl_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 1024);
	__type(key, __u32); /* backend set id */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct sl_maglev_inner); /* must be last */
} sl_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct sl_ct_key);
	__type(value, struct sl_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sl_affinity_key);
	__type(value, struct sl_affinity_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_affinity SEC(".maps");

/* Socket-level reverse translation (bpf/abi/sock.h); written and read by
 * the sock object only, defined here with the rest so every object and the
 * loader agree on one pinned instance. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct sl_sock_rev_key);
	__type(value, struct sl_svc_key);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_sock_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_DROP_MAX);
	__type(key, __u32);
	__type(value, struct sl_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_EV_MAX);
	__type(key, __u32);
	__type(value, struct sl_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_events SEC(".maps");

#endif /* SLUICE_BPF_LIB_MAPS_H */
