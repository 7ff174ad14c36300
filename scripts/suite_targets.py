#!/usr/bin/env python3
"""Prints the ninja targets that the tests of some meson suites need: each
test's executable and what it declares in `depends`, as paths relative to the
build directory. scripts/test.sh builds only these in the sanitizer build,
which runs the unit and fuzz suites only: compiling every netns, e2e and
benchmark binary there again would cost CI minutes for nothing.

    scripts/suite_targets.py BUILD_DIR SUITE [SUITE ...]
"""
import json
import os
import subprocess
import sys


def introspect(build, what):
    out = subprocess.run(["meson", "introspect", build, what], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    build, suites = sys.argv[1], set(sys.argv[2:])
    build_abs = os.path.realpath(build)
    targets = introspect(build, "--targets")
    by_id = {t["id"]: t for t in targets}
    by_file = {}
    for t in targets:
        for f in t.get("filename", []):
            by_file[os.path.realpath(f)] = t
    wanted = set()

    def add(t):
        for f in t.get("filename", []):
            rel = os.path.relpath(os.path.realpath(f), build_abs)
            if not rel.startswith(".."):
                wanted.add(rel)

    for test in introspect(build, "--tests"):
        # Suites are "project:suite" in introspection.
        names = {s.split(":")[-1] for s in test.get("suite", [])}
        if not names & suites:
            continue
        # "cmd" is the whole command: the executable and its arguments (a
        # fuzz runner script's arguments name the fuzzer it runs).
        for arg in test.get("cmd", []):
            t = by_file.get(os.path.realpath(arg)) if isinstance(arg, str) else None
            if t:
                add(t)
        for dep in test.get("depends", []):
            if dep in by_id:
                add(by_id[dep])
    print("\n".join(sorted(wanted)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
