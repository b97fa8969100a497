"""The cell grid in the terminal: one block per (distro, bootstrapper, provider), rows arch,
columns Kubernetes version, each cell its counts."""
from __future__ import annotations

from collections import Counter, defaultdict

from ..matrix import platforms

SYMBOL = {"passed": "✓", "failed": "✗", "error": "E", "unsupported": "-", "skipped": "s"}


def cell_status(counts: Counter) -> str:
    """The one word a cell's colour says: failed > error > passed > unsupported > not run."""
    for o in ("failed", "error", "passed", "unsupported", "skipped"):
        if counts.get(o):
            return o
    return "not run"


def summarize(run) -> dict:
    """{(distro, bootstrapper, provider): {(arch, k8s): Counter}}"""
    grids: dict = defaultdict(lambda: defaultdict(Counter))
    for r in run.records:
        a = r.axes
        grids[(a.get("distro"), a.get("bootstrapper"), a.get("provider"))][(a.get("arch"), a.get("kubernetes"))][r.outcome] += 1
    return grids


def _label(counts: Counter) -> str:
    status = cell_status(counts)
    if status == "unsupported":
        return "unsupported"
    parts = [f"{counts[o]}{SYMBOL[o]}" for o in ("passed", "failed", "error") if counts.get(o)]
    return " ".join(parts) or status


def grid(run) -> list[str]:
    lines = []
    for (distro, boot, prov), cells in sorted(summarize(run).items(), key=lambda kv: tuple(map(str, kv[0]))):
        versions = sorted({k for _, k in cells}, key=lambda v: tuple(int(x) for x in v.split(".")))
        arches = sorted({a for a, _ in cells}, key=platforms.arch_order)
        lines.append(f"{distro} / {boot} / {prov}")
        width = max([len(_label(c)) for c in cells.values()] + [6])
        lines.append("  " + f"{'arch':8}" + "".join(f" {'v' + v:>{width}}" for v in versions))
        for a in arches:
            row = "".join(f" {_label(cells[(a, v)]) if (a, v) in cells else 'not run':>{width}}" for v in versions)
            lines.append(f"  {a:8}{row}")
    lines.append("  (✓ passed  ✗ failed  E error: infrastructure  unsupported: cannot exist)")
    return lines
