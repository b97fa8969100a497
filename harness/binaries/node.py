"""Gathering facts from a node for the suites (checks stay pure; this is the part that asks)."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..checks import elf
from .rangefile import RangeFile


@dataclass(frozen=True)
class Located:
    name: str
    path: str  # resolved (symlinks followed)
    size: int


def locate(node, name: str) -> Located | None:
    """Where `name` is on the node's PATH (symlinks resolved), or None. One round trip."""
    q = shlex.quote(name)
    out = node.run(f"p=$(command -v {q}) && r=$(readlink -f \"$p\") && printf '%s\\n%s\\n' \"$r\" "
                   f"\"$(stat -Lc %s \"$r\")\"")
    if out.rc != 0 or not out.stdout.strip():
        return None
    path, size = out.stdout.strip().splitlines()[:2]
    return Located(name, path, int(size))


def inspect(node, found: Located) -> elf.Exe:
    """Headers and Go build info of a node binary, read in ranges (no full copy)."""
    return elf.inspect(RangeFile(lambda off, n: node.read_range(found.path, off, n), found.size))
