// SPDX-License-Identifier: GPL-2.0
/*
 * bpf_sock: socket-level service load balancing on cgroup v2 hooks, for
 * processes of the host and of pods in the attached cgroup (Cilium's
 * socket LB). Instead of rewriting every packet, the destination the
 * application names is translated once, in the system call:
 *
 *   connect4/6   TCP connect() and UDP connect() to a frontend: choose a
 *                backend (lb_choose(), the same rules as bpf_lxc) and
 *                connect the socket to it. The packets then carry the
 *                backend's address from the start: no conntrack entry, no
 *                per-packet NAT, and tc programs see plain pod traffic.
 *   sendmsg4/6   sendto()/sendmsg() with an address on an unconnected UDP
 *                socket: the same, per call.
 *   recvmsg4/6   recvfrom()/recvmsg() on UDP: a datagram from a backend the
 *                socket was sent to reads as coming from the frontend.
 *   getpeername4/6  getpeername() shows the frontend too.
 *
 * The forward hooks record (socket cookie, backend) -> frontend in
 * sl_sock_rev; the reverse hooks look it up (bpf/abi/sock.h).
 *
 * Backend choice: ClientIP affinity is keyed on the socket's network
 * namespace (SL_AFFINITY_NETNS, abi/lb.h): at connect() the socket has no
 * source address yet. Otherwise the slot comes from the flow hash of the
 * socket cookie and the frontend, so one socket sending to one frontend
 * keeps its backend across sendmsg() calls while the backend set is
 * unchanged. A Local policy applies as for pods: internalTrafficPolicy on
 * ClusterIPs; node-originated traffic to NodePort, LoadBalancer and
 * external addresses is balanced as Cluster (kube-proxy does the same).
 *
 * IPv4-mapped IPv6 destinations (::ffff:a.b.c.d on an AF_INET6 socket) are
 * IPv4 flows: looked up and balanced as IPv4, written back mapped.
 *
 * No backend: the system call fails. bpf_set_retval() (Linux 5.18) sets the
 * errno the application sees: ECONNREFUSED when the service has no
 * endpoint at all (what TCP's RST gives on the packet path), EHOSTUNREACH
 * when none is usable from here (Local policy, or the loader mid-update).
 * Returning 0 alone gives EPERM: what older kernels get (sl_set_retval).
 * recvmsg and getpeername hooks must return 1 (the verifier enforces it)
 * and never fail. getpeername hooks need Linux 5.8; the loader leaves them
 * out (autoload off) on a kernel without them.
 *
 * Everything that is not TCP or UDP to a frontend proceeds unchanged; the
 * tc programs remain the per-packet fallback for what this cannot see
 * (traffic from outside the cgroup, SCTP).
 */
#include "bpf/lib/lb.h"
#include "bpf/lib/maps.h"
#include "bpf/lib/metrics.h"

#define SYS_REJECT  0
#define SYS_PROCEED 1

/* include/uapi/asm-generic/errno*.h: macros, absent from vmlinux.h. */
#define SL_ENOMEM	 12
#define SL_ECONNREFUSED	 111
#define SL_EHOSTUNREACH	 113

/*
 * The network namespace of the node this object serves (its agent's), set
 * by the loader; 0 = every namespace (a kernel without SO_NETNS_COOKIE).
 * The hooks sit on a cgroup that several nodes can share (the host's
 * cgroup2 root, with kind-style nodes or a lab on one host): each agent's
 * programs act on its own node's sockets only and proceed unchanged for
 * every other namespace. Pods (their own namespaces) take the per-packet
 * path of bpf_lxc. Netns cookies are never reused while the host runs, so
 * the hooks of a dead node match nothing.
 */
const volatile __u64 sl_netns_cookie = 0;

static __always_inline bool sock_for_this_node(struct bpf_sock_addr *ctx)
{
	return !sl_netns_cookie || bpf_get_netns_cookie(ctx) == sl_netns_cookie;
}

/*
 * Whether this kernel has bpf_set_retval() for sock_addr programs (Linux
 * 5.18), set by the loader from its probe. A read-only constant: the
 * verifier knows its value, so with false the call is dead code, never
 * checked against the kernel's helper list and removed before the program
 * runs (a kernel without the helper loads the object; the refusal then
 * reads EPERM).
 */
const volatile bool sl_set_retval = false;

static __always_inline int sock_refuse(int err)
{
	if (sl_set_retval)
		bpf_set_retval(err);
	return SYS_REJECT;
}

/* A socket address as the maps store it (lb.h layout, network order). */
struct sock_addr {
	__be32 addr[4];
	__be16 port;
	__u8 family; /* SL_FAMILY_V4 / SL_FAMILY_V6 */
	__u8 proto;  /* IPPROTO_TCP / IPPROTO_UDP */
	bool mapped; /* came from an IPv4-mapped IPv6 address */
};

static __always_inline void sock_addr_v4(struct sock_addr *a, __u32 ip, __u32 port)
{
	a->addr[0] = ip;
	a->port = (__be16)port; /* user_port: network order in the low 16 bits */
	a->family = SL_FAMILY_V4;
}

