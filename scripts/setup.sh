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

if [ -f build/build.ninja ]; then
  meson setup --reconfigure build >/dev/null
else
  meson setup build
fi
ninja -C build
