#!/usr/bin/env python3
"""e2e: the workload controllers driven by real kubectl against a real
`sluice server` (controllers on), with a hollow-node process making pods
Running/Ready (there is no node agent in this test).

Per kubectl binary, on its own Deployment: create, rollout status, scale
(no new revision), relabel a pod out of its ReplicaSet and back, set image +
annotate kubernetes.io/change-cause, rollout history, rollout undo
--to-revision, rollout pause/resume, and delete with --cascade=orphan,
foreground and background.

Usage: workloads_e2e.py --sluice PATH --hollow-node PATH --kubectl PATH [--kubectl PATH ...]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, Failure, Kubectl, eventually, Server, Workdir, expect, expect_in, run_cases  # noqa: E402


def flow(k, name):
    """The seeds' workflows on Deployment `name` with kubectl `k`."""
    sel = "app=" + name

    def pods():
        return k.json("get", "pods", "-l", sel)["items"]

    def rss():
        items = k.json("get", "rs", "-l", sel)["items"]
        return sorted(items, key=lambda r: int(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))

    def rollout_status():
        out = k.out("rollout", "status", "deployment/" + name, "--timeout=90s", timeout=120)
        expect_in("successfully rolled out", out, "rollout status")

    def create():
        k.out("create", "deployment", name, "--image=sluice/echo:1", "--replicas=3")
        rollout_status()
        expect(len(rss()) == 1, "one ReplicaSet")
        ready = [p for p in pods() if p["status"].get("phase") == "Running"]
        expect(len(ready) == 3, "3 running pods", json.dumps([p["status"] for p in pods()])[:2000])

    def scale():
        k.out("scale", "deployment/" + name, "--replicas=5")
        rollout_status()
        rs = rss()
        expect(len(rs) == 1, "scaling makes no new ReplicaSet")
        expect(rs[0]["spec"]["replicas"] == 5, "ReplicaSet scaled to 5")
        hist = k.out("rollout", "history", "deployment/" + name)
        expect("2 " not in hist.split("REVISION")[-1], "scaling makes no new revision", hist)

    def relabel():
        rs = rss()[0]
        victim = pods()[0]["metadata"]["name"]
        k.out("label", "pod", victim, "app=debug-" + name, "--overwrite")
        eventually(lambda: "ownerReferences" not in k.json("get", "pod", victim)["metadata"], "pod released")
        eventually(lambda: len(pods()) == 5 and all(p["metadata"].get("ownerReferences") for p in pods()),
             "a replacement pod")
        expect(k.json("get", "pod", victim)["status"]["phase"] == "Running", "released pod keeps running")
        k.out("label", "pod", victim, "app=" + name, "--overwrite")
        eventually(lambda: len(pods()) == 5, "one surplus pod removed after adoption")
        time.sleep(1)
        expect(len(pods()) == 5, "5 pods after re-adoption")
        for p in pods():
            refs = p["metadata"].get("ownerReferences", [])
            expect(len(refs) == 1 and refs[0]["uid"] == rs["metadata"]["uid"], "every pod owned by the ReplicaSet")

    def set_image(tag, cause):
        k.out("set", "image", "deployment/" + name, "echo=sluice/echo:" + tag)
        k.out("annotate", "deployment/" + name, "kubernetes.io/change-cause=" + cause, "--overwrite")
        rollout_status()

    def history():
        set_image("2", "image v2")
        set_image("3", "image v3")
        rs = rss()
        expect(len(rs) == 3, "three revisions, three ReplicaSets")
        expect([r["spec"]["replicas"] for r in rs] == [0, 0, 5], "only the newest is scaled up",
               json.dumps([r["spec"] for r in rs])[:1500])
        hist = k.out("rollout", "history", "deployment/" + name)
        expect_in("image v2", hist, "history")
        expect_in("image v3", hist, "history")
        rev2 = k.out("rollout", "history", "deployment/" + name, "--revision=2")
        expect_in("sluice/echo:2", rev2, "history --revision=2")

    def undo():
        out = k.out("rollout", "undo", "deployment/" + name, "--to-revision=1")
        expect_in("rolled back", out, "rollout undo")
        rollout_status()
        rs = rss()
        expect(len(rs) == 3, "undo reuses the revision-1 ReplicaSet", json.dumps([r["metadata"]["name"] for r in rs]))
        newest = rs[-1]
        expect(newest["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4", "undo is revision 4")
        expect(newest["spec"]["template"]["spec"]["containers"][0]["image"] == "sluice/echo:1", "image back to 1")
        images = {p["spec"]["containers"][0]["image"] for p in pods()}
        expect(images == {"sluice/echo:1"}, "pods run image 1 again", str(images))
        hist = k.out("rollout", "history", "deployment/" + name)
        expect_in("4 ", hist, "history after undo")

    def pause_resume():
        k.out("rollout", "pause", "deployment/" + name)
        k.out("set", "image", "deployment/" + name, "echo=sluice/echo:5")
        time.sleep(1.5)
        expect(len(rss()) == 3, "paused: no new ReplicaSet")
        d = k.json("get", "deployment", name)
        conds = {c["type"]: c for c in d["status"].get("conditions", [])}
        expect(conds.get("Progressing", {}).get("reason") == "DeploymentPaused", "paused condition", json.dumps(conds))
        k.out("rollout", "resume", "deployment/" + name)
        rollout_status()
        expect(rss()[-1]["spec"]["template"]["spec"]["containers"][0]["image"] == "sluice/echo:5", "resumed rollout")

    def delete_orphan():
        k.out("delete", "deployment", name, "--cascade=orphan")
        time.sleep(1)
        rs = rss()
        expect(len(rs) >= 1, "ReplicaSets kept", k.out("get", "rs,deploy,pods", "--show-labels"))
        expect(all(not r["metadata"].get("ownerReferences") for r in rs), "ReplicaSets orphaned")
        expect(len(pods()) == 5, "pods kept", k.out("get", "rs,pods", "--show-labels", "-l", sel))
        # Foreground on the live ReplicaSet: kubectl waits until it is gone,
        # and it goes only after its pods.
        live = [r["metadata"]["name"] for r in rs if r["spec"]["replicas"] > 0][0]
        k.out("delete", "rs", live, "--cascade=foreground", timeout=120)
        expect(len(pods()) == 0, "foreground: pods gone before their ReplicaSet")
        k.out("delete", "rs", "-l", sel)

    def delete_background():
        k.out("create", "deployment", name + "-bg", "--image=sluice/echo:1", "--replicas=2")
        out = k.out("rollout", "status", "deployment/" + name + "-bg", "--timeout=90s", timeout=120)
        expect_in("successfully rolled out", out)
        k.out("delete", "deployment", name + "-bg", "--cascade=background")
        eventually(lambda: not k.json("get", "rs", "-l", "app=" + name + "-bg")["items"] and
             not k.json("get", "pods", "-l", "app=" + name + "-bg")["items"], "background cascade")

    return [("create + rollout status", create), ("scale", scale), ("relabel out and back", relabel),
            ("set image + change-cause + history", history), ("rollout undo --to-revision=1", undo),
            ("rollout pause/resume", pause_resume), ("delete --cascade=orphan/foreground", delete_orphan),
            ("delete --cascade=background", delete_background)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--hollow-node", required=True)
    ap.add_argument("--kubectl", action="append", required=True)
    args = ap.parse_args()
    kubectls = [b for b in args.kubectl if os.path.exists(b)]
    if not kubectls:
        print("skip: no kubectl binary among " + ", ".join(args.kubectl))
        return SKIP
    work = Workdir("sluice-workloads-e2e-")
    server = Server(args.sluice, os.path.join(work.path, "data"))
    os.makedirs(server.data_dir)
    hollow = None
    failures = 0
    try:
        server.start()
        hollow_log = open(os.path.join(work.path, "hollow.log"), "wb")
        hollow = subprocess.Popen([args.hollow_node, "--kubeconfig", os.path.join(server.data_dir, "kubeconfig"),
                                   "--name", "hollow-0", "--name", "hollow-1", "--bind-unscheduled"],
                                  stdout=hollow_log, stderr=hollow_log)
        for i, binary in enumerate(kubectls):
            k = Kubectl(binary, server, work.path)
            version = os.path.basename(binary)
            print("== " + version, flush=True)
            cases = flow(k, "web%d" % i)
            failures += run_cases([(version + ": " + n, f) for n, f in cases])
    except Failure as e:
        print("FAIL setup\n%s" % e)
        failures += 1
    finally:
        if hollow is not None and hollow.poll() is None:
            hollow.send_signal(signal.SIGTERM)
            try:
                hollow.wait(10)
            except subprocess.TimeoutExpired:
                hollow.kill()
                hollow.wait()
        server.kill()
        if failures:
            print("server log tail:\n" + server.read_log())
        work.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
