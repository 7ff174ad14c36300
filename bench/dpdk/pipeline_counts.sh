#!/usr/bin/env bash
# Instructions and simulated cache misses per packet of the DPDK pipeline
# (Worker::process and what it calls), row by row of pipeline_bench: the
# noise-free companion of its cycles. On a shared host the cycles of one
# binary vary by 25% from run to run; these counts do not vary at all, so
# they show what a change did to the work per packet (instructions) and to
# its trips to memory (misses of the simulated last-level cache) even when
# the cycles cannot. They are no substitute for the cycles: valgrind's
# caches are a model (no prefetchers, no overlap of misses).
#
#   bench/dpdk/pipeline_counts.sh [BENCH_BINARY] [ROWS...]
#
# BENCH_FLAGS (environment) is passed to the bench, e.g. --shuffled.
#
# BENCH_BINARY defaults to build/bench/dpdk/pipeline_bench; ROWS to all
# eight (0-7, pipeline_bench's order). Each row runs twice under callgrind,
# with N and 3N timed packets after the same untimed fill, and the figures
# are the difference over 2N: the fill and start-up drop out.
# The simulated last-level cache is 16 MiB, 16-way (a VM's share of a
# server's L3), D1 as the host's.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-build/bench/dpdk/pipeline_bench}
shift || true
rows=("$@")
((${#rows[@]})) || rows=(0 1 2 3 4 5 6 7)
command -v valgrind >/dev/null || { echo "valgrind is not installed (scripts/setup.sh)"; exit 77; }
[ -x "$bin" ] || { echo "no $bin: build it first (ninja -C build)"; exit 1; }

n=100000
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Event totals (Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw) of one run.
count() {  # row packets
  valgrind --tool=callgrind --cache-sim=yes --LL=16777216,16,64 \
    --toggle-collect='sluice::dpdk::Worker::process*' \
    --callgrind-out-file="$tmp/out" "$bin" --packets "$2" --only "$1" ${BENCH_FLAGS:-} \
    >"$tmp/log" 2>&1 ||
    { cat "$tmp/log"; exit 1; }
  grep -m1 '^summary:' "$tmp/out" | cut -d' ' -f2-
}

printf '%-4s %-42s %9s %9s %9s %9s\n' row name instr/pkt 'D1 miss' 'LL miss' 'LL w-miss'
names=(
  "NodePort full NAT, established, 1k flows"
  "NodePort full NAT, established, 1M flows"
  "NodePort full NAT, first packet, 1k table"
  "NodePort full NAT, first packet, 1M table"
  "ClusterIP DNAT, established, 1k flows"
  "ClusterIP DNAT, established, 1M flows"
  "ClusterIP DNAT, first packet, 1k table"
  "ClusterIP DNAT, first packet, 1M table"
)
for r in "${rows[@]}"; do
  read -r -a a <<<"$(count "$r" "$n")"
  read -r -a b <<<"$(count "$r" $((3 * n)))"
  per() { awk -v x="$1" -v y="$2" -v d=$((2 * n)) 'BEGIN { printf "%.1f", (y - x) / d }'; }
  # Events: 0 Ir, 4 D1mr, 5 D1mw, 7 DLmr, 8 DLmw (missing trailing zeros read as 0).
  printf '%-4s %-42s %9s %9s %9s %9s\n' "$r" "${names[$r]}" \
    "$(per "${a[0]}" "${b[0]}")" \
    "$(per $((${a[4]:-0} + ${a[5]:-0})) $((${b[4]:-0} + ${b[5]:-0})))" \
    "$(per "${a[7]:-0}" "${b[7]:-0}")" "$(per "${a[8]:-0}" "${b[8]:-0}")"
done
