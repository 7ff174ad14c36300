// SPDX-License-Identifier: GPL-2.0
/*
 * The backend side of direct server return (the dpdk mode's
 * sluice.io/dpdk-forwarding: dsr), for backend hosts without the ipip and
 * ip6_tunnel modules (Katran ships a decapsulator for the same reason):
 * tc ingress on the backend host's interface strips the outer header of
 * IPv4-in-IPv4 (protocol 4) and IPv6-in-IPv6 (next header 41) packets, so
 * the stack sees the client's packet to the service address, which the host
 * holds (on lo) and answers from directly.
 *
 * Only a well-formed outer header without options whose inner packet is of
 * the same family is stripped; everything else passes untouched.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

SEC("tc")
int dsr_decap(struct __sk_buff *skb)
{
	/*
	 * Both headers into the linear part first: a forwarded packet may
	 * carry little more than the outer header there (a packet socket's
	 * frame, for one, keeps only its Ethernet header linear).
	 */
	__u32 want = sizeof(struct ethhdr) + 2 * sizeof(struct ipv6hdr);

	if (want > skb->len)
		want = skb->len;
	if (bpf_skb_pull_data(skb, want))
		return TC_ACT_OK;

	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	int outer;

	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct iphdr *inner = (void *)(ip + 1);

		if ((void *)(inner + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_IPIP ||
		    inner->version != 4)
			return TC_ACT_OK;
		outer = sizeof(*ip);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct ipv6hdr *inner6 = (void *)(ip6 + 1);

		if ((void *)(inner6 + 1) > end || ip6->nexthdr != IPPROTO_IPV6 || inner6->version != 6)
			return TC_ACT_OK;
		outer = sizeof(*ip6);
	} else {
		return TC_ACT_OK;
	}
	/* The outer header goes; the Ethernet header and EtherType stay. */
	if (bpf_skb_adjust_room(skb, -outer, BPF_ADJ_ROOM_MAC, 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
