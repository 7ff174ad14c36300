#!/usr/bin/env python3
"""`sluice up` end to end: the single-node cluster the README's demo starts,
driven by real kubectl, with real pods (echo processes in namespaces) and the
eBPF datapath (or, with --mode ipvs, kernel IPVS: the vm suite runs it inside
a Debian kernel through up_ipvs_vm.sh), checked by what curl sees through
each Service.

One `sluice up` process with its own data directory, API port, BPF pin
directory, debug socket and metrics port; stopped by PID (SIGTERM, then
SIGKILL) and cleaned up (`sluice up --cleanup`, pin directory removed) even on
failure. Needs root, bpffs and cgroup2 (the agent mounts it); exits 77 with
the reason otherwise.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, Failure, eventually, Kubectl, Workdir, expect, expect_in, run_cases  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Up:
    """One `sluice up` process."""

    def __init__(self, sluice, data_dir, tag, mode="ebpf", node_ip=None):
        self.sluice = sluice
        self.mode = mode
        self.node_ip = node_ip
        self.data_dir = data_dir
        self.pin_dir = "/sys/fs/bpf/sluice-e2e-%s" % tag
        self.socket = "/run/sluice-e2e-%s.sock" % tag
        self.metrics_port = free_port()
        self.proc = None

    def args(self):
        mode = ["--ebpf-pin-dir", self.pin_dir] if self.mode == "ebpf" else ["--mode", self.mode]
        node = ["--node-ip", self.node_ip] if self.node_ip else []
        return ["--data-dir", self.data_dir, "--debug-socket", self.socket,
                "--metrics-bind-address", "127.0.0.1:%d" % self.metrics_port] + mode + node

    def start(self, timeout=60):
        self.log_path = os.path.join(self.data_dir, "up.log")
        # The log is appended to across restarts: readiness is this run's line.
        since = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.sluice, "up", "--listen", "127.0.0.1:0"] + self.args(),
                                     stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failure("sluice up exited with %s; log:\n%s" % (self.proc.returncode, self.read_log()))
            with open(self.log_path, errors="replace") as f:
                f.seek(since)
                if "sluice up: ready" in f.read():
                    return
            time.sleep(0.1)
        raise Failure("sluice up not ready in %ss; log:\n%s" % (timeout, self.read_log()))

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""

    def stop(self, timeout=20):
        """SIGTERM; returns the seconds it took to exit (SIGKILL after timeout)."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        start = time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("sluice up did not stop within %ss of SIGTERM" % timeout)
        return time.time() - start

    def cleanup(self):
        try:
            self.stop()
        except Failure:
            pass
        subprocess.run([self.sluice, "up", "--cleanup"] + self.args(), capture_output=True, timeout=60)
        shutil.rmtree(self.pin_dir, ignore_errors=True)
        if os.path.exists(self.socket):
            os.unlink(self.socket)


