#!/usr/bin/env bash
# Measures README's first command on a fresh Debian 12: debootstraps a minbase
# root (once; needs the debootstrap package and the Debian mirror), clones this
# checkout's HEAD into it and runs ./scripts/demo.sh there, so its packages
# are installed into a machine that has none of them. demo.sh's last line is
# the time to the first answered request. kubectl is the host's (the Google
# Cloud SDK's kubectl is not a Debian package), bind-mounted in.
#
#   scripts/fresh-machine-demo.sh ROOT LOG
#
# Run it on a quiet machine with no other `sluice up` running (the demo uses
# the host's network namespace, ports 6443 and 30000, and cgroup2 root). It
# stops and cleans up the cluster afterwards and unmounts what it mounted.
set -euo pipefail
R=$(realpath -m "$1"); log=$(realpath -m "$2")
src=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$R/bin/bash" ] || debootstrap --variant=minbase bookworm "$R" http://deb.debian.org/debian
cleanup() {
  for m in usr/lib/google-cloud-sdk run dev sys proc; do umount -R "$R/$m" 2>/dev/null || true; done
  umount "$R" 2>/dev/null || true
}
trap cleanup EXIT
# / must be a mount point inside the root: the pod runtime makes it rprivate.
mountpoint -q "$R" || mount --bind "$R" "$R"
mount --bind /proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/run"
mkdir -p "$R/usr/lib/google-cloud-sdk"
mount --bind /usr/lib/google-cloud-sdk "$R/usr/lib/google-cloud-sdk"
ln -sfn ../lib/google-cloud-sdk/bin/kubectl "$R/usr/bin/kubectl"
cp /etc/resolv.conf "$R/etc/resolv.conf"
rm -rf "$R/root/sluice" "$R/var/lib/sluice"
git clone -q "$src" "$R/root/sluice"
status=0
chroot "$R" /bin/bash -c 'cd /root/sluice && ./scripts/demo.sh' >"$log" 2>&1 || status=$?
if [ -f "$R/run/sluice/up.pid" ]; then
  kill "$(cat "$R/run/sluice/up.pid")" 2>/dev/null || true
  sleep 3
  chroot "$R" /root/sluice/build-demo/control/cmd/sluice up --cleanup --data-dir /var/lib/sluice >>"$log" 2>&1 || true
fi
tail -1 "$log"
exit $status
