#!/usr/bin/env bash
# Runs one meson suite N times and prints how often each test failed, so a
# flaky test is found before CI finds it.
#
#   scripts/flake-hunt.sh SUITE N [TEST ...]   e.g.  scripts/flake-hunt.sh unit 50
#                                                    scripts/flake-hunt.sh unit 200 endpoints
#
# Every round is its own `meson test` run: meson 1.0's --repeat stops at the
# first failure, and a hunt must go on past failures to count them. Rounds
# use the existing build (BUILD_DIR, default build/; run ninja first) and
# write their logs as meson-logs/flake-SUITE-ROUND.json, leaving testlog.json
# alone. Output: one line per test that ran ("failures/rounds  name"), and for
# gtest binaries the failed cases with their counts. Exit 1 if anything
# failed, 0 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ] || ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ]; then
  echo "usage: $0 SUITE N [TEST ...]  (N rounds of meson test --suite SUITE)" >&2
  exit 2
fi
suite=$1
rounds=$2
shift 2
build=${BUILD_DIR:-build}
[ -f "$build/build.ninja" ] || { echo "flake-hunt: $build is not configured (run scripts/setup.sh)" >&2; exit 2; }

rm -f "$build"/meson-logs/flake-"$suite"-*.json "$build"/meson-logs/flake-"$suite"-*.txt \
  "$build"/meson-logs/flake-"$suite"-*.junit.xml
start=$(date +%s)
for ((i = 1; i <= rounds; i++)); do
  meson test -C "$build" --no-rebuild --suite "$suite" --num-processes "${FLAKE_PROCESSES:-2}" \
    --logbase "flake-$suite-$i" "$@" >/dev/null 2>&1
  echo "flake-hunt: round $i/$rounds done ($(($(date +%s) - start)) s)" >&2
done

python3 - "$build" "$suite" "$rounds" <<'EOF'
import glob, json, re, sys
from collections import Counter

build, suite, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs, fails, cases = Counter(), Counter(), Counter()
for path in sorted(glob.glob(f"{build}/meson-logs/flake-{suite}-*.json")):
    for line in open(path):
        r = json.loads(line)
        name = r["name"]
        runs[name] += 1
        if r.get("result") in ("OK", "SKIP", "EXPECTEDFAIL"):
            continue
        fails[name] += 1
        # gtest prints each failed case once in its summary.
        for case in set(re.findall(r"^\[  FAILED  \] (\S+\.\S+)", r.get("stdout", ""), re.M)):
            cases[f"{name}: {case}"] += 1
for name in sorted(runs):
    print(f"{fails[name]:4d}/{runs[name]:<4d} {name}")
for case, n in sorted(cases.items()):
    print(f"     {n:4d}x {case}")
total = sum(fails.values())
print(f"flake-hunt {suite}: {len(runs)} tests x {rounds} rounds, {total} failed runs")
sys.exit(1 if total else 0)
EOF
