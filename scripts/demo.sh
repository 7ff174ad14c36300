#!/usr/bin/env bash
# The main job. Until the single-node demo (`sluice up` + examples/hostname/)
# exists, this installs, builds, and shows what there is to run.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

cat <<'MSG'

sluice is built in ./build. What exists so far is the L4 core in dataplane/:
service model and diffs, Maglev, packet parse/NAT with incremental checksums,
and a userspace conntrack.

  Run every test suite:        ./scripts/test.sh
  Run one suite:               meson test -C build --suite unit
  Microbenchmarks:             build/bench/dataplane/maglev_bench
                               build/bench/dataplane/packet_bench
                               build/bench/dataplane/conntrack_bench
  Recorded figures:            docs/benchmarks.md
MSG
