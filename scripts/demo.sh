#!/usr/bin/env bash
# The main job: install, build, start a single-node cluster (`sluice up`:
# API server with the embedded store, controllers, and the node agent in
# ebpf mode with this host as the node), deploy examples/hostname/ (three
# echo pods behind a ClusterIP, a NodePort 30000 and a LoadBalancer Service),
# and show what a client sees through each Service. The cluster keeps
# running afterwards; the last lines say how to use and stop it.
#
# Only what the demo runs is installed and built (scripts/setup.sh --demo:
# the sluice, sluice-cni and sluice-ipam executables and the BPF objects, in
# build-demo/); the test suites and benchmarks are built by scripts/test.sh,
# in build/. Each step
# says what it does, and the last line how long the first answer took.
#
# Environment: SLUICE_DATA_DIR (default /var/lib/sluice), SLUICE_DEMO_REQUESTS
# (requests per Service, default 12).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
began=$(date +%s)
step() { echo "demo: [$(($(date +%s) - began)) s] $*"; }

step "installing the packages the demo needs and building sluice (scripts/setup.sh --demo)"
./scripts/setup.sh --demo

data=${SLUICE_DATA_DIR:-/var/lib/sluice}
export SLUICE_DATA_DIR=$data
sluice=$root/build-demo/control/cmd/sluice
pidfile=/run/sluice/up.pid
log=/var/log/sluice-up.log
requests=${SLUICE_DEMO_REQUESTS:-12}
mkdir -p /run/sluice "$data"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if running; then
  echo "demo: sluice up is already running (pid $(cat "$pidfile")); reusing it"
else
  step "starting sluice up (log: $log)"
  # setsid: the cluster outlives this script and its terminal.
  setsid "$sluice" up --data-dir "$data" >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 300); do
    grep -q "sluice up: ready" "$log" 2>/dev/null && break
    if ! running; then
      echo "demo: sluice up exited; its log:" >&2
      tail -30 "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
  grep -q "sluice up: ready" "$log" || { echo "demo: sluice up did not become ready; see $log" >&2; exit 1; }
fi

k() { "$sluice" kubectl "$@"; }

step "kubectl apply -f examples/hostname/"
k apply -f examples/hostname/
k rollout status deployment/hostname --timeout=180s
k get pods -o wide -l app=hostname
k get services

jp() { k get "$@"; }
cluster_ip=$(jp service hostname -o 'jsonpath={.spec.clusterIP}')
node_ip=$(jp nodes -o 'jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}')
lb_ip=""
for _ in $(seq 1 50); do
  lb_ip=$(jp service hostname-lb -o 'jsonpath={.status.loadBalancer.ingress[0].ip}')
  [ -n "$lb_ip" ] && break
  sleep 0.2
done

# A Service is programmed shortly after its endpoints are: retry the first
# request for a few seconds, then show every answer's hostname.
probe() {
  local name=$1 url=$2
  for _ in $(seq 1 50); do
    curl -s -m 2 "$url" >/dev/null && break
    sleep 0.2
  done
  first_answer=${first_answer:-$(($(date +%s) - began))}
  echo
  echo "== $name: $requests requests to $url"
  local seen=()
  for _ in $(seq 1 "$requests"); do
    local host
    host=$(curl -s -m 2 "$url" | sed -n 's/^hostname: //p')
    seen+=("${host:-<no answer>}")
  done
  printf '%s\n' "${seen[@]}" | sort | uniq -c | sed 's/^/   /'
  local distinct
  distinct=$(printf '%s\n' "${seen[@]}" | grep -v '^<no answer>$' | sort -u | wc -l)
  echo "   -> $distinct different pods answered"
}

step "sending requests through each Service"
probe "ClusterIP" "http://$cluster_ip/"
probe "NodePort 30000" "http://$node_ip:30000/"
if [ -n "$lb_ip" ]; then
  probe "LoadBalancer" "http://$lb_ip/"
else
  echo "demo: the LoadBalancer Service got no ingress IP" >&2
fi

cat <<MSG

The cluster is still running (sluice up, pid $(cat "$pidfile"), log $log).
  kubectl:   $sluice kubectl get pods -o wide
             or: KUBECONFIG=$data/kubeconfig kubectl get pods
  datapath:  $sluice debug lb list
  metrics:   curl -s http://127.0.0.1:10249/metrics | grep network_programming     (the agent)
             $sluice kubectl get --raw /metrics | grep apiserver_request_total   (the API server)
  stop it:   kill \$(cat $pidfile)   (pods and datapath stay for the next start to adopt)
  clean up:  $sluice up --data-dir $data --cleanup   (after stopping: removes the pods and the datapath)
  all tests: ./scripts/test.sh   (builds the test suites and benchmarks too)
MSG
echo "demo: first answered request ${first_answer} s after the start of ./scripts/demo.sh"
