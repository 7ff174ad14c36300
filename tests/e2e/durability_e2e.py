#!/usr/bin/env python3
"""e2e: `kill -9` the server in the middle of a stream of creates (HTTP
clients and kubectl), restart it on the same data directory, and check that
every create that was acknowledged with 201 is there, and that Service node
ports allocated before the crash stay unique after it.

Usage: durability_e2e.py --sluice PATH [--kubectl PATH]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Failure, Kubectl, Server, Workdir, expect  # noqa: E402

WRITERS = 8
RUN_SECONDS = 2.0


def pod(name):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


def service(name):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [{"port": 80}]}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--kubectl", default="")
    args = ap.parse_args()
    work = Workdir("sluice-durability-")
    server = Server(args.sluice, os.path.join(work.path, "data"))
    os.makedirs(server.data_dir)
    acked = {"pods": set(), "services": set()}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(idx):
        conn = None
        i = 0
        while not stop.is_set():
            kind = "services" if idx == 0 else "pods"
            name = "d-%d-%d" % (idx, i)
            i += 1
            body = service(name) if kind == "services" else pod(name)
            try:
                conn = conn or server.connection()
                status, _ = server.request("POST", "/api/v1/namespaces/default/" + kind, body, conn=conn)
            except Exception:  # the server died under us: this write is unacknowledged
                return
            if status == 201:
                with lock:
                    acked[kind].add(name)

    kubectl_acked = []

    def kubectl_writer(k):
        i = 0
        while not stop.is_set():
            name = "k-%d" % i
            i += 1
            try:
                p = k.run("run", name, "--image=nginx", check=False, timeout=10)
            except subprocess.TimeoutExpired:
                return
            if p.returncode == 0 and "created" in p.stdout:
                kubectl_acked.append(name)

    try:
        server.start()
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
        if args.kubectl and os.access(args.kubectl, os.X_OK):
            threads.append(threading.Thread(target=kubectl_writer, args=(Kubectl(args.kubectl, server, work.path),)))
        start = time.time()
        for t in threads:
            t.start()
        time.sleep(RUN_SECONDS)
        server.kill(signal.SIGKILL)  # no shutdown: only what reached the disk survives
        elapsed = time.time() - start
        stop.set()
        for t in threads:
            t.join(30)
        total = len(acked["pods"]) + len(acked["services"]) + len(kubectl_acked)
        print("acknowledged before kill -9: %d pods, %d services, %d kubectl pods (%.0f creates/s with %d clients)"
              % (len(acked["pods"]), len(acked["services"]), len(kubectl_acked), total / elapsed, WRITERS), flush=True)
        expect(total > 0, "no write was acknowledged before the kill")

        server.start()
        status, body = server.request("GET", "/api/v1/namespaces/default/pods")
        expect(status == 200, "list pods after restart: %d" % status)
        pods = {p["metadata"]["name"] for p in json.loads(body)["items"]}
        missing = (acked["pods"] | set(kubectl_acked)) - pods
        expect(not missing, "acknowledged pods lost: %s" % sorted(missing)[:20])
        status, body = server.request("GET", "/api/v1/namespaces/default/services")
        svcs = json.loads(body)["items"]
        names = {s["metadata"]["name"] for s in svcs}
        expect(not (acked["services"] - names), "acknowledged services lost: %s" % sorted(acked["services"] - names))
        ports = [s["spec"]["ports"][0]["nodePort"] for s in svcs if s["spec"]["type"] == "NodePort"]
        ips = [s["spec"]["clusterIP"] for s in svcs]
        expect(len(ports) == len(set(ports)) and len(ips) == len(set(ips)), "duplicate allocations after restart")
        status, body = server.request("POST", "/api/v1/namespaces/default/services", service("after-restart"))
        expect(status == 201, "create after restart: %d %s" % (status, body))
        new = json.loads(body)
        expect(new["spec"]["ports"][0]["nodePort"] not in ports and new["spec"]["clusterIP"] not in ips,
               "allocation after restart reused a stored Service's port or address")
        print("ok   all %d acknowledged creates survived; allocations consistent" % total)
        return 0
    except Failure as e:
        print("FAIL: %s\nserver log (tail):\n%s" % (e, server.read_log()))
        return 1
    finally:
        stop.set()
        server.kill()
        work.close()


if __name__ == "__main__":
    sys.exit(main())
