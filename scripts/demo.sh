#!/usr/bin/env bash
# The main job. Until the single-node demo (`sluice up` + examples/hostname/)
# exists, this installs, builds, and shows what there is to run.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

cat <<'MSG'

sluice is built in ./build. What exists so far: the L4 core in dataplane/
(service model, Maglev, packet parse/NAT, conntrack), the eBPF mode in bpf/
(tc + cgroup socket LB), sluice-cni/sluice-ipam in build/cni/, and the SQLite
store. The single-node demo (sluice up) comes with the API server and agent.

  Run every test suite:        ./scripts/test.sh
  Run one suite:               meson test -C build --suite unit
  Microbenchmarks:             build/bench/dataplane/maglev_bench
                               build/bench/dataplane/packet_bench
                               build/bench/dataplane/conntrack_bench
                               build/bench/bpf/lxc_bench, sock_bench (root)
                               build/bench/control/store_bench
  Recorded figures:            docs/benchmarks.md
MSG
