// The Maglev inner maps of the eBPF mode: one ARRAY of __u32 backend ids
// per backend set, slot -> backend id, swapped into sl_maglev (HASH_OF_MAPS)
// whole, so no flow ever sees a half-written table. Flags as the template
// in bpf/lib/maps.h (the kernel requires equal flags for map-in-map values).
#pragma once

#include <cstdint>
#include <vector>

#include "bpf/loader/bpf_map.h"
#include "dataplane/result.h"

namespace sluice::bpf {

// A new, empty inner map of `size` slots.
Result<FileDescriptor> createMaglevTable(uint32_t size);
// Every slot at once, batched (8,192 slots a syscall).
Result<void> writeAllSlots(int fd, const std::vector<uint32_t>& ids);
Result<std::vector<uint32_t>> readAllSlots(int fd, uint32_t size);

// An inner map found through sl_maglev (by the id the outer map returns to
// userspace), and its contents.
struct OpenedTable {
  FileDescriptor fd;
  std::vector<uint32_t> ids;
};
Result<OpenedTable> openMaglevTable(uint32_t setId, uint32_t mapId);

}  // namespace sluice::bpf
