"""binfmt_misc on this machine: foreign-arch programs (an image build's maintainer scripts, a
container node's processes) run under qemu-user through it."""
from __future__ import annotations

import subprocess
from pathlib import Path

from ..common.errors import InfraError
from ..matrix import platforms


def ensure(p: platforms.Platform) -> None:
    """Mount binfmt_misc and register qemu-user for `p` (from qemu-user-static's binfmt.d entry)."""
    if p is platforms.host():
        return
    mnt = Path("/proc/sys/fs/binfmt_misc")
    if not (mnt / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(mnt)], check=False, capture_output=True)
    name = p.qemu_user.removesuffix("-static")  # qemu-arm, qemu-aarch64, qemu-s390x: binfmt entry names
    entry = mnt / name
    conf = Path(f"/usr/lib/binfmt.d/{name}.conf")
    if not entry.exists() and conf.is_file() and (mnt / "register").exists():
        try:
            (mnt / "register").write_text(conf.read_text().strip())
        except OSError:
            pass
    if not entry.exists():
        raise InfraError(f"binfmt_misc has no {name} entry: apt-get install qemu-user-static (in a container: "
                         f"mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc)", retryable=False)
