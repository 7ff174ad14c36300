// bpf/abi/ as clang -target bpf laid it out (the BTF in lxc.bpf.o) against
// the same headers as the C++ compiler lays them out, field by field: the
// run-time half of bpf/loader/abi_layout.h's static_asserts, in the manner
// of Cilium's bpf_alignchecker. A field added on one side only, or padding
// one compiler inserts and the other does not, fails here.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "bpf/abi/ct.h"
#include "bpf/abi/lb.h"
#include "bpf/abi/metrics.h"
#include "bpf/abi/sock.h"
#include "bpf/loader/abi_layout.h"
#include "dataplane/drop_reason.h"
#include "lxc.skel.h"
#include "sock.skel.h"
#include "sock_term.skel.h"

namespace sluice {
namespace {

struct Field {
  std::string name;
  size_t offset;
  size_t size;
};

struct Layout {
  std::string name;
  size_t size;
  std::vector<Field> fields;
};

#define SL_FIELD(type, f) \
  Field { #f, offsetof(type, f), sizeof(type::f) }

std::vector<Layout> cxxLayouts() {
  return {
      {"sl_svc_key",
       sizeof(sl_svc_key),
       {SL_FIELD(sl_svc_key, addr), SL_FIELD(sl_svc_key, port), SL_FIELD(sl_svc_key, proto),
        SL_FIELD(sl_svc_key, family)}},
      {"sl_svc_value",
       sizeof(sl_svc_value),
       {SL_FIELD(sl_svc_value, svc_id), SL_FIELD(sl_svc_value, active_count),
        SL_FIELD(sl_svc_value, terminating_count), SL_FIELD(sl_svc_value, local_active_count),
        SL_FIELD(sl_svc_value, local_terminating_count), SL_FIELD(sl_svc_value, flags),
        SL_FIELD(sl_svc_value, affinity_timeout_s), SL_FIELD(sl_svc_value, maglev_size)}},
      {"sl_slot_key",
       sizeof(sl_slot_key),
       {SL_FIELD(sl_slot_key, set_id), SL_FIELD(sl_slot_key, slot)}},
      {"sl_backend",
       sizeof(sl_backend),
       {SL_FIELD(sl_backend, addr), SL_FIELD(sl_backend, port), SL_FIELD(sl_backend, family),
        SL_FIELD(sl_backend, state), SL_FIELD(sl_backend, flags), SL_FIELD(sl_backend, pad),
        SL_FIELD(sl_backend, svc_id)}},
      {"sl_affinity_key",
       sizeof(sl_affinity_key),
       {SL_FIELD(sl_affinity_key, set_id), SL_FIELD(sl_affinity_key, family),
        SL_FIELD(sl_affinity_key, pad), SL_FIELD(sl_affinity_key, client)}},
      {"sl_affinity_value",
       sizeof(sl_affinity_value),
       {SL_FIELD(sl_affinity_value, backend_id), SL_FIELD(sl_affinity_value, pad),
        SL_FIELD(sl_affinity_value, last_used_ns)}},
      {"sl_ct_key",
       sizeof(sl_ct_key),
       {SL_FIELD(sl_ct_key, saddr), SL_FIELD(sl_ct_key, daddr), SL_FIELD(sl_ct_key, sport),
        SL_FIELD(sl_ct_key, dport), SL_FIELD(sl_ct_key, proto), SL_FIELD(sl_ct_key, family),
        SL_FIELD(sl_ct_key, dir), SL_FIELD(sl_ct_key, pad)}},
      {"sl_ct_entry",
       sizeof(sl_ct_entry),
       {SL_FIELD(sl_ct_entry, nat_addr), SL_FIELD(sl_ct_entry, client_addr),
        SL_FIELD(sl_ct_entry, nat_port), SL_FIELD(sl_ct_entry, tcp_flags),
        SL_FIELD(sl_ct_entry, flags),
        SL_FIELD(sl_ct_entry, backend_id), SL_FIELD(sl_ct_entry, set_id),
        SL_FIELD(sl_ct_entry, client_port), SL_FIELD(sl_ct_entry, pad1), SL_FIELD(sl_ct_entry, last_seen_ns)}},
      {"sl_counter",
       sizeof(sl_counter),
       {SL_FIELD(sl_counter, packets), SL_FIELD(sl_counter, bytes)}},
      {"sl_sock_rev_key",
       sizeof(sl_sock_rev_key),
       {SL_FIELD(sl_sock_rev_key, cookie), SL_FIELD(sl_sock_rev_key, addr),
        SL_FIELD(sl_sock_rev_key, port), SL_FIELD(sl_sock_rev_key, family),
        SL_FIELD(sl_sock_rev_key, pad)}},
  };
}

// Keys private to one object (not in bpf/lib/maps.h).
std::vector<Layout> sockTermLayouts() {
  return {{"sl_sock_term_key",
           sizeof(sl_sock_term_key),
           {SL_FIELD(sl_sock_term_key, addr), SL_FIELD(sl_sock_term_key, port),
            SL_FIELD(sl_sock_term_key, family), SL_FIELD(sl_sock_term_key, pad),
            SL_FIELD(sl_sock_term_key, svc_id)}}};
}

#undef SL_FIELD

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct SkelDeleter {
  void operator()(lxc_bpf* s) const { lxc_bpf__destroy(s); }
  void operator()(sock_bpf* s) const { sock_bpf__destroy(s); }
  void operator()(sock_term_bpf* s) const { sock_term_bpf__destroy(s); }
};

void expectLayoutsMatch(const btf* types, const std::vector<Layout>& layouts = cxxLayouts()) {
  for (const Layout& want : layouts) {
    SCOPED_TRACE("struct " + want.name);
    const int id = btf__find_by_name_kind(types, want.name.c_str(), BTF_KIND_STRUCT);
    ASSERT_GT(id, 0) << "not in the object's BTF: is it used by a map?";
    const btf_type* t = btf__type_by_id(types, static_cast<uint32_t>(id));
    EXPECT_EQ(t->size, want.size);
    ASSERT_EQ(btf_vlen(t), want.fields.size()) << "field count differs";
    const btf_member* m = btf_members(t);
    for (uint16_t i = 0; i < btf_vlen(t); ++i) {
      const Field& f = want.fields[i];
      EXPECT_EQ(btf__name_by_offset(types, m[i].name_off), f.name) << "field " << i;
      EXPECT_EQ(btf_member_bitfield_size(t, i), 0u) << f.name << " is a bitfield";
      EXPECT_EQ(btf_member_bit_offset(t, i) / 8, f.offset) << f.name;
      const int64_t size = btf__resolve_size(types, m[i].type);
      EXPECT_EQ(size, static_cast<int64_t>(f.size)) << f.name;
    }
  }
}

TEST(AbiLayoutTest, BpfObjectAndCxxAgreeOnEverySharedStruct) {
  // Opened, not loaded: only the object's BTF is needed.
  std::unique_ptr<lxc_bpf, SkelDeleter> skel(lxc_bpf__open());
  ASSERT_TRUE(skel);
  const btf* types = bpf_object__btf(skel->obj);
  ASSERT_NE(types, nullptr) << "lxc.bpf.o has no BTF (built without -g?)";
  expectLayoutsMatch(types);
}

TEST(AbiLayoutTest, SockObjectAgreesToo) {
  // Every object defines the shared maps from bpf/lib/maps.h, so each
  // carries every struct; they share pinned maps and must agree.
  std::unique_ptr<sock_bpf, SkelDeleter> skel(sock_bpf__open());
  ASSERT_TRUE(skel);
  const btf* types = bpf_object__btf(skel->obj);
  ASSERT_NE(types, nullptr) << "sock.bpf.o has no BTF (built without -g?)";
  expectLayoutsMatch(types);
}

TEST(AbiLayoutTest, SockTermObjectAgreesOnItsKeyAndTheSharedStructs) {
  std::unique_ptr<sock_term_bpf, SkelDeleter> skel(sock_term_bpf__open());
  ASSERT_TRUE(skel);
  const btf* types = bpf_object__btf(skel->obj);
  ASSERT_NE(types, nullptr) << "sock_term.bpf.o has no BTF (built without -g?)";
  expectLayoutsMatch(types);
  expectLayoutsMatch(types, sockTermLayouts());
}

TEST(AbiLayoutTest, CounterMapsHaveOneSlotPerEnumValue) {
  // The per-CPU counter maps are sized by the enums' last values; the
  // loader's names come from the same X-macros (bpf/abi/metrics.h).
  std::unique_ptr<lxc_bpf, SkelDeleter> skel(lxc_bpf__open());
  ASSERT_TRUE(skel);
  EXPECT_EQ(bpf_map__max_entries(skel->maps.sl_drops), static_cast<uint32_t>(SL_DROP_MAX));
  EXPECT_EQ(bpf_map__max_entries(skel->maps.sl_events), static_cast<uint32_t>(SL_EV_MAX));
}

// One drop-reason enum for C++ and BPF: the BPF programs' enum
// sl_drop_reason and C++'s DropReason are both generated from
// dataplane/drop_reasons.h; every reason has the same value and a counter
// name that is its C name in lower case, and both count the same reasons.
TEST(AbiLayoutTest, BpfDropReasonsAreDataplaneDropReasons) {
  size_t reasons = 0;
#define SL_DROP_CHECK(c, cxx, name)                                                  \
  EXPECT_EQ(static_cast<int>(SL_DROP_##c), static_cast<int>(DropReason::k##cxx)) << #c; \
  EXPECT_EQ(toString(DropReason::k##cxx), lower(#c)) << #c;                          \
  ++reasons;
  SL_DROP_REASON_LIST(SL_DROP_CHECK)
#undef SL_DROP_CHECK
  EXPECT_EQ(reasons, kDropReasonCount);
  EXPECT_EQ(static_cast<size_t>(SL_DROP_MAX), kDropReasonCount);
}

}  // namespace
}  // namespace sluice
