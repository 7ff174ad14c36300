#!/usr/bin/env python3
"""Every component's /metrics as an operator's tools see it, on one `sluice up`:

  promtool    the API server's /metrics (HTTPS, bearer token, as
              kube-apiserver's) and the agent's (plain HTTP on its metrics
              address) pass `promtool check metrics`, carry the Kubernetes
              series dashboards are built on, and the agent answers /healthz,
              /livez and /readyz;
  prometheus  a real Prometheus (Debian's, on loopback, its own config and
              data directory, stopped by PID) scrapes both while a Deployment
              scales; apiserver_request_duration_seconds and the controllers'
              work-queue series are then queried through Prometheus' HTTP API.

Needs root, bpffs (sluice up's eBPF mode), promtool and prometheus; exits 77
with the reason otherwise.
"""
import argparse
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, datapath_skip_reason, Failure, Kubectl, Workdir, expect, expect_in, run_cases  # noqa: E402
from up_e2e import Up, eventually, free_port  # noqa: E402

APISERVER_SERIES = [
    "apiserver_request_total", "apiserver_request_duration_seconds_bucket", "apiserver_current_inflight_requests",
    "apiserver_registered_watchers", "apiserver_longrunning_requests", "apiserver_storage_objects",
    "apiserver_storage_request_duration_seconds_bucket", "workqueue_depth", "workqueue_adds_total",
    "workqueue_queue_duration_seconds_bucket", "workqueue_work_duration_seconds_bucket",
    "leader_election_master_status",
]
AGENT_SERIES = [
    "kubeproxy_network_programming_duration_seconds_bucket", "sluice_network_programming_duration_seconds_bucket",
    "sluice_datapath_drops_total", "sluice_proxy_syncs_total", "kubelet_started_pods_total",
    "kubelet_started_containers_total",
]


