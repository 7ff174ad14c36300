// SPDX-License-Identifier: GPL-2.0
/*
 * bpf_sock_term: destroys connected UDP sockets that bpf_sock translated
 * to a backend which has since left its service (Cilium's sock_term).
 *
 * Why: bpf_sock rewrites a UDP socket's destination once, in connect(). A
 * connected socket then keeps sending to that backend forever, with no
 * conntrack entry the datapath could re-balance (TCP notices a dead peer by
 * itself, UDP never does). Destroying the socket makes the application's
 * next recv()/send() fail with ECONNABORTED; it reconnects, and connect4/6
 * picks a live backend.
 *
 * How: an iterator over the UDP socket table (iter/udp, Linux 5.9; one
 * table holds AF_INET and AF_INET6 sockets) of the network namespace of the
 * thread that creates the iterator instance. For each connected socket
 * whose peer is a backend listed in sl_sock_term (filled by the loader from
 * what apply() removed), it checks sl_sock_rev: only a socket that bpf_sock
 * itself sent to that backend from a UDP frontend of the same service
 * qualifies (see struct sl_sock_term_key in abi/sock.h). Then
 * bpf_sock_destroy() (kfunc, Linux 6.5; iterators run with the socket
 * locked, as it requires) aborts it.
 *
 * A kernel without the kfunc or the iterator refuses to load this object;
 * the loader reports that and everything else keeps working.
 */
#include "bpf/lib/maps.h"
#include "bpf/lib/metrics.h"

/* include/linux/socket.h, include/net/tcp_states.h: macros / an enum value
 * spelled here so the object does not depend on vmlinux.h's enum names. */
#define SL_AF_INET_SK	2
#define SL_AF_INET6_SK	10
#define SL_TCP_ESTABLISHED 1 /* a connected UDP socket's sk_state */

/* Removed backends of the current run (abi/sock.h). 1024 keys per run: the
 * loader runs the iterator once per batch when an apply() removed more. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct sl_sock_term_key);
	__type(value, __u8);
} sl_sock_term SEC(".maps");

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

SEC("iter/udp")
int sl_sock_term_udp(struct bpf_iter__udp *ctx)
{
	struct sock *sk = (struct sock *)ctx->udp_sk;
	struct sl_sock_term_key tkey = {};
	struct sl_sock_rev_key rkey = {};
	struct sl_svc_value *svc;
	struct sl_svc_key *front;
	__u16 family;

	if (!sk) /* the iterator's final call */
		return 0;
	if (sk->__sk_common.skc_state != SL_TCP_ESTABLISHED)
		return 0; /* not connected: every datagram names its peer */

	family = sk->__sk_common.skc_family;
	if (family == SL_AF_INET_SK) {
		tkey.addr[0] = sk->__sk_common.skc_daddr;
		tkey.family = SL_FAMILY_V4;
	} else if (family == SL_AF_INET6_SK) {
		__be32 a0 = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0];
		__be32 a1 = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1];
		__be32 a2 = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2];
		__be32 a3 = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3];

		/* A v4-mapped peer is an IPv4 backend (bpf_sock records it so). */
		if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff)) {
			tkey.addr[0] = a3;
			tkey.family = SL_FAMILY_V4;
		} else {
			tkey.addr[0] = a0;
			tkey.addr[1] = a1;
			tkey.addr[2] = a2;
			tkey.addr[3] = a3;
			tkey.family = SL_FAMILY_V6;
		}
	} else {
		return 0;
	}
	tkey.port = sk->__sk_common.skc_dport;

	/* Was it bpf_sock that connected this socket to the backend? */
	rkey.cookie = bpf_get_socket_cookie(sk);
	__builtin_memcpy(rkey.addr, tkey.addr, sizeof(rkey.addr));
	rkey.port = tkey.port;
	rkey.family = tkey.family;
	front = bpf_map_lookup_elem(&sl_sock_rev, &rkey);
	if (!front || front->proto != IPPROTO_UDP)
		return 0;

	svc = bpf_map_lookup_elem(&sl_services, front);
	tkey.svc_id = svc ? svc->svc_id : 0;
	if (!bpf_map_lookup_elem(&sl_sock_term, &tkey))
		return 0;

	if (bpf_sock_destroy((struct sock_common *)sk) == 0)
		metrics_event_nopkt(SL_EV_SOCK_TERM);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
