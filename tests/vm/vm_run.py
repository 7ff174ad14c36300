#!/usr/bin/env python3
"""Runs a host-built command inside a Debian kernel under qemu TCG (the `vm` suite).

    vm_run.py [--kernel 6.1|6.12] [--modules ipvs] [--timeout SEC] [--rw DIR]...
              [--ci-gtest-filter FILTER | --full-only] -- CMD ARGS...

Why a VM: this host's kernel lacks IP_VS and dummy links (and future kernel-matrix tests need
other kernels), so tests run under a Debian kernel that scripts/setup.sh unpacks into
/opt/sluice/vm/linux-<release>/ without installing it.

How: qemu boots the uncompressed vmlinux directly (PVH entry; ~4 s faster than bzImage through
firmware under TCG) with a busybox-static initramfs. Its /init loads the module set in dependency
order, mounts the host's root read-only over 9p under a tmpfs overlay (so the guest can write
anywhere and the host is never touched), moves /proc /sys /dev in and switch_roots. Stage two (a
script written per run into a second, read-write 9p share) mounts /run /tmp bpffs cgroup2, brings
up lo, exports the caller's environment, runs CMD in the caller's cwd and writes its exit status to
the share. qemu exits 0 on poweroff and on panic alike, so that file is the only status trusted.

Exit status: CMD's (77 = skip, as meson expects); 77 too when qemu, busybox or the kernel package
is missing; 124 when the run timed out; 1 when the guest died without reporting.

CI profile: a gtest binary's run can be cut to the cases CI must show with --ci-gtest-filter
(appended as --gtest_filter), and a whole run kept out of CI with --full-only (exit 77 before
booting); SLUICE_VM_FULL=1 in the environment lifts both, for the whole suites on demand.

Caches (vmlinux, initramfs) live in --cache-dir, $SLUICE_VM_CACHE or /var/cache/sluice-vm, keyed by
kernel release, module set and this file's hash; building them takes ~2 s once per key.
"""

import argparse
import fcntl
import gzip
import hashlib
import io
import lzma
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

SKIP = 77
VM_ROOT = os.environ.get("SLUICE_VM_ROOT", "/opt/sluice/vm")
BUSYBOX = "/bin/busybox"
QEMU = "qemu-system-x86_64"
# The 9p share that carries stage two and the exit status, mounted here in the guest.
SHARE_TAG = "sluicevm"
GUEST_SHARE = "/run/sluice-vm"
# Console markers: the host times boot and command from them.
MARK_START = "sluice-vm: start"
MARK_EXIT = "sluice-vm: exit "

# Modules every run needs: 9p root over virtio-pci, and overlayfs for the writable layer.
BASE_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay"]
# Module sets: names before their dependencies are resolved (modinfo depends + softdep pre).
# A trailing '?' marks a module some kernels lack (or build in); it is loaded when present.
MODULE_SETS = {
    "base": [],
    # Network tests: dummy links (numdummies=0: no dummy0 appears by itself) and veth pairs.
    "net": ["dummy numdummies=0", "veth"],
    # The IPVS mode: ip_vs with the schedulers ProxyMode maps to (mh for Maglev), conntrack and
    # ctnetlink (UDP backend cleanup), and nftables masquerade/refusal (sluice's own table).
    "ipvs": [
        "dummy numdummies=0", "veth",
        "nf_conntrack", "nf_conntrack_netlink",
        "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_sh", "ip_vs_mh",
        "ip_vs_sed?", "ip_vs_nq?", "ip_vs_twos?",
        "nfnetlink", "nf_tables", "nft_ct", "nf_nat", "nft_nat", "nft_chain_nat", "nft_masq",
        "nft_reject_inet?", "nft_fib_inet?",
    ],
}

# Machine: TCG only (a KVM guest hung on this machine class; see docs notes). -cpu max gives the
# guest every instruction TCG emulates; 1 vCPU because the host's 2 cores are shared.
QEMU_MACHINE = [
    "-accel", "tcg,thread=multi,tb-size=256", "-machine", "q35", "-cpu", "max", "-smp", "1",
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
]
# panic=-1 reboots at once on panic and -no-reboot turns that into qemu exiting.
KERNEL_CMDLINE = "console=ttyS0 quiet panic=-1 oops=panic"


def skip(reason):
    print(f"SKIP: {reason}", file=sys.stderr, flush=True)
    sys.exit(SKIP)


def log(msg):
    print(f"vm_run: {msg}", file=sys.stderr, flush=True)


def version_key(release):
    return [int(x) if x.isdigit() else x for x in re.split(r"[.\-+]", release)]


