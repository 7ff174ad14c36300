// System-wide figures the lab samples around a point: kernel memory from
// /proc/meminfo (what every mode's rules or maps cost, attributed by
// difference, since nf_tables and BPF allocations are not accounted per
// network namespace), this process's RSS, and the machine's irq/softirq
// CPU time from /proc/stat. All of them count the whole machine, so they
// are only as clean as the machine is quiet (docs/lab.md says how noisy).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <vector>

namespace sluice::lab {

// Kernel memory that rule sets and BPF maps live in, bytes: SUnreclaim
// (kmalloc'd nft/xtables objects and BPF map metadata) + Percpu (per-CPU
// BPF and conntrack data) + VmallocUsed (large BPF maps, large xtables
// blobs). SReclaimable is left out on purpose: it is dentries and inodes,
// moved by every compiler and file on the machine, never by rules.
uint64_t kernelMemoryBytes();

// Mean of the last `window` samples of kernelMemoryBytes() taken every
// 200 ms, once their spread (max - min) is under 512 KiB or maxWait has
// passed; the spread is reported as the reading's noise. Lets deferred
// frees (RCU, netns cleanup of the previous point) finish first.
struct KernelMemoryReading {
  double bytes = 0;
  double noiseBytes = 0;
};
KernelMemoryReading settledKernelMemory(std::chrono::milliseconds maxWait, int window = 5);

// VmRSS of this process, bytes, after returning free heap to the kernel
// (malloc_trim), so memory a previous point freed does not hide in the
// baseline of the next.
uint64_t trimmedRssBytes();

// irq + softirq time of all CPUs since boot, seconds (/proc/stat, USER_HZ).
double systemIrqSeconds();

// The ksoftirqd/N threads: softirq work the kernel defers to them is CPU
// the datapath spent, in no process of the lab.
std::vector<pid_t> ksoftirqdPids();

}  // namespace sluice::lab
