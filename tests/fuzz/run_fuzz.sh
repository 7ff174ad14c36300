#!/usr/bin/env bash
# Runs a libFuzzer target for a fixed time (meson's fuzz suite).
#   run_fuzz.sh EXE SEED_CORPUS_DIR SCRATCH_DIR SECONDS
# New inputs and crash artifacts go to SCRATCH_DIR (in the build tree), never
# into the seed corpus in the source tree, which libFuzzer only reads. The
# fuzzer's exit status is the script's: non-zero on a crash, leak or timeout.
set -euo pipefail

if [[ $# -ne 4 ]]; then
  echo "usage: $0 EXE SEED_CORPUS_DIR SCRATCH_DIR SECONDS" >&2
  exit 2
fi
exe=$1
seeds=$2
scratch=$3
seconds=$4

mkdir -p "$scratch"
# libFuzzer writes new inputs to the first corpus directory only.
exec "$exe" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$scratch/" \
  "$scratch" "$seeds"
