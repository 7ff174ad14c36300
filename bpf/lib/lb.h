/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Service lookup and backend selection for new flows, shared by every
 * object: lxc (per packet, tc) and sock (per socket, cgroup hooks) call the
 * same lb_choose(), so both paths honour one set of rules: the backend set
 * of the frontend's family and traffic policy (bpf/abi/lb.h), active
 * backends first and terminating ones only when none is active, ClientIP
 * affinity, then Maglev or a hash-chosen slot.
 *
 * Nothing here touches a packet or counts a metric: callers own their
 * context (an skb, a socket) and count what lb_choose() reports.
 */
#ifndef SLUICE_BPF_LIB_LB_H
#define SLUICE_BPF_LIB_LB_H

#include "bpf/lib/ct.h"
#include "bpf/lib/hash.h"
#include "bpf/lib/maps.h"
#include "bpf/lib/parse.h"

/* The backend set a new flow is balanced over. */
struct lb_set {
	__u32 id;	   /* sl_slot_key.set_id / sl_maglev key */
	__u16 active;	   /* active backends in the set */
	__u16 terminating; /* terminating ones, used only when active == 0 */
	bool local;	   /* node-local set: backends must be SL_BACKEND_F_LOCAL */
};

/* Who the client is for ClientIP affinity: sl_affinity_key's family and
 * client fields. Packets name their source address; sockets, which have
 * none yet at connect(), their network namespace (SL_AFFINITY_NETNS). */
struct lb_client {
	__be32 addr[4];
	__u8 kind; /* SL_FAMILY_V4 / SL_FAMILY_V6 / SL_AFFINITY_NETNS */
};

/* lb_choice.flags: what happened on the way, for the caller's counters. */
#define LB_F_AFFINITY_HIT (1 << 0) /* an affinity entry chose the backend */
#define LB_F_TERMINATING  (1 << 1) /* no active backend: terminating fallback */
#define LB_F_REFUSE	  (1 << 2) /* nothing to balance to: refuse the client */

struct lb_choice {
	struct sl_backend *be; /* valid until the program returns */
	__u32 backend_id;
	__u32 set_id;
	__u8 flags; /* LB_F_* */
};

static __always_inline struct sl_svc_value *lb_lookup(const __be32 *addr, __be16 port,
						      __u8 proto, __u8 family)
{
	struct sl_svc_key key = {
		.port = port,
		.proto = proto,
		.family = family,
	};

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	return bpf_map_lookup_elem(&sl_services, &key);
}

static __always_inline struct sl_svc_value *lb_lookup_service(const struct sl_pkt *pkt)
{
	return lb_lookup(pkt->daddr, pkt->dport, pkt->proto, pkt->family);
}

/*
 * Whether the frontend's Local policy applies to a client on this node (a
 * pod, or a process of the host): internalTrafficPolicy on a ClusterIP.
 * externalTrafficPolicy is about traffic arriving from outside the node;
 * node-originated traffic to NodePort/LoadBalancer/external addresses is
 * balanced as Cluster, as kube-proxy does.
 */
static __always_inline bool lb_local_for_node_client(const struct sl_svc_value *svc)
{
	return (svc->flags & SL_SVC_F_LOCAL) && (svc->flags & SL_SVC_F_CLUSTER_IP);
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

/* Whether *be still belongs to the frontend's service and family: an
 * established flow (conntrack, a connected socket) keeps such a backend
 * whatever its state; anything else re-balances. */
static __always_inline bool lb_backend_of(const struct sl_backend *be,
					  const struct sl_svc_value *svc, __u8 family)
{
	return be->svc_id == svc->svc_id && be->family == family;
}

/* Whether a new flow may still go to backend *be of this service and set:
 * an affinity entry names it. Same rules as the loader's slot layout. */
static __always_inline bool lb_backend_eligible(const struct sl_backend *be,
						const struct sl_svc_value *svc,
						const struct lb_set *set, __u8 family)
{
	if (!lb_backend_of(be, svc, family))
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
 * Chooses the backend of a new flow to service *svc in family `family`
 * (the frontend's: backends of the other family never qualify), from the
 * node-local set if `local` (lb_local_for_node_client() and friends),
 * sticking to client's affinity entry while it is fresh and eligible, else
 * by `hash` (sl_flow_hash() of what identifies the flow).
 *
 * Returns SL_DROP_NONE with *out filled, or the reason there is no backend:
 *   SL_DROP_NO_BACKEND with LB_F_REFUSE: the set is empty; refuse the
 *     client (TCP RST, ICMP unreachable, ECONNREFUSED).
 *   SL_DROP_NO_LOCAL_BACKEND: Local policy and every backend is on
 *     another node; drop, as kube-proxy does.
 *   SL_DROP_NO_BACKEND / SL_DROP_MAGLEV_MISSING without LB_F_REFUSE: the
 *     counts promise backends the slot or Maglev entries do not have yet
 *     (the loader is mid-update); drop and let the client retry.
 */
static __always_inline enum sl_drop_reason lb_choose(const struct sl_svc_value *svc, __u8 family,
						     bool local, const struct lb_client *client,
						     __u32 hash, __u64 now, struct lb_choice *out)
{
	enum sl_drop_reason reason = SL_DROP_NO_BACKEND;
	struct sl_affinity_key akey = {};
	struct sl_affinity_value *aff;
	struct sl_affinity_value nv = {};
	bool affinity = svc->flags & SL_SVC_F_AFFINITY;
	struct sl_backend *be;
	struct lb_set set;
	__u32 id;

	lb_set_of(&set, svc, family, local);
	out->set_id = set.id;
	out->flags = 0;
	if (set.active == 0 && set.terminating == 0) {
		if (set.local && (svc->active_count || svc->terminating_count))
			return SL_DROP_NO_LOCAL_BACKEND;
		out->flags = LB_F_REFUSE;
		return SL_DROP_NO_BACKEND;
	}
	if (set.active == 0)
		out->flags |= LB_F_TERMINATING;

	if (affinity) {
		akey.set_id = set.id;
		akey.family = client->kind;
		__builtin_memcpy(akey.client, client->addr, sizeof(akey.client));
		aff = bpf_map_lookup_elem(&sl_affinity, &akey);
		if (aff && now >= aff->last_used_ns &&
		    now - aff->last_used_ns <= (__u64)svc->affinity_timeout_s * SL_NS_PER_S) {
			id = aff->backend_id;
			be = bpf_map_lookup_elem(&sl_backends, &id);
			if (be && lb_backend_eligible(be, svc, &set, family)) {
				if (now > aff->last_used_ns + SL_CT_REFRESH_NS)
					aff->last_used_ns = now;
				out->flags |= LB_F_AFFINITY_HIT;
				out->be = be;
				out->backend_id = id;
				return SL_DROP_NONE;
			}
		}
	}

	id = lb_pick(svc, &set, hash, &reason);
	if (!id)
		return reason;
	be = bpf_map_lookup_elem(&sl_backends, &id);
	if (!be || be->family != family)
		return SL_DROP_NO_BACKEND;
	if (affinity) {
		nv.backend_id = id;
		nv.last_used_ns = now;
		/* Best effort: LRU makes room; a failure only loses stickiness. */
		bpf_map_update_elem(&sl_affinity, &akey, &nv, BPF_ANY);
	}
	out->be = be;
	out->backend_id = id;
	return SL_DROP_NONE;
}

#endif /* SLUICE_BPF_LIB_LB_H */
