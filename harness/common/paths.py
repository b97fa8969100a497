"""Where the harness keeps its files between runs: one cache root, shared by the image cache, the
apt downloads, the QEMU run records, the ssh host locks and the test labs."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$ARCHMATRIX_CACHE, else $XDG_CACHE_HOME/archmatrix, else ~/.cache/archmatrix (made if missing)."""
    base = Path(os.environ.get("ARCHMATRIX_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                / "archmatrix")
    base.mkdir(parents=True, exist_ok=True)
    return base
