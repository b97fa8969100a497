"""The cell grid every report draws (terminal, dashboard): one block per (distro, bootstrapper,
provider), rows arch in the platform table's order, columns Kubernetes version oldest first,
each cell the counts of its outcomes, and the one word its colour says."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from ..matrix import platforms


NOTHING_JUDGED = "nothing judged"


def cell_status(counts: Counter) -> str:
    """The one word a cell's colour says: failed > error > passed > nothing judged (its tests
    only skipped: not green) > unsupported > not run."""
    for o in ("failed", "error", "passed"):
        if counts.get(o):
            return o
    if counts.get("skipped"):
        return NOTHING_JUDGED
    return "unsupported" if counts.get("unsupported") else "not run"


def run_status(run) -> str:
    """The run's word: failed > error > passed, else nothing judged (skips, unsupported, nothing)."""
    status = cell_status(Counter(r.outcome for r in run.records))
    return status if status in ("failed", "error", "passed") else NOTHING_JUDGED


def summarize(run) -> dict:
    """{(distro, bootstrapper, provider): {(arch, k8s): Counter}}"""
    grids: dict = defaultdict(lambda: defaultdict(Counter))
    for r in run.records:
        a = r.axes
        block = (a.get("distro"), a.get("bootstrapper"), a.get("provider"))
        grids[block][(a.get("arch"), a.get("kubernetes"))][r.outcome] += 1
    return grids


@dataclass
class Block:
    key: tuple  # (distro, bootstrapper, provider)
    cells: dict  # (arch, kubernetes) -> Counter of outcomes
    arches: list[str]  # rows
    versions: list[str]  # columns

    @property
    def title(self) -> str:
        return " / ".join(map(str, self.key))


def blocks(run) -> list[Block]:
    return [Block(key, cells, sorted({a for a, _ in cells}, key=platforms.arch_order),
                  sorted({v for _, v in cells}, key=lambda v: tuple(int(x) for x in v.split("."))))
            for key, cells in sorted(summarize(run).items(), key=lambda kv: tuple(map(str, kv[0])))]
