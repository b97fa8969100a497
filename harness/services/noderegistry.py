"""The registry the nodes pull from: Debian's docker-registry on the host's loopback (a QEMU
guest reaches it at the user-net gateway, 10.0.2.2), seeded with a multi-arch pause index the
harness builds itself: per arch, Debian's busybox-static for that arch (no upstream pause code),
so the image a node pulls can be checked for the node's arch. The run's Lab starts and stops it.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from filelock import FileLock

from ..common.paths import cache_dir
from ..host import debian
from ..matrix import platforms
from ..oci.layout import Image, Layout, push

GUEST_GATEWAY = "10.0.2.2"  # QEMU user-mode networking: the host's loopback as the guest sees it


def guest_host(registry_host: str) -> str:
    """127.0.0.1:PORT on this machine -> the same registry as a QEMU guest reaches it."""
    return f"{GUEST_GATEWAY}:{registry_host.rsplit(':', 1)[1]}"


def busybox(p: platforms.Platform) -> bytes:
    suite = next(d.release for d in platforms.DISTROS if d.family == "debian" and p.name in d.arches)
    with FileLock(str(cache_dir() / "busybox.lock")):
        return debian.fetch_file("busybox-static", p.debian, "bin/busybox", suite).read_bytes()


def pause_images() -> list[Image]:
    return [Image(p.oci_platform(), {"/bin/busybox": busybox(p)}, entrypoint=("/bin/busybox", "sleep", "2147483647"))
            for p in platforms.PLATFORMS]


def seed(registry_host: str, tag: str) -> list[str]:
    """Push pause:<tag>, an index of every arch of the platform table, to the registry; the arches."""
    with tempfile.TemporaryDirectory(prefix="am-pause-") as d:
        lay = Layout(Path(d))
        lay.tag(tag, pause_images())
        push(lay, tag, f"{registry_host}/pause:{tag}")
    return [p.name for p in platforms.PLATFORMS]
