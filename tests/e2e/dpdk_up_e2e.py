#!/usr/bin/env python3
"""`sluice up --mode=dpdk` end to end: the seeds' workload (a Deployment of 3
echo pods; ClusterIP, NodePort 30000, LoadBalancer) applied with real
kubectl, through sluice-dpdk on a veth:

  node netns (sluice up runs here): the uplink slu<pid> (sluice-dpdk's
    net_af_packet; the node address 192.168.250.1/24 lives on the TAP),
    the pods, the service CIDR and LoadBalancer pool routed into the TAP
  outside netns: 192.168.250.2/24, the LoadBalancer pool on-link

Checked by what curl sees: the ClusterIP from the node, the NodePort and the
LoadBalancer IP from outside, each answered by all three pods. Everything is
named after this process's PID and removed even on failure: `sluice up` is
stopped by PID, `sluice up --cleanup` stops the sluice-dpdk it started (by
its PID file), the namespaces go. Exits 77 with the reason when it cannot
run here (not root, no kubectl, no ethtool).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77


def sh(cmd, check=True):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (cmd, r.stderr.strip()))
    return r.stdout


def eventually(fn, what, timeout=120):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.5)
    raise RuntimeError("%s: not within %ss (last: %r)" % (what, timeout, last))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sluice", required=True)
    p.add_argument("--kubectl", required=True)
    p.add_argument("--examples", required=True)
    a = p.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (namespaces, veth, TAP)")
        return SKIP
    for tool in (a.kubectl, shutil.which("ethtool") or "", shutil.which("nft") or ""):
        if not tool or not os.path.exists(tool):
            print("SKIP: %s not installed" % (tool or "ethtool/nft"))
            return SKIP

    pid = os.getpid()
    node, out, uplink = "sluice-%d-upnode" % pid, "sluice-%d-upout" % pid, "slu%d" % pid
    work = tempfile.mkdtemp(prefix="sluice-dpdk-up-")
    sock = os.path.join(work, "dpdk.sock")
    state = "/dev/shm/sluice-dpdk-up-%d.state" % pid
    common = ["--data-dir", os.path.join(work, "data"), "--mode", "dpdk", "--uplink", uplink,
              "--node-ip", "192.168.250.1", "--dpdk-socket", sock, "--dpdk-state-file", state]
    up = None
    failures = []
    try:
        for cmd in ["ip netns add " + node, "ip netns add " + out,
                    "ip -n %s link set lo up" % node, "ip -n %s link set lo up" % out,
                    "ip -n %s link add name %s type veth peer name eth0 netns %s" % (node, uplink, out),
                    "ip -n %s link set %s up" % (node, uplink),
                    "ip -n %s addr add 192.168.250.2/24 dev eth0" % out,
                    "ip -n %s link set eth0 up" % out,
                    # A veth's frames reach net_af_packet half-checksummed: software checksums.
                    "ip netns exec %s ethtool -K eth0 tx off" % out,
                    "ip -n %s route add 198.51.100.0/24 dev eth0" % out,
                    "ip netns exec %s sysctl -qw net.ipv4.ip_forward=1" % node]:
            sh(cmd)
        log = open(os.path.join(work, "up.log"), "wb")
        up = subprocess.Popen(["ip", "netns", "exec", node, a.sluice, "up", "--listen", "127.0.0.1:0",
                               "--lb-pool", "198.51.100.0/24", "--dpdk-tap", "slt%d" % pid,
                               "--dpdk-kernel-routes", "10.96.0.0/12,198.51.100.0/24",
                               "--debug-socket", os.path.join(work, "debug.sock"),
                               "--metrics-bind-address", "127.0.0.1:0", "--streaming-port", "0"] + common,
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        kubeconfig = os.path.join(work, "data", "kubeconfig")
        eventually(lambda: b"sluice up: ready" in open(os.path.join(work, "up.log"), "rb").read(),
                   "sluice up ready", 90)

        def k(*args):
            return sh("ip netns exec %s env KUBECONFIG=%s %s %s" % (node, kubeconfig, a.kubectl, " ".join(args)))

        k("apply", "-f", os.path.join(a.examples, "hostname"))
        k("rollout", "status", "deployment/hostname", "--timeout=180s")
        lb = eventually(lambda: k("get", "svc", "hostname-lb", "-o",
                                  "jsonpath='{.status.loadBalancer.ingress[0].ip}'").strip(),
                        "LoadBalancer ingress IP")
        cluster_ip = k("get", "svc", "hostname", "-o", "jsonpath='{.spec.clusterIP}'").strip()

        def hostnames(netns, url):
            seen = set()
            for _ in range(30):
                body = sh("ip netns exec %s curl -s -m 3 %s" % (netns, url), check=False)
                m = re.search(r"^hostname: (\S+)", body, re.M)
                seen.add(m.group(1) if m else "no answer")
            return seen

        for what, netns, url in [("ClusterIP from the node", node, "http://%s/" % cluster_ip),
                                 ("NodePort 30000 from outside", out, "http://192.168.250.1:30000/"),
                                 ("LoadBalancer %s from outside" % lb, out, "http://%s/" % lb)]:
            try:
                seen = eventually(lambda: (lambda s: s if len(s) == 3 and "no answer" not in s else None)(
                    hostnames(netns, url)), what, 60)
                print("ok: %s answered by %s" % (what, ", ".join(sorted(seen))))
            except RuntimeError as e:
                failures.append(str(e))
    except RuntimeError as e:
        failures.append(str(e))
    finally:
        if up is not None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=30)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        subprocess.run(["ip", "netns", "exec", node, a.sluice, "up", "--cleanup"] + common,
                       capture_output=True, timeout=120)
        for ns in (node, out):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if failures:
            print(open(os.path.join(work, "up.log"), errors="replace").read()[-4000:])
        shutil.rmtree(work, ignore_errors=True)
        if os.path.exists(state):
            os.unlink(state)
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