def find_kernel(series):
    """The newest unpacked release of `series` (e.g. '6.1' matches 6.1.0-57-amd64)."""
    try:
        entries = os.listdir(VM_ROOT)
    except FileNotFoundError:
        entries = []
    releases = [e[len("linux-"):] for e in entries
                if e.startswith("linux-") and e[len("linux-"):].startswith(series + ".")]
    releases = [r for r in releases
                if os.path.isfile(os.path.join(VM_ROOT, "linux-" + r, "boot", "vmlinuz-" + r))]
    if not releases:
        skip(f"no Debian {series} kernel unpacked under {VM_ROOT} (run scripts/setup.sh)")
    release = max(releases, key=version_key)
    return release, os.path.join(VM_ROOT, "linux-" + release)


# --- vmlinux -----------------------------------------------------------------------------------

def extract_vmlinux(bzimage_path, out_path):
    """Decompresses the ELF vmlinux out of a bzImage (x86 boot protocol >= 2.08).

    The setup header's payload_offset/payload_length (offsets 0x248/0x24c) locate the compressed
    kernel after the real-mode setup sectors; Debian uses xz (6.1) and zstd (6.12). The kernel
    appends the 4-byte uncompressed size to the stream, which decoders see as trailing data.
    """
    with open(bzimage_path, "rb") as f:
        image = f.read()
    if image[0x202:0x206] != b"HdrS":
        raise RuntimeError(f"{bzimage_path}: not a bzImage")
    setup_sects = image[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = image[start:start + payload_length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        data = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        zstd = shutil.which("zstd")
        if not zstd:
            skip("zstd is needed to unpack this kernel (apt-get install zstd)")
        proc = subprocess.run([zstd, "-dcq"], input=payload[:-4], capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"zstd: {proc.stderr.decode(errors='replace')}")
        data = proc.stdout
    elif payload.startswith(b"\x1f\x8b"):
        data = zlib.decompressobj(wbits=31).decompress(payload)
    elif payload.startswith(b"\x5d\x00"):
        data = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(payload)
    else:
        raise RuntimeError(f"{bzimage_path}: unknown compression {payload[:4].hex()}")
    if not data.startswith(b"\x7fELF"):
        raise RuntimeError(f"{bzimage_path}: decompressed payload is not an ELF vmlinux")
    write_atomic(out_path, data)


# --- modules -----------------------------------------------------------------------------------

def norm(name):
    return name.replace("-", "_")


def index_modules(moddir):
    """Module name -> path of its .ko / .ko.xz / .ko.zst / .ko.gz file."""
    index = {}
    for root, _, files in os.walk(os.path.join(moddir, "kernel")):
        for f in files:
            m = re.match(r"(.+)\.ko(\.xz|\.zst|\.gz)?$", f)
            if m:
                index[norm(m.group(1))] = os.path.join(root, f)
    return index


def builtin_modules(moddir):
    names = set()
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            for line in f:
                names.add(norm(os.path.basename(line.strip())[:-len(".ko")]))
    except FileNotFoundError:
        pass
    return names


def modinfo(path, field):
    out = subprocess.run(["modinfo", "-F", field, path], capture_output=True, text=True,
                         check=True).stdout
    return out.strip()


def resolve_modules(moddir, wanted):
    """[(name, path, params)] in load order: dependencies first, each module once.

    depends= from modinfo gives hard dependencies; softdep 'pre:' names (libcrc32c wants crc32c,
    provided by crc32c_generic) are loaded first when a module of that name or <name>_generic
    exists. Built-in modules are skipped.
    """
    if not shutil.which("modinfo"):
        skip("modinfo (package kmod) is needed to order kernel modules")
    index, builtin = index_modules(moddir), builtin_modules(moddir)
    order, seen = [], set()

    def visit(name, params, optional):
        name = norm(name)
        if name in seen or name in builtin:
            return
        path = index.get(name)
        if path is None:
            if optional:
                return
            raise RuntimeError(f"module {name} not found under {moddir}")
        seen.add(name)
        for dep in filter(None, modinfo(path, "depends").split(",")):
            visit(dep, "", False)
        for line in modinfo(path, "softdep").splitlines():
            words = line.split()
            if words and words[0] == "pre:":
                for soft in words[1:]:
                    soft = norm(soft)
                    pick = soft if soft in index else soft + "_generic"
                    visit(pick, "", True)
        order.append((name, path, params))

    for spec in wanted:
        name, _, params = spec.partition(" ")
        visit(name.rstrip("?"), params, name.endswith("?"))
    return order


def read_module(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dcq"], input=data, capture_output=True,
                              check=True).stdout
    return data


# --- initramfs ---------------------------------------------------------------------------------

class Cpio:
    """A newc cpio archive (the format the kernel unpacks as initramfs), built in memory."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name, mode, data=b""):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self._entry(name, 0o040755)

    def file(self, name, data, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


INIT_TEMPLATE = r"""#!/bin/busybox sh
# Stage one (PID 1 in the initramfs): modules, the host root as an overlay, then switch_root
# into stage two on the run's share. Any failure powers off without a status: the host reports it.
B=/bin/busybox
fail() { echo "vm init: $*"; $B sync; echo b > /proc/sysrq-trigger; }
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
# Phase marks land in dmesg with the kernel's timestamps (`dmesg | grep vm-init` in the guest).
mark() { echo "vm-init: $*" > /dev/kmsg; }
mark start
while read -r mod params; do
  $B insmod /modules/$mod.ko $params || echo "vm init: insmod $mod failed"
done < /modules/order
mark modules loaded
# msize above 512000 is clamped by the virtio transport; bigger reads cut 9p round trips.
P9="trans=virtio,version=9p2000.L,msize=512000"
$B mount -t 9p -o "$P9,ro" hostroot /lower || fail "9p root mount failed"
$B mount -t tmpfs -o mode=0755 tmpfs /rw
$B mkdir -p /rw/upper /rw/work
$B mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot \
  || fail "overlay mount failed"
$B mount -t tmpfs -o mode=0755 tmpfs /newroot/run
$B mkdir -p /newroot/run/sluice-vm
$B mount -t 9p -o "$P9" sluicevm /newroot/run/sluice-vm || fail "9p share mount failed"
mark root mounted
for m in proc sys dev; do $B mount --move /$m /newroot/$m; done
exec $B switch_root /newroot /bin/sh /run/sluice-vm/stage2.sh
"""


def build_initramfs(order, out_path):
    cpio = Cpio()
    for d in ("bin", "proc", "sys", "dev", "lower", "rw", "newroot", "modules"):
        cpio.dir(d)
    with open(BUSYBOX, "rb") as f:
        cpio.file("bin/busybox", f.read(), 0o755)
    cpio.file("init", INIT_TEMPLATE.encode(), 0o755)
    lines = []
    for name, path, params in order:
        cpio.file(f"modules/{name}.ko", read_module(path))
        lines.append(f"{name} {params}".rstrip())
    cpio.file("modules/order", ("\n".join(lines) + "\n").encode())
    # Uncompressed: unpacking gzip under TCG costs more than reading the extra megabytes.
    write_atomic(out_path, cpio.finish())


def build_depmod_tree(kdir, release, out_dir):
    """A modules.dep tree for the guest's modprobe, so request_module() autoloads what the
    module set lacks (and fails fast for names that do not exist, as an unknown IPVS scheduler).

    depmod writes beside the modules; a scratch base whose kernel/ links to the unpacked tree
    keeps /opt/sluice/vm untouched (Debian 12's kmod has no --outdir).
    """
    src = os.path.join(kdir, "lib", "modules", release)
    tmp = f"{out_dir}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    dst = os.path.join(tmp, "lib", "modules", release)
    os.makedirs(dst)
    os.symlink(os.path.join(src, "kernel"), os.path.join(dst, "kernel"))
    for f in os.listdir(src):
        if f.startswith("modules."):
            shutil.copy(os.path.join(src, f), dst)
    subprocess.run(["depmod", "-b", tmp, release], check=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)


def write_atomic(path, data):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def prune_cache(cache_dir, max_age_days=7):
    """Drops initramfs images no run has used for a week (older versions of this runner, other
    worktrees'): each is ~10 MB, one per kernel, module set and runner revision."""
    cutoff = time.time() - max_age_days * 86400
    for f in os.listdir(cache_dir):
        path = os.path.join(cache_dir, f)
        if f.startswith("initramfs-") and f.endswith(".cpio") and os.path.getmtime(path) < cutoff:
            os.remove(path)


def prepare_cache(cache_dir, release, kdir, module_set):
    """Paths of the cached vmlinux and initramfs, building them under a lock if missing."""
    with open(__file__, "rb") as f:
        runner_hash = hashlib.sha256(f.read()).hexdigest()[:12]
    try:
        os.makedirs(cache_dir, exist_ok=True)
        if not os.access(cache_dir, os.W_OK):
            raise PermissionError(cache_dir)
    except PermissionError:
        # Not root: a per-user cache instead of the shared one.
        cache_dir = os.path.join(os.path.expanduser("~"), ".cache", "sluice-vm")
        os.makedirs(cache_dir, exist_ok=True)
    vmlinux = os.path.join(cache_dir, f"vmlinux-{release}")
    initrd = os.path.join(cache_dir, f"initramfs-{release}-{module_set}-{runner_hash}.cpio")
    depmod = os.path.join(cache_dir, f"depmod-{release}")
    if all(os.path.exists(p) for p in (vmlinux, initrd, depmod)):
        os.utime(initrd)  # marks it in use for prune_cache()
        return vmlinux, initrd, os.path.join(depmod, "lib", "modules", release)
    with open(os.path.join(cache_dir, ".lock"), "w") as lock:
        # Parallel meson tests: one builds, the others wait and reuse.
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        if not os.path.exists(vmlinux):
            extract_vmlinux(os.path.join(kdir, "boot", "vmlinuz-" + release), vmlinux)
        if not os.path.exists(initrd):
            moddir = os.path.join(kdir, "lib", "modules", release)
            order = resolve_modules(moddir, BASE_MODULES + MODULE_SETS[module_set])
            build_initramfs(order, initrd)
        if not os.path.exists(depmod):
            build_depmod_tree(kdir, release, depmod)
        prune_cache(cache_dir)
        log(f"cache for {release}/{module_set} built in {time.monotonic() - started:.1f} s")
    return vmlinux, initrd, os.path.join(depmod, "lib", "modules", release)


# --- the run -----------------------------------------------------------------------------------

# Variables that describe the host process rather than the test's configuration.
ENV_SKIP = {"_", "PWD", "OLDPWD", "SHLVL", "TERM", "COLUMNS", "LINES"}


def host_tmp_dirs(values):
    """The directories /tmp/X (X one path component) that existing absolute paths among
    `values` lie in, sorted; each value may be a path or a ':'-separated list of paths."""
    dirs = set()
    for v in values:
        for path in str(v).split(":"):
            if not path.startswith("/tmp/") or not os.path.exists(path):
                continue
            top = "/tmp/" + path[len("/tmp/"):].split("/", 1)[0]
            if os.path.isdir(top) and not os.path.basename(top).startswith("sluice-vm-"):
                dirs.add(top)
    return sorted(dirs)


def stage2_script(cmd, cwd, rw_dirs, release, moddir):
    env = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(os.environ.items())
                  if k not in ENV_SKIP and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k))
    rw = "".join(f"$B mkdir -p {shlex.quote(d)}\n"
                 f"$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 rw{i} "
                 f"{shlex.quote(d)}\n" for i, d in enumerate(rw_dirs))
    return f"""#!/bin/sh
# Stage two (PID 1 on the overlay root): the mounts tests rely on, then the command. Applets of
# the host's static busybox: one cached binary instead of util-linux/iproute2 and their shared
# libraries each paged in over 9p (that cost ~1.5 s here).
B=/bin/busybox
echo "vm-init: stage two" > /dev/kmsg
$B mkdir -p /dev/pts /dev/shm
$B mount -t devpts devpts /dev/pts
$B mount -t tmpfs tmpfs /dev/shm
$B mount -t tmpfs -o mode=1777 tmpfs /tmp
$B mount -t bpf bpffs /sys/fs/bpf
$B mount -t cgroup2 cgroup2 /sys/fs/cgroup
$B mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
$B mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
{rw}$B mkdir -p /lib/modules
$B ln -sfn {shlex.quote(moddir)} /lib/modules/{release}
$B ip link set lo up
$B hostname sluice-vm
echo "vm-init: mounts done" > /dev/kmsg
{env}export SLUICE_IN_VM=1
cd {shlex.quote(cwd)} || echo "vm: cannot cd to {cwd}"
echo "{MARK_START}"
{shlex.join(cmd)}
rc=$?
echo "{MARK_EXIT}$rc"
echo $rc > {GUEST_SHARE}/status.tmp && mv {GUEST_SHARE}/status.tmp {GUEST_SHARE}/status
sync
echo b > /proc/sysrq-trigger
"""


def stop(proc):
    """Ends timeout(1) and the qemu under it: TERM (which timeout forwards), then KILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default=os.environ.get("SLUICE_VM_KERNEL", "6.1"),
                    help="kernel series: 6.1 or 6.12 (default 6.1)")
    ap.add_argument("--modules", default="ipvs", choices=sorted(MODULE_SETS))
    ap.add_argument("--timeout", type=float, default=600, help="seconds for the whole VM run")
    ap.add_argument("--memory", type=int, default=1024, help="guest RAM in MiB")
    ap.add_argument("--cache-dir", default=os.environ.get("SLUICE_VM_CACHE",
                                                          "/var/cache/sluice-vm"))
    ap.add_argument("--rw", action="append", default=[], metavar="DIR",
                    help="host directory the guest may write (same path in the guest; not "
                         "under /tmp, which is the guest's own tmpfs)")
    ap.add_argument("--append", default="", metavar="ARGS",
                    help="extra kernel command line (e.g. 'loglevel=7' to see the boot)")
    ap.add_argument("--ci-gtest-filter", default="", metavar="FILTER",
                    help="gtest filter of the CI profile (ignored with SLUICE_VM_FULL=1)")
    ap.add_argument("--full-only", action="store_true",
                    help="skip (77) unless SLUICE_VM_FULL=1: not part of the CI profile")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given")
    full = os.environ.get("SLUICE_VM_FULL") == "1"
    if args.full_only and not full:
        skip("not in the vm suite's CI profile; SLUICE_VM_FULL=1 runs it")
    if args.ci_gtest_filter and not full:
        cmd = cmd + ["--gtest_filter=" + args.ci_gtest_filter]

    if not shutil.which(QEMU):
        skip(f"{QEMU} not installed (apt-get install --no-install-recommends qemu-system-x86)")
    if not os.path.isfile(BUSYBOX):
        skip(f"{BUSYBOX} missing (apt-get install busybox-static)")
    release, kdir = find_kernel(args.kernel)
    t0 = time.monotonic()
    vmlinux, initrd, moddir = prepare_cache(args.cache_dir, release, kdir, args.modules)

    # The guest's /tmp is a tmpfs of its own, so a checkout or build under the host's /tmp (a
    # CI clone there) would vanish: the top-level /tmp directories the run names (its cwd,
    # its command's paths, path-valued environment) are shared back at the same paths.
    args.rw = [os.path.abspath(d) for d in args.rw] + [
        d for d in host_tmp_dirs([os.getcwd(), *cmd, *os.environ.values()])
        if d not in [os.path.abspath(r) for r in args.rw]]

    share = tempfile.mkdtemp(prefix="sluice-vm-")
    proc = None
    try:
        with open(os.path.join(share, "stage2.sh"), "w") as f:
            f.write(stage2_script(cmd, os.getcwd(), args.rw, release, moddir))
        qemu = [QEMU, *QEMU_MACHINE, "-m", str(args.memory),
                "-kernel", vmlinux, "-initrd", initrd,
                "-append", f"{KERNEL_CMDLINE} {args.append}".strip(),
                "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
                "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
                "-device", "virtio-9p-pci,fsdev=root,mount_tag=hostroot",
                "-fsdev", f"local,id=share,path={share},security_model=none",
                "-device", f"virtio-9p-pci,fsdev=share,mount_tag={SHARE_TAG}"]
        for i, d in enumerate(args.rw):
            qemu += ["-fsdev", f"local,id=rw{i},path={os.path.abspath(d)},security_model=none",
                     "-device", f"virtio-9p-pci,fsdev=rw{i},mount_tag=rw{i}"]
        # timeout --foreground: qemu stays in this process group, so a killed test run (meson's
        # own timeout signals the group) takes qemu down with it.
        argv = ["timeout", "--foreground", "-k", "5", str(int(args.timeout)), *qemu]

        def on_signal(signum, _frame):
            # SIGTERM to timeout(1) is forwarded to qemu; SIGKILL would orphan qemu instead.
            stop(proc)
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

        boot_start = time.monotonic()
        marks = {}
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        out = sys.stdout.buffer
        for raw in proc.stdout:
            line = raw.replace(b"\r", b"")
            text = line.decode(errors="replace")
            if text.startswith(MARK_START) and "start" not in marks:
                marks["start"] = time.monotonic()
            elif text.startswith(MARK_EXIT) and "exit" not in marks:
                marks["exit"] = time.monotonic()
            out.write(line)
            out.flush()
        qrc = proc.wait()
        end = time.monotonic()

        status_file = os.path.join(share, "status")
        boot = (f"boot to command {marks['start'] - boot_start:.1f} s" if "start" in marks
                else "the command never started")
        run = (f", command {marks['exit'] - marks['start']:.1f} s"
               if "start" in marks and "exit" in marks else "")
        log(f"kernel {release}: cache {boot_start - t0:.1f} s, {boot}{run}, "
            f"total {end - t0:.1f} s")
        if qrc == 124:
            log(f"timed out after {args.timeout:.0f} s")
            return 124
        if not os.path.exists(status_file):
            log(f"the guest reported no exit status (qemu exit {qrc}): see the console above")
            return 1
        with open(status_file) as f:
            rc = int(f.read().strip() or "1")
        return rc if rc < 256 else 1
    finally:
        stop(proc)
        shutil.rmtree(share, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
