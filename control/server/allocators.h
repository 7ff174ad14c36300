// Bitmap allocators for Service addresses and ports, as Kubernetes' service
// IP and node port allocators: an explicit request is honoured if it is in
// range and free; otherwise the next free value after the last one handed
// out is taken (so a restarted server does not immediately reuse an address
// a client may still cache). Not thread-safe: ServiceAllocations locks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/result.h"

namespace sluice::server {

// IPv4 addresses of one CIDR, without its network and broadcast addresses.
class IpAllocator {
 public:
  // Ranges larger than /12 (1M addresses, a 128 KiB bitmap) are refused, as
  // Kubernetes caps service CIDRs. With `reserveStaticBand`, automatic
  // allocation starts above a low band kept for explicit requests (service
  // CIDRs); load balancer pools hand out from their first address.
  static Result<IpAllocator> create(std::string_view cidr, bool reserveStaticBand = true);

  // Errors: kInvalidArgument "the provided IP (x) is not in the valid range.
  // The range of valid IPs is <cidr>"; kAlreadyExists "provided IP is
  // already allocated".
  Result<void> allocate(std::string_view ip);
  // kResourceExhausted when full.
  Result<std::string> allocateNext();
  void release(std::string_view ip);

  bool contains(std::string_view ip) const;
  bool isAllocated(std::string_view ip) const;
  size_t freeCount() const { return size_ - used_; }
  const std::string& cidr() const { return cidr_; }
  // The first usable address (the `kubernetes` Service's).
  std::string first() const;

 private:
  std::optional<uint32_t> offsetOf(std::string_view ip) const;
  std::string addressAt(uint32_t offset) const;

  std::string cidr_;
  uint32_t base_ = 0;  // first usable address, host order
  uint32_t size_ = 0;
  uint32_t used_ = 0;
  uint32_t cursor_ = 0;
  std::vector<bool> bits_;
};

// Ports [first, last], e.g. NodePorts 30000-32767.
class PortAllocator {
 public:
  static Result<PortAllocator> create(int first, int last);

  // Errors: kInvalidArgument "provided port is not in the valid range. The
  // range of valid ports is 30000-32767"; kAlreadyExists "provided port is
  // already allocated".
  Result<void> allocate(int port);
  Result<int> allocateNext();
  void release(int port);
  bool isAllocated(int port) const;
  size_t freeCount() const { return static_cast<size_t>(last_ - first_ + 1) - used_; }
  std::string range() const { return std::to_string(first_) + "-" + std::to_string(last_); }

 private:
  int first_ = 0;
  int last_ = 0;
  size_t used_ = 0;
  int cursor_ = 0;
  std::vector<bool> bits_;
};

}  // namespace sluice::server
