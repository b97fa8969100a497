"""The GCS layout TestGrid and Spyglass read (test-infra docs: "job artifacts GCS layout"):
started.json, finished.json (result + metadata), build-log.txt, artifacts/junit_*.xml, plus
each cell's logs under artifacts/<cell>/."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import junit
from .grid import run_status


def write(run, out: Path, build_log: str = "") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    arts = out / "artifacts"
    arts.mkdir(exist_ok=True)
    axes = {a: sorted({r.axes.get(a) for r in run.records if r.axes.get(a)})
            for a in ("arch", "distro", "kubernetes", "bootstrapper", "provider")}
    meta = {f"archmatrix-{a}": ",".join(v) for a, v in axes.items()}
    (out / "started.json").write_text(json.dumps({"timestamp": int(run.started), "metadata": meta}, indent=1))
    # a run that judged nothing (only skips) is not a SUCCESS: run.passed says so, the metadata why
    (out / "finished.json").write_text(json.dumps({
        "timestamp": int(run.finished or run.started), "passed": run.passed,
        "result": "SUCCESS" if run.passed else "FAILURE",
        "metadata": {**meta, "run": run.id, "archmatrix-status": run_status(run), "archmatrix-judged": str(run.judged)}},
        indent=1))
    (out / "build-log.txt").write_text(build_log or "\n".join(
        f"{r.outcome.upper():11} {r.cell} {r.test} {r.message}".rstrip() for r in run.records) + "\n")
    junit.write(run, arts / f"junit_{run.shard.replace('/', 'of') if run.shard else '01'}.xml")
    for r in run.records:  # each cell's serial log and commands, next to its JUnit
        for name, src in r.artifacts.items():
            p = Path(src)
            if p.is_file():
                dest = arts / r.cell / p.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.exists():
                    shutil.copyfile(p, dest)
    return out
