"""`archmatrix rehearse`: each cell's plan run for real on an emulated node against the stand-ins, up
to (not including) its first step that needs a real Kubernetes binary (Step.kubernetes).

The runner builds the stand-ins once, serves them (server.StandIns), and for each cell provisions a
node with the normal provider, runs the plan's node steps in order with a progress line and the
seconds of each, stops the node; then stops the server (it started both). reports/rehearsal.json
says, per cell, every step with its seconds and outcome and where and why it stopped, with
`cluster: rehearsal`: a rehearsed cell is never the bootstrapper passing.

Cell outcomes: `rehearsed` (every step before the Kubernetes point passed), `failed` (a step of the
product failed: ProductFailure), `error` (the lab's: InfraError), `skipped` (the cell cannot exist,
or its bootstrapper has no stand-in yet). Exit 1 when any cell failed or errored."""
from __future__ import annotations

import importlib
import itertools
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..bootstrap import get
from ..bootstrap.base import Options
from ..bootstrap.steps import Step, run_steps
from ..common.errors import InfraError, ProductFailure, UserError
from ..matrix import upstream
from ..matrix.axes import normalise
from ..matrix.cells import Cell
from .server import StandIns

# The stand-in sources each bootstrapper's plans use (harness/rehearsal/<module>.py: build(), options()).
# One place: a module not there yet (snapk3s adds k3s and microk8s) makes its cells "no stand-in yet".
SOURCES = {
    "kubeadm": ("pkgs", "github"),
    "microk8s": ("microk8s",),
    "k3s": ("k3s",),
}
DEFAULTS = {"arch": ["amd64", "s390x"], "distro": ["debian12", "debian13"],
            "bootstrapper": ["kubeadm", "microk8s", "k3s"], "kubernetes": ["latest"]}
CLUSTER = "rehearsal"  # what results call the cluster: never the real bootstrapper's


def until_kubernetes(steps: list[Step]) -> tuple[list[Step], Step | None]:
    """The steps a rehearsal runs (everything before the first Step.kubernetes) and that step."""
    for i, s in enumerate(steps):
        if s.kubernetes:
            return steps[:i], s
    return list(steps), None


@dataclass
class CellResult:
    cell: Cell
    outcome: str = "rehearsed"
    steps: list[dict] = field(default_factory=list)
    stopped_at: str | None = None  # the step it stopped before (Kubernetes point) or at (failure)
    why: str = ""
    node: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"id": self.cell.id, **self.cell.axes(), "cluster": CLUSTER, "outcome": self.outcome,
                "stopped_at": self.stopped_at, "why": self.why, "steps": self.steps,
                "seconds": round(sum(s["seconds"] for s in self.steps), 1), "node": self.node}


def select(arch=(), distro=(), bootstrapper=(), kubernetes=()) -> list[Cell]:
    """The cells to rehearse: the product of the given values (comma-separated, aliases accepted;
    DEFAULTS where none), provider qemu. Unknown names: UserError."""
    axes = {}
    for axis, given in (("arch", arch), ("distro", distro), ("bootstrapper", bootstrapper), ("kubernetes", kubernetes)):
        values = [v.strip() for g in (given or DEFAULTS[axis]) for v in g.split(",") if v.strip()]
        axes[axis] = list(dict.fromkeys(normalise(axis, v) for v in values))
    cells = []
    for a, d, k, b in itertools.product(axes["arch"], axes["distro"], axes["kubernetes"], axes["bootstrapper"]):
        c = Cell(a, d, k, b, "qemu")
        if a not in c.os.arches:
            reason = f"{d} has no {a}"
        else:
            reason = upstream.refusal(b, a, c.release, c.os)
        cells.append(Cell(a, d, k, b, "qemu", unsupported=reason))
    return cells


def _source(name: str):
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.{name}":
            raise
        return None


def stand_in_modules(bootstrapper: str) -> list | None:
    """The bootstrapper's stand-in modules, None when one of them does not exist yet."""
    mods = [_source(n) for n in SOURCES.get(bootstrapper, ())]
    return None if not mods or None in mods else mods


def rehearse_cell(cell: Cell, node, options: Options, log: Path, progress: Callable[[str], None],
                  result: CellResult) -> None:
    """Run the cell's plan on the node up to its Kubernetes point, recording each step in result."""
    b = get(cell.bootstrapper, options)

    def plan(facts):
        steps, stop = until_kubernetes(b.plan(cell, facts=facts))
        result.stopped_at = stop.name if stop else None
        return steps

    def record(step: Step, seconds: float, error: Exception | None) -> None:
        outcome = "passed" if error is None else ("failed" if isinstance(error, ProductFailure) else "error")
        result.steps.append({"step": step.name, "seconds": round(seconds, 1), "outcome": outcome,
                             "lab": step.lab})
        name = step.name if len(step.name) <= 90 else step.name[:87] + "..."  # the results file has it whole
        progress(f"{cell.id}: {name}: {outcome} ({seconds:.1f} s)")

    run_steps(node, plan, log, progress=lambda _line: None, label=cell.bootstrapper, on_step=record)
    result.why = (f"stopped before '{result.stopped_at}': it needs a real Kubernetes binary (none exists here)"
                  if result.stopped_at else "the plan has no step that needs a real Kubernetes binary")


