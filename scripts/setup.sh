#!/usr/bin/env bash
# Installs every Debian 12 package sluice builds and tests with, then configures
# and builds ./build. Idempotent and non-interactive: apt-get runs (update once,
# then install) only when a package is missing. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # toolchain and build
  meson ninja-build pkg-config g++ clang llvm libclang-rt-14-dev
  # libraries (each added when the code first uses it)
  libxxhash-dev libsqlite3-dev libgtest-dev libgmock-dev libbenchmark-dev
  # BPF toolchain (bpf/ arrives with the eBPF issue; tests probe the kernel now)
  libbpf-dev bpftool
  # tools the tests and the lab drive
  iproute2 python3
  # cni/: netlink and JSON; the reference plugins (host-local, portmap) its
  # tests run against, and iptables, which portmap drives
  libnl-3-dev libnl-route-3-dev nlohmann-json3-dev containernetworking-plugins iptables
  # control/: object model (protobuf), API server (Boost.Beast, OpenSSL), CLI;
  # yaml-cpp reads example manifests in tests
  protobuf-compiler libprotobuf-dev libboost1.74-dev libssl-dev libcli11-dev libyaml-cpp-dev
  # control/agent/: the node-local gRPC API (`sluice debug`)
  libgrpc++-dev protobuf-compiler-grpc
  # control/agent/streaming: SPDY header compression (kubectl port-forward)
  zlib1g-dev
  # the demo and e2e tests are clients of the Services
  curl
  # bench/lab (sluice-bench): the kube-proxy baselines it programs, a load
  # generator, and the plots
  nftables wrk gnuplot-nox
  # vm suite (tests/vm/vm_run.py): Debian kernels with IP_VS under qemu TCG, a busybox
  # initramfs, kmod's modinfo for module order and zstd for 6.12's kernel image
  qemu-system-x86 busybox-static kmod zstd
  # ipvs/: the IPVS generic-netlink family through libnl-genl; ipvsadm cross-checks it; the
  # mode's nftables table through libnftables; ipset for the lab's kube-ipvs baseline
  libnl-genl-3-dev ipvsadm libnftables-dev ipset
  # dataplane/dpdk/: DPDK 22.11 (PMDs load as plugins), testpmd for the I/O
  # floor; ethtool turns off TX checksum offload on veths whose frames reach
  # net_af_packet half-checksummed
  libdpdk-dev dpdk-dev ethtool
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's kubectl 1.20 (package kubernetes-client), which the e2e suite runs
# beside the Google Cloud SDK ones: it would install to /usr/bin/kubectl, the
# SDK's dispatcher, so the package is unpacked into its own prefix instead.
kubectl120=/opt/sluice/kubectl-1.20
if [ ! -x "$kubectl120/usr/bin/kubectl" ]; then
  echo "setup: unpacking Debian's kubernetes-client into $kubectl120"
  tmp=$(mktemp -d)
  chmod 755 "$tmp"  # apt's _apt download user writes there
  (cd "$tmp" && { apt-get download -qq kubernetes-client 2>/dev/null ||
                  { apt-get update -qq && apt-get download -qq kubernetes-client; }; })
  mkdir -p "$kubectl120"
  dpkg -x "$tmp"/kubernetes-client_*.deb "$kubectl120"
  rm -rf "$tmp"
fi

# Debian kernels for the vm suite, unpacked (never installed as the host's kernel) into
# /opt/sluice/vm/linux-<release>/ where tests/vm/vm_run.py finds them: 6.1 is bookworm's
# default (the linux-image-amd64 metapackage), 6.12 comes from bookworm-security's
# linux-image-6.12-amd64 when the apt sources carry it.
vm_kernel() {  # $1: metapackage naming the current kernel package
  local pkg release dir tmp
  pkg=$(apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$pkg" ] && [ -z "${vm_lists_updated:-}" ]; then
    vm_lists_updated=1  # empty or stale package lists: refresh them once
    apt-get update -qq
    pkg=$(apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  if [ -z "$pkg" ]; then
    echo "setup: $1 not in the apt sources; its vm tests will skip"
    return 0
  fi
  release=${pkg#linux-image-}
  dir=/opt/sluice/vm/linux-$release
  [ -f "$dir/boot/vmlinuz-$release" ] && return 0
  echo "setup: unpacking $pkg into $dir"
  tmp=$(mktemp -d)
  chmod 755 "$tmp"  # apt's _apt download user writes there
  (cd "$tmp" && { apt-get download -qq "$pkg" 2>/dev/null ||
                  { apt-get update -qq && apt-get download -qq "$pkg"; }; })
  mkdir -p "$tmp/x"
  dpkg -x "$tmp"/"$pkg"_*.deb "$tmp/x"
  mkdir -p /opt/sluice/vm
  rm -rf "$dir"
  mv "$tmp/x" "$dir"
  rm -rf "$tmp"
}
vm_kernel linux-image-amd64
vm_kernel linux-image-6.12-amd64

if [ -f build/build.ninja ]; then
  meson setup --reconfigure build >/dev/null
else
  meson setup build
fi
ninja -C build
