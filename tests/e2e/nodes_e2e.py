#!/usr/bin/env python3
"""Several `sluice up` nodes on one host, each in its own network namespace
(as a lab or a kind-style multi-node test runs them), must not interfere:

- each node's Services (ClusterIP, NodePort, LoadBalancer) answer from inside
  its namespace with its own pods, while the other node runs the same
  Service addresses;
- node A killed with SIGKILL and its namespace deleted leaves node B working;
- a fresh node C started in a third namespace works too.

The socket-level load balancer hooks the host's cgroup2 root, which every
namespace shares: without a per-namespace filter one node's hooks translate
the other's connections to its own (unreachable) pods.

Each node: a netns with a veth to the host (its InternalIP), `ip netns exec
NS sluice up` with its own data dir, node name, debug socket and metrics
port, kubectl run inside the namespace against its API on 127.0.0.1. All are
stopped by PID and cleaned up (`sluice up --cleanup`, netns and veth
removed) even on failure. Needs root, bpffs, cgroup2; exits 77 otherwise.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, datapath_skip_reason, Failure, eventually, Workdir, expect, run_cases  # noqa: E402


def sh(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise Failure("%s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


class Node:
    """One `sluice up` in its own network namespace."""

    def __init__(self, sluice, kubectl, examples, work, tag, index):
        self.sluice, self.kubectl, self.examples = sluice, kubectl, examples
        self.name = "node-%s" % tag
        self.index = index
        self.netns = "sl-e2e-%d-%s" % (os.getpid(), tag)
        self.veth = "sle%d%s" % (os.getpid() % 100000, tag)
        self.host_ip = "10.77.%d.1" % index
        self.node_ip = "10.77.%d.2" % index
        self.data_dir = os.path.join(work, tag)
        self.socket = "/run/sluice-e2e-%d-%s.sock" % (os.getpid(), tag)
        self.proc = None
        os.makedirs(self.data_dir)
        self.env = dict(os.environ, KUBECONFIG=os.path.join(self.data_dir, "kubeconfig"),
                        KUBECACHEDIR=os.path.join(self.data_dir, "kube-cache"), HOME=self.data_dir)

    def args(self):
        # Pod CIDRs differ per node, as on a real cluster: a connection sent
        # to another node's pod IP reaches nobody here.
        return ["--data-dir", self.data_dir, "--node-name", self.name, "--debug-socket", self.socket,
                "--pod-cidr", "10.244.%d.0/24" % self.index]

    def in_ns(self, *cmd):
        return ["ip", "netns", "exec", self.netns] + list(cmd)

    def create_netns(self):
        sh("ip", "netns", "add", self.netns)
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        sh("ip", "addr", "add", self.host_ip + "/24", "dev", self.veth)
        sh("ip", "link", "set", self.veth, "up")
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        sh("ip", "-n", self.netns, "addr", "add", self.node_ip + "/24", "dev", "eth0")
        sh("ip", "-n", self.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.netns, "route", "add", "default", "via", self.host_ip)

    def start(self, timeout=90):
        self.log_path = os.path.join(self.data_dir, "up.log")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.in_ns(self.sluice, "up", "--listen", "127.0.0.1:0") + self.args(),
                                     stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failure("%s: sluice up exited with %s; log:\n%s" % (self.name, self.proc.returncode,
                                                                         self.read_log()))
            with open(self.log_path, errors="replace") as f:
                if "sluice up: ready" in f.read():
                    return
            time.sleep(0.2)
        raise Failure("%s: sluice up not ready in %ss; log:\n%s" % (self.name, timeout, self.read_log()))

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-5000:]
        except (OSError, AttributeError):
            return ""

    def k(self, *args, timeout=60):
        p = subprocess.run(self.in_ns(self.kubectl, *args), capture_output=True, text=True, env=self.env,
                           timeout=timeout)
        if p.returncode != 0:
            raise Failure("%s: kubectl %s failed (%d):\n%s%s" % (self.name, " ".join(args), p.returncode,
                                                                  p.stdout, p.stderr))
        return p.stdout

    def deploy(self):
        self.k("apply", "-f", self.examples)
        self.k("rollout", "status", "deployment/hostname", "--timeout=150s", timeout=180)

    def pods(self):
        out = self.k("get", "pods", "-l", "app=hostname", "-o",
                     "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}")
        return set(out.split())

    def urls(self):
        cluster_ip = self.k("get", "service", "hostname", "-o", "jsonpath={.spec.clusterIP}")
        lb = eventually(lambda: self.k("get", "service", "hostname-lb", "-o",
                                       "jsonpath={.status.loadBalancer.ingress[0].ip}"), "%s: LB ingress" % self.name,
                        timeout=90)
        return {"ClusterIP": "http://%s/" % cluster_ip, "NodePort": "http://%s:30000/" % self.node_ip,
                "LoadBalancer": "http://%s/" % lb}

    def hostnames(self, url, n):
        out = []
        for _ in range(n):
            p = subprocess.run(self.in_ns("curl", "-s", "-m", "2", url), capture_output=True, text=True, timeout=10)
            m = re.search(r"^hostname: (\S+)", p.stdout, re.M)
            out.append(m.group(1) if m else "error: curl %d %s" % (p.returncode, p.stderr.strip()))
        return out

    def services_answer_with_own_pods(self):
        own = self.pods()
        expect(len(own) == 3, "%s: 3 pods" % self.name, str(own))
        for kind, url in self.urls().items():
            def check():
                seen = self.hostnames(url, 9)
                return seen if set(seen) <= own and len(set(seen)) >= 2 else False
            try:
                eventually(check, "%s %s" % (self.name, kind), timeout=30)
            except Failure:
                seen = self.hostnames(url, 9)
                raise Failure("%s: %s %s answered by %s, its pods are %s" % (self.name, kind, url, seen, sorted(own)))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def cleanup(self):
        self.stop()
        if os.path.exists("/var/run/netns/" + self.netns):
            subprocess.run(self.in_ns(self.sluice, "up", "--cleanup") + self.args(), capture_output=True, timeout=60)
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        if os.path.exists(self.socket):
            os.unlink(self.socket)


class NodesTest:
    def __init__(self, sluice, kubectl, examples, work):
        mk = lambda tag, i: Node(sluice, kubectl, examples, work, tag, i)  # noqa: E731
        self.a, self.b, self.c = mk("a", 1), mk("b", 2), mk("c", 3)

    def two_nodes_serve_their_own_pods(self):
        for n in (self.a, self.b):
            n.create_netns()
            n.start()
        for n in (self.a, self.b):
            n.deploy()
        # Both clusters allocate the same ClusterIP, NodePort and LB address.
        expect(self.a.urls()["ClusterIP"] == self.b.urls()["ClusterIP"], "same ClusterIP on both nodes")
        for n in (self.a, self.b):
            n.services_answer_with_own_pods()

    def killed_node_and_deleted_netns_leave_the_other_working(self):
        self.a.kill()
        # Its pods are orphans now: what `sluice up --cleanup` of a crashed
        # node removes; then the namespace goes.
        subprocess.run(self.a.in_ns(self.a.sluice, "up", "--cleanup") + self.a.args(), capture_output=True,
                       timeout=60)
        sh("ip", "netns", "del", self.a.netns)
        time.sleep(1)
        self.b.services_answer_with_own_pods()

    def fresh_node_in_a_third_netns_works(self):
        self.c.create_netns()
        self.c.start()
        self.c.deploy()
        self.c.services_answer_with_own_pods()
        self.b.services_answer_with_own_pods()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--examples", required=True)
    a = ap.parse_args()
    why = datapath_skip_reason()
    if why:
        print("skip: " + why)
        return SKIP
    if not os.access(a.kubectl, os.X_OK) or shutil.which("curl") is None:
        print("skip: %s or curl not installed" % a.kubectl)
        return SKIP
    work = Workdir("sluice-nodes-e2e-")
    t = NodesTest(a.sluice, a.kubectl, a.examples, work.path)
    names = ["two_nodes_serve_their_own_pods", "killed_node_and_deleted_netns_leave_the_other_working",
             "fresh_node_in_a_third_netns_works"]
    try:
        failures = run_cases([(n, getattr(t, n)) for n in names])
        if failures:
            for n in (t.a, t.b, t.c):
                print("%s log (tail):\n%s" % (n.name, n.read_log()))
    finally:
        for n in (t.a, t.b, t.c):
            n.cleanup()
        work.close()
    print("%d of %d cases failed" % (failures, len(names)) if failures else "all cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
