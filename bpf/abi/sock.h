/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sl_sock_rev: socket-level reverse translation for bpf/sock.bpf.c.
 * LRU_HASH. When connect() or sendmsg() sends a socket to a backend
 * instead of the service frontend the application named, the frontend is
 * recorded under (socket cookie, backend); recvmsg() and getpeername()
 * look it up to show the application the frontend again (a UDP reply
 * "from" the ClusterIP, getpeername() == the ClusterIP).
 *
 * Entries are not deleted when a socket closes: the LRU evicts them, and a
 * cookie is never reused within a boot, so a stale entry cannot match.
 *
 * See bpf/abi/lb.h for the address layout rules.
 */
#ifndef SLUICE_BPF_ABI_SOCK_H
#define SLUICE_BPF_ABI_SOCK_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "bpf/abi/lb.h"

struct sl_sock_rev_key {
	__u64 cookie;	/* bpf_get_socket_cookie(), host order */
	__be32 addr[4]; /* the backend the socket was sent to */
	__be16 port;
	__u8 family; /* SL_FAMILY_V4 / SL_FAMILY_V6: the backend's (an IPv4
		      * backend of a v4-mapped IPv6 socket is SL_FAMILY_V4) */
	__u8 pad[5];
};

/* The value is the frontend as sl_services keys it (struct sl_svc_key):
 * restored for the application, and looked up again first, so a deleted
 * service stops being shown. */

/*
 * sl_sock_term: the backends whose connected UDP sockets the socket
 * terminator (bpf/sock_term.bpf.c) destroys on its next run. HASH, private
 * to that object (not pinned): the loader fills it with the backends an
 * apply() removed, runs the iterator once, and empties it again.
 *
 * A socket is destroyed only when its connected peer is addr:port AND
 * sl_sock_rev holds (its cookie, that peer), i.e. bpf_sock sent it there
 * from a UDP frontend, AND that frontend's service is svc_id, the service
 * the backend left. svc_id 0 matches sockets whose frontend is no longer
 * in sl_services (the service was deleted, or the same change removed that
 * frontend): the loader queues both keys for a removed backend. A socket an
 * application connected to the backend's address itself is never touched,
 * nor one balanced to the same pod by another service that still has it.
 */
struct sl_sock_term_key {
	__be32 addr[4]; /* the removed backend (lb.h layout) */
	__be16 port;
	__u8 family; /* SL_FAMILY_V4 / SL_FAMILY_V6: the backend's */
	__u8 pad;
	__u32 svc_id; /* the service it was removed from; 0: frontend gone */
};

#endif /* SLUICE_BPF_ABI_SOCK_H */