static __always_inline void sock_addr_v6(struct sock_addr *a, const __u32 *ip6, __u32 port)
{
	a->port = (__be16)port;
	if (ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0xffff)) {
		a->addr[0] = ip6[3];
		a->family = SL_FAMILY_V4;
		a->mapped = true;
		return;
	}
	__builtin_memcpy(a->addr, ip6, sizeof(a->addr));
	a->family = SL_FAMILY_V6;
}

/* The IPv6 words to write back for *a. */
static __always_inline void sock_addr_to_v6(const struct sock_addr *a, __u32 *ip6)
{
	if (a->family == SL_FAMILY_V4) {
		ip6[0] = 0;
		ip6[1] = 0;
		ip6[2] = bpf_htonl(0xffff);
		ip6[3] = a->addr[0];
		return;
	}
	__builtin_memcpy(ip6, a->addr, 4 * sizeof(__u32));
}

static __always_inline void sock_rev_key(struct sl_sock_rev_key *key, __u64 cookie,
					 const __be32 *addr, __be16 port, __u8 family)
{
	key->cookie = cookie;
	__builtin_memcpy(key->addr, addr, sizeof(key->addr));
	key->port = port;
	key->family = family;
}

static __always_inline bool sock_front_equal(const struct sl_svc_key *a,
					     const struct sl_svc_key *b)
{
	return a->addr[0] == b->addr[0] && a->addr[1] == b->addr[1] && a->addr[2] == b->addr[2] &&
	       a->addr[3] == b->addr[3] && a->port == b->port && a->proto == b->proto &&
	       a->family == b->family;
}

/*
 * Forward translation of a destination the application named. Returns 1
 * with *dst rewritten to the chosen backend, 0 when *dst is no frontend
 * (proceed unchanged), or a negative errno for the system call to fail
 * with.
 */
static __always_inline int sock_fwd(struct bpf_sock_addr *ctx, struct sock_addr *dst)
{
	struct lb_client client = { .kind = SL_AFFINITY_NETNS };
	struct sl_sock_rev_key rkey = {};
	struct sl_svc_key front = {};
	struct lb_choice choice = {};
	struct sl_svc_key *cur;
	enum sl_drop_reason reason;
	struct sl_svc_value *svc;
	struct sl_backend *be;
	__u32 words[4] = {};
	__u64 cookie, netns;

	if (dst->proto != IPPROTO_TCP && dst->proto != IPPROTO_UDP)
		return 0;
	svc = lb_lookup(dst->addr, dst->port, dst->proto, dst->family);
	if (!svc)
		return 0;

	netns = bpf_get_netns_cookie(ctx);
	client.addr[0] = (__u32)netns;
	client.addr[1] = (__u32)(netns >> 32);
	cookie = bpf_get_socket_cookie(ctx);
	words[0] = (__u32)cookie;
	words[1] = (__u32)(cookie >> 32);

	reason = lb_choose(svc, dst->family, lb_local_for_node_client(svc), &client,
			   sl_flow_hash(words, dst->addr, 0, dst->port, dst->proto),
			   bpf_ktime_get_ns(), &choice);
	if (choice.flags & LB_F_TERMINATING)
		metrics_event_nopkt(SL_EV_TERMINATING_FALLBACK);
	if (choice.flags & LB_F_AFFINITY_HIT)
		metrics_event_nopkt(SL_EV_AFFINITY_HIT);
	if (reason != SL_DROP_NONE) {
		metrics_drop_nopkt(reason);
		return (choice.flags & LB_F_REFUSE) ? -SL_ECONNREFUSED : -SL_EHOSTUNREACH;
	}
	be = choice.be;
	if (!be) /* never: lb_choose() sets it on success; for the verifier */
		return -SL_EHOSTUNREACH;

	/* Without the reverse entry the application would see the backend
	 * as its peer; fail rather than leak it (an LRU insert only fails
	 * when the kernel cannot allocate). An unconnected UDP socket sends
	 * to the same backend call after call: write only what changed. */
	sock_rev_key(&rkey, cookie, be->addr, be->port, be->family);
	__builtin_memcpy(front.addr, dst->addr, sizeof(front.addr));
	front.port = dst->port;
	front.proto = dst->proto;
	front.family = dst->family;
	cur = bpf_map_lookup_elem(&sl_sock_rev, &rkey);
	if ((!cur || !sock_front_equal(cur, &front)) &&
	    bpf_map_update_elem(&sl_sock_rev, &rkey, &front, BPF_ANY) < 0) {
		metrics_drop_nopkt(SL_DROP_SOCK_REVNAT_FULL);
		return -SL_ENOMEM;
	}

	__builtin_memcpy(dst->addr, be->addr, sizeof(dst->addr));
	dst->port = be->port;
	metrics_event_nopkt(SL_EV_SOCK_FWD);
	return 1;
}

