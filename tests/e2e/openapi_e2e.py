#!/usr/bin/env python3
"""e2e: what kubectl does with sluice's OpenAPI documents, with one real
kubectl binary (run once per installed version): `kubectl explain` prints the
generated schemas (v2 for kubectl before 1.27, v3 after); field validation is
client-side against the v2 definitions for kubectl before 1.24 and
server-side (fieldValidation) after, with the same outcome for the user; and
kubectl apply's strategic merge patches, now computed from the schemas'
patch extensions, still merge lists by their keys.

Usage: openapi_e2e.py --sluice PATH --kubectl PATH
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, Failure, Kubectl, Server, Workdir, expect, expect_in, run_named_cases  # noqa: E402

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: two
spec:
  replicas: 1
  selector: {matchLabels: {app: two}}
  template:
    metadata: {labels: {app: two}}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}]
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}, {containerPort: 443}]
        env: [{name: A, value: "1"}]
      - name: side
        image: busybox
        ports: [{containerPort: 9000}]
"""

TYPO_POD = """apiVersion: v1
kind: Pod
metadata: {name: typo}
spec:
  containers:
  - name: c
    image: nginx
    imagePullPolicyy: Always
"""

NAMELESS_POD = """apiVersion: v1
kind: Pod
metadata: {name: nameless}
spec:
  containers:
  - image: nginx
"""


def request_bodies(verbose_stderr):
    """The JSON request bodies in kubectl -v=9 output (apply sends one: its
    PATCH; reads have none)."""
    bodies = []
    for line in verbose_stderr.splitlines():
        m = re.search(r"Request Body: (\{.*\})\s*$", line)  # kubectl before 1.30
        if m:
            bodies.append(json.loads(m.group(1)))
            continue
        m = re.search(r'"Request Body" body=(".*")\s*$', line)  # structured logging
        if m and json.loads(m.group(1)):
            bodies.append(json.loads(json.loads(m.group(1))))
    return bodies


