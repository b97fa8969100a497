"""No cluster: node-level suites only. The node's own shell is checked (a node image of the
wrong arch shows up here), and any Kubernetes binary that happens to be on it."""
from __future__ import annotations

from ..matrix.cells import Cell
from .base import KNOWN_BINARIES, VERSION_ARGS, Binary, Bootstrapper


class NoBootstrapper(Bootstrapper):
    name = "none"

    def binaries(self, cell: Cell) -> list[Binary]:
        optional = [Binary(n, required=False, version_args=VERSION_ARGS[n]) for n in KNOWN_BINARIES if n != "sh"]
        return [Binary("sh", version_args=())] + optional
