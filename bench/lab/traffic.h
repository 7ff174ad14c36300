// The lab's own bounded client. Every function runs its sockets from threads
// placed in the client namespace; nothing here trusts a mode's return value:
// a change counts as done when a reply says so.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::lab {

using Clock = std::chrono::steady_clock;

// Set by SIGINT/SIGTERM; every loop here returns early when it is.
extern std::atomic<bool> gStop;

struct Target {
  std::string ip;
  uint16_t port = 0;
};

// One request on a new TCP connection: connect, "x\n", one answer line (the
// backend address). connectUs: time to connect() completion (SYN ->
// SYN-ACK through the mode). Empty on failure or after timeoutMs.
std::optional<std::string> requestOnce(const Target& t, int timeoutMs, double* connectUs);

// Connect latencies (us) to `count` targets drawn uniformly from `targets`,
// one new connection each, from the client namespace; failures counted.
struct ConnectResult {
  std::vector<double> latenciesUs;
  uint64_t failures = 0;
  bool outOfTime = false;
};
ConnectResult measureConnect(int clientNetnsFd, const std::vector<Target>& targets, int count,
                             Clock::time_point deadline);

// Polls `t` with new connections until the answer is `expected`; returns the
// time since `since`, or nothing at `deadline`.
std::optional<double> waitForBackend(int clientNetnsFd, const Target& t, const std::string& expected,
                                     Clock::time_point since, Clock::time_point deadline);

// Requests/s over `seconds` with `threads` closed-loop clients to random
// targets: a new connection per request, or (keepAlive) one connection per
// client, reconnected only on error.
// cpuUsPerRequest: user+system CPU of this process and of `processes` (the
// echo servers and the ksoftirqd threads) over the run, per request. With
// tick-based accounting (no CONFIG_IRQ_TIME_ACCOUNTING, as on this
// machine's kernel) a tick that lands in softirq is charged to the task it
// interrupted as system time, so softirq run in these processes' context
// is inside this figure.
// softirqUsPerRequest: the machine's irq+softirq time (/proc/stat, all
// CPUs) over the run, per request: the softirq part, wherever it ran (on
// this kernel mostly already inside cpuUsPerRequest; with irq time
// accounting it would be outside it). Whole-machine: anything else doing
// network work at the same time lands here too.
struct RpsResult {
  double rps = 0;
  double cpuUsPerRequest = 0;
  double softirqUsPerRequest = 0;
};
RpsResult measureRps(int clientNetnsFd, const std::vector<Target>& targets, int threads,
                     double seconds, bool keepAlive, const std::vector<pid_t>& processes);

// wrk (HTTP/1.1 keep-alive, `connections` connections) against one target
// for `seconds`, run in the client namespace; requests/s, or nothing if wrk
// is missing or failed.
std::optional<double> runWrk(const std::string& clientNetns, const Target& t, double seconds,
                             int connections);

// p in [0,100]; NaN when empty.
double percentile(std::vector<double> v, double p);

}  // namespace sluice::lab
