#!/usr/bin/env bash
# Installs, builds and runs every test suite, in two builds:
#   build/       gcc, all suites (unit, fuzz replay; bpf, netns, ... as they arrive)
#   build-asan/  clang with AddressSanitizer + UndefinedBehaviorSanitizer and
#                libFuzzer: unit suite plus the fuzz targets for SLUICE_FUZZ_SECONDS
# Ends with one line "N passed, N failed, N skipped". Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

status=0
meson test -C build --print-errorlogs --num-processes 2 || status=1

# Issue 18: every libFuzzer target runs at least a minute in CI (6 targets:
# ~3 min of wall time with two at a time).
fuzz_seconds=${SLUICE_FUZZ_SECONDS:-60}
# -O1 with line tables only, as sanitizer builds usually are: reports keep
# file:line stack traces, and the build compiles about a third faster than
# at -O2 -g (CI's budget is this machine's two cores).
asan_flags=(-Doptimization=1 -Ddebug=false -Dc_args=-gline-tables-only -Dcpp_args=-gline-tables-only
  -Dfuzz_seconds="$fuzz_seconds")
if [ -f build-asan/build.ninja ]; then
  meson configure build-asan "${asan_flags[@]}"
else
  CC=clang CXX=clang++ meson setup build-asan -Dfuzzing=enabled -Dbenchmarks=disabled \
    -Db_sanitize=address,undefined -Db_lundef=false "${asan_flags[@]}"
fi
# Only what the unit and fuzz suites run: the netns, e2e, vm and dpdk
# binaries are built and run by the gcc build above.
mapfile -t asan_targets < <(python3 scripts/suite_targets.py build-asan unit fuzz)
# Built after the gcc build's tests, not alongside them: even at nice 19 it
# slowed the VM (TCG) tests by about what it gained (CI's time, 2026-12-07).
ninja -C build-asan "${asan_targets[@]}"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
meson test -C build-asan --no-rebuild --print-errorlogs --num-processes 2 --suite unit --suite fuzz || status=1

python3 scripts/test_summary.py build/meson-logs/testlog.json build-asan/meson-logs/testlog.json
exit $status