class Cases:
    def __init__(self, k, work, minor):
        self.k = k
        self.work = work
        self.minor = minor

    def write(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # --- explain -------------------------------------------------------------

    def explain_container_ports(self):
        out = self.k.out("explain", "pods.spec.containers.ports")
        expect(re.search(r"KIND:\s+Pod", out) and re.search(r"VERSION:\s+v1", out), "kind and version", out)
        expect(re.search(r"containerPort\s+<integer>\s+-required-", out), "containerPort required integer", out)
        expect(re.search(r"protocol\s+<string>", out), "protocol string", out)
        expect(re.search(r"hostPort\s+<integer>", out) and re.search(r"\n\s*name\s+<string>", out), "fields", out)
        expect_in("Number of port to expose on the pod's IP address", out)

    def explain_deployment_strategy(self):
        out = self.k.out("explain", "deployment.spec.strategy")
        expect(re.search(r"(GROUP:\s+apps|VERSION:\s+apps/v1)", out), "apps group", out)
        expect(re.search(r"KIND:\s+Deployment", out), "kind", out)
        # v2 explain calls a nested object "Object"; v3 names its type.
        expect(re.search(r"rollingUpdate\s+<(Object|RollingUpdateDeployment)>", out), "rollingUpdate", out)
        expect(re.search(r"\btype\s+<string>", out), "type", out)
        expect_in("The deployment strategy to use to replace existing pods with new ones", out)

    def explain_service_spec_recursive(self):
        out = self.k.out("explain", "svc.spec", "--recursive")
        for field, typ in [("ports", r"\[\]Object|\[\]ServicePort"), ("port", "integer"),
                           ("targetPort", "string"), ("nodePort", "integer"), ("clusterIP", "string"),
                           ("selector", r"map\[string\]string"), ("sessionAffinityConfig", r"Object|SessionAffinityConfig"),
                           ("timeoutSeconds", "integer"), ("externalTrafficPolicy", "string")]:
            expect(re.search(r"\n\s+%s\s+<(%s)>" % (field, typ), out), "%s <%s>" % (field, typ), out)

    def explain_top_level_and_unknown_field(self):
        out = self.k.out("explain", "pods")
        expect_in("Pod is a collection of containers", out)
        expect(re.search(r"spec\s+<(Object|PodSpec)>", out), "spec field", out)
        p = self.k.run("explain", "pods.spec.nosuchfield", check=False)
        expect(p.returncode != 0, "explain of an unknown field succeeded", p.stdout)
        expect_in('field "nosuchfield" does not exist', p.stderr)

    # --- validation ----------------------------------------------------------

    def unknown_field_rejected_with_its_path(self):
        path = self.write("typo.yaml", TYPO_POD)
        modes = ["--validate=true"] + (["--validate=strict"] if self.minor >= 27 else [])
        for verb in ["create", "apply"]:
            for mode in modes:
                p = self.k.run(verb, mode, "-f", path, check=False)
                expect(p.returncode != 0, "%s %s accepted an unknown field" % (verb, mode), p.stdout)
                if self.minor < 24:  # client-side, against the v2 definitions
                    expect_in('ValidationError(Pod.spec.containers[0]): unknown field "imagePullPolicyy" in '
                              'io.k8s.api.core.v1.Container', p.stderr)
                else:
                    expect_in('strict decoding error: unknown field "spec.containers[0].imagePullPolicyy"', p.stderr)
        p = self.k.run("get", "pod", "typo", check=False)
        expect(p.returncode != 0, "a rejected pod exists")

    def missing_required_field_rejected(self):
        path = self.write("nameless.yaml", NAMELESS_POD)
        p = self.k.run("create", "-f", path, check=False)
        expect(p.returncode != 0, "a container without a name was accepted", p.stdout)
        if self.minor < 24:
            expect_in('missing required field "name" in io.k8s.api.core.v1.Container', p.stderr)
        else:
            expect_in("spec.containers[0].name: Required value", p.stderr)

    def validate_false_leaves_it_to_the_server(self):
        # Without validation kubectl sends no fieldValidation, and the
        # server drops the unknown field as Kubernetes does (with a warning).
        path = self.write("typo.yaml", TYPO_POD)
        p = self.k.run("create", "--validate=false", "-f", path, check=False)
        expect(p.returncode == 0, "create --validate=false failed", p.stderr)
        pod = self.k.json("get", "pod", "typo")
        expect("imagePullPolicyy" not in json.dumps(pod), "unknown field stored")
        self.k.run("delete", "pod", "typo", "--wait=false")

    # --- apply ---------------------------------------------------------------

    def apply_patches_merge_lists_by_key(self):
        path = self.write("two.yaml", DEPLOYMENT)
        expect_in("deployment.apps/two created", self.k.out("apply", "-f", path))
        p = self.k.run("apply", "-f", path)
        expect_in("deployment.apps/two unchanged", p.stdout)
        expect("warning" not in p.stderr.lower(), "re-apply warned", p.stderr)
        changed = (DEPLOYMENT.replace("nginx:1.25", "nginx:1.26")
                   .replace('env: [{name: A, value: "1"}]', 'env: [{name: A, value: "1"}, {name: B, value: "2"}]')
                   .replace("{containerPort: 80}, {containerPort: 443}", "{containerPort: 80}"))
        self.write("two.yaml", changed)
        p = self.k.run("apply", "-v=9", "-f", path)
        expect("error calculating patch" not in p.stderr, "kubectl fell back from the OpenAPI patch", p.stderr[-3000:])
        bodies = request_bodies(p.stderr)
        expect(len(bodies) == 1, "one PATCH expected, got %d" % len(bodies), p.stderr[-3000:])
        spec = bodies[0]["spec"]["template"]["spec"]
        # Lists merged by key: only the changed container, by name, with its
        # element order; its removed port deleted by containerPort.
        expect([c["name"] for c in spec["$setElementOrder/containers"]] == ["web", "side"], "element order", spec)
        expect(len(spec["containers"]) == 1 and spec["containers"][0]["name"] == "web", "containers patch", spec)
        web = spec["containers"][0]
        expect(web.get("image") == "nginx:1.26", "image in patch", web)
        expect({"$patch": "delete", "containerPort": 443} in web.get("ports", []), "port deleted by key", web)
        expect({"name": "B", "value": "2"} in web.get("env", []), "env added by name", web)
        expect("affinity" not in spec, "unchanged affinity in patch", spec)
        d = self.k.json("get", "deploy", "two")
        cs = d["spec"]["template"]["spec"]["containers"]
        expect([c["name"] for c in cs] == ["web", "side"], "containers after apply", cs)
        expect([pt["containerPort"] for pt in cs[0]["ports"]] == [80], "web ports", cs[0])
        expect([pt["containerPort"] for pt in cs[1]["ports"]] == [9000], "side ports", cs[1])
        expect([e["name"] for e in cs[0]["env"]] == ["A", "B"], "env", cs[0])
        expect(cs[0]["ports"][0].get("protocol") == "TCP", "server default kept", cs[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--kubectl", required=True)
    args = ap.parse_args()
    if not os.access(args.kubectl, os.X_OK):
        print("skip: %s is not installed" % args.kubectl)
        return SKIP
    work = Workdir("sluice-openapi-e2e-")
    server = Server(args.sluice, os.path.join(work.path, "data"))
    os.makedirs(server.data_dir)
    try:
        server.start()
        k = Kubectl(args.kubectl, server, work.path)
        version = json.loads(k.out("version", "--client", "-o", "json"))["clientVersion"]
        minor = int(re.match(r"\d+", version["minor"]).group(0))
        print("kubectl %s against %s" % (version["gitVersion"], server.url), flush=True)
        c = Cases(k, work.path, minor)
        return run_named_cases(c, [
            "explain_container_ports", "explain_deployment_strategy", "explain_service_spec_recursive",
            "explain_top_level_and_unknown_field", "unknown_field_rejected_with_its_path",
            "missing_required_field_rejected", "validate_false_leaves_it_to_the_server",
            "apply_patches_merge_lists_by_key"], server)
    except Failure as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        server.kill()
        work.close()


if __name__ == "__main__":
    sys.exit(main())
