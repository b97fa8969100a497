"""Stand-ins for k3s' sources (issue #16 rehearsal): get.k3s.io serves k3s' real install script,
which then runs for real on the node (its download, sha256 check, symlinks, systemd unit,
killall/uninstall scripts) against GitHub's release layout and the channel server, served here:

  k3s/install.sh                                    get.k3s.io
  k3s/channels/v1.X  -> 302 k3s/releases/tag/<v>    update.k3s.io/v1-release/channels (INSTALL_K3S_CHANNEL_URL)
  k3s/releases/download/<v>/k3s<suffix>             github.com/k3s-io/k3s/releases (GITHUB_URL)
  k3s/releases/download/<v>/sha256sum-<arch>.txt

The binaries are stand-ins (shell scripts saying so on stderr): `--version` prints the version,
`agent --help` the --pause-image default that k3s version ships (bootstrap/k3s.py's table), and a
`server`/`agent` run fails: starting k3s is the first step needing a real Kubernetes binary."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..bootstrap import k3s as k3s_plan
from ..matrix.cells import Cell
from .upstream_copy import pinned_file

# k3s-io/k3s install.sh at 0136cf258954a458da1404858396342724b93d24 (what get.k3s.io serves)
INSTALL_SH = ("k3s-io/k3s", "0136cf258954a458da1404858396342724b93d24", "install.sh",
              "40b487f0d8ef4f5d1bf422e7bb6228cc7789c40ecc66c5ab067d396bbee9816e")
# install.sh setup_verify_arch: ARCH (the sha256sum-<ARCH>.txt name) and SUFFIX (the binary's k3s<SUFFIX>)
# per `uname -m`'s arch; anything else is "Unsupported architecture" (upstream.PUBLISHED says which we run)
ASSET = {"amd64": ("amd64", ""), "arm64": ("arm64", "-arm64"), "s390x": ("s390x", "-s390x"), "arm": ("arm", "-armhf")}
BASE = "k3s"  # where under the stand-ins' root


def version_of(cell: Cell, pinned: str | None = None) -> str:
    """The stand-in release of the cell's minor (a pin wins): k3s' tag form vX.Y.Z+k3sN."""
    return pinned or f"{cell.release.tag}.0+k3s1"


def standin(version: str, arch: str, pause: str | None) -> str:
    """The stand-in k3s binary: a script answering what the plan asks and refusing to run k3s."""
    help_line = f'   --pause-image value  (agent/runtime) Customized pause image for containerd or docker sandbox ' \
                f'(default: "{pause}")' if pause else ""
    return f"""#!/bin/sh
# archmatrix stand-in for k3s {version} ({arch}): no Kubernetes server binary exists on this machine
echo "archmatrix stand-in for k3s {version}: k3s $*" >&2
case "$1 $2" in
  "--version "*|"-v "*|"version "*) echo "k3s version {version} (stand-in)"; exit 0 ;;
  "agent --help"|"server --help") printf '%s\\n' 'NAME:' "   k3s $1 - stand-in" 'OPTIONS:' '{help_line}'; exit 0 ;;
esac
echo "archmatrix stand-in for k3s: cannot run '$*' (a real k3s binary is needed)" >&2
exit 1
"""


def build(root: Path, cells: list[Cell], progress=print, pinned: str | None = None) -> dict[str, str]:
    """Write get.k3s.io's, GitHub's and the channel server's files for the k3s cells under root/k3s;
    return the channel redirects."""
    cells = [c for c in cells if c.bootstrapper == "k3s"]
    base = Path(root) / BASE
    (base / "releases" / "tag").mkdir(parents=True, exist_ok=True)
    (base / "install.sh").write_bytes(pinned_file(*INSTALL_SH))
    redirects = {}
    for minor in sorted({c.release.minor for c in cells}):
        cell = next(c for c in cells if c.release.minor == minor)
        version = version_of(cell, pinned)
        pause = k3s_plan.shipped_pause_tag(minor, version)
        download = base / "releases" / "download" / version
        download.mkdir(parents=True, exist_ok=True)
        for arch, (name, suffix) in ASSET.items():
            binary = download / f"k3s{suffix}"
            binary.write_text(standin(version, arch, f"rancher/mirrored-pause:{pause}" if pause else None))
            binary.chmod(0o755)
            digest = hashlib.sha256(binary.read_bytes()).hexdigest()
            (download / f"sha256sum-{name}.txt").write_text(f"{digest}  k3s{suffix}\n")
        (base / "releases" / "tag" / version).write_text(f"k3s {version} (stand-in release page)\n")
        redirects[f"/{BASE}/channels/v{minor}"] = f"/{BASE}/releases/tag/{version}"
        progress(f"rehearsal: k3s {version} stand-ins for {', '.join(ASSET)}")
    return redirects


def options(node_url: str) -> dict:
    return {"k3s_install_url": f"{node_url}/{BASE}/install.sh", "k3s_github_url": f"{node_url}/{BASE}/releases",
            "k3s_channel_url": f"{node_url}/{BASE}/channels"}
