#!/usr/bin/env python3
"""The module edges of DESIGN.md, checked on every #include of the tree.

Every module's headers sit under the one source root, so the compiler alone
cannot stop bpf/ from including control/; this test can. A file may include
headers of its own module and of the modules its row lists; nothing else of
the project's. Exits 1 listing each forbidden include (file:line: what, why).

    tests/module_edges.py SOURCE_ROOT

Before checking the tree it checks itself on a synthetic tree with one
forbidden include of each kind, so a broken pattern cannot pass silently.
"""
import os
import re
import sys
import tempfile

MODULES = ["dataplane/dpdk", "dataplane", "bpf", "ipvs", "cni", "control", "bench", "tests"]

# module -> the other modules it may include. bench/ and tests/ may include
# anything; the mode factory is the one control/ file that names modes.
ALLOWED = {
    "dataplane": {"dataplane"},
    "dataplane/dpdk": {"dataplane", "dataplane/dpdk"},
    "bpf": {"dataplane", "bpf"},
    "ipvs": {"dataplane", "ipvs"},
    "cni": {"dataplane", "cni"},
    # cni/: the agent's pod runtime calls plugins through its runtime library.
    "control": {"dataplane", "control", "cni"},
    "bench": set(MODULES),
    "tests": set(MODULES),
}
MODE_FACTORY = "control/agent/proxy/mode_factory.cc"
MODE_MODULES = {"bpf", "ipvs", "dataplane/dpdk"}

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
SYSTEM_INCLUDE = re.compile(r'^\s*#\s*include\s*<([^>]+)>')
# Logging and metrics libraries stay with the executables and control/:
# libraries log through dataplane/log.h (std-only) and never link them.
LIBRARY_ONLY_IN_CONTROL = ("spdlog/", "prometheus/")
SOURCES = (".h", ".hpp", ".cc", ".cpp", ".c")


def module_of(path):
    for m in MODULES:
        if path == m or path.startswith(m + "/"):
            return m
    return None


def violations(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames
                       if not d.startswith(".") and not d.startswith("build")
                       and not (rel_dir == "." and d in ("subprojects",))]
        for name in filenames:
            if not name.endswith(SOURCES):
                continue
            rel = os.path.normpath(os.path.join(rel_dir, name))
            src = module_of(rel)
            if src is None:
                continue
            with open(os.path.join(dirpath, name), errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    s = SYSTEM_INCLUDE.match(line)
                    if s and s.group(1).startswith(LIBRARY_ONLY_IN_CONTROL) and src in ("dataplane", "dataplane/dpdk",
                                                                                         "bpf", "ipvs", "cni"):
                        out.append(f"{rel}:{lineno}: includes <{s.group(1)}> ({src}/ logs through dataplane/log.h; "
                                   "spdlog and prometheus-cpp are for control/ and the executables)")
                        continue
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    dst = module_of(m.group(1))
                    if dst is None or dst == src:
                        continue
                    if dst in ALLOWED[src]:
                        continue
                    if rel == MODE_FACTORY and dst in MODE_MODULES:
                        continue
                    why = (f"only {MODE_FACTORY} names a mode" if src == "control" and dst in MODE_MODULES
                           else f"{src}/ may include {', '.join(sorted(ALLOWED[src] - {src})) or 'nothing else'}")
                    out.append(f"{rel}:{lineno}: includes {m.group(1)} ({why})")
    return out


def self_test():
    bad = {
        "bpf/x.cc": '#include "control/agent/proxy/proxy_sync.h"\n',
        "ipvs/y.h": '#include "bpf/loader/ebpf_mode.h"\n',
        "dataplane/z.h": '#include "cni/netns.h"\n',
        "control/agent/proxy/proxy_agent.cc": '#include "bpf/loader/ebpf_datapath.h"\n',
        "control/agent/proxy/mode_factory.cc": '#include "bpf/loader/ebpf_datapath.h"\n',  # allowed
        "bench/ok.cc": '#include "control/x.h"\n',  # allowed
        "cni/log.cc": '#include <spdlog/spdlog.h>\n',
        "control/ok.cc": '#include <prometheus/registry.h>\n',  # allowed
    }
    with tempfile.TemporaryDirectory() as d:
        for path, text in bad.items():
            os.makedirs(os.path.join(d, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(d, path), "w") as f:
                f.write(text)
        found = violations(d)
    if len(found) != 5:
        print("module_edges self-test failed: expected 5 violations, got:\n  " + "\n  ".join(found))
        return False
    return True


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    if not self_test():
        return 1
    found = violations(root)
    for v in found:
        print(v)
    if found:
        print(f"{len(found)} forbidden include(s): DESIGN.md 'Top-level layout' fixes the module edges")
        return 1
    print("module edges: every include follows DESIGN.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
