#!/usr/bin/env python3
"""Writes docs/kernels.md from the eBPF mode's own kernel probes, run on this host and inside
each kernel of the vm suite (Debian 12's 6.1 and 6.12 under qemu, tests/vm/vm_run.py).

    scripts/kernel_table.py [--build DIR] [--kernels 6.1,6.12] [--out docs/kernels.md]

Nothing in the table is typed by hand: each column is `sluice-bpf-probe --format json` of one
kernel (its probes, which objects load and in which variant, what the mode then lacks), and
the rows and their "since" come from the probe list itself (bpf/loader/kernel_features.cc).
Needs root (the probes load BPF programs). A kernel the vm suite cannot boot here is left out
and said so on stderr. Runs one VM at a time.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def probe_host(tool):
    out = subprocess.run([tool, "--format", "json"], capture_output=True, text=True)
    if not out.stdout.strip():
        sys.exit(f"kernel_table: {tool} printed nothing (exit {out.returncode}): {out.stderr}")
    return json.loads(out.stdout)


def probe_vm(tool, kernel, scratch):
    # The guest mounts --rw dirs at the same path over its overlay root, so the directory must
    # exist in the host's filesystem outside /tmp (a fresh tmpfs in the guest).
    with tempfile.TemporaryDirectory(prefix="kernel-table-", dir=scratch) as rw:
        os.chmod(rw, 0o777)
        result = os.path.join(rw, "probe.json")
        run = subprocess.run(
            [sys.executable, os.path.join(ROOT, "tests/vm/vm_run.py"), "--kernel", kernel,
             "--modules", "net", "--timeout", "300", "--rw", rw, "--",
             tool, "--format", "json", "--output", result],
            capture_output=True, text=True)
        if not os.path.exists(result):
            tail = "\n".join((run.stderr or run.stdout).splitlines()[-5:])
            print(f"kernel_table: kernel {kernel}: no result (vm_run exit {run.returncode}):\n{tail}",
                  file=sys.stderr)
            return None
        with open(result) as f:
            return json.load(f)


def cell(ok):
    return "yes" if ok else "**no**"


def render(columns):
    heads = [f"{c['release']}" for c in columns]
    probes = columns[0]["probes"]
    out = []
    out.append("| Feature | Linux since | Needed | " + " | ".join(heads) + " |")
    out.append("| --- | --- | --- | " + " | ".join("---" for _ in heads) + " |")
    for i, p in enumerate(probes):
        need = "required" if p["required"] else (
            f"optional: `{p['degrades']}`" if p["degrades"] else "optional: speed")
        cells = [cell(c["probes"][i]["supported"]) for c in columns]
        out.append(f"| {p['name']} | {p['since']} | {need} | " + " | ".join(cells) + " |")
    names = [o["name"] for o in columns[0]["objects"]]
    for j, name in enumerate(names):
        cells = []
        for c in columns:
            o = c["objects"][j] if j < len(c["objects"]) else {"state": "?", "detail": ""}
            cells.append(o["state"] if o["state"] != "loaded" else "loads")
        out.append(f"| object {name} | | | " + " | ".join(cells) + " |")
    out.append("| `sluice agent --mode=ebpf` starts | | | " +
               " | ".join("yes" if c["starts"] else "**refused**" for c in columns) + " |")
    return "\n".join(out)


def render_missing(columns):
    out = []
    for c in columns:
        lost = [m for m in c["missing"] if m["feature"] not in ("sctp", "dsr")]
        if not lost:
            out.append(f"- **{c['release']}**: nothing beyond what no kernel gives (SCTP, DSR).")
            continue
        out.append(f"- **{c['release']}**:")
        for m in lost:
            out.append(f"  - `{m['feature']}`: {m['effect']}")
    variants = []
    for c in columns:
        first = c["objects"][0] if c["objects"] else {"detail": ""}
        variants.append(f"- **{c['release']}**: {first['detail']}")
    return "\n".join(out), "\n".join(variants)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--kernels", default="6.1,6.12")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/kernels.md"))
    args = ap.parse_args()
    tool = os.path.abspath(os.path.join(args.build, "bpf/sluice-bpf-probe"))
    if not os.access(tool, os.X_OK):
        sys.exit(f"kernel_table: {tool} missing (ninja -C {args.build} bpf/sluice-bpf-probe)")

    columns = []
    for k in [k for k in args.kernels.split(",") if k]:
        c = probe_vm(tool, k, os.path.abspath(args.build))
        if c:
            columns.append(c)
    columns.append(probe_host(tool))
    columns.sort(key=lambda c: [int(x) for x in c["version"].split(".")] if c["version"] else [0])
    first = columns[0]
    table = render(columns)
    missing, variants = render_missing(columns)
    kernels = ", ".join(c["release"] for c in columns)
    doc = f"""# Kernels

The eBPF mode needs **Linux {first['tested_minimum']} or later**: the oldest kernel it is tested
on (Debian 12's default, booted by the `vm` suite). `sluice up` and `sluice agent --mode=ebpf`
refuse an older kernel with its release (`uname -r`); `--ebpf-allow-untested-kernel=true`
starts it anyway when its probes find every required feature below (all of them exist from
Linux {first['required_since']}), untested. A kernel missing a required feature is refused
whatever the flags, with the features it lacks. An optional feature a kernel lacks never stops
the mode: the loader picks the objects and program variants the kernel supports, and says what
is lost in the agent's start log, in `sluice debug mode`, and in the gauge
`sluice_proxy_mode_missing_features{{mode="ebpf",feature=...}}`.

Check a node before installing: `sluice-bpf-probe` prints this column for its own kernel and
exits 0 when the mode would start there.

## Feature by kernel

Generated by `scripts/kernel_table.py` from `sluice-bpf-probe --format json` run on each kernel
({kernels}): the probes the loader runs at start, then a trial load of every object as the
loader would pick it. "Linux since" is the upstream release that added the feature.

{table}

## What each kernel lacks, as the mode reports it

{missing}

Socket-hook variant loaded:

{variants}

## Tested on these kernels

The `vm` suite (`tests/vm/ebpf/meson.build`) runs the `bpf` and `netns` suites' binaries inside
6.1 and 6.12 (a CI profile of the cases below; `SLUICE_VM_FULL=1` runs all of them); the host's
kernel runs both suites in full. Per kernel the CI profile covers: the packet tables (bpf_lxc,
bpf_host and XDP, ICMP errors), the shared struct layouts against the objects' BTF, the
probes against the mode's capabilities and each program variant, pod and host to a ClusterIP,
outside to a NodePort and a LoadBalancer IP, refusals without endpoints, a stream across 20
agent restarts, and `sluice debug mode` listing exactly what the probes found missing.
"""
    with open(args.out, "w") as f:
        f.write(doc)
    print(f"kernel_table: wrote {args.out} ({kernels})")


if __name__ == "__main__":
    main()
