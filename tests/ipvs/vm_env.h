// Guest-side helpers for the IPVS vm tests: shell commands (iproute2, nft, ipvsadm from the
// host's root, which is the guest's) and a local service topology that carries real traffic.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace sluice::ipvs::testing {

// Runs `cmd` under /bin/sh; returns its exit status (-1 when it could not run).
int sh(const std::string& cmd);
// Runs `cmd` and returns its stdout.
std::string capture(const std::string& cmd);
// Runs `cmd` with `input` on its stdin; returns its exit status. One `ip -batch -` or
// `nft -f -` instead of a command per object: every exec costs ~0.2 s under TCG.
int feed(const std::string& cmd, const std::string& input);
// `text` with every run of blanks collapsed to one space, for matching tool output by line.
std::string squeeze(const std::string& text);
// Polls `done` every 100 ms until it holds or `limit` passes; returns its last value.
bool waitFor(const std::function<bool()>& done,
             std::chrono::milliseconds limit = std::chrono::seconds(5));

// A dummy link holding a service address and backend addresses, as kube-proxy's kube-ipvs0:
// locally generated traffic to the VIP passes IPVS's LOCAL_OUT hook and is NATed to a backend
// address on the same link. Removed on destruction.
class LocalLink {
 public:
  // `cidrs`: the addresses to hold, e.g. {"10.96.0.10/32", "10.244.0.1/32"}.
  LocalLink(const std::string& name, const std::vector<std::string>& cidrs);
  ~LocalLink();
  LocalLink(const LocalLink&) = delete;
  LocalLink& operator=(const LocalLink&) = delete;
  bool ok() const { return ok_; }

 private:
  std::string name_;
  bool ok_ = false;
};

}  // namespace sluice::ipvs::testing
