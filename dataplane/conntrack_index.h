// Internals of Conntrack's hash index shared by conntrack.cc (lookups,
// inserts) and conntrack_index.cc (the buckets themselves): the tuple hash,
// the slot tag and the 8-lane compares. Not for callers of Conntrack.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "dataplane/flow.h"

namespace sluice::conntrack_index {

// 32 bits of hashFlow() name a tuple's two buckets (Conntrack::primaryBucket,
// secondaryBucket) and, mixed down to 16, its tag.
inline uint32_t hash32(const FlowTuple& tuple) { return static_cast<uint32_t>(hashFlow(tuple) >> 32); }
// All 32 bits mixed into 16: the low bits also pick the bucket, so a plain
// slice of them would tell apart less within one.
inline uint16_t tagOf(uint32_t hash) { return static_cast<uint16_t>((hash * 0x9e3779b1u) >> 16); }

// Bit i set where v[i] == x, for the 8 lanes of a 16 B-aligned array.
inline uint32_t matchMask8(const std::array<uint16_t, 8>& v, uint16_t x) {
#if defined(__SSE2__)
  const __m128i eq = _mm_cmpeq_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(v.data())),
                                     _mm_set1_epi16(static_cast<short>(x)));
  return static_cast<uint32_t>(_mm_movemask_epi8(_mm_packs_epi16(eq, _mm_setzero_si128())));
#else
  uint32_t m = 0;
  for (size_t i = 0; i < 8; ++i) m |= static_cast<uint32_t>(v[i] == x) << i;
  return m;
#endif
}

// Bit i set where v[i] == x, for the 8 lanes of a 32 B-aligned array.
inline uint32_t matchMask8(const std::array<uint32_t, 8>& v, uint32_t x) {
#if defined(__SSE2__)
  const __m128i k = _mm_set1_epi32(static_cast<int>(x));
  const auto* p = reinterpret_cast<const __m128i*>(v.data());
  const __m128i lo = _mm_cmpeq_epi32(_mm_load_si128(p), k);
  const __m128i hi = _mm_cmpeq_epi32(_mm_load_si128(p + 1), k);
  return static_cast<uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(lo))) |
         static_cast<uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(hi))) << 4;
#else
  uint32_t m = 0;
  for (size_t i = 0; i < 8; ++i) m |= static_cast<uint32_t>(v[i] == x) << i;
  return m;
#endif
}

}  // namespace sluice::conntrack_index
