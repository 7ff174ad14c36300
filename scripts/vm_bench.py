#!/usr/bin/env python3
"""The eBPF per-packet and per-call benchmarks inside a vm-suite kernel and on this host, each
as a ratio to the pass-through program (or the hook-less call) measured in the same run.

    scripts/vm_bench.py [--build DIR] [--kernels 6.1] [--min-time 0.1]

Under qemu TCG every instruction is emulated, so absolute times are inflated (about 10-30x);
what carries over between kernels is the ratio to the same-run baseline: bench/bpf/lxc_bench
(BM_PassTcBaseline), host_bench (its pass_ns counter: pass_tc / pass_xdp over the same frames)
and sock_bench (the call without a hook). Prints one markdown table per benchmark binary with a
column pair (ns, ratio) per kernel. Needs root; runs one VM at a time.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# binary -> (benchmark filter: per-packet and per-call only, not the 100,000-service syncs)
BENCHES = {
    "lxc_bench": "BM_PassTcBaseline|BM_Lxc",
    "host_bench": "BM_",
    "sock_bench": "BM_",
}


def run_bench(exe, filt, min_time, kernel, scratch):
    with tempfile.TemporaryDirectory(prefix="vm-bench-", dir=scratch) as rw:
        os.chmod(rw, 0o777)
        out = os.path.join(rw, "out.json")
        cmd = [exe, f"--benchmark_filter={filt}", f"--benchmark_min_time={min_time}",
               "--benchmark_format=json", f"--benchmark_out={out}"]
        if kernel != "host":
            cmd = [sys.executable, os.path.join(ROOT, "tests/vm/vm_run.py"), "--kernel", kernel,
                   "--modules", "net", "--memory", "1536", "--timeout", "1200", "--rw", rw,
                   "--"] + cmd
        subprocess.run(cmd, capture_output=True, text=True)
        if not os.path.exists(out):
            print(f"vm_bench: {os.path.basename(exe)} on {kernel}: no result", file=sys.stderr)
            return {}
        with open(out) as f:
            data = json.load(f)
    return {b["name"]: b for b in data.get("benchmarks", []) if not b.get("error_occurred")}


def ns(b):
    unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    # Manual-time benchmarks (the kernel's test-run duration) report it as real_time; the
    # socket calls are timed on the CPU.
    return (b["real_time"] if "manual_time" in b["name"] else b["cpu_time"]) * unit


def baseline(name, results, binary):
    b = results[name]
    if binary == "host_bench":
        return b.get("pass_ns")
    if binary == "lxc_bench":
        base = results.get("BM_PassTcBaseline/manual_time")
        return ns(base) if base else None
    base_name = name.split("_")[0] + "_" + name.split("_")[1] + "_Baseline"
    base = results.get(base_name)
    return ns(base) if base else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--kernels", default="6.1")
    ap.add_argument("--min-time", default="0.1")
    args = ap.parse_args()
    scratch = os.path.abspath(args.build)
    kernels = ["host"] + [k for k in args.kernels.split(",") if k]
    for binary, filt in BENCHES.items():
        exe = os.path.join(scratch, "bench/bpf", binary)
        if not os.access(exe, os.X_OK):
            sys.exit(f"vm_bench: {exe} missing (ninja -C {args.build} bench/bpf/{binary})")
        results = {k: run_bench(exe, filt, args.min_time, k, scratch) for k in kernels}
        names = list(results["host"]) or next((list(r) for r in results.values() if r), [])
        print(f"\n{binary}\n")
        print("| benchmark | " + " | ".join(f"{k} ns | {k} ratio" for k in kernels) + " |")
        print("| --- | " + " | ".join("--- | ---" for _ in kernels) + " |")
        for name in names:
            cells = []
            for k in kernels:
                r = results[k]
                if name not in r:
                    cells += ["—", "—"]
                    continue
                v = r[name].get("ns_per_packet") or ns(r[name])
                base = baseline(name, r, binary)
                cells += [f"{v:.0f}", f"{v / base:.2f}" if base else "—"]
            print(f"| {name.replace('/manual_time', '')} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
