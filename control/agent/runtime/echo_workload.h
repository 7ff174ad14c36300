// The built-in echo workload that `sluice/echo[:tag]` images run (the
// "hostname" app of the examples): on every container port it answers HTTP
// with who it is and what it was asked, and echoes UDP datagrams with its
// hostname and pod IP prepended. Runs as `sluice echo --port N ...`.
//
// HTTP body:
//   hostname: <hostname>
//   pod-ip: <first non-loopback IPv4 address>
//   version: <tag>
//   client: <peer ip>:<port>
//   request: GET /path HTTP/1.1
// UDP reply: "hostname: <h>\npod-ip: <ip>\n" followed by the datagram.
//
// SIGTERM/SIGINT end it with exit code 0 (a graceful shutdown).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::agent {

struct EchoOptions {
  std::vector<uint16_t> ports;  // default {8080}
  std::string tag = "latest";
};

// Runs until SIGTERM/SIGINT; returns the process exit code.
int runEchoWorkload(const EchoOptions& options);
// Parses "--port N" (repeatable) and "--tag T" from argv[first..].
int runEchoWorkload(int argc, char** argv, int first);

// The first non-loopback IPv4 address of this network namespace, or "".
std::string localPodIp();

}  // namespace sluice::agent
