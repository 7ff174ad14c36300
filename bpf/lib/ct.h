/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Service conntrack over sl_ct (bpf/abi/ct.h for the model). Only service
 * flows are tracked; everything else never touches the map.
 */
#ifndef SLUICE_BPF_LIB_CT_H
#define SLUICE_BPF_LIB_CT_H

#include "bpf/lib/maps.h"
#include "bpf/lib/parse.h"

#define SL_NS_PER_S 1000000000ull

/* The key of *pkt's own tuple in direction dir. */
static __always_inline void ct_key_of(struct sl_ct_key *key, const struct sl_pkt *pkt, __u8 dir)
{
	__builtin_memcpy(key->saddr, pkt->saddr, sizeof(key->saddr));
	__builtin_memcpy(key->daddr, pkt->daddr, sizeof(key->daddr));
	key->sport = pkt->sport;
	key->dport = pkt->dport;
	key->proto = pkt->proto;
	key->family = pkt->family;
	key->dir = dir;
	key->pad = 0;
}

static __always_inline __u64 ct_lifetime_ns(const struct sl_ct_entry *e, __u8 proto)
{
	if (proto != IPPROTO_TCP)
		return SL_CT_LIFETIME_NONTCP_S * SL_NS_PER_S;
	if (e->tcp_flags & SL_TCP_RST)
		return SL_CT_LIFETIME_CLOSE_S * SL_NS_PER_S;
	if (!(e->tcp_flags & SL_TCP_ACK))
		return SL_CT_LIFETIME_SYN_S * SL_NS_PER_S;
	return SL_CT_LIFETIME_TCP_S * SL_NS_PER_S;
}

/* The live entry for key, or NULL if absent or idle past its lifetime. */
static __always_inline struct sl_ct_entry *ct_lookup(const struct sl_ct_key *key, __u64 now)
{
	struct sl_ct_entry *e = bpf_map_lookup_elem(&sl_ct, key);

	if (!e)
		return NULL;
	if (now > e->last_seen_ns && now - e->last_seen_ns > ct_lifetime_ns(e, key->proto))
		return NULL;
	return e;
}

/* Records a packet on a live entry, writing only what changed (and
 * last_seen_ns at most every SL_CT_REFRESH_NS). */
static __always_inline void ct_touch(struct sl_ct_entry *e, __u8 tcp_flags, __u64 now)
{
	if ((e->tcp_flags | tcp_flags) != e->tcp_flags)
		e->tcp_flags |= tcp_flags;
	if (now > e->last_seen_ns + SL_CT_REFRESH_NS)
		e->last_seen_ns = now;
}

/* Writes both entries of a new service flow: *pkt is the client's packet
 * before DNAT, *be the chosen backend; hairpin, if not NULL, is the source
 * the client's packets get because the backend is the client itself (lb.h);
 * reply_flags (SL_CT_F_*) go into the reply entry.
 * Returns 0 or a negative errno. */
static __always_inline int ct_create(const struct sl_pkt *pkt, const struct sl_backend *be,
				     __u32 backend_id, __u32 set_id, __u64 now,
				     const __be32 *hairpin, __u8 reply_flags)
{
	struct sl_ct_entry e = {
		.tcp_flags = pkt->tcp_flags,
		.backend_id = backend_id,
		.set_id = set_id,
		.last_seen_ns = now,
	};
	struct sl_ct_key key;
	int ret;

	ct_key_of(&key, pkt, SL_CT_DIR_SERVICE);
	ret = bpf_map_update_elem(&sl_ct, &key, &e, BPF_ANY);
	if (ret < 0)
		return ret;

	/* The backend's answer: backend -> client (or -> the hairpin source). */
	__builtin_memcpy(key.saddr, be->addr, sizeof(key.saddr));
	if (hairpin) {
		__builtin_memcpy(key.daddr, hairpin, sizeof(key.daddr));
		__builtin_memcpy(e.client_addr, pkt->saddr, sizeof(e.client_addr));
		e.flags |= SL_CT_F_HAIRPIN;
	} else {
		__builtin_memcpy(key.daddr, pkt->saddr, sizeof(key.daddr));
	}
	key.sport = be->port;
	key.dport = pkt->sport;
	key.dir = SL_CT_DIR_REPLY;
	e.flags |= reply_flags;
	__builtin_memcpy(e.nat_addr, pkt->daddr, sizeof(e.nat_addr));
	e.nat_port = pkt->dport;
	e.tcp_flags = 0;
	return bpf_map_update_elem(&sl_ct, &key, &e, BPF_ANY);
}

/* Whether the reply tuple backend -> snat_addr:snat_port is free for a new
 * SNATed flow: no live SL_CT_DIR_REPLY entry holds it. */
static __always_inline bool ct_reply_free(const struct sl_pkt *pkt, const struct sl_backend *be,
					  const __be32 *snat_addr, __be16 snat_port, __u64 now)
{
	struct sl_ct_key key = {
		.sport = be->port,
		.dport = snat_port,
		.proto = pkt->proto,
		.family = pkt->family,
		.dir = SL_CT_DIR_REPLY,
	};

	__builtin_memcpy(key.saddr, be->addr, sizeof(key.saddr));
	__builtin_memcpy(key.daddr, snat_addr, sizeof(key.daddr));
	return ct_lookup(&key, now) == NULL;
}

/* ct_create() for a flow whose client is also rewritten, to
 * snat_addr:snat_port (SL_CT_F_SNAT in abi/ct.h): the service entry
 * remembers the SNAT source, the reply entry is keyed on it and holds the
 * client to restore. reply_flags as for ct_create(). */
static __always_inline int ct_create_snat(const struct sl_pkt *pkt, const struct sl_backend *be,
					  __u32 backend_id, __u32 set_id, __u64 now,
					  const __be32 *snat_addr, __be16 snat_port,
					  __u8 reply_flags)
{
	struct sl_ct_entry e = {
		.tcp_flags = pkt->tcp_flags,
		.flags = SL_CT_F_SNAT,
		.backend_id = backend_id,
		.set_id = set_id,
		.nat_port = snat_port,
		.last_seen_ns = now,
	};
	struct sl_ct_key key;
	int ret;

	__builtin_memcpy(e.nat_addr, snat_addr, sizeof(e.nat_addr));
	ct_key_of(&key, pkt, SL_CT_DIR_SERVICE);
	ret = bpf_map_update_elem(&sl_ct, &key, &e, BPF_ANY);
	if (ret < 0)
		return ret;

	__builtin_memcpy(key.saddr, be->addr, sizeof(key.saddr));
	__builtin_memcpy(key.daddr, snat_addr, sizeof(key.daddr));
	key.sport = be->port;
	key.dport = snat_port;
	key.dir = SL_CT_DIR_REPLY;
	e.flags = SL_CT_F_SNAT | reply_flags;
	__builtin_memcpy(e.nat_addr, pkt->daddr, sizeof(e.nat_addr));
	e.nat_port = pkt->dport;
	__builtin_memcpy(e.client_addr, pkt->saddr, sizeof(e.client_addr));
	e.client_port = pkt->sport;
	e.tcp_flags = 0;
	return bpf_map_update_elem(&sl_ct, &key, &e, BPF_ANY);
}

#endif /* SLUICE_BPF_LIB_CT_H */