def run(cells: list[Cell], out_dir: Path, provider_factory=None, progress: Callable[[str], None] = print,
        inspect: Callable | None = None) -> list[CellResult]:
    """Rehearse every cell; write out_dir/rehearsal.json. `provider_factory(progress)`: the node
    provider (default: QEMU). `inspect(node, result)`: called before each node stops (tests look)."""
    if provider_factory is None:
        from ..nodes.qemu import QemuProvider
        provider_factory = lambda p: QemuProvider(progress=p)  # noqa: E731
    results = [CellResult(c) for c in cells]
    runnable = []
    for r in results:
        mods = stand_in_modules(r.cell.bootstrapper)
        if r.cell.unsupported:
            r.outcome, r.why = "skipped", f"unsupported: {r.cell.unsupported}"
        elif mods is None:
            missing = [n for n in SOURCES.get(r.cell.bootstrapper, ()) if _source(n) is None]
            r.outcome, r.why = "skipped", f"no stand-in yet (harness/rehearsal/{', '.join(missing)}.py)"
        else:
            runnable.append((r, mods))
    inputs: dict[str, str] = {}
    root = Path(tempfile.mkdtemp(prefix="archmatrix-standins-"))
    done: set[int] = set()  # the results whose cell's rehearsal ran to its end
    current, interrupted = None, False
    server = None
    try:
        redirects: dict[str, str] = {}
        modules = list({m.__name__: m for _, mods in runnable for m in mods}.values())
        for m in modules:
            t0 = time.monotonic()
            redirects.update(m.build(root, [r.cell for r, _ in runnable], progress))
            progress(f"rehearsal: stand-in {m.__name__.rsplit('.', 1)[1]} built ({time.monotonic() - t0:.1f} s)")
            if hasattr(m, "describe"):
                inputs[m.__name__.rsplit(".", 1)[1]] = m.describe()
        if runnable:
            server = StandIns(root, redirects)
        for r, mods in runnable:
            opts = {}
            for m in mods:
                opts.update(m.options(server.node_url))
            current = r
            _one_cell(r, Options(**opts), out_dir / "rehearsal" / r.cell.id, provider_factory, progress, inspect)
            done.add(id(r))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (cli): the nodes stopped already; say so in the results
        interrupted = True
        for r, _ in runnable:
            if r is current and id(r) not in done:
                r.outcome, r.why = "error", "interrupted (Ctrl-C or SIGTERM) during this cell"
            elif id(r) not in done:
                r.outcome, r.why = "skipped", "interrupted before this cell"
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
    write(out_dir / "rehearsal.json", results, inputs, server)
    if interrupted:
        raise KeyboardInterrupt
    return results


def _provision(cell: Cell, artifacts: Path, provider_factory, progress):
    """The cell's node; a retryable infrastructure error (a boot that timed out) is retried once, as
    the pytest plugin does (plugin.NodePool.provision)."""
    provider = provider_factory(progress)
    try:
        return provider.provision(cell, artifacts)
    except InfraError as e:
        if not e.retryable:
            raise
        progress(f"{cell.id}: infrastructure error, retrying once: {e}")
        return provider.provision(cell, artifacts)


def _one_cell(r: CellResult, options: Options, artifacts: Path, provider_factory, progress, inspect=None) -> None:
    cell = r.cell
    progress(f"{cell.id}: rehearsal: a node, then the plan up to its first step that needs Kubernetes")
    node = None
    t0 = time.monotonic()
    try:
        get(cell.bootstrapper, options).check(cell)  # refused before a node starts
        node = _provision(cell, artifacts, provider_factory, progress)
        r.steps.append({"step": "node boot", "seconds": round(time.monotonic() - t0, 1), "outcome": "passed",
                        "lab": True})
        r.node = {k: v for k, v in node.facts.items() if isinstance(v, (str, int, float, bool))}
        rehearse_cell(cell, node, options, artifacts / "bootstrap.log", progress, r)
        r.node = {k: v for k, v in node.facts.items() if isinstance(v, (str, int, float, bool))}
        if inspect:
            inspect(node, r)
    except ProductFailure as e:
        r.outcome, r.why, r.stopped_at = "failed", str(e), (r.steps[-1]["step"] if r.steps else None)
    except InfraError as e:
        r.outcome, r.why = "error", str(e)
        r.stopped_at = r.steps[-1]["step"] if node is not None and r.steps else "before a node (check or boot)"
    finally:
        if node is not None:
            node.teardown()
    progress(f"{cell.id}: {r.outcome}: {r.why}")


def write(path: Path, results: list[CellResult], inputs: dict[str, str], server: StandIns | None = None) -> None:
    """reports/rehearsal.json, whole or not at all (written beside it, then renamed)."""
    doc = {"cluster": CLUSTER,
           "note": "a rehearsal runs each plan's steps for real against local stand-ins up to the first step that "
                   "needs a real Kubernetes binary; it never counts as the bootstrapper passing",
           "stand_ins": inputs,
           "fetched": sorted(set(server.requests)) if server else [],
           "cells": [r.to_json() for r in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".rehearsal-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def grid(results: list[CellResult]) -> str:
    """One line per cell: outcome, seconds, where it stopped."""
    width = max((len(r.cell.id) for r in results), default=10)
    lines = [f"{'cell':<{width}}  {'outcome':<9}  {'seconds':>7}  stopped at"]
    for r in results:
        secs = sum(s["seconds"] for s in r.steps)
        lines.append(f"{r.cell.id:<{width}}  {r.outcome:<9}  {secs:7.1f}  {r.stopped_at or '-'}"
                     + ("" if r.outcome == "rehearsed" else f"  ({r.why[:100]})"))
    lines.append(f"cluster: {CLUSTER} (stand-ins; never counted as the bootstrapper passing)")
    return "\n".join(lines)


def exit_code(results: list[CellResult]) -> int:
    return 1 if any(r.outcome in ("failed", "error") for r in results) else 0
