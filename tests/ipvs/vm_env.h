// Guest-side helpers for the IPVS vm tests: shell commands (iproute2, nft, ipvsadm from the
// host's root, which is the guest's) and a local service topology that carries real traffic.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace sluice::ipvs::testing {

// Runs `cmd` under /bin/sh; returns its exit status (-1 when it could not run).
int sh(const std::string& cmd);
// Runs `cmd` and returns its stdout.
std::string capture(const std::string& cmd);
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
  explicit LocalLink(const std::string& name);
  ~LocalLink();
  LocalLink(const LocalLink&) = delete;
  LocalLink& operator=(const LocalLink&) = delete;
  void addAddress(const std::string& cidr);
  bool ok() const { return ok_; }

 private:
  std::string name_;
  bool ok_ = false;
};

}  // namespace sluice::ipvs::testing