/* Reverse translation of a peer address the kernel reports. Returns 1 with
 * *peer rewritten to the frontend the socket was sent to, else 0. */
static __always_inline int sock_rev(struct bpf_sock_addr *ctx, struct sock_addr *peer)
{
	struct sl_sock_rev_key rkey = {};
	struct sl_svc_key *front;

	sock_rev_key(&rkey, bpf_get_socket_cookie(ctx), peer->addr, peer->port, peer->family);
	front = bpf_map_lookup_elem(&sl_sock_rev, &rkey);
	if (!front)
		return 0;
	/* The service is gone: stop pretending (Cilium does the same). */
	if (!bpf_map_lookup_elem(&sl_services, front) || front->family != peer->family) {
		bpf_map_delete_elem(&sl_sock_rev, &rkey);
		return 0;
	}
	__builtin_memcpy(peer->addr, front->addr, sizeof(peer->addr));
	peer->port = front->port;
	metrics_event_nopkt(SL_EV_SOCK_REV);
	return 1;
}

static __always_inline int sock4_fwd(struct bpf_sock_addr *ctx)
{
	struct sock_addr dst = { .proto = ctx->protocol };
	int ret;

	if (!sock_for_this_node(ctx))
		return SYS_PROCEED;

	sock_addr_v4(&dst, ctx->user_ip4, ctx->user_port);
	ret = sock_fwd(ctx, &dst);
	if (ret < 0)
		return sock_refuse(ret);
	if (ret > 0) {
		ctx->user_ip4 = dst.addr[0];
		ctx->user_port = (__u32)dst.port;
	}
	return SYS_PROCEED;
}

static __always_inline int sock6_fwd(struct bpf_sock_addr *ctx)
{
	struct sock_addr dst = { .proto = ctx->protocol };
	__u32 ip6[4];
	int ret;

	if (!sock_for_this_node(ctx))
		return SYS_PROCEED;

	ip6[0] = ctx->user_ip6[0];
	ip6[1] = ctx->user_ip6[1];
	ip6[2] = ctx->user_ip6[2];
	ip6[3] = ctx->user_ip6[3];
	sock_addr_v6(&dst, ip6, ctx->user_port);
	ret = sock_fwd(ctx, &dst);
	if (ret < 0)
		return sock_refuse(ret);
	if (ret > 0) {
		sock_addr_to_v6(&dst, ip6);
		ctx->user_ip6[0] = ip6[0];
		ctx->user_ip6[1] = ip6[1];
		ctx->user_ip6[2] = ip6[2];
		ctx->user_ip6[3] = ip6[3];
		ctx->user_port = (__u32)dst.port;
	}
	return SYS_PROCEED;
}

static __always_inline int sock4_rev(struct bpf_sock_addr *ctx)
{
	struct sock_addr peer = {};

	if (!sock_for_this_node(ctx))
		return SYS_PROCEED;

	sock_addr_v4(&peer, ctx->user_ip4, ctx->user_port);
	if (sock_rev(ctx, &peer) > 0) {
		ctx->user_ip4 = peer.addr[0];
		ctx->user_port = (__u32)peer.port;
	}
	return SYS_PROCEED;
}

static __always_inline int sock6_rev(struct bpf_sock_addr *ctx)
{
	struct sock_addr peer = {};
	__u32 ip6[4];

	if (!sock_for_this_node(ctx))
		return SYS_PROCEED;

	ip6[0] = ctx->user_ip6[0];
	ip6[1] = ctx->user_ip6[1];
	ip6[2] = ctx->user_ip6[2];
	ip6[3] = ctx->user_ip6[3];
	sock_addr_v6(&peer, ip6, ctx->user_port);
	if (sock_rev(ctx, &peer) > 0) {
		sock_addr_to_v6(&peer, ip6);
		ctx->user_ip6[0] = ip6[0];
		ctx->user_ip6[1] = ip6[1];
		ctx->user_ip6[2] = ip6[2];
		ctx->user_ip6[3] = ip6[3];
		ctx->user_port = (__u32)peer.port;
	}
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int sl_connect4(struct bpf_sock_addr *ctx)
{
	return sock4_fwd(ctx);
}

SEC("cgroup/connect6")
int sl_connect6(struct bpf_sock_addr *ctx)
{
	return sock6_fwd(ctx);
}

SEC("cgroup/sendmsg4")
int sl_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock4_fwd(ctx);
}

SEC("cgroup/sendmsg6")
int sl_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock6_fwd(ctx);
}

SEC("cgroup/recvmsg4")
int sl_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock4_rev(ctx);
}

SEC("cgroup/recvmsg6")
int sl_recvmsg6(struct bpf_sock_addr *ctx)
{
	return sock6_rev(ctx);
}

SEC("cgroup/getpeername4")
int sl_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock4_rev(ctx);
}

SEC("cgroup/getpeername6")
int sl_getpeername6(struct bpf_sock_addr *ctx)
{
	return sock6_rev(ctx);
}

char LICENSE[] SEC("license") = "GPL";
