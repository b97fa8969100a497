"""Base images for QEMU nodes: a Debian root filesystem from the distro's own packages
(mmdebstrap), a kernel and a small initramfs, an ext4 disk as qcow2. Content-addressed
cache under a lock: parallel workers build once; a half-written image is never visible
(built in a temporary directory, renamed into place, its manifest written last).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from ...common.errors import InfraError, UserError
from ...host import binfmt, debian, sysdeps
from ...matrix import platforms
from . import cloud
from .cache import BUILDER_VERSION, BaseImage, complete, images_dir, locked, login_key, run, write_manifest

# python3 is not needed: testinfra runs shell commands only (through the node's transport)
PACKAGES = ("systemd-sysv", "openssh-server", "iproute2", "ca-certificates", "udev")
# initramfs-tools: only the modules a virt machine needs (MODULES=most took ~10 min under emulation)
INITRAMFS_MODULES = ("virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net", "ext4", "crc32c_generic", "virtio_ccw")
DISK_HEADROOM_MB = 1536  # room for a runtime and kubectl installed by a bootstrapper

FIRSTBOOT = """[Unit]
Description=archmatrix: this node's own SSH host key, printed to the console
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
ExecStart=/bin/sh -c 'echo "ARCHMATRIX-HOSTKEY $(cat /etc/ssh/ssh_host_ed25519_key.pub)" > /dev/console'

[Install]
WantedBy=multi-user.target
"""
READY = """[Unit]
Description=archmatrix: ready marker on the console once sshd runs
After=ssh.service archmatrix-hostkey.service
Wants=ssh.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "ARCHMATRIX-HOSTKEY $(cat /etc/ssh/ssh_host_ed25519_key.pub)" > /dev/console; echo ARCHMATRIX-READY > /dev/console'

