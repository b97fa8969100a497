"""Stand-ins for MicroK8s' source (issue #16 rehearsal): no Snap Store is reachable, so the rehearsal
serves a stand-in `microk8s` snap per channel, which the node's real Debian snapd installs
(`snap install --dangerous --classic`): snapd mounts it, runs its install hook and links its app
into /snap/bin, so the PATH a plan finds `microk8s` on is snapd's own.

  snap/<minor>-<risk>/microk8s.snap   name microk8s, classic, the base of the tag's snapcraft.yaml
  snap/<minor>-<risk>/snapd.snap      a stand-in of the `snapd` system snap: Debian 12's snapd 2.57.6 will not
                                      install a snap with a base other than core until the snapd snap is
                                      installed, and fetches it from the store ("Ensure prerequisites for
                                      "microk8s" are available (cannot install system snap "snapd": Post
                                      "https://api.snapcraft.io/v2/snaps/refresh"...)", seen on a real node);
                                      it carries no /usr/lib/snapd/info, so snapd does not re-exec into it
  snap/<minor>-<risk>/base.snap       a stand-in of that base (core20, core22): snapd installs a snap's
                                      base before it, from the store, and refuses a local snap whose base
                                      is missing; a base installed locally first satisfies it (snapd's own
                                      spread test tests/main/base-snaps)

The snap carries MicroK8s' real default-args/containerd-template.toml of the track's tag (from the
canonical/microk8s mirror) and an install hook doing what the real one does with it (snap/hooks/install:
`cp -r --preserve=mode ${SNAP}/default-args ${SNAP_DATA}/args`). Its app answers `version` as
scripts/wrappers/version.py prints it ("MicroK8s <version> revision <revision>") and fails everything
else (readiness first: the first step needing a real Kubernetes binary)."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from ..bootstrap import microk8s as plan
from ..host import debian
from ..common.errors import InfraError
from ..matrix import upstream
from ..matrix.cells import Cell
from .upstream_copy import git_show

REPO = "canonical/microk8s"
BASE = "snap"  # where under the stand-ins' root (Options.snap_base)

WRAPPER = """#!/bin/sh
# archmatrix stand-in for MicroK8s: no Kubernetes server binary exists on this machine
echo "archmatrix stand-in for MicroK8s: microk8s $*" >&2
case "$1" in
  version) echo "MicroK8s ${SNAP_VERSION} revision ${SNAP_REVISION}"; exit 0 ;;  # scripts/wrappers/version.py
esac
echo "archmatrix stand-in for MicroK8s: cannot '$*' (a real MicroK8s is needed)" >&2
exit 1
"""
# the real hook's line for the args (canonical/microk8s snap/hooks/install); the rest of it configures
# services a stand-in does not have
INSTALL_HOOK = """#!/bin/sh
set -e
cp -r --preserve=mode ${SNAP}/default-args ${SNAP_DATA}/args
"""


def _pack(tree: Path, out: Path) -> None:
    """A snap is a squashfs of its tree, as `snap pack` makes it (snapd's snap/squashfs: xz, no
    fragments, all files root's)."""
    r = subprocess.run(["mksquashfs", str(tree), str(out), "-noappend", "-comp", "xz", "-no-fragments", "-all-root",
                        "-no-xattrs", "-no-progress", "-quiet"], capture_output=True, text=True)
    if r.returncode != 0:
        raise InfraError(f"mksquashfs {out.name} failed: {r.stderr.strip()[-300:]}", retryable=False)


def _write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    path.chmod(mode)


def build_channel(out: Path, minor: str, version: str) -> None:
    """base.snap and microk8s.snap for MicroK8s track `minor` into `out`."""
    tag = f"v{minor}"
    template = git_show(REPO, tag, plan.TEMPLATE_SOURCE)
    base = yaml.safe_load(git_show(REPO, tag, "snap/snapcraft.yaml"))["base"]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="archmatrix-snap-") as tmp:
        b = Path(tmp) / "base"
        _write(b / "meta/snap.yaml", yaml.safe_dump({
            "name": base, "version": "standin", "type": "base", "grade": "devel",
            "summary": f"archmatrix stand-in for the {base} base (rehearsal)",
            "description": "Empty: MicroK8s is classic, its commands run on the node's own root."}))
        for d in ("bin", "etc", "lib", "usr", "var", "tmp", "dev", "proc", "sys", "run", "snap", "home", "root"):
            (b / d).mkdir(parents=True, exist_ok=True)
        m = Path(tmp) / "microk8s"
        _write(m / "meta/snap.yaml", yaml.safe_dump({
            "name": "microk8s", "version": version, "base": base, "confinement": "classic", "grade": "devel",
            "summary": "archmatrix stand-in for MicroK8s (rehearsal: no Kubernetes server binary here)",
            "description": f"MicroK8s {tag}'s containerd template and install hook; its app answers version only.",
            "apps": {"microk8s": {"command": "microk8s.wrapper"}}}, sort_keys=False))
        _write(m / "meta/hooks/install", INSTALL_HOOK, 0o755)
        _write(m / "microk8s.wrapper", WRAPPER, 0o755)
        _write(m / "default-args/containerd-template.toml", template)
        s = Path(tmp) / "snapd"
        _write(s / "meta/snap.yaml", yaml.safe_dump({
            "name": "snapd", "version": "standin", "type": "snapd", "grade": "devel",
            "summary": "archmatrix stand-in for the snapd system snap (rehearsal)",
            "description": "Empty: the node's snapd is Debian's package."}))
        # installing a snapd snap makes snapd compute a host profile for the snap-confine inside it from
        # that snap's vanilla AppArmor profile (the node's snapd 2.57: "cannot open apparmor profile for
        # vanilla snap-confine: open /snap/snapd/x1/etc/apparmor.d/usr.lib.snapd.snap-confine"): Debian's own
        _write(s / "etc/apparmor.d/usr.lib.snapd.snap-confine",
               debian.fetch_file("snapd", "amd64", "etc/apparmor.d/usr.lib.snapd.snap-confine.real").read_text())
        _pack(s, out / "snapd.snap")
        _pack(b, out / "base.snap")
        _pack(m, out / "microk8s.snap")


def build(root: Path, cells: list[Cell], progress=print) -> dict[str, str]:
    """The stand-in snaps for every MicroK8s cell's channel, under root/snap/<minor>-<risk>/."""
    if shutil.which("mksquashfs") is None:
        raise InfraError("mksquashfs not found: install squashfs-tools (archmatrix deps)", retryable=False)
    done = set()
    for c in (c for c in cells if c.bootstrapper == "microk8s"):
        channel = upstream.microk8s_channel(c.release.minor, c.arch)[0]
        if channel in done:
            continue
        done.add(channel)
        build_channel(Path(root) / BASE / channel.replace("/", "-"), c.release.minor, f"{c.release.tag}.0")
        progress(f"rehearsal: stand-in MicroK8s snap for {channel}")
    return {}


def options(node_url: str) -> dict:
    return {"snap_base": f"{node_url}/{BASE}"}
