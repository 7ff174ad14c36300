#include "dataplane/dpdk/steering.h"

#include <rte_thash.h>

#include <cstring>

#include "dataplane/dpdk/service_tables.h"

namespace sluice::dpdk {

Steering::Steering(uint32_t workers, std::vector<std::pair<IpAddress, PortRange>> snatAddresses)
    : workers_(workers == 0 ? 1 : workers), snat_(std::move(snatAddresses)) {}

Steering::Steering(uint32_t workers, std::vector<std::pair<IpAddress, PortRange>> snatAddresses,
                   RssConfig rss)
    : workers_(workers == 0 ? 1 : workers), snat_(std::move(snatAddresses)), rss_(std::move(rss)) {}

uint32_t Steering::endpointOwner(const IpAddress& a, uint16_t port) const {
  const auto b = a.bytes();
  const uint32_t h = crc32c(b.data(), b.size(), port);
  // Multiply-shift maps the hash onto [0, workers) without a division.
  return static_cast<uint32_t>((uint64_t{h} * workers_) >> 32);
}

uint32_t Steering::rssHash(const FlowTuple& t) const {
  // rte_softrss takes the tuple as host-order 32-bit words, in the order
  // the NIC feeds its Toeplitz engine: source, destination, then the ports.
  std::array<uint32_t, 9> words{};
  uint32_t n = 0;
  auto addr = [&](const IpAddress& a) {
    const auto b = a.bytes();
    for (size_t i = 0; i < b.size(); i += 4) {
      words[n++] =
          uint32_t{b[i]} << 24 | uint32_t{b[i + 1]} << 16 | uint32_t{b[i + 2]} << 8 | b[i + 3];
    }
  };
  addr(t.src);
  addr(t.dst);
  words[n++] = uint32_t{t.srcPort} << 16 | t.dstPort;
  return rte_softrss(words.data(), n, rss_.key.data());
}

uint16_t Steering::rssQueueOf(const FlowTuple& t) const {
  if (rss_.reta.empty()) return 0;
  // NICs index the table with the hash's low bits (RETA sizes are powers of two).
  return rss_.reta[rssHash(t) % rss_.reta.size()];
}

}  // namespace sluice::dpdk
