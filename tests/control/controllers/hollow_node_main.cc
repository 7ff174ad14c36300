// hollow-node: runs hollow nodes (hollow_node.h) against an API server until
// SIGTERM/SIGINT, for e2e tests and benchmarks that need pods to become
// Ready without a real node agent.
//
//   hollow-node --kubeconfig F --name N [--name N2 ...] [--count K --prefix P]
//               [--bind-unscheduled] [--ready-delay-ms MS]
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "tests/control/controllers/hollow_node.h"

namespace {

volatile std::sig_atomic_t gStop = 0;

void onSignal(int) { gStop = 1; }

int usage() {
  std::cerr << "usage: hollow-node --kubeconfig FILE (--name N ... | --count K --prefix P) "
               "[--bind-unscheduled] [--ready-delay-ms MS]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string kubeconfig;
  std::string prefix = "hollow";
  int count = 0;
  sluice::testing::HollowNodeOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--bind-unscheduled") {
      o.bindUnscheduled = true;
    } else if (a == "--kubeconfig" && (v = next()) != nullptr) {
      kubeconfig = v;
    } else if (a == "--name" && (v = next()) != nullptr) {
      o.names.emplace_back(v);
    } else if (a == "--count" && (v = next()) != nullptr) {
      count = std::atoi(v);
    } else if (a == "--prefix" && (v = next()) != nullptr) {
      prefix = v;
    } else if (a == "--ready-delay-ms" && (v = next()) != nullptr) {
      o.readyDelay = std::chrono::milliseconds(std::atoi(v));
    } else {
      return usage();
    }
  }
  for (int i = 0; i < count; ++i) o.names.push_back(prefix + "-" + std::to_string(i));
  if (kubeconfig.empty() || o.names.empty()) return usage();
  auto kc = sluice::client::Kubeconfig::load(kubeconfig);
  if (!kc) {
    std::cerr << "hollow-node: " << kc.error().message << "\n";
    return 1;
  }
  auto c = sluice::client::ApiClient::create(*kc, "hollow-node");
  if (!c) {
    std::cerr << "hollow-node: " << c.error().message << "\n";
    return 1;
  }
  std::signal(SIGTERM, onSignal);
  std::signal(SIGINT, onSignal);
  auto nodes = sluice::testing::HollowNodes::start(**c, o);
  if (!nodes) {
    std::cerr << "hollow-node: " << nodes.error().message << "\n";
    return 1;
  }
  std::cout << "hollow-node: " << o.names.size() << " node(s) ready" << std::endl;
  while (gStop == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*nodes)->stop();
  return 0;
}
