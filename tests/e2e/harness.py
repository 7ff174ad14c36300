"""Test harness for the e2e suite: a real `sluice server` process on a free
loopback port with its own data directory, and real kubectl against it.

The server is always stopped by its PID when the test ends, also on failure
(SIGTERM, then SIGKILL). A test that cannot run here (no kubectl binary)
exits 77, meson's skip code.
"""
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import http.client

SKIP = 77


def datapath_skip_reason():
    """Why a test that runs a node (network namespaces, BPF) cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, BPF)"
    if not os.path.isdir("/sys/fs/bpf"):
        return "no bpffs at /sys/fs/bpf"
    return None


class Failure(Exception):
    pass


class Server:
    """One `sluice server` process."""

    def __init__(self, sluice, data_dir, extra_args=(), nofile=None):
        self.sluice = sluice
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.nofile = nofile  # (soft, hard) RLIMIT_NOFILE for the server, else inherited
        self.proc = None
        self.url = None

    def start(self, timeout=20):
        kubeconfig = os.path.join(self.data_dir, "kubeconfig")
        if os.path.exists(kubeconfig):
            os.unlink(kubeconfig)  # a restart writes a new one; wait for it
        self.log = open(os.path.join(self.data_dir, "server.log"), "ab")
        limits = None
        if self.nofile is not None:
            import resource

            def limits(nofile=self.nofile):
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
        self.proc = subprocess.Popen(
            [self.sluice, "server", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0"] + self.extra_args,
            stdout=self.log, stderr=self.log, preexec_fn=limits)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failure("sluice server exited with %s; log:\n%s" % (self.proc.returncode, self.read_log()))
            if os.path.exists(kubeconfig):
                with open(kubeconfig) as f:
                    for line in f:
                        if line.strip().startswith("server:"):
                            self.url = line.split("server:", 1)[1].strip()
                if self.url:
                    break
            time.sleep(0.05)
        else:
            raise Failure("sluice server did not write its kubeconfig in %ss" % timeout)
        self.port = int(self.url.rsplit(":", 1)[1])
        with open(os.path.join(self.data_dir, "token")) as f:
            self.token = f.read().strip()
        with open(os.path.join(self.data_dir, "ca.crt")) as f:
            self.ca = f.read()
        # Ready once a request is answered.
        while time.time() < deadline:
            try:
                if self.request("GET", "/version")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise Failure("sluice server is not answering")

    def read_log(self):
        try:
            with open(os.path.join(self.data_dir, "server.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def kill(self, sig=signal.SIGTERM, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def connection(self):
        ctx = ssl.create_default_context(cadata=self.ca)
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)

    def request(self, method, path, body=None, conn=None):
        own = conn is None
        conn = conn or self.connection()
        headers = {"Authorization": "Bearer " + self.token if hasattr(self, "token") else ""}
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if own:
            conn.close()
        return resp.status, data


class Kubectl:
    """Runs one kubectl binary with the server's kubeconfig and a private
    cache and home directory."""

    def __init__(self, binary, server, work):
        self.binary = binary
        self.server = server
        self.env = dict(os.environ)
        self.env["KUBECONFIG"] = os.path.join(server.data_dir, "kubeconfig")
        self.env["KUBECACHEDIR"] = os.path.join(work, "kube-cache")
        self.env["HOME"] = work
        self.env.pop("KUBECTL_EXTERNAL_DIFF", None)

    def run(self, *args, stdin=None, check=True, env=None, timeout=60):
        e = dict(self.env)
        if env:
            e.update(env)
        p = subprocess.run([self.binary] + list(args), input=stdin, capture_output=True, text=True, env=e,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise Failure("kubectl %s failed (%d):\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def out(self, *args, **kw):
        return self.run(*args, **kw).stdout

    def json(self, *args):
        return json.loads(self.out(*args, "-o", "json"))


def expect(cond, what, detail=""):
    if not cond:
        raise Failure(what + ("\n" + detail if detail else ""))


def expect_in(needle, haystack, what=""):
    if needle not in haystack:
        raise Failure("%sexpected %r in:\n%s" % (what + ": " if what else "", needle, haystack))


def eventually(fn, what, timeout=60, interval=0.25):
    """fn()'s first truthy result within timeout seconds, else Failure."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise Failure("%s: not within %ss (last: %r)" % (what, timeout, last))


def run_cases(cases):
    """Runs (name, fn) pairs in order; prints one line per case; returns the
    number of failures. Later cases may rely on earlier ones' objects."""
    failures = 0
    for name, fn in cases:
        start = time.time()
        try:
            fn()
            print("ok   %-48s %.2fs" % (name, time.time() - start), flush=True)
        except Exception as e:  # a failed case must not stop the others
            failures += 1
            print("FAIL %-48s %.2fs\n%s" % (name, time.time() - start, e), flush=True)
    return failures


def run_named_cases(obj, names, server):
    """Runs obj's methods `names` in order (run_cases); prints the server's
    log tail on failure and a summary line; returns the exit code."""
    failures = run_cases([(name, getattr(obj, name)) for name in names])
    if failures:
        print("server log (tail):\n" + server.read_log())
    print("%d of %d cases failed" % (failures, len(names)))
    return 1 if failures else 0


class Workdir:
    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)
