// Fuzz target for kubeconfig files (control/client/kubeconfig.h), which
// `sluice agent --kubeconfig` and every client read: YAML, base64 *-data
// fields, server URLs, named certificate and token files. Files are served
// by a fake reader (a few fixed paths; every other path is missing), so
// the fuzzer never touches the disk.
//
// Invariants, else the process traps: no exception escapes and nothing
// crashes or reads out of bounds; a kubeconfig that loads has a non-empty
// host and a port in 1-65535, and its url() names them.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include "control/client/kubeconfig.h"

namespace {

using sluice::client::Kubeconfig;

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "kubeconfig_fuzz invariant violated: %s\n", what);
  __builtin_trap();
}

sluice::Result<std::string> fakeRead(const std::string& path) {
  if (path == "/etc/sluice/ca.crt") return std::string("-----BEGIN CERTIFICATE-----\n");
  if (path == "/var/run/token") return std::string("token\r\n");
  return sluice::Error{sluice::ErrorCode::kNotFound, "cannot read " + path};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto kc = Kubeconfig::parse(text, "/etc/sluice/kubeconfig", fakeRead);
    if (kc.ok()) {
      require(!kc->host.empty(), "a host");
      require(kc->port != 0, "a port");
      require(kc->url().find(kc->host) != std::string::npos, "url names the host");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kubeconfig_fuzz: exception escaped: %s\n", e.what());
    __builtin_trap();
  } catch (...) {
    std::fprintf(stderr, "kubeconfig_fuzz: unknown exception escaped\n");
    __builtin_trap();
  }
  return 0;
}