[Install]
WantedBy=multi-user.target
"""


def key(p: platforms.Platform, d: platforms.Distro) -> str:
    """Content address: arch, distro, package set, module list, builder version."""
    spec = {"arch": p.name, "distro": d.name, "release": d.release, "packages": sorted(PACKAGES + (p.kernel_package,)),
            "modules": INITRAMFS_MODULES, "builder": BUILDER_VERSION}
    return f"{d.name}-{p.name}-" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def lookup(p: platforms.Platform, d: platforms.Distro) -> BaseImage | None:
    path = images_dir() / key(p, d)
    return BaseImage(path, p.name, d.name) if complete(path) else None


def build(p: platforms.Platform, d: platforms.Distro, progress: Callable[[str], None] = print) -> BaseImage:
    """The cached image for (arch, distro), building it under a lock if needed."""
    if p.name not in d.arches:
        raise UserError(f"{d.name} has no {p.name} port (it exists for {', '.join(d.arches)})")
    final = images_dir() / key(p, d)
    if d.family == "ubuntu" and not complete(final):
        found = cloud.find_downloads(p, d)
        if found is None:
            raise UserError(cloud.missing_message(p, d))
        cloud.import_image(p, d, *map(str, found), final=final, progress=progress)
    if d.family not in ("debian", "ubuntu"):
        raise UserError(f"{d.name}: no QEMU image for the {d.family} family (Windows nodes join over ssh)")
    with locked(final, progress):
        if complete(final):
            return BaseImage(final, p.name, d.name)
        if final.exists():
            progress(f"image {final.name}: incomplete or corrupt, rebuilding")
            shutil.rmtree(final)
        sysdeps.require(sysdeps.image_build_programs(p), f"building a {p.name} image")
        binfmt.ensure(p)
        for stale in images_dir().glob(f".{final.name}-*"):  # a killed builder's (we hold the lock)
            progress(f"image {final.name}: removing {stale.name}, left by an interrupted build")
            _remove(stale)
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=images_dir()))
        try:
            _build_into(work, p, d, progress)
            os.replace(work / "out", final)
        except BaseException:
            _remove(work)
            shutil.rmtree(final, ignore_errors=True) if not complete(final) else None
            raise
        _remove(work)
        return BaseImage(final, p.name, d.name)


def _remove(path: Path) -> None:
    """rmtree, after unmounting what an interrupted mmdebstrap left mounted in its root (proc, sys,
    dev/pts, dev/shm are the host's own): rmtree does not stop at mount points."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for m in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def _build_into(work: Path, p: platforms.Platform, d: platforms.Distro, progress) -> None:
    root, out, log = work / "root", work / "out", work / "build.log"
    out.mkdir()
    t0 = time.monotonic()
    modules = work / "modules"
    modules.write_text("\n".join(INITRAMFS_MODULES) + "\n")
    hook = work / "initramfs-hook.sh"
    # before the kernel package is configured: its postinst builds the initramfs with these settings
    # (modules.d, not /etc/initramfs-tools/modules: that one is a conffile and would prompt)
    hook.write_text("#!/bin/sh\nset -e\n"
                    'mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"\n'
                    'printf "MODULES=list\\nCOMPRESS=gzip\\n" > "$1/etc/initramfs-tools/conf.d/archmatrix"\n'
                    f'cp {modules} "$1/usr/share/initramfs-tools/modules.d/archmatrix.conf"\n')
    hook.chmod(0o755)
    progress(f"image {d.name}/{p.name}: mmdebstrap {d.release} (foreign arches run maintainer scripts "
             f"under qemu-user: minutes)")
    run(["mmdebstrap", "--variant=apt", f"--arch={p.debian}", "--include=" + ",".join(PACKAGES + (p.kernel_package,)),
         f"--essential-hook={hook} \"$1\"", d.release, str(root), debian.source_line(d.release)], "mmdebstrap", log)
    progress(f"image {d.name}/{p.name}: rootfs in {time.monotonic() - t0:.0f} s; configuring")
    _configure(root, p, out)
    boot = root / "boot"
    kernels = sorted(boot.glob(p.qemu.kernel_glob))
    initrds = sorted(boot.glob("initrd.img-*"))
    if not kernels or not initrds:
        raise InfraError(f"{p.name}: no {p.qemu.kernel_glob} or initrd in /boot", artifacts={"build log": log})
    shutil.copyfile(kernels[-1], out / "kernel")
    shutil.copyfile(initrds[-1], out / "initrd")
    size_mb = int(subprocess.run(["du", "-sm", str(root)], capture_output=True, text=True).stdout.split()[0])
    raw = work / "disk.raw"
    run(["mkfs.ext4", "-q", "-L", "root", "-d", str(root), str(raw), f"{size_mb + DISK_HEADROOM_MB}M"], "mkfs.ext4", log)
    run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(out / "disk.qcow2")], "qemu-img convert", log)
    raw.unlink()
    write_manifest(out, p, d, ("disk.qcow2", "kernel", "initrd", "id_ed25519", "id_ed25519.pub"),
                   packages=sorted(PACKAGES + (p.kernel_package,)), kernel=kernels[-1].name,
                   build_seconds=round(time.monotonic() - t0, 1))
    shutil.copyfile(log, out / "build.log")
    progress(f"image {d.name}/{p.name}: done in {time.monotonic() - t0:.0f} s")


def _configure(root: Path, p: platforms.Platform, out: Path) -> None:
    """Offline, from the host: network, fstab, services, the harness's login key, no host keys."""
    (root / "etc/fstab").write_text("LABEL=root / ext4 rw,errors=remount-ro 0 0\n")
    (root / "etc/hostname").write_text(f"archmatrix-{p.name}\n")
    net = root / "etc/systemd/network/10-archmatrix.network"
    net.parent.mkdir(parents=True, exist_ok=True)
    net.write_text("[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n")
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("nameserver 10.0.2.3\n")  # QEMU user-mode NAT's DNS
    for key_file in (root / "etc/ssh").glob("ssh_host_*"):
        key_file.unlink()  # every node makes its own at first boot (archmatrix-hostkey.service)
    units = root / "etc/systemd/system"
    (units / "archmatrix-hostkey.service").write_text(FIRSTBOOT)
    (units / "archmatrix-ready.service").write_text(READY)
    login_key(out)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text((out / "id_ed25519.pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    subprocess.run(["systemctl", f"--root={root}", "enable", "systemd-networkd.service", "ssh.service",
                    "archmatrix-hostkey.service", "archmatrix-ready.service"], check=True, capture_output=True)
    subprocess.run(["systemctl", f"--root={root}", "mask", "systemd-networkd-wait-online.service"],
                   check=True, capture_output=True)
