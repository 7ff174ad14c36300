// Compile-time checks that C++ sees bpf/abi/ exactly as the BPF programs do:
// the sizes and offsets below are what clang -target bpf lays out (checked
// against the objects' BTF at run time by tests/bpf/abi_layout_test.cc).
// A change to an abi struct must change this file too, deliberately: pinned
// maps outlive the agent, so a layout change is a datapath upgrade.
#pragma once

#include <cstddef>
#include <type_traits>

#include "bpf/abi/ct.h"
#include "bpf/abi/lb.h"
#include "bpf/abi/metrics.h"
#include "bpf/abi/sock.h"

namespace sluice::bpf_abi {

template <typename T>
constexpr bool kIsPlain = std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T>;

static_assert(kIsPlain<sl_svc_key> && sizeof(sl_svc_key) == 20);
static_assert(offsetof(sl_svc_key, addr) == 0 && offsetof(sl_svc_key, port) == 16 &&
              offsetof(sl_svc_key, proto) == 18 && offsetof(sl_svc_key, family) == 19);

static_assert(kIsPlain<sl_svc_value> && sizeof(sl_svc_value) == 24);
static_assert(offsetof(sl_svc_value, svc_id) == 0 && offsetof(sl_svc_value, active_count) == 4 &&
              offsetof(sl_svc_value, terminating_count) == 6 &&
              offsetof(sl_svc_value, local_active_count) == 8 &&
              offsetof(sl_svc_value, local_terminating_count) == 10 &&
              offsetof(sl_svc_value, flags) == 12 &&
              offsetof(sl_svc_value, affinity_timeout_s) == 16 &&
              offsetof(sl_svc_value, maglev_size) == 20);

static_assert(kIsPlain<sl_slot_key> && sizeof(sl_slot_key) == 8);
static_assert(offsetof(sl_slot_key, set_id) == 0 && offsetof(sl_slot_key, slot) == 4);

static_assert(kIsPlain<sl_backend> && sizeof(sl_backend) == 28);
static_assert(offsetof(sl_backend, addr) == 0 && offsetof(sl_backend, port) == 16 &&
              offsetof(sl_backend, family) == 18 && offsetof(sl_backend, state) == 19 &&
              offsetof(sl_backend, flags) == 20 && offsetof(sl_backend, pad) == 21 &&
              offsetof(sl_backend, svc_id) == 24);

static_assert(kIsPlain<sl_affinity_key> && sizeof(sl_affinity_key) == 24);
static_assert(offsetof(sl_affinity_key, set_id) == 0 && offsetof(sl_affinity_key, family) == 4 &&
              offsetof(sl_affinity_key, client) == 8);

static_assert(kIsPlain<sl_affinity_value> && sizeof(sl_affinity_value) == 16);
static_assert(offsetof(sl_affinity_value, backend_id) == 0 &&
              offsetof(sl_affinity_value, last_used_ns) == 8);

static_assert(kIsPlain<sl_ct_key> && sizeof(sl_ct_key) == 40);
static_assert(offsetof(sl_ct_key, saddr) == 0 && offsetof(sl_ct_key, daddr) == 16 &&
              offsetof(sl_ct_key, sport) == 32 && offsetof(sl_ct_key, dport) == 34 &&
              offsetof(sl_ct_key, proto) == 36 && offsetof(sl_ct_key, family) == 37 &&
              offsetof(sl_ct_key, dir) == 38 && offsetof(sl_ct_key, pad) == 39);

static_assert(kIsPlain<sl_ct_entry> && sizeof(sl_ct_entry) == 56);
static_assert(offsetof(sl_ct_entry, nat_addr) == 0 && offsetof(sl_ct_entry, client_addr) == 16 &&
              offsetof(sl_ct_entry, nat_port) == 32 && offsetof(sl_ct_entry, tcp_flags) == 34 &&
              offsetof(sl_ct_entry, flags) == 35 && offsetof(sl_ct_entry, backend_id) == 36 &&
              offsetof(sl_ct_entry, set_id) == 40 && offsetof(sl_ct_entry, client_port) == 44 &&
              offsetof(sl_ct_entry, pad1) == 46 && offsetof(sl_ct_entry, last_seen_ns) == 48);

static_assert(kIsPlain<sl_counter> && sizeof(sl_counter) == 16);

static_assert(kIsPlain<sl_sock_rev_key> && sizeof(sl_sock_rev_key) == 32);
static_assert(offsetof(sl_sock_rev_key, cookie) == 0 && offsetof(sl_sock_rev_key, addr) == 8 &&
              offsetof(sl_sock_rev_key, port) == 24 && offsetof(sl_sock_rev_key, family) == 26 &&
              offsetof(sl_sock_rev_key, pad) == 27);

static_assert(kIsPlain<sl_sock_term_key> && sizeof(sl_sock_term_key) == 24);
static_assert(offsetof(sl_sock_term_key, addr) == 0 && offsetof(sl_sock_term_key, port) == 16 &&
              offsetof(sl_sock_term_key, family) == 18 && offsetof(sl_sock_term_key, pad) == 19 &&
              offsetof(sl_sock_term_key, svc_id) == 20);

// Service ids and the set bits must not overlap.
static_assert((SL_SVC_ID_MASK & (SL_SVC_ID_LOCAL | SL_SVC_ID_V6)) == 0);

}  // namespace sluice::bpf_abi
