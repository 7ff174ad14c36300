#!/usr/bin/env bash
# Installs the Debian 12 packages sluice builds and tests with, then
# configures ./build and builds. Idempotent and non-interactive: apt-get runs
# (update once, then install) only when a package is missing. Run as root.
#
#   scripts/setup.sh          every package, the vm suite's kernels and
#                             kubectl 1.20; configures build/ with tests and
#                             benchmarks and builds everything (scripts/test.sh)
#   scripts/setup.sh --demo   only what `sluice up` needs to build and run;
#                             configures build-demo/ (no tests or benchmarks,
#                             -O0 without debug info) and builds the demo's
#                             targets (scripts/demo.sh)
# The demo has a build directory of its own because its flags differ: most
# of a compile here is parsing headers (Beast, protobuf, JSON), and -O0
# without -g takes the rest down to little (the demo's build: 240 s at -O0
# against 280 s at -O1 and about twice that at -O2 -g, on this machine's two
# cores; the BPF objects are -O2 whatever the build); the test suites want
# build/'s -O2 -g.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
[ "${1:-}" = "--demo" ] && mode=demo

say() { echo "setup: [${SECONDS} s] $*"; }

# What `sluice up` builds with and runs on: the demo installs these only.
demo_packages=(
  # toolchain and build; clang compiles the BPF programs, bpftool makes
  # their skeletons
  meson ninja-build pkg-config g++ clang bpftool
  # libraries of the executables (each added when the code first used it)
  libxxhash-dev libsqlite3-dev libbpf-dev
  libnl-3-dev libnl-route-3-dev libnl-genl-3-dev libnftables-dev nlohmann-json3-dev
  protobuf-compiler libprotobuf-dev libboost1.74-dev libssl-dev libcli11-dev libyaml-cpp-dev
  libgrpc++-dev protobuf-compiler-grpc zlib1g-dev
  # logging (control/logging/) and metrics (control/metrics/)
  libspdlog-dev prometheus-cpp-dev
  # the node: addresses and links; the demo's client of the Services
  iproute2 curl
)

# Everything else the test suites and the lab use.
test_packages=(
  llvm libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3
  # the reference CNI plugins (host-local, portmap) cni/'s tests run against,
  # and iptables, which portmap drives
  containernetworking-plugins iptables
  # the metrics e2e test: promtool and a real Prometheus
  prometheus
  # bench/lab (sluice-bench): the kube-proxy baselines it programs, a load
  # generator, and the plots
  nftables wrk gnuplot-nox
  # vm suite (tests/vm/vm_run.py): Debian kernels with IP_VS under qemu TCG, a busybox
  # initramfs, kmod's modinfo for module order and zstd for 6.12's kernel image
  qemu-system-x86 busybox-static kmod zstd
  # ipvs/: ipvsadm cross-checks the generic-netlink client; ipset for the lab's
  # kube-ipvs baseline
  ipvsadm ipset
  # dataplane/dpdk/: DPDK 22.11 (PMDs load as plugins), testpmd for the I/O
  # floor; ethtool turns off TX checksum offload on veths whose frames reach
  # net_af_packet half-checksummed
  libdpdk-dev dpdk-dev ethtool
  # bench/dpdk/pipeline_counts.sh: instructions and simulated cache misses
  # per packet (callgrind), the figures a noisy shared host cannot blur
  valgrind
)

packages=("${demo_packages[@]}")
[ "$mode" = full ] && packages+=("${test_packages[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  say "apt-get update"
  apt-get update -qq
  # One line per package set up (with their dependencies, a few hundred on
  # a fresh machine), so a long install shows where it is.
  apt-get install -y -q --no-install-recommends "${missing[@]}" |
    awk '/^Get:/ {n++; if (n % 50 == 0) printf "setup: downloaded %d files\n", n; fflush()}
         /^Setting up/ {m++; printf "setup:   %d. %s\n", m, $0; fflush()}'
  say "packages installed"
fi

if [ "$mode" = demo ]; then
  # The demo's build: the executables `sluice up` runs (the BPF objects and
  # skeletons come with sluice). Tests and benchmarks stay off, so none of
  # their targets are configured or compiled.
  if [ ! -f build-demo/build.ninja ]; then
    say "configuring build-demo/ (no tests or benchmarks; -O0, no debug info)"
    meson setup build-demo -Dtests=disabled -Dbenchmarks=disabled -Doptimization=0 -Ddebug=false >/dev/null
  fi
  targets=(control/cmd/sluice cni/sluice-cni cni/sluice-ipam)
  say "building ${targets[*]} ($(ninja -C build-demo -n "${targets[@]}" | grep -c '^\[') steps to run)"
  ninja -C build-demo "${targets[@]}"
  exit 0
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
  say "reconfiguring build/"
  meson setup --reconfigure build -Dtests=enabled -Dbenchmarks=enabled >/dev/null
else
  say "configuring build/"
  meson setup build -Dtests=enabled -Dbenchmarks=enabled >/dev/null
fi
say "building everything ($(ninja -C build -n | grep -c '^\[') steps to run)"
ninja -C build
