#!/usr/bin/env python3
"""e2e: the kubectl workflows of the seeds against a real `sluice server`,
with one real kubectl binary (run once per installed version).

Usage: kubectl_e2e.py --sluice PATH --kubectl PATH --examples DIR
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, Failure, Kubectl, Server, Workdir, expect, expect_in, run_named_cases  # noqa: E402

POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
    tier: fe
spec:
  containers:
  - name: nginx
    image: nginx:1.25
    ports:
    - containerPort: 80
"""


class Cases:
    def __init__(self, k, work, examples):
        self.k = k
        self.work = work
        self.examples = examples
        self.minor = 99  # kubectl's minor version, set by main()

    def write(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # --- apply ---------------------------------------------------------------

    def apply_file_then_changes_then_removed_field(self):
        path = self.write("web.yaml", POD)
        expect_in("pod/web created", self.k.out("apply", "-f", path))
        expect_in("pod/web unchanged", self.k.out("apply", "-f", path))
        # A changed image and an added label go through a strategic merge patch.
        self.write("web.yaml", POD.replace("nginx:1.25", "nginx:1.26").replace("tier: fe", "tier: fe\n    track: beta"))
        expect_in("pod/web configured", self.k.out("apply", "-f", path))
        pod = self.k.json("get", "pod", "web")
        expect(pod["spec"]["containers"][0]["image"] == "nginx:1.26", "image not updated")
        expect(pod["metadata"]["labels"].get("track") == "beta", "label not added")
        expect(pod["spec"]["containers"][0]["ports"][0]["protocol"] == "TCP", "server default lost")
        # A field removed from the manifest is removed from the object.
        self.write("web.yaml", POD.replace("nginx:1.25", "nginx:1.26").replace("    tier: fe\n", ""))
        expect_in("pod/web configured", self.k.out("apply", "-f", path))
        labels = self.k.json("get", "pod", "web")["metadata"]["labels"]
        expect(labels == {"app": "web"}, "labels after removing fields: %s" % labels)

    def apply_directory(self):
        out = self.k.out("apply", "-f", self.examples)
        for what in ["deployment.apps/dpy-hname created", "replicaset.apps/replicaset-nginx created",
                     "service/svc-hname created", "service/hostname-svc-lb created", "pod/web-with-init created",
                     "namespace/demo created", "service/hostname-svc-fixed created"]:
            expect_in(what, out)
        svcs = self.k.out("get", "svc")
        expect(re.search(r"svc-hname\s+NodePort\s+10\.96\.\S+\s+<none>\s+80:30000/TCP", svcs), "NodePort 30000", svcs)
        expect(re.search(r"hostname-svc-lb\s+LoadBalancer\s+10\.96\.\S+\s+192\.0\.2\.\d+,198\.51\.100\.10\s+80:3\d{4}/TCP",
                         svcs), "LoadBalancer ingress + externalIP", svcs)
        expect(re.search(r"hostname-svc-fixed\s+ClusterIP\s+10\.96\.100\.100\s", svcs), "explicit clusterIP", svcs)
        expect(re.search(r"hostname-svc-clusterip\s+ClusterIP\s+10\.96\.\S+\s+<none>\s+8080/TCP", svcs), "ClusterIP", svcs)
        fixed = self.k.json("get", "svc", "hostname-svc-fixed")
        expect(fixed["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 10800, "affinity default")
        expect_in("pod/web-with-init unchanged", self.k.out("apply", "-f", self.examples))

    def apply_stdin_multi_document(self):
        docs = POD.replace("name: web", "name: stdin-a") + "---\n" + POD.replace("name: web", "name: stdin-b")
        out = self.k.out("apply", "-f", "-", stdin=docs)
        expect_in("pod/stdin-a created", out)
        expect_in("pod/stdin-b created", out)

    def create_file_and_conflict(self):
        path = self.write("created.yaml", POD.replace("name: web", "name: created"))
        expect_in("pod/created created", self.k.out("create", "-f", path))
        p = self.k.run("create", "-f", path, check=False)
        expect(p.returncode != 0, "second create succeeded")
        expect_in('pods "created" already exists', p.stderr)

    def create_deployment_and_run(self):
        expect_in("deployment.apps/dpy-nginx created",
                  self.k.out("create", "deployment", "dpy-nginx", "--image=nginx", "--replicas=3"))
        out = self.k.out("get", "deployment", "dpy-nginx")
        # UP-TO-DATE is 0 until the Deployment controller's first status write,
        # then 3; no pod is ever available (there is no node in this test).
        expect(re.search(r"dpy-nginx\s+0/3\s+[03]\s+0\s+\d+s", out), "deployment row", out)
        expect_in("pod/nginx-pod created", self.k.out("run", "nginx-pod", "--image=nginx"))
        expect_in("nginx-pod", self.k.out("get", "pods"))

    # --- get -----------------------------------------------------------------

    def get_output_formats(self):
        wide = self.k.out("get", "pods", "-o", "wide")
        expect(re.search(r"NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES", wide),
               "wide header", wide)
        expect(re.search(r"web\s+0/1\s+Pending\s+0\s+\S+\s+<none>\s+<none>", wide), "wide row", wide)
        y = self.k.out("get", "pod", "web", "-o", "yaml")
        expect_in("restartPolicy: Always", y)
        expect_in("kind: Pod", y)
        expect(self.k.json("get", "pod", "web")["metadata"]["name"] == "web", "json")
        names = self.k.out("get", "pods", "-o", "name").split()
        expect("pod/web" in names and "pod/created" in names, "names %s" % names)
        jp = self.k.out("get", "svc", "svc-hname", "-o", "jsonpath={.spec.ports[0].nodePort}")
        expect(jp == "30000", "jsonpath gave %r" % jp)
        deploy = self.k.out("get", "deploy", "-o", "wide")
        expect(re.search(r"NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\s+CONTAINERS\s+IMAGES\s+SELECTOR", deploy), "deploy wide", deploy)
        rs = self.k.out("get", "rs")
        expect(re.search(r"replicaset-nginx\s+3\s+[03]\s+0\s", rs), "replicaset row", rs)

    def get_selectors_and_namespaces(self):
        self.k.run("label", "pod", "created", "tier=be", "--overwrite")
        sel = self.k.out("get", "pods", "-l", "tier in (fe,be),app", "-o", "name").split()
        expect(sorted(sel) == ["pod/created", "pod/stdin-a", "pod/stdin-b"], "set-based selector: %s" % sel)
        sel = self.k.out("get", "pods", "-l", "app=web,tier,tier notin (fe),!track", "-o", "name").split()
        expect(sel == ["pod/created"], "notin/!: %s" % sel)
        labels = self.k.out("get", "pods", "--show-labels")
        expect(re.search(r"created\s.*app=web,tier=be", labels), "show-labels", labels)
        expect_in("kubernetes", self.k.out("get", "svc", "-n", "default"))
        expect_in("No resources found in kube-system namespace.", self.k.run("get", "pods", "-n", "kube-system").stderr)
        all_ns = self.k.out("get", "svc", "-A")
        expect(re.search(r"NAMESPACE\s+NAME\s+TYPE", all_ns) and re.search(r"demo\s+web\s+ClusterIP", all_ns), "-A", all_ns)
        fs = self.k.out("get", "pods", "--field-selector", "metadata.name=web,status.phase=Pending", "-o", "name")
        expect(fs.split() == ["pod/web"], "field selector: %r" % fs)
        expect_in("kube-system", self.k.out("get", "namespaces"))

    def get_watch(self):
        proc = subprocess.Popen([self.k.binary, "get", "pods", "-w"], env=self.k.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(1.5)
            self.k.run("run", "watched", "--image=nginx")
            time.sleep(1.0)
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=10)
        expect(re.search(r"web\s+0/1\s+Pending", out), "initial list in watch", out)
        expect(re.search(r"watched\s+0/1\s+Pending", out), "watch event", out)

    def describe(self):
        out = self.k.out("describe", "pod", "web")
        for s in ["Name:", "web", "Namespace:", "default", "Status:", "Pending", "nginx:1.26", "Port:", "80/TCP"]:
            expect_in(s, out, "describe pod")
        out = self.k.out("describe", "svc", "hostname-svc-lb")
        expect(re.search(r"LoadBalancer Ingress:\s+192\.0\.2\.\d+", out), "describe svc ingress", out)
        expect_in("External Traffic Policy:  Local", out)
        out = self.k.out("describe", "deployment", "dpy-nginx")
        expect(re.search(r"Replicas:\s+3 desired", out), "describe deploy", out)
        expect_in("RollingUpdateStrategy:  25% max unavailable, 25% max surge", out)

    # --- changes -----------------------------------------------------------

    def scale(self):
        expect_in("deployment.apps/dpy-nginx scaled", self.k.out("scale", "deployment", "dpy-nginx", "--replicas=5"))
        r = self.k.out("get", "deploy", "dpy-nginx", "-o", "jsonpath={.spec.replicas}")
        expect(r == "5", "replicas %r" % r)
        self.k.run("scale", "rs", "replicaset-nginx", "--replicas=1")
        expect(self.k.out("get", "rs", "replicaset-nginx", "-o", "jsonpath={.spec.replicas}") == "1", "rs scale")

    def label_and_annotate(self):
        expect_in("pod/web labeled", self.k.out("label", "pod", "web", "env=prod"))
        p = self.k.run("label", "pod", "web", "env=dev", check=False)
        expect(p.returncode != 0, "label without --overwrite replaced a value")
        expect_in("already has a value", p.stderr)
        self.k.run("label", "pod", "web", "env=dev", "--overwrite")
        expect(self.k.json("get", "pod", "web")["metadata"]["labels"]["env"] == "dev", "overwrite")
        self.k.run("label", "pod", "web", "env-")
        expect("env" not in self.k.json("get", "pod", "web")["metadata"]["labels"], "label removal")
        # kubectl 1.27 prints "annotate", later versions "annotated".
        expect_in("deployment.apps/dpy-nginx annotate",
                  self.k.out("annotate", "deployment", "dpy-nginx", "kubernetes.io/change-cause=update nginx"))
        ann = self.k.json("get", "deploy", "dpy-nginx")["metadata"]["annotations"]
        expect(ann.get("kubernetes.io/change-cause") == "update nginx", "annotation %s" % ann)

    def expose(self):
        expect_in("service/pod-svc exposed",
                  self.k.out("expose", "pod", "web", "--type=NodePort", "--name=pod-svc", "--port=80"))
        expect_in("service/dpy-svc exposed",
                  self.k.out("expose", "deployment", "dpy-nginx", "--port=8080", "--target-port=80",
                             "--type=LoadBalancer", "--name=dpy-svc"))
        expect_in("service/rs-svc exposed",
                  self.k.out("expose", "rs", "replicaset-nginx", "--port=80", "--name=rs-svc"))
        svc = self.k.json("get", "svc", "dpy-svc")
        expect(svc["spec"]["selector"] == {"app": "dpy-nginx"}, "selector %s" % svc["spec"]["selector"])
        expect(svc["spec"]["ports"][0]["targetPort"] == 80 and svc["spec"]["ports"][0]["nodePort"] >= 30000, "ports")
        expect(svc["status"]["loadBalancer"]["ingress"][0]["ip"].startswith("192.0.2."), "LB ingress")
        pod_svc = self.k.json("get", "svc", "pod-svc")
        expect(pod_svc["spec"]["selector"] == {"app": "web"}, "pod selector %s" % pod_svc["spec"]["selector"])

    def edit(self):
        env = {"EDITOR": "sed -i -e 's/replicas: 5/replicas: 2/'", "KUBE_EDITOR": ""}
        expect_in("deployment.apps/dpy-nginx edited", self.k.out("edit", "deployment", "dpy-nginx", env=env))
        expect(self.k.out("get", "deploy", "dpy-nginx", "-o", "jsonpath={.spec.replicas}") == "2", "edit result")

    def service_type_changes(self):
        path = self.write("types.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: morph}\n"
                          "spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}\n")
        self.k.run("apply", "-f", path)
        lb = self.k.json("get", "svc", "morph")
        expect(lb["spec"]["ports"][0].get("nodePort", 0) >= 30000 and lb["status"]["loadBalancer"].get("ingress"), "LB")
        self.k.run("apply", "-f", self.write("types.yaml", open(path).read().replace("LoadBalancer", "ClusterIP")))
        cip = self.k.json("get", "svc", "morph")
        expect("nodePort" not in cip["spec"]["ports"][0] and not cip["status"]["loadBalancer"].get("ingress"),
               "ClusterIP after LoadBalancer still has node port or ingress: %s" % cip)
        self.k.run("apply", "-f", self.write("types.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: morph}\n"
                                             "spec: {type: ExternalName, externalName: example.com}\n"))
        ext = self.k.json("get", "svc", "morph")
        expect("clusterIP" not in ext["spec"], "ExternalName kept its cluster IP")
        expect_in("example.com", self.k.out("get", "svc", "morph"))

    # --- errors --------------------------------------------------------------

    def bad_manifests(self):
        path = self.write("bad.yaml", POD.replace("name: web", "name: bad").replace("containerPort: 80", "containerPort: 70000"))
        p = self.k.run("apply", "-f", path, check=False)
        expect(p.returncode != 0, "invalid pod accepted")
        expect_in('The Pod "bad" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 70000: '
                  'must be between 1 and 65535, inclusive', p.stderr)
        path = self.write("typo.yaml", POD.replace("name: web", "name: typo").replace("image:", "imagePullPolicyy: Always\n    image:"))
        p = self.k.run("apply", "-f", path, check=False)
        expect(p.returncode != 0, "unknown field accepted")
        if self.minor < 24:
            # kubectl before 1.24 sends no fieldValidation: it validates
            # client-side against the /openapi/v2 definitions.
            expect_in('ValidationError(Pod.spec.containers[0]): unknown field "imagePullPolicyy" in '
                      'io.k8s.api.core.v1.Container', p.stderr)
        else:
            expect_in('strict decoding error: unknown field "spec.containers[0].imagePullPolicyy"', p.stderr)
        deploy = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mismatch}\nspec:\n  selector: {matchLabels: {app: a}}\n"
                  "  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: x}]}\n")
        p = self.k.run("create", "-f", self.write("mismatch.yaml", deploy), check=False)
        expect_in('The Deployment "mismatch" is invalid: spec.template.metadata.labels: Invalid value: '
                  'map[string]string{"app":"b"}: `selector` does not match template `labels`', p.stderr)
        svc = "apiVersion: v1\nkind: Service\nmetadata: {name: clash}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30000}]}\n"
        p = self.k.run("apply", "-f", self.write("clash.yaml", svc), check=False)
        expect_in('spec.ports[0].nodePort: Invalid value: 30000: provided port is already allocated', p.stderr)

    # --- delete --------------------------------------------------------------

    def delete_variants(self):
        out = self.k.out("delete", "-f", os.path.join(self.work, "created.yaml"))
        expect_in('pod "created" deleted', out)
        self.k.run("label", "pod", "stdin-a", "batch=x")
        self.k.run("label", "pod", "stdin-b", "batch=x")
        out = self.k.out("delete", "pods", "-l", "batch=x")
        expect_in('pod "stdin-a" deleted', out)
        expect_in('pod "stdin-b" deleted', out)
        # Orphan: a ReplicaSet owned by a Deployment loses its owner reference.
        owner = self.k.json("get", "deploy", "dpy-nginx")
        rs = ("apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: dpy-nginx-child\n  ownerReferences:\n"
              "  - {apiVersion: apps/v1, kind: Deployment, name: dpy-nginx, uid: %s, controller: true}\n"
              "spec:\n  replicas: 0\n  selector: {matchLabels: {app: dpy-nginx}}\n"
              "  template:\n    metadata: {labels: {app: dpy-nginx}}\n    spec: {containers: [{name: c, image: x}]}\n"
              % owner["metadata"]["uid"])
        self.k.run("apply", "-f", self.write("child.yaml", rs))
        expect_in("deleted", self.k.out("delete", "deployment", "dpy-nginx", "--cascade=orphan"))
        child = self.k.json("get", "rs", "dpy-nginx-child")
        expect(not child["metadata"].get("ownerReferences"), "orphaned child keeps its owner reference")
        # Foreground with no dependents and background delete right away.
        self.k.run("create", "deployment", "fg", "--image=nginx")
        expect_in("deleted", self.k.out("delete", "deployment", "fg", "--cascade=foreground"))
        self.k.run("create", "deployment", "bg", "--image=nginx")
        expect_in("deleted", self.k.out("delete", "deployment", "bg", "--cascade=background"))
        expect("fg" not in self.k.out("get", "deploy", "-o", "name"), "foreground deletion left the deployment")
        # --all in a namespace.
        out = self.k.out("delete", "all", "--all", "-n", "demo")
        expect_in('deployment.apps "web" deleted', out)
        expect_in('service "web" deleted', out)
        expect_in("No resources found", self.k.run("get", "all", "-n", "demo").stderr)
        self.k.out("delete", "namespace", "demo")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--examples", required=True)
    args = ap.parse_args()
    if not os.access(args.kubectl, os.X_OK):
        print("skip: %s is not installed" % args.kubectl)
        return SKIP
    work = Workdir("sluice-e2e-")
    server = Server(args.sluice, os.path.join(work.path, "data"))
    os.makedirs(server.data_dir)
    try:
        server.start()
        k = Kubectl(args.kubectl, server, work.path)
        version = k.out("version", "--client", "-o", "json")
        print("kubectl %s against %s" % (json.loads(version)["clientVersion"]["gitVersion"], server.url), flush=True)
        c = Cases(k, work.path, args.examples)
        c.minor = int(re.match(r"\d+", json.loads(version)["clientVersion"]["minor"]).group(0))
        return run_named_cases(c, [
            "apply_file_then_changes_then_removed_field", "apply_directory", "apply_stdin_multi_document",
            "create_file_and_conflict", "create_deployment_and_run", "get_output_formats",
            "get_selectors_and_namespaces", "get_watch", "describe", "scale", "label_and_annotate", "expose",
            "edit", "service_type_changes", "bad_manifests", "delete_variants"], server)
    except Failure as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        server.kill()
        work.close()


if __name__ == "__main__":
    sys.exit(main())