def http_get(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode(errors="replace")
    except OSError:
        return None


def hostnames(url, n):
    """The hostname each of n requests was answered by (None: no answer)."""
    out = []
    for _ in range(n):
        body = http_get(url)
        m = re.search(r"^hostname: (\S+)", body or "", re.M)
        out.append(m.group(1) if m else None)
    return out


class UpTest:
    def __init__(self, sluice, kubectl, examples, work, mode="ebpf", node_ip=None):
        self.work = work
        self.examples = examples
        self.up = Up(sluice, os.path.join(work, "data"), str(os.getpid()), mode, node_ip)
        os.makedirs(self.up.data_dir)
        self.k = Kubectl(kubectl, self.up, work)

    def pods(self):
        return [p for p in self.k.json("get", "pods", "-l", "app=hostname")["items"]
                if not p["metadata"].get("deletionTimestamp")]

    def urls(self):
        svc = lambda n: self.k.json("get", "service", n)  # noqa: E731
        cluster_ip = svc("hostname")["spec"]["clusterIP"]
        node = self.k.json("get", "nodes")["items"][0]
        node_ip = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"][0]
        lb = eventually(lambda: svc("hostname-lb")["status"].get("loadBalancer", {}).get("ingress"), "LB ingress")
        return {"ClusterIP": "http://%s/" % cluster_ip, "NodePort": "http://%s:30000/" % node_ip,
                "LoadBalancer": "http://%s/" % lb[0]["ip"]}

    # --- cases ----------------------------------------------------------------

    def start_and_deploy(self):
        self.up.start()
        out = self.k.out("apply", "-f", self.examples)
        for name in ("deployment.apps/hostname", "service/hostname", "service/hostname-nodeport",
                     "service/hostname-lb"):
            expect_in(name, out)
        self.k.run("rollout", "status", "deployment/hostname", "--timeout=120s", timeout=150)
        pods = self.pods()
        expect(len(pods) == 3, "3 pods", json.dumps([p["metadata"]["name"] for p in pods]))
        for p in pods:
            expect(p["status"].get("podIP", "").startswith("10.244."), "pod IP from the pod CIDR", json.dumps(p["status"]))

    def every_service_spreads(self):
        names = {p["metadata"]["name"] for p in self.pods()}
        for kind, url in self.urls().items():
            eventually(lambda: http_get(url), "%s %s answers" % (kind, url))
            seen = hostnames(url, 15)
            expect(None not in seen, "%s: every request answered" % kind, str(seen))
            expect(set(seen) <= names, "%s: answers come from the Deployment's pods" % kind, str(seen))
            expect(len(set(seen)) >= 2, "%s: several pods answer" % kind, str(seen))

    def bad_patches_leave_the_cluster_up(self):
        # These JSON patches used to abort `sluice up`: server, controllers
        # and agent at once.
        for patch in ['[{"op":"add","path":"/kind/x","value":1}]',
                      '[{"op":"copy","from":"/spec","path":"/kind/x"}]',
                      '[{"op":"move","from":"/metadata/labels","path":"/spec/ports/0/port/x"}]']:
            p = self.k.run("patch", "svc", "hostname", "--type=json", "-p", patch, check=False)
            expect(p.returncode != 0 and "operation 0" in p.stderr, "kubectl patch %s" % patch, p.stderr)
            expect(self.up.proc.poll() is None, "sluice up exited after kubectl patch %s" % patch, self.up.read_log())
        url = self.urls()["ClusterIP"]
        eventually(lambda: len(set(hostnames(url, 15)) - {None}) >= 2, "the Service still answers")

    def scale_follows(self):
        url = self.urls()["ClusterIP"]
        self.k.run("scale", "deployment/hostname", "--replicas=1")
        eventually(lambda: len(self.pods()) == 1, "one pod left")
        only = self.pods()[0]["metadata"]["name"]
        eventually(lambda: set(hostnames(url, 6)) == {only}, "only %s answers" % only)
        self.k.run("scale", "deployment/hostname", "--replicas=3")
        self.k.run("rollout", "status", "deployment/hostname", "--timeout=120s", timeout=150)
        eventually(lambda: len(set(hostnames(url, 15)) - {None}) >= 2, "several pods answer again")

    def debug_and_metrics(self):
        p = subprocess.run([self.up.sluice, "debug", "--socket", self.up.socket, "lb", "list"], capture_output=True,
                           text=True, timeout=30)
        expect(p.returncode == 0, "sluice debug lb list", p.stderr)
        cluster_ip = self.k.json("get", "service", "hostname")["spec"]["clusterIP"]
        expect_in("%s:80/TCP" % cluster_ip, p.stdout)
        expect_in(":30000/TCP", p.stdout)
        body = http_get("http://127.0.0.1:%d/metrics" % self.up.metrics_port) or ""
        m = re.search(r"^sluice_network_programming_duration_seconds_count (\d+)", body, re.M)
        expect(m and int(m.group(1)) > 0, "network programming latency samples", body[:2000])

    def restart_adopts_pods(self):
        before = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"] for p in self.pods()}
        took = self.up.stop()
        expect(took < 15, "sluice up stops promptly", "%.1fs" % took)
        self.up.start()
        after = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"] for p in self.pods()}
        expect(after == before, "the same pods, not restarted", "%s -> %s" % (before, after))
        url = self.urls()["ClusterIP"]
        eventually(lambda: len(set(hostnames(url, 15)) - {None}) >= 2, "Service answers after the restart")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--examples", required=True)
    ap.add_argument("--mode", default="ebpf", choices=["ebpf", "ipvs"])
    ap.add_argument("--node-ip", help="the node's address (default: the host's primary IPv4)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("skip: needs root (network namespaces, BPF)")
        return SKIP
    if a.mode == "ebpf" and not os.path.isdir("/sys/fs/bpf"):
        print("skip: no bpffs at /sys/fs/bpf")
        return SKIP
    if a.mode == "ipvs" and not os.path.isdir("/proc/sys/net/ipv4/vs"):
        print("skip: no IPVS in this kernel (the vm suite runs this test in one)")
        return SKIP
    if not os.access(a.kubectl, os.X_OK):
        print("skip: %s not installed" % a.kubectl)
        return SKIP
    work = Workdir("sluice-up-e2e-")
    t = UpTest(a.sluice, a.kubectl, a.examples, work.path, a.mode, a.node_ip)
    try:
        failures = run_cases([
            ("start_and_deploy", t.start_and_deploy),
            ("every_service_spreads", t.every_service_spreads),
            ("bad_patches_leave_the_cluster_up", t.bad_patches_leave_the_cluster_up),
            ("scale_follows", t.scale_follows),
            ("debug_and_metrics", t.debug_and_metrics),
            ("restart_adopts_pods", t.restart_adopts_pods),
        ])
        if failures:
            print("sluice up log (tail):\n" + t.up.read_log())
    finally:
        t.up.cleanup()
        work.close()
    print("%d of 6 cases failed" % failures if failures else "all cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
