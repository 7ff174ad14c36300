/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Service lookup and backend selection for new flows: ClientIP affinity,
 * then Maglev or a hash-chosen slot, over the backend set the frontend's
 * family and traffic policy name (bpf/abi/lb.h).
 */
#ifndef SLUICE_BPF_LIB_LB_H
#define SLUICE_BPF_LIB_LB_H

#include "bpf/lib/ct.h"
#include "bpf/lib/hash.h"
#include "bpf/lib/maps.h"
#include "bpf/lib/metrics.h"
#include "bpf/lib/parse.h"

/* The backend set a new flow is balanced over. */
struct lb_set {
	__u32 id;	   /* sl_slot_key.set_id / sl_maglev key */
	__u16 active;	   /* active backends in the set */
	__u16 terminating; /* terminating ones, used only when active == 0 */
	bool local;	   /* node-local set: backends must be SL_BACKEND_F_LOCAL */
};

static __always_inline struct sl_svc_value *lb_lookup_service(const struct sl_pkt *pkt)
{
	struct sl_svc_key key = {
		.port = pkt->dport,
		.proto = pkt->proto,
		.family = pkt->family,
	};

	__builtin_memcpy(key.addr, pkt->daddr, sizeof(key.addr));
	return bpf_map_lookup_elem(&sl_services, &key);
}

/* local: whether the frontend's Local policy applies at this hook. */
static __always_inline void lb_set_of(struct lb_set *set, const struct sl_svc_value *svc,
				      __u8 family, bool local)
{
	set->id = svc->svc_id | (family == SL_FAMILY_V6 ? SL_SVC_ID_V6 : 0) |
		  (local ? SL_SVC_ID_LOCAL : 0);
	set->active = local ? svc->local_active_count : svc->active_count;
	set->terminating = local ? svc->local_terminating_count : svc->terminating_count;
	set->local = local;
}

/* Whether a new flow may still go to backend *be of this service and set:
 * an affinity entry names it. Same rules as the loader's slot layout. */
static __always_inline bool lb_backend_eligible(const struct sl_backend *be,
						const struct sl_svc_value *svc,
						const struct lb_set *set, __u8 family)
{
	if (be->svc_id != svc->svc_id || be->family != family)
		return false;
	if (set->local && !(be->flags & SL_BACKEND_F_LOCAL))
		return false;
	if (be->state == SL_BACKEND_ACTIVE)
		return true;
	return be->state == SL_BACKEND_TERMINATING && set->active == 0;
}

/* Backend id for a new flow hashing to hash, or 0 when the set's entries
 * are missing (the loader is mid-update); *reason says which. */
static __always_inline __u32 lb_pick(const struct sl_svc_value *svc, const struct lb_set *set,
				     __u32 hash, enum sl_drop_reason *reason)
{
	__u32 count = set->active ? set->active : set->terminating;
	__u32 *id;

	if (svc->flags & SL_SVC_F_MAGLEV) {
		__u32 size = svc->maglev_size;
		__u32 slot;
		void *table;

		table = bpf_map_lookup_elem(&sl_maglev, &set->id);
		if (!table || size == 0) {
			*reason = SL_DROP_MAGLEV_MISSING;
			return 0;
		}
		slot = hash % size;
		id = bpf_map_lookup_elem(table, &slot);
	} else {
		struct sl_slot_key key = {
			.set_id = set->id,
			.slot = hash % count,
		};

		id = bpf_map_lookup_elem(&sl_slots, &key);
	}
	if (!id || *id == 0) {
		*reason = SL_DROP_NO_BACKEND;
		return 0;
	}
	return *id;
}

/*
 * Chooses the backend of a new flow; count must be > 0 (set->active or
 * set->terminating). Returns the backend id and sets *be, or returns 0 with
 * *reason set.
 */
static __always_inline __u32 lb_select(struct __sk_buff *ctx, const struct sl_pkt *pkt,
				       const struct sl_svc_value *svc, const struct lb_set *set,
				       __u64 now, struct sl_backend **be,
				       enum sl_drop_reason *reason)
{
	struct sl_affinity_key akey = {};
	struct sl_affinity_value *aff;
	struct sl_affinity_value nv = {};
	bool affinity = svc->flags & SL_SVC_F_AFFINITY;
	__u32 id;

	if (affinity) {
		akey.set_id = set->id;
		akey.family = pkt->family;
		__builtin_memcpy(akey.client, pkt->saddr, sizeof(akey.client));
		aff = bpf_map_lookup_elem(&sl_affinity, &akey);
		if (aff && now >= aff->last_used_ns &&
		    now - aff->last_used_ns <= (__u64)svc->affinity_timeout_s * SL_NS_PER_S) {
			id = aff->backend_id;
			*be = bpf_map_lookup_elem(&sl_backends, &id);
			if (*be && lb_backend_eligible(*be, svc, set, pkt->family)) {
				if (now > aff->last_used_ns + SL_CT_REFRESH_NS)
					aff->last_used_ns = now;
				metrics_event(ctx, SL_EV_AFFINITY_HIT);
				return id;
			}
		}
	}

	id = lb_pick(svc, set, sl_flow_hash(pkt->saddr, pkt->daddr, pkt->sport, pkt->dport,
					    pkt->proto), reason);
	if (!id)
		return 0;
	*be = bpf_map_lookup_elem(&sl_backends, &id);
	if (!*be || (*be)->family != pkt->family) {
		*reason = SL_DROP_NO_BACKEND;
		return 0;
	}
	if (affinity) {
		nv.backend_id = id;
		nv.last_used_ns = now;
		/* Best effort: LRU makes room; a failure only loses stickiness. */
		bpf_map_update_elem(&sl_affinity, &akey, &nv, BPF_ANY);
	}
	return id;
}

#endif /* SLUICE_BPF_LIB_LB_H */
