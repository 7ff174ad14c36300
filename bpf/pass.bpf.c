// SPDX-License-Identifier: GPL-2.0
/*
 * Minimal pass-through programs, one per hook sluice attaches to. They are
 * the baseline of the BPF benchmarks: per-packet cost of a real program is
 * reported minus the cost of these, measured the same way in the same run.
 * They also prove the build pipeline (vmlinux.h, clang -target bpf,
 * skeleton) works on this kernel.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TC_ACT_OK 0

SEC("tc")
int pass_tc(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

SEC("xdp")
int pass_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
