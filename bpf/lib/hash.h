/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flow hash that picks a backend slot (random) or a Maglev slot. It is
 * part of the contract with userspace: Maglev tables are built there and
 * every node must send a flow to the same slot, so the function is plain C
 * that C++ (tests, `sluice debug`) compiles too, with a fixed seed.
 *
 * Bob Jenkins' lookup3 (public domain) over ten 32-bit words: source
 * address, destination address, both ports, protocol. Addresses and ports
 * are taken as the raw network-order words they are stored as, so the value
 * is the same on every host of one byte order (the maps are too).
 */
#ifndef SLUICE_BPF_LIB_HASH_H
#define SLUICE_BPF_LIB_HASH_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define SL_FLOW_HASH_SEED 0x5a17ce00u

#define SL__ROL32(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

#define SL__JHASH_MIX(a, b, c)                                                 \
	do {                                                                   \
		a -= c; a ^= SL__ROL32(c, 4);  c += b;                         \
		b -= a; b ^= SL__ROL32(a, 6);  a += c;                         \
		c -= b; c ^= SL__ROL32(b, 8);  b += a;                         \
		a -= c; a ^= SL__ROL32(c, 16); c += b;                         \
		b -= a; b ^= SL__ROL32(a, 19); a += c;                         \
		c -= b; c ^= SL__ROL32(b, 4);  b += a;                         \
	} while (0)

#define SL__JHASH_FINAL(a, b, c)                                               \
	do {                                                                   \
		c ^= b; c -= SL__ROL32(b, 14);                                 \
		a ^= c; a -= SL__ROL32(c, 11);                                 \
		b ^= a; b -= SL__ROL32(a, 25);                                 \
		c ^= b; c -= SL__ROL32(b, 16);                                 \
		a ^= c; a -= SL__ROL32(c, 4);                                  \
		b ^= a; b -= SL__ROL32(a, 14);                                 \
		c ^= b; c -= SL__ROL32(b, 24);                                 \
	} while (0)

/* saddr/daddr: 4 words each, IPv4 in word 0 and the rest zero (lb.h);
 * sport/dport: network order as on the wire. */
static inline __u32 sl_flow_hash(const __u32 *saddr, const __u32 *daddr,
				 __u16 sport, __u16 dport, __u8 proto)
{
	__u32 a, b, c;

	a = b = c = 0xdeadbeefu + (10u << 2) + SL_FLOW_HASH_SEED;
	a += saddr[0]; b += saddr[1]; c += saddr[2];
	SL__JHASH_MIX(a, b, c);
	a += saddr[3]; b += daddr[0]; c += daddr[1];
	SL__JHASH_MIX(a, b, c);
	a += daddr[2]; b += daddr[3]; c += ((__u32)sport << 16) | dport;
	SL__JHASH_MIX(a, b, c);
	a += proto;
	SL__JHASH_FINAL(a, b, c);
	return c;
}

#endif /* SLUICE_BPF_LIB_HASH_H */
