"""results.json: one record per cell and test (one per cell for an unsupported cell); the source
of every other report.

Outcomes (docs/ARCHITECTURE.md "Outcomes"): passed and failed (the product judged), error (the
lab could not do its part), unsupported (cannot exist, with the reason), skipped (not applicable
here, with the reason). A run or cell with no passed or failed test judged nothing.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

OUTCOMES = ("passed", "failed", "error", "unsupported", "skipped")
JUDGED = ("passed", "failed")  # the product was judged; the others say why it was not
WHOLE_CELL = "(cell)"  # the test name of a record that stands for every test of its cell (unsupported)
SCHEMA = 1


@dataclass
class Record:
    cell: str
    test: str
    outcome: str
    duration: float = 0.0
    message: str = ""
    axes: dict = field(default_factory=dict)
    properties: dict = field(default_factory=dict)  # provider facts: accelerator, boot seconds, ...
    artifacts: dict = field(default_factory=dict)


@dataclass
class Run:
    id: str
    started: float
    finished: float = 0.0
    shard: str | None = None
    inputs: dict = field(default_factory=dict)  # cell -> fingerprint of what went in (for flake detection)
    records: list[Record] = field(default_factory=list)

    @property
    def judged(self) -> int:
        """How many tests judged the product (passed or failed)."""
        return sum(r.outcome in JUDGED for r in self.records)

    @property
    def passed(self) -> bool:
        """Green: something was judged, and nothing failed or errored (skips alone are not green)."""
        return self.judged > 0 and all(r.outcome in ("passed", "skipped", "unsupported") for r in self.records)

    def to_json(self) -> dict:
        # a cell's axes are stored once, not in each of its records (a 30-night history loads
        # twice as fast); shallow vars(), not asdict(), which deep-copies every record
        cells = {r.cell: r.axes for r in self.records}
        return {"schema": SCHEMA, "run": {k: v for k, v in vars(self).items() if k != "records"}, "cells": cells,
                "records": [{k: v for k, v in vars(r).items() if k != "axes"} for r in self.records]}


def new_run(shard: str | None = None) -> Run:
    rid = os.environ.get("ARCHMATRIX_RUN_ID") or time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    return Run(rid, time.time(), shard=shard)


def load(path: str | Path) -> Run:
    from ..common.errors import UserError

    p = Path(path)
    try:
        data = json.loads(p.read_text())
        meta, recs = data["run"], data["records"]
        run = Run(**{k: meta.get(k) for k in ("id", "started", "finished", "shard")}, inputs=meta.get("inputs") or {})
        cells = data.get("cells", {})
        run.records = [Record(**{"axes": cells.get(r["cell"], {}), **r}) for r in recs]  # older files: axes per record
        return run
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{p}: not an archmatrix results.json ({type(e).__name__}: {e})") from None


def save(run: Run, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(run.to_json(), separators=(",", ":")))  # compact: json's C encoder
    os.replace(tmp, p)  # never a half-written results.json
    return p


def merge(runs: list[Run]) -> Run:
    """Shards of one run -> one run (records joined; a cell in two shards is an error)."""
    from ..common.errors import UserError

    if not runs:
        raise UserError("report --merge: no results to merge")
    out = Run(runs[0].id, min(r.started for r in runs), max(r.finished for r in runs))
    owner: dict[str, str] = {}
    for r in runs:
        for rec in r.records:
            if owner.setdefault(rec.cell, r.shard or r.id) != (r.shard or r.id):
                raise UserError(f"report --merge: cell {rec.cell} appears in two shards")
        out.records.extend(r.records)
        out.inputs.update(r.inputs)
    return out


def fingerprint(axes: dict, facts: dict) -> str:
    """What went into a cell's run: its axes, the harness version, and facts that name inputs
    (image digests, QEMU and kernel versions). Same fingerprint + flipped outcome = flake."""
    import hashlib

    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("archmatrix")
    except PackageNotFoundError:
        ver = "source"
    keep = {k: v for k, v in facts.items() if k in ("image", "image_digest", "qemu_version", "kernel", "engine")}
    return hashlib.sha256(json.dumps([ver, axes, keep], sort_keys=True).encode()).hexdigest()[:16]


def outcome_of(reports: dict) -> tuple[str, str, float]:
    """pytest TestReports of one test by phase -> (outcome, message, seconds)."""
    duration = sum(r.duration for r in reports.values())
    setup, call = reports.get("setup"), reports.get("call")
    # then any other phase: xdist's report of a worker that crashed mid-test has when="???" (its setup
    # may have passed already: without it the test would read as passed)
    for when in ("setup", "call", "teardown", *sorted(set(reports) - {"setup", "call", "teardown"})):
        r = reports.get(when)
        if r is None:
            continue
        if r.skipped:
            reason = r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)
            reason = reason.removeprefix("Skipped: ")
            return ("unsupported" if reason.startswith("unsupported:") else "skipped"), reason, duration
        if r.failed:
            if when == "call" and ("archmatrix.infra_error", "call") not in r.user_properties:
                return "failed", _short(r), duration
            return "error", _first_line(r), duration
    return ("passed" if (call or setup) else "skipped"), "", duration


def _first_line(rep) -> str:
    """The error's own first line. Not the report's text: under xdist that starts with the worker's
    header ("[gw1] linux -- Python ..."), which says nothing of what went wrong."""
    longrepr = rep.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    text = longrepr if isinstance(longrepr, str) else crash.message if crash is not None else str(longrepr)
    return next((line.strip()[:500] for line in text.splitlines() if line.strip()), "error")


def _short(rep) -> str:
    """The assertion message of a failed call, without pytest's source listing."""
    crash = getattr(rep.longrepr, "reprcrash", None)
    msg = crash.message if crash is not None else str(rep.longrepr)
    return msg.removeprefix("AssertionError: ").split("\nassert ")[0].strip()[:1000]
