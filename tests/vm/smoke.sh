#!/bin/sh
# The vm suite's smoke test, run inside the guest by vm_run.py: a dummy link (absent on the host
# kernel), a host-built program resolving the IPVS generic-netlink family, ipvsadm programming a
# virtual server, and the mounts later eBPF tests rely on. $1: the genl_family binary.
set -eu
if [ "${SLUICE_IN_VM:-}" != 1 ]; then
  echo "SKIP: smoke.sh runs inside the VM (tests/vm/vm_run.py)"; exit 77
fi
command -v ipvsadm >/dev/null || { echo "SKIP: ipvsadm not installed (scripts/setup.sh)"; exit 77; }
ip link add sluice-smoke type dummy
ip link del sluice-smoke
"$1" IPVS
ipvsadm -A -t 10.96.0.1:443 -s rr
ipvsadm -a -t 10.96.0.1:443 -r 10.244.0.5:6443 -m -w 2
ipvsadm -Ln | grep -q '10.244.0.5:6443 *Masq *2'
ipvsadm -C
grep -q ' /sys/fs/bpf bpf ' /proc/mounts
grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts
echo "smoke: ok on $(uname -r)"
