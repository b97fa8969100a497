"""The image cache both kinds of base image share (built from Debian's packages: build.py;
imported from Ubuntu's cloud images: cloud.py): one directory per content address, complete only
when its manifest (sizes and sha256 of every file, written last) says so; one lock per entry; the
builder's process runner (its own process group and PID namespace, cancellable from another
thread); the login key every image carries."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from ...common.errors import InfraError
from ...common.paths import cache_dir
from ...matrix import platforms
from ...services import procs

BUILDER_VERSION = "1"


@dataclass(frozen=True)
class BaseImage:
    path: Path  # the cache entry directory
    arch: str
    distro: str

    @property
    def disk(self) -> Path:
        return self.path / "disk.qcow2"

    @property
    def kernel(self) -> Path:
        return self.path / "kernel"

    @property
    def initrd(self) -> Path:
        return self.path / "initrd"

    @property
    def ssh_key(self) -> Path:
        return self.path / "id_ed25519"

    @property
    def manifest(self) -> dict:
        return json.loads((self.path / "manifest.json").read_text())

    def boot(self) -> tuple[str, Path | None]:
        """The kernel's root= and the cloud-init seed disk, if the image has one (imported cloud images)."""
        m = self.manifest if (self.path / "manifest.json").is_file() else {}
        return m.get("root", "/dev/vda"), (self.path / m["seed"]) if m.get("seed") else None


def images_dir() -> Path:
    d = cache_dir() / "images"
    d.mkdir(parents=True, exist_ok=True)
    return d


def complete(path: Path) -> bool:
    """A cache entry is usable when its manifest exists and every file has the recorded size."""
    m = path / "manifest.json"
    if not m.is_file():
        return False
    try:
        files = json.loads(m.read_text())["files"]
    except (ValueError, KeyError):
        return False
    return all((path / f).is_file() and (path / f).stat().st_size == info["size"] for f, info in files.items())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(img: BaseImage) -> list[str]:
    """Full check (sha256 of every file): what is wrong, or nothing."""
    problems = []
    for f, info in img.manifest["files"].items():
        fp = img.path / f
        if not fp.is_file():
            problems.append(f"{f}: missing")
        elif sha256(fp) != info["sha256"]:
            problems.append(f"{f}: sha256 differs from the manifest")
    return problems


def login_key(out: Path) -> Path:
    """The harness's own login key for the image's root account (the public half goes into it)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "archmatrix", "-f", str(out / "id_ed25519")],
                   check=True)
    return out / "id_ed25519"


def write_manifest(out: Path, p: platforms.Platform, d: platforms.Distro, files: tuple[str, ...], **fields) -> None:
    """manifest.json, written last: it is what makes the entry complete."""
    (out / "manifest.json").write_text(json.dumps({
        "arch": p.name, "distro": d.name, "release": d.release, "builder": BUILDER_VERSION, **fields,
        "files": {f: {"size": (out / f).stat().st_size, "sha256": sha256(out / f)} for f in files}}, indent=1))


@contextlib.contextmanager
def locked(final: Path, progress):
    """Hold the cache entry's lock; say so when another process holds it (a build takes minutes)."""
    lock = FileLock(str(final) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        progress(f"image {final.name}: another process is building it; waiting for its lock")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


_CANCEL = threading.Event()  # set by cancel(): builds in other threads stop (Ctrl-C reaches the main thread only)


def cancel() -> None:
    _CANCEL.set()


def run(cmd: list[str], what: str, log: Path, env: dict | None = None) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        # A build never outlives its run: its own process group, stopped on any exception (Ctrl-C);
        # and a PID namespace of its own (util-linux unshare): when the worker dies, PDEATHSIG kills
        # unshare, --kill-child its child, and the kernel every process in the namespace (mmdebstrap
        # itself defers SIGTERM until its emulated dpkg run ends: minutes). And a private mount
        # namespace: the proc, sys, dev/pts, dev/shm mmdebstrap mounts in its root exist only there,
        # so the kernel removes them when its last process dies, whatever killed it (issue #17: a
        # SIGKILLed run left them in the host's namespace until a later build of that image).
        cmd = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child=SIGKILL", *cmd]
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env={**os.environ, **(env or {})}, start_new_session=True,
                             preexec_fn=procs.die_with_parent(signal.SIGKILL))
        try:
            while p.poll() is None:
                if _CANCEL.wait(0.5):
                    raise KeyboardInterrupt(f"{what}: cancelled")
        except BaseException:
            procs.stop(p, grace=5)
            raise
    if p.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        full = any(x in tail for x in ("No space left on device", "enough free space"))
        why = f"the disk holding {log.parent.parent} is full" if full else f"exit {p.returncode}"
        raise InfraError(f"{what} failed ({why})", artifacts={"build log": log}, log_tail=tail, retryable=not full)
