#!/bin/sh
# `sluice up --mode=ipvs` end to end inside a vm-suite kernel (tests/vm/vm_run.py): the guest has
# no network device, so the node's address lives on a dummy link made here (the guest is thrown
# away after the run). Arguments: what up_e2e.py takes.
set -e
ip link add sluice-node0 type dummy
ip addr add 192.168.50.1/24 dev sluice-node0
ip link set sluice-node0 up
sysctl -qw net.ipv4.ip_forward=1
exec /usr/bin/python3 "$(dirname "$0")/up_e2e.py" --mode ipvs --node-ip 192.168.50.1 "$@"
