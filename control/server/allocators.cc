#include "control/server/allocators.h"

#include <arpa/inet.h>

#include <algorithm>

namespace sluice::server {
namespace {

// 2^20 addresses: Kubernetes' limit for a service CIDR (a /12).
constexpr uint32_t kMaxRange = 1u << 20;

std::optional<uint32_t> parseV4(std::string_view s) {
  in_addr a{};
  if (inet_pton(AF_INET, std::string(s).c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

// Dynamic allocation starts above a low "static" band that is left for
// explicit requests (Kubernetes' ServiceIPStaticSubrange and
// ServiceNodePortStaticSubrange: min(max(16, size/32), 128) for node ports;
// the same shape, capped at 256, for addresses), so `nodePort: 30000` in a
// manifest rarely collides with an automatic one.
size_t staticBand(size_t size) {
  size_t band = std::max<size_t>(16, size / 32);
  return std::min<size_t>(band, size <= 4096 ? 128 : 256);
}

}  // namespace

Result<IpAllocator> IpAllocator::create(std::string_view cidr, bool reserveStaticBand) {
  size_t slash = cidr.find('/');
  if (slash == std::string_view::npos) return Error::invalid("CIDR " + std::string(cidr) + ": missing /prefix");
  auto ip = parseV4(cidr.substr(0, slash));
  if (!ip) return Error::invalid("CIDR " + std::string(cidr) + ": only IPv4 ranges are supported");
  int bits = 0;
  for (char c : cidr.substr(slash + 1)) {
    if (c < '0' || c > '9') return Error::invalid("CIDR " + std::string(cidr) + ": bad prefix length");
    bits = bits * 10 + (c - '0');
  }
  if (bits < 12 || bits > 32) {
    return Error::invalid("CIDR " + std::string(cidr) + ": prefix length must be 12-32");
  }
  IpAllocator a;
  a.cidr_ = std::string(cidr);
  uint32_t mask = bits == 0 ? 0 : ~0u << (32 - bits);
  uint32_t network = *ip & mask;
  uint32_t total = 1u << (32 - bits);
  // Network and broadcast addresses are never handed out (a /31 or /32
  // pool has neither).
  a.base_ = bits >= 31 ? network : network + 1;
  a.size_ = std::min(bits >= 31 ? total : total - 2, kMaxRange);
  a.bits_.assign(a.size_, false);
  a.cursor_ = reserveStaticBand ? static_cast<uint32_t>(staticBand(a.size_) % a.size_) : 0;
  return a;
}

std::optional<uint32_t> IpAllocator::offsetOf(std::string_view ip) const {
  auto v = parseV4(ip);
  if (!v || *v < base_ || *v - base_ >= size_) return std::nullopt;
  return *v - base_;
}

std::string IpAllocator::addressAt(uint32_t offset) const {
  in_addr a{};
  a.s_addr = htonl(base_ + offset);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string IpAllocator::first() const { return addressAt(0); }

bool IpAllocator::contains(std::string_view ip) const { return offsetOf(ip).has_value(); }

bool IpAllocator::isAllocated(std::string_view ip) const {
  auto off = offsetOf(ip);
  return off && bits_[*off];
}

Result<void> IpAllocator::allocate(std::string_view ip) {
  auto off = offsetOf(ip);
  if (!off) {
    return Error::invalid("the provided IP (" + std::string(ip) +
                          ") is not in the valid range. The range of valid IPs is " + cidr_);
  }
  if (bits_[*off]) return Error::exists("provided IP is already allocated");
  bits_[*off] = true;
  ++used_;
  return okResult();
}

Result<std::string> IpAllocator::allocateNext() {
  if (used_ == size_) return Error::exhausted("range is full");
  for (uint32_t i = 0; i < size_; ++i) {
    uint32_t off = (cursor_ + i) % size_;
    if (!bits_[off]) {
      bits_[off] = true;
      ++used_;
      cursor_ = (off + 1) % size_;
      return addressAt(off);
    }
  }
  return Error::exhausted("range is full");
}

void IpAllocator::release(std::string_view ip) {
  auto off = offsetOf(ip);
  if (off && bits_[*off]) {
    bits_[*off] = false;
    --used_;
  }
}

Result<PortAllocator> PortAllocator::create(int first, int last) {
  if (first < 1 || last > 65535 || first > last) {
    return Error::invalid("port range " + std::to_string(first) + "-" + std::to_string(last) + " is invalid");
  }
  PortAllocator a;
  a.first_ = first;
  a.last_ = last;
  a.bits_.assign(static_cast<size_t>(last - first + 1), false);
  a.cursor_ = static_cast<int>(staticBand(a.bits_.size()) % a.bits_.size());
  return a;
}

Result<void> PortAllocator::allocate(int port) {
  if (port < first_ || port > last_) {
    return Error::invalid("provided port is not in the valid range. The range of valid ports is " + range());
  }
  auto i = static_cast<size_t>(port - first_);
  if (bits_[i]) return Error::exists("provided port is already allocated");
  bits_[i] = true;
  ++used_;
  return okResult();
}

Result<int> PortAllocator::allocateNext() {
  size_t n = bits_.size();
  for (size_t i = 0; i < n; ++i) {
    size_t off = (static_cast<size_t>(cursor_) + i) % n;
    if (!bits_[off]) {
      bits_[off] = true;
      ++used_;
      cursor_ = static_cast<int>((off + 1) % n);
      return first_ + static_cast<int>(off);
    }
  }
  return Error::exhausted("range is full");
}

void PortAllocator::release(int port) {
  if (port < first_ || port > last_) return;
  auto i = static_cast<size_t>(port - first_);
  if (bits_[i]) {
    bits_[i] = false;
    --used_;
  }
}

bool PortAllocator::isAllocated(int port) const {
  return port >= first_ && port <= last_ && bits_[static_cast<size_t>(port - first_)];
}

}  // namespace sluice::server
