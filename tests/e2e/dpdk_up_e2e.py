#!/usr/bin/env python3
"""`sluice up --mode=dpdk` end to end: the seeds' workload (a Deployment of 3
echo pods; ClusterIP, NodePort 30000, LoadBalancer) applied with real
kubectl, through sluice-dpdk on the veth `sluice up` makes itself when it
is given no uplink (control/cmd/dpdk_lab.h):

  node netns (sluice up runs here, entered with nsenter; the test makes it
    empty): the uplink
    slu<pid> (sluice-dpdk's net_af_packet; the node address 192.168.250.1/24
    lives on the TAP), the pods, the service CIDR and LoadBalancer pool
    routed into the TAP (the default --dpdk-kernel-routes)
  outside netns sluice-<pid>-upout, made by `sluice up`: 192.168.250.2/24,
    the LoadBalancer pool on-link

Checked by what curl sees: the ClusterIP from the node, the NodePort and the
LoadBalancer IP from outside, each answered by all three pods; then that
`sluice up --cleanup` removed the veth and the outside namespace. Everything
is named after this process's PID and removed even on failure: `sluice up`
is stopped by PID, `sluice up --cleanup` stops the sluice-dpdk it started
(by its PID file), the namespaces go. Exits 77 with the reason when it
cannot run here (not root, no kubectl).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Failure, eventually  # noqa: E402

SKIP = 77


def sh(cmd, check=True):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (cmd, r.stderr.strip()))
    return r.stdout


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sluice", required=True)
    p.add_argument("--kubectl", required=True)
    p.add_argument("--examples", required=True)
    a = p.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (namespaces, veth, TAP)")
        return SKIP
    if not os.path.exists(a.kubectl):
        print("SKIP: %s not installed" % a.kubectl)
        return SKIP

    pid = os.getpid()
    node, out, uplink = "sluice-%d-upnode" % pid, "sluice-%d-upout" % pid, "slu%d" % pid
    work = tempfile.mkdtemp(prefix="sluice-dpdk-up-")
    sock = os.path.join(work, "dpdk.sock")
    state = "/dev/shm/sluice-dpdk-up-%d.state" % pid
    common = ["--data-dir", os.path.join(work, "data"), "--mode", "dpdk", "--dpdk-lab-link", uplink,
              "--dpdk-lab-netns", out, "--dpdk-socket", sock, "--dpdk-state-file", state]
    up = None
    failures = []
    try:
        sh("ip netns add " + node)
        sh("ip -n %s link set lo up" % node)
        log = open(os.path.join(work, "up.log"), "wb")
        # nsenter, not `ip netns exec`: that one runs the command in a mount
        # namespace of its own, where the outside namespace `sluice up`
        # makes (a bind mount on /run/netns/NAME) would stay invisible here.
        enter = ["nsenter", "--net=/run/netns/" + node]
        up = subprocess.Popen(enter + [a.sluice, "up", "--listen", "127.0.0.1:0",
                               "--dpdk-tap", "slt%d" % pid,
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
                        "LoadBalancer ingress IP", 120)
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
            except (RuntimeError, Failure) as e:
                failures.append(str(e))
    except (RuntimeError, Failure) as e:
        failures.append(str(e))
    finally:
        if up is not None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=30)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        cleanup = subprocess.run(["nsenter", "--net=/run/netns/" + node, a.sluice, "up", "--cleanup"] + common,
                                 capture_output=True, text=True, timeout=120)
        if up is not None and not failures:
            left = [what for what, there in
                    [("netns " + out, os.path.exists("/run/netns/" + out)),
                     ("link " + uplink, subprocess.run(["ip", "-n", node, "link", "show", uplink],
                                                      capture_output=True).returncode == 0)] if there]
            if cleanup.returncode != 0 or left:
                failures.append("sluice up --cleanup (exit %d) left %s: %s" %
                                (cleanup.returncode, ", ".join(left) or "nothing", cleanup.stderr.strip()))
            else:
                print("ok: sluice up --cleanup removed the veth and the outside namespace")
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