class MetricsTest:
    def __init__(self, sluice, kubectl, examples, work):
        self.work = work
        self.examples = examples
        self.up = Up(sluice, os.path.join(work, "data"), "metrics-%d" % os.getpid())
        os.makedirs(self.up.data_dir)
        self.k = Kubectl(kubectl, self.up, work)
        self.prometheus = None

    # The API server's address, token and CA, as a scraper configures them.
    def api(self):
        with open(os.path.join(self.up.data_dir, "kubeconfig")) as f:
            server = [l.split("server:", 1)[1].strip() for l in f if l.strip().startswith("server:")][0]
        return server, os.path.join(self.up.data_dir, "token"), os.path.join(self.up.data_dir, "ca.crt")

    def get(self, url, token_file=None, ca_file=None):
        req = urllib.request.Request(url)
        if token_file:
            with open(token_file) as f:
                req.add_header("Authorization", "Bearer " + f.read().strip())
        ctx = ssl.create_default_context(cafile=ca_file) if ca_file else None
        try:
            with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except OSError as e:  # not listening yet, reset: the callers retry
            return 0, str(e)

    def promtool(self, name, text):
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        # promtool exits 1 for lint findings too; "error while linting" or a
        # parse error is what an invalid exposition prints.
        problems = (p.stdout + p.stderr).strip()
        expect(p.returncode == 0, "%s: promtool check metrics" % name, problems[-4000:])

    # --- cases ----------------------------------------------------------------

    def start_and_deploy(self):
        self.up.start()
        self.k.run("apply", "-f", self.examples)
        self.k.run("rollout", "status", "deployment/hostname", "--timeout=120s", timeout=150)

    def every_metrics_endpoint_passes_promtool(self):
        server, token, ca = self.api()
        status, text = self.get(server + "/metrics", None, ca)
        expect(status == 401, "the API server's /metrics needs a token, as kube-apiserver's", "got %d" % status)
        status, text = self.get(server + "/metrics", token, ca)
        expect(status == 200, "API server /metrics", text[:2000])
        self.promtool("API server", text)
        for s in APISERVER_SERIES:
            expect_in(s, text, "API server /metrics")
        expect_in('apiserver_request_total{code="201",component="apiserver",group="apps",resource="deployments"',
                  text, "the Deployment's create, counted by verb/resource/code")
        expect_in('workqueue_adds_total{name="deployment"}', text)
        expect_in('leader_election_master_status{name="kube-controller-manager"} 1', text)
        agent = "http://127.0.0.1:%d" % self.up.metrics_port
        status, text = self.get(agent + "/metrics")
        expect(status == 200, "agent /metrics", text[:2000])
        self.promtool("agent", text)
        for s in AGENT_SERIES:
            expect_in(s, text, "agent /metrics")
        for path in ("/healthz", "/livez", "/readyz"):
            status, body = self.get(agent + path)
            expect(status == 200 and body == "ok", "agent %s" % path, "%d %s" % (status, body))

    def prometheus_scrapes_while_a_deployment_scales(self):
        server, token, ca = self.api()
        host = urllib.parse.urlparse(server).netloc
        port = free_port()
        pdir = os.path.join(self.work, "prometheus")
        os.makedirs(os.path.join(pdir, "data"))
        config = os.path.join(pdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: apiserver
    scheme: https
    authorization: {credentials_file: %s}
    tls_config: {ca_file: %s}
    static_configs: [{targets: ["%s"]}]
  - job_name: agent
    static_configs: [{targets: ["127.0.0.1:%d"]}]
""" % (token, ca, host, self.up.metrics_port))
        log = open(os.path.join(pdir, "prometheus.log"), "wb")
        self.prometheus = subprocess.Popen(
            ["prometheus", "--config.file=" + config, "--storage.tsdb.path=" + os.path.join(pdir, "data"),
             "--web.listen-address=127.0.0.1:%d" % port, "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=log, start_new_session=True)
        base = "http://127.0.0.1:%d" % port

        def query(q):
            status, body = self.get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
            if status != 200:
                return []
            return json.loads(body)["data"]["result"]

        def targets_up():
            r = query("up")
            return len(r) == 2 and all(x["value"][1] == "1" for x in r)
        eventually(targets_up, "Prometheus scraping both targets (up == 1)", timeout=60)
        for replicas in (5, 2):
            self.k.run("scale", "deployment/hostname", "--replicas=%d" % replicas)
            self.k.run("rollout", "status", "deployment/hostname", "--timeout=120s", timeout=150)
        # The scale requests, as kube-apiserver reports them (kubectl scale
        # PATCHes the scale subresource; older kubectl PUTs it).
        eventually(lambda: [r for r in query(
            'sum(apiserver_request_duration_seconds_count{resource="deployments",subresource="scale"})')
            if float(r["value"][1]) >= 2], "both scale requests in apiserver_request_duration_seconds")
        p99 = eventually(lambda: query(
            'histogram_quantile(0.99, sum by (le) (rate(apiserver_request_duration_seconds_bucket[1m])))'),
            "a request latency quantile")
        expect(p99[0]["value"][1] != "NaN", "a p99 latency", json.dumps(p99))
        adds = eventually(lambda: [r for r in query('workqueue_adds_total{name="deployment"}')
                                   if float(r["value"][1]) >= 3], "the deployment controller's queue adds")
        expect(adds[0]["metric"].get("job") == "apiserver", "work-queue series come from the server's /metrics",
               json.dumps(adds))
        eventually(lambda: query('workqueue_depth{name="replicaset"}'), "the replicaset queue's depth")
        eventually(lambda: query("kubeproxy_network_programming_duration_seconds_count > 0"),
                   "the agent's programming latency through Prometheus")

    def stop_prometheus(self):
        if self.prometheus and self.prometheus.poll() is None:
            self.prometheus.send_signal(signal.SIGTERM)
            try:
                self.prometheus.wait(20)
            except subprocess.TimeoutExpired:
                self.prometheus.kill()
                self.prometheus.wait()


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
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            print("skip: %s not installed (Debian package prometheus)" % tool)
            return SKIP
    if not os.access(a.kubectl, os.X_OK):
        print("skip: %s not installed" % a.kubectl)
        return SKIP
    work = Workdir("sluice-metrics-e2e-")
    t = MetricsTest(a.sluice, a.kubectl, a.examples, work.path)
    cases = [
        ("start_and_deploy", t.start_and_deploy),
        ("every_metrics_endpoint_passes_promtool", t.every_metrics_endpoint_passes_promtool),
        ("prometheus_scrapes_while_a_deployment_scales", t.prometheus_scrapes_while_a_deployment_scales),
    ]
    try:
        failures = run_cases(cases)
        if failures:
            print("sluice up log (tail):\n" + t.up.read_log())
    finally:
        t.stop_prometheus()
        t.up.cleanup()
        work.close()
    print("%d of %d cases failed" % (failures, len(cases)) if failures else "all cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
