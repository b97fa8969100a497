"""This machine as the node: the matrix's capability rules allow only its own arch and distro."""
from __future__ import annotations

import platform
from pathlib import Path

from ..matrix.cells import Cell
from .base import Node, Provider, Transport


class LocalProvider(Provider):
    name = "local"

    def start(self, cell: Cell, artifacts: Path) -> Node:
        return Node(cell, Transport(), artifacts, facts={"accelerator": "native", "kernel": platform.release()})
