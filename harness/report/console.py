"""The cell grid in the terminal: one block per (distro, bootstrapper, provider), rows arch,
columns Kubernetes version, each cell its counts."""
from __future__ import annotations

from collections import Counter

from .grid import NOTHING_JUDGED, blocks, cell_status

SYMBOL = {"passed": "✓", "failed": "✗", "error": "E", "unsupported": "-", "skipped": "s"}


def _label(counts: Counter) -> str:
    status = cell_status(counts)
    if status == "unsupported":
        return "unsupported"
    parts = [f"{counts[o]}{SYMBOL[o]}" for o in ("passed", "failed", "error") if counts.get(o)]
    return " ".join(parts) or status


def grid(run) -> list[str]:
    lines = []
    for b in blocks(run):
        lines.append(b.title)
        width = max([len(_label(c)) for c in b.cells.values()] + [6])
        lines.append("  " + f"{'arch':8}" + "".join(f" {'v' + v:>{width}}" for v in b.versions))
        for a in b.arches:
            row = "".join(f" {_label(b.cells[(a, v)]) if (a, v) in b.cells else 'not run':>{width}}"
                          for v in b.versions)
            lines.append(f"  {a:8}{row}")
    lines.append(f"  (✓ passed  ✗ failed: the product  E error: the lab  unsupported: cannot exist  "
                 f"{NOTHING_JUDGED}: only skips)")
    return lines
