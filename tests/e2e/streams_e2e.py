#!/usr/bin/env python3
"""kubectl logs, exec and port-forward against `sluice up`, with several real
kubectl versions: each request goes kubectl -> API server (pods/log,
pods/exec, pods/portforward) -> the agent's streaming server -> the pod's
processes and network namespace, and the test checks what kubectl printed,
its exit code, and what a client saw through the forwarded port.

Protocols covered by version (kubectl picks them itself):
  exec          WebSocket v5.channel.k8s.io (kubectl >= 1.30); SPDY v4 before
  port-forward  SPDY/3.1 (kubectl <= 1.30); SPDY tunnelled in WebSocket (>= 1.31)

One `sluice up` (own data dir, API/streaming ports, pin dir, debug socket),
stopped by PID and cleaned up even on failure. Needs root, bpffs, cgroup2;
exits 77 with the reason otherwise.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, datapath_skip_reason, Failure, Kubectl, Workdir, expect, expect_in, run_cases  # noqa: E402
from up_e2e import Up, eventually  # noqa: E402

# The "bulk" container answers each connection, once the client half-closed
# it, with the length and SHA-256 of everything it received (perl: core
# modules only; one connection at a time is all the test needs).
BULK = ("$s = IO::Socket::INET->new(LocalPort => 9000, Listen => 16, ReuseAddr => 1) or die $!; "
        "while ($c = $s->accept) { $d = Digest::SHA->new(256); $n = 0; "
        "while (($r = sysread($c, $b, 65536)) > 0) { $d->add($b); $n += $r } "
        "print $c \"$n \" . $d->hexdigest . \"\\n\"; close $c }")


def pod_manifest(stop_file):
    sh = ("echo first-line; echo second-line; echo to-stderr >&2; n=0; while [ ! -f %s ]; do n=$((n+1)); "
          "echo tick $n; sleep 0.2; done; rm -f %s; echo bye; exit 3" % (stop_file, stop_file))
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "streams", "labels": {"app": "streams"}},
        "spec": {"containers": [
            {"name": "web", "image": "sluice/echo:1", "ports": [{"containerPort": 8080}]},
            {"name": "sh", "image": "busybox", "command": ["sh", "-c", sh]},
            {"name": "bulk", "image": "perl", "command": ["perl", "-MIO::Socket::INET", "-MDigest::SHA", "-e", BULK], "ports": [{"containerPort": 9000}]},
        ]}})


class StreamsUp(Up):
    def args(self):
        return super().args() + ["--streaming-port", "0"]


def version_of(kubectl):
    m = re.search(r"kubectl\.1\.(\d+)$", kubectl)
    if m:
        return int(m.group(1))
    out = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True).stdout
    return int(json.loads(out)["clientVersion"]["minor"].rstrip("+"))


class StreamsTest:
    def __init__(self, sluice, kubectls, work):
        self.work = work
        self.tag = str(os.getpid())
        self.stop_file = "/tmp/sluice-e2e-streams-%s.stop" % self.tag
        self.up = StreamsUp(sluice, os.path.join(work, "data"), "streams-" + self.tag)
        os.makedirs(self.up.data_dir)
        self.kubectls = [(version_of(k), Kubectl(k, self.up, work)) for k in kubectls]
        self.k = self.kubectls[-1][1]

    def pod(self):
        return self.k.json("get", "pod", "streams")

    def restarts(self, container):
        for s in self.pod()["status"].get("containerStatuses", []):
            if s["name"] == container:
                return s.get("restartCount", 0)
        return -1

    # --- cases ----------------------------------------------------------------

    def start_pod(self):
        self.up.start()
        self.k.run("apply", "-f", "-", stdin=pod_manifest(self.stop_file))
        self.k.run("wait", "--for=condition=Ready", "pod/streams", "--timeout=90s", timeout=120)

    def logs(self):
        for v, k in self.kubectls:
            out = eventually(lambda: k.run("logs", "streams", "-c", "sh", check=False).stdout, "logs 1.%d" % v)
            lines = out.splitlines()
            expect(lines[:2] == ["first-line", "second-line"], "kubectl 1.%d logs: the container's output" % v, out)
            expect_in("to-stderr", out, "stderr is in the log too")
            tail = k.out("logs", "streams", "-c", "sh", "--tail=1").splitlines()
            expect(len(tail) == 1 and tail[0].startswith("tick"), "--tail=1 is the last line", str(tail))
            limited = k.out("logs", "streams", "-c", "sh", "--limit-bytes=5")
            expect(limited == "first", "--limit-bytes=5", repr(limited))
        bad = self.k.run("logs", "streams", "-c", "nope", check=False)
        expect(bad.returncode != 0, "unknown container is an error", bad.stdout)
        expect_in("container nope is not valid for pod streams", bad.stderr)

    def logs_follow(self):
        for v, k in self.kubectls:
            proc = subprocess.Popen([k.binary, "logs", "-f", "streams", "-c", "sh", "--tail=1"], env=k.env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                seen = []
                deadline = time.time() + 20
                while time.time() < deadline and len(seen) < 4:
                    line = proc.stdout.readline()
                    if not line:
                        break
                    seen.append(line.strip())
                expect(len(seen) >= 4, "kubectl 1.%d logs -f streams new lines as they are written" % v,
                       str(seen) + proc.stderr.read() if proc.poll() is not None else str(seen))
                ticks = [int(s.split()[1]) for s in seen if s.startswith("tick ")]
                expect(ticks == sorted(ticks) and len(set(ticks)) == len(ticks), "in order, no repeats", str(seen))
            finally:
                proc.kill()
                proc.wait()

    def exec_basics(self):
        for v, k in self.kubectls:
            out = k.out("exec", "streams", "-c", "sh", "--", "hostname").strip()
            expect(out == "streams", "kubectl 1.%d exec: hostname is the pod's name" % v, out)
            init = k.out("exec", "streams", "-c", "sh", "--", "cat", "/proc/1/cmdline").replace("\0", " ")
            expect_in("first-line", init, "exec sees the container's PID namespace (PID 1 is its command)")
            p = k.run("exec", "streams", "-c", "sh", "--", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
            expect(p.returncode == 7, "kubectl 1.%d exec exit code passes through" % v, "%d %s" % (p.returncode, p.stderr))
            expect(p.stdout == "out\n", "stdout", repr(p.stdout))
            expect_in("err", p.stderr, "stderr")
            p = k.run("exec", "-i", "streams", "-c", "sh", "--", "sh", "-c", "tr a-z A-Z; echo done",
                      stdin="hello from stdin\n", check=False)
            expect(p.returncode == 0 and p.stdout == "HELLO FROM STDIN\ndone\n",
                   "kubectl 1.%d exec -i: stdin reaches the process and its EOF ends it" % v, repr(p.stdout) + p.stderr)
            p = k.run("exec", "streams", "-c", "sh", "--", "no-such-binary", check=False)
            expect(p.returncode != 0, "a missing binary fails the exec", p.stdout)
            expect_in("no-such-binary", p.stderr)
            cg = k.out("exec", "streams", "-c", "sh", "--", "sh", "-c", "cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup")
            mine, container = cg.split("---\n")
            mem = lambda text: [l for l in text.splitlines() if ":memory:" in l or l.startswith("0::")]  # noqa: E731
            expect(mem(mine) and mem(mine) == mem(container), "kubectl 1.%d exec runs in the container's cgroup" % v, cg)
            ip = k.out("exec", "streams", "-c", "sh", "--", "sh", "-c", "cat /proc/net/fib_trie | grep -c 10.244 || true")
            expect(int(ip.strip() or "0") > 0, "exec runs in the pod's network namespace", ip)

    def exec_tty(self):
        import pty
        v, k = self.kubectls[-1]
        pid, fd = pty.fork()
        if pid == 0:
            os.environ.update(k.env)
            os.execv(k.binary, [k.binary, "exec", "-it", "streams", "-c", "sh", "--", "sh"])
        out = b""
        try:
            os.write(fd, b"tty; echo marker-$((6*7)); exit 5\n")
            deadline = time.time() + 20
            while time.time() < deadline:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            _, status = os.waitpid(pid, 0)
        text = out.decode(errors="replace")
        expect_in("marker-42", text, "kubectl 1.%d exec -it: the shell ran the typed line" % v)
        expect_in("/dev/pts/", text, "a terminal inside the container")
        expect(os.WEXITSTATUS(status) == 5, "exit code of the interactive shell", str(os.WEXITSTATUS(status)))

    def port_forward(self):
        for v, k in self.kubectls:
            proc = subprocess.Popen([k.binary, "port-forward", "pod/streams", ":8080"], env=k.env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                line = proc.stdout.readline()
                m = re.search(r"127\.0\.0\.1:(\d+) -> 8080", line)
                expect(m, "kubectl 1.%d port-forward prints its local port" % v, line + (proc.stderr.read() if proc.poll() is not None else ""))
                url = "http://127.0.0.1:%s/" % m.group(1)
                for i in range(3):  # one connection each, over one session
                    with urllib.request.urlopen(url, timeout=10) as r:
                        body = r.read().decode()
                    expect_in("hostname: streams", body, "kubectl 1.%d port-forward request %d" % (v, i))
            finally:
                proc.terminate()
                proc.wait()

    def port_forward_bulk(self):
        import hashlib
        import socket
        for v, k in self.kubectls:
            proc = subprocess.Popen([k.binary, "port-forward", "pod/streams", ":9000"], env=k.env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                line = proc.stdout.readline()
                m = re.search(r"127\.0\.0\.1:(\d+) -> 9000", line)
                expect(m, "kubectl 1.%d port-forward to 9000" % v, line)
                payload = os.urandom(4 * 1024 * 1024)
                c = socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=30)
                c.sendall(payload)
                c.shutdown(socket.SHUT_WR)  # the half-close must reach the pod
                answer = b""
                while True:
                    b = c.recv(4096)
                    if not b:
                        break
                    answer += b
                c.close()
                want = "%d %s" % (len(payload), hashlib.sha256(payload).hexdigest())
                expect(answer.decode().strip() == want, "kubectl 1.%d: 4 MiB through the forward intact, then the "
                       "pod's answer after the half-close" % v, answer[:200])
            finally:
                proc.terminate()
                proc.wait()

    def port_forward_refused(self):
        v, k = self.kubectls[-1]
        proc = subprocess.Popen([k.binary, "port-forward", "pod/streams", ":9"], env=k.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            m = re.search(r"127\.0\.0\.1:(\d+) -> 9", line)
            expect(m, "port-forward to a closed port starts", line)
            try:
                urllib.request.urlopen("http://127.0.0.1:%s/" % m.group(1), timeout=5).read()
            except OSError:
                pass
        finally:
            time.sleep(0.5)
            proc.terminate()
            _, err = proc.communicate(timeout=10)
        expect_in("9", err)
        expect("connect" in err or "refused" in err, "kubectl reports the pod port's refusal", err)

    def previous_logs(self):
        before = self.restarts("sh")
        k = self.k
        k.run("exec", "streams", "-c", "sh", "--", "touch", self.stop_file)
        eventually(lambda: self.restarts("sh") > before, "the sh container exits and restarts", timeout=90)
        out = eventually(lambda: k.run("logs", "streams", "-c", "sh", "--previous", check=False).stdout,
                         "logs --previous")
        expect(out.rstrip().endswith("bye"), "--previous is the ended instance's log", out[-200:])
        cur = k.out("logs", "streams", "-c", "sh")
        expect(not cur.rstrip().endswith("bye"), "the current log is the new instance's", cur[-200:])
        st = [s for s in self.pod()["status"]["containerStatuses"] if s["name"] == "sh"][0]
        expect(st["lastState"]["terminated"]["exitCode"] == 3, "last state exit code 3", json.dumps(st))

    def errors(self):
        k = self.k
        p = k.run("exec", "no-such-pod", "--", "true", check=False)
        expect(p.returncode != 0 and "not found" in p.stderr, "exec into a missing pod", p.stderr)
        p = k.run("logs", "no-such-pod", check=False)
        expect(p.returncode != 0 and "not found" in p.stderr, "logs of a missing pod", p.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--kubectl", action="append", required=True)
    a = ap.parse_args()
    why = datapath_skip_reason()
    if why:
        print("skip: " + why)
        return SKIP
    kubectls = [k for k in a.kubectl if os.access(k, os.X_OK)]
    if not kubectls:
        print("skip: none of %s installed" % a.kubectl)
        return SKIP
    work = Workdir("sluice-streams-e2e-")
    t = StreamsTest(a.sluice, kubectls, work.path)
    names = ["start_pod", "logs", "logs_follow", "exec_basics", "exec_tty", "port_forward", "port_forward_bulk",
             "port_forward_refused",
             "previous_logs", "errors"]
    try:
        failures = run_cases([(n, getattr(t, n)) for n in names])
        if failures:
            print("sluice up log (tail):\n" + t.up.read_log())
    finally:
        t.up.cleanup()
        if os.path.exists(t.stop_file):
            os.unlink(t.stop_file)
        work.close()
    print("%d of %d cases failed" % (failures, len(names)) if failures else "all cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
