"""Which cells start first: the longest, so a run's critical path starts at minute 0 (issue #19: a
riscv64 cell began its 6-minute image build at minute 14 of a 2-worker night, after every quick cell).

A cell's expected seconds come from the last run's results.json when it has the cell (the sum of its
records' durations: provisioning and bootstrap are inside its first test's), without the image build
that run paid if the image is cached now; otherwise from the estimates below. Only the order changes:
every cell still runs, and equal cells keep matrix order.
"""
from __future__ import annotations

import json
from pathlib import Path

from .cells import Cell

# Estimates for cells no earlier run recorded, in seconds, measured on this project's 2-core lab
# (shared/notes, closing notes): a foreign mmdebstrap build 5-6.5 min, a native one ~2.5 min; a TCG boot
# 30-60 s (foreign slower); the distro bootstrap's apt under TCG 55-98 s; an upstream bootstrap
# (packages, runtime, control plane) several minutes; local and ssh cells start in seconds.
BUILD = {"native": 150, "foreign": 390}
BOOT = {"native": 45, "foreign": 75}
BOOTSTRAP = {"none": 0, "distro": 100}
UPSTREAM_BOOTSTRAP = 300  # kubeadm, microk8s, k3s
SUITES = 15


def _image_cached(cell: Cell) -> bool:
    from ..nodes.images import build as images

    try:
        return images.lookup(cell.platform, cell.os) is not None
    except Exception:  # an image the lab cannot make (Windows, Ubuntu without files): not a build to wait for
        return True


def estimate(cell: Cell) -> float:
    """Seconds this cell should take, from the figures above."""
    if cell.unsupported:
        return 0.0
    from . import platforms

    kind = "native" if cell.platform is platforms.host() else "foreign"
    seconds = SUITES + BOOTSTRAP.get(cell.bootstrapper, UPSTREAM_BOOTSTRAP)
    if cell.provider in ("qemu", "docker"):
        seconds += (BOOT[kind] if cell.provider == "qemu" else 5) + (0 if _image_cached(cell) else BUILD[kind])
    return float(seconds)


def recorded(results: Path) -> dict[str, tuple[float, float]]:
    """cell id -> (seconds its records took, seconds of it that built an image) in a results.json;
    {} when there is none or it cannot be read (a first run, a torn file: estimates then)."""
    try:
        run = json.loads(Path(results).read_text())
        records = run["records"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out: dict[str, tuple[float, float]] = {}
    for r in records:
        try:
            total, image = out.get(r["cell"], (0.0, 0.0))
            image_s = float((r.get("properties") or {}).get("image_seconds") or 0)
            out[r["cell"]] = (total + float(r.get("duration") or 0), max(image, image_s))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def expected(cell: Cell, before: dict[str, tuple[float, float]]) -> tuple[float, str]:
    """(seconds, "recorded" | "estimated")."""
    if cell.id in before and not cell.unsupported:
        total, image = before[cell.id]
        if image and _image_cached(cell):
            total -= image
        return max(total, 0.0), "recorded"
    return estimate(cell), "estimated"


def longest_first(cells: list[Cell], results: Path | None) -> tuple[list[Cell], str]:
    """The cells, longest expected first (stable), and one line saying how the order was decided."""
    before = recorded(results) if results is not None else {}
    seen = {c.id: expected(c, before) for c in cells}
    ordered = sorted(cells, key=lambda c: -seen[c.id][0])
    n_rec = sum(1 for s, how in seen.values() if how == "recorded")
    head = ", ".join(f"{c.id} ~{seen[c.id][0]:.0f} s" for c in ordered[:2] if not c.unsupported)
    return ordered, (f"cell order: longest first ({n_rec} from {results}, {len(cells) - n_rec} estimated)"
                     + (f": {head}, ..." if head else ""))
