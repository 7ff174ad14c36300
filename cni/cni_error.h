// CniError and CniResult<T> (= Result<T, CniError>): the errors the CNI
// protocol carries to a runtime.
// sluice::Error's ErrorCode cannot say "incompatible CNI version" or carry a
// delegated plugin's numeric code through, so the protocol layer (skel, the
// plugins' command handlers, delegation) uses this pair; the libraries below it
// (netlink, netns, IPAM store) return sluice::Result and are mapped with
// CniError::from() where the protocol code is decided.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "dataplane/result.h"

namespace sluice::cni {

// Well-known error codes (CNI spec 1.1.0, "Error"); 100+ are this plugin's own.
inline constexpr uint32_t kCodeIncompatibleVersion = 1;
inline constexpr uint32_t kCodeUnsupportedField = 2;
inline constexpr uint32_t kCodeUnknownContainer = 3;
inline constexpr uint32_t kCodeInvalidEnvironment = 4;
inline constexpr uint32_t kCodeIoFailure = 5;
inline constexpr uint32_t kCodeDecodeFailure = 6;
inline constexpr uint32_t kCodeInvalidConfig = 7;
inline constexpr uint32_t kCodeTryAgainLater = 11;
// STATUS only: the plugin cannot service ADD requests (spec 1.1.0).
inline constexpr uint32_t kCodePluginNotAvailable = 50;
// sluice's own codes.
inline constexpr uint32_t kCodeInternal = 100;          // unexpected kernel/OS error
inline constexpr uint32_t kCodeInterfaceExists = 101;   // CNI_IFNAME or the host veth is taken
inline constexpr uint32_t kCodePluginNotFound = 102;    // ipam.type not in CNI_PATH
inline constexpr uint32_t kCodeDelegateFailed = 103;    // a delegate crashed or spoke no CNI
inline constexpr uint32_t kCodeCheckFailed = 104;       // CHECK: live state differs
inline constexpr uint32_t kCodeAddressesExhausted = 105;  // IPAM: no free address in a range

struct CniError {
  uint32_t code = kCodeInternal;
  std::string msg;
  std::string details;

  static CniError make(uint32_t code, std::string msg, std::string details = {}) {
    return {code, std::move(msg), std::move(details)};
  }
  // Maps a library error to the protocol code the caller decided on.
  static CniError from(uint32_t code, const Error& error) { return {code, error.message, {}}; }

  // Prefixes context to msg, keeping the code: "ipam: <msg>".
  CniError wrap(std::string_view context) const& {
    return {code, std::string(context) + ": " + msg, details};
  }
};

// The project's Result with the protocol's error (dataplane/result.h).
template <typename T>
using CniResult = Result<T, CniError>;

}  // namespace sluice::cni
