"""History across runs: per cell a strip of statuses, flakes (a test that flipped between
passed and failed in consecutive runs of the same cell with the same inputs) and failures
that are new since the last green run of that test."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .grid import cell_status


@dataclass
class CellHistory:
    statuses: list[tuple[str, str]] = field(default_factory=list)  # (run id, status), oldest first
    flaky: set[str] = field(default_factory=set)  # tests
    new_since_green: dict[str, str] = field(default_factory=dict)  # failing test -> run id of its last pass
    durations: list[tuple[str, float]] = field(default_factory=list)  # (run id, seconds of all tests)
    boot: list[tuple[str, float]] = field(default_factory=list)  # (run id, provision seconds)


def analyse(runs: list) -> dict[str, CellHistory]:
    """`runs` oldest first, the current run last."""
    out: dict[str, CellHistory] = defaultdict(CellHistory)
    last: dict[tuple[str, str], tuple[str, str]] = {}  # (cell, test) -> (outcome, inputs) in the previous run
    last_pass: dict[tuple[str, str], str] = {}
    for run in runs:
        by_cell: dict[str, list] = defaultdict(list)
        for r in run.records:
            by_cell[r.cell].append(r)
        for cell, recs in by_cell.items():
            h = out[cell]
            h.statuses.append((run.id, cell_status(Counter(r.outcome for r in recs))))
            h.durations.append((run.id, round(sum(r.duration for r in recs), 3)))
            boot = next((float(r.properties["provision_seconds"]) for r in recs if "provision_seconds" in r.properties), None)
            if boot is not None:
                h.boot.append((run.id, boot))
            inputs = run.inputs.get(cell, "")
            for r in recs:
                key = (cell, r.test)
                prev = last.get(key)
                if prev and prev[1] == inputs and {prev[0], r.outcome} == {"passed", "failed"}:
                    h.flaky.add(r.test)
                last[key] = (r.outcome, inputs)
                if r.outcome == "passed":
                    last_pass[key] = run.id
    current = runs[-1]
    for r in current.records:
        if r.outcome in ("failed", "error"):
            since = last_pass.get((r.cell, r.test))
            if since is not None:
                out[r.cell].new_since_green[r.test] = since
    return dict(out)
