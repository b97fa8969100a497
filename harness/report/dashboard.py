"""One self-contained static HTML page (inline CSS, JS and SVG; no fetches): one grid per
(distro, bootstrapper, provider), rows arch, columns Kubernetes version; a click shows the
cell's tests, messages, logs, history strip, flakes and failures new since last green;
boot and test seconds per arch across runs as SVG plots."""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path

from jinja2 import Environment, select_autoescape

from ..matrix import platforms
from .grid import NOTHING_JUDGED, blocks, cell_status, run_status
from .history import analyse

COLOURS = {"passed": "#2e9d4f", "failed": "#d1342f", "error": "#8e44ad", NOTHING_JUDGED: "#e8c547",
           "unsupported": "#b8b8b8", "skipped": "#dcdcdc", "not run": "#ffffff"}

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>archmatrix {{ run.id }}</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:20px} h2{font-size:16px;margin-top:1.6em}
table.grid{border-collapse:collapse} .grid th,.grid td{border:1px solid #999;padding:4px 8px;text-align:center}
.grid td.cell{cursor:pointer;min-width:6em;color:#fff;font-weight:600}
{% for s, c in colours.items() %}.s-{{ s|replace(' ', '-') }}{background:{{ c }}}{% endfor %}
.s-not-run,.s-skipped,.s-unsupported,.s-nothing-judged{color:#333!important}
.strip span{display:inline-block;width:9px;height:14px;margin-right:1px;border:1px solid #0002}
.details{display:none;border:1px solid #999;padding:8px;margin-top:8px}
.details.open{display:block}
.badge{font-size:11px;padding:1px 5px;border-radius:3px;margin-left:4px;color:#fff}
.flake{background:#e67e22} .new{background:#c0392b}
td.msg{text-align:left;font-family:monospace;font-size:12px;white-space:pre-wrap;max-width:60em}
.legend span{padding:2px 8px;margin-right:6px}
figure{display:inline-block;margin:0 1em 1em 0}
</style></head><body>
<h1>archmatrix — run {{ run.id }}</h1>
<p class="totals" data-status="{{ status }}">{{ totals }} · {{ runs|length }} run(s) in history · generated offline: this page fetches nothing</p>
<p class="legend">{% for s, c in colours.items() %}<span class="s-{{ s|replace(' ', '-') }}">{{ s }}</span>{% endfor %}</p>
{% for g in grids %}
<h2>{{ g.title }}</h2>
<table class="grid" data-grid="{{ g.title }}"><tr><th>arch</th>{% for v in g.versions %}<th>v{{ v }}</th>{% endfor %}</tr>
{% for a in g.arches %}<tr><th>{{ a }}</th>{% for v in g.versions %}{% set c = g.cells.get((a, v)) %}
{% if c %}<td class="cell s-{{ c.status|replace(' ', '-') }}" data-cell="{{ c.id }}" data-status="{{ c.status }}"
 onclick="show('{{ c.id }}')">{{ c.label }}{% if c.flaky %}<span class="badge flake" title="flaky">flake</span>{% endif %}{% if c.new %}<span class="badge new" title="new since last green">new</span>{% endif %}</td>
{% else %}<td class="cell s-not-run" data-status="not run">not run</td>{% endif %}{% endfor %}</tr>{% endfor %}
</table>
{% endfor %}
{% for c in details %}
<div class="details" id="d-{{ c.id }}" data-cell="{{ c.id }}"><h3>{{ c.id }} — {{ c.status }}</h3>
<div class="strip" title="history, oldest first">{% for rid, s in c.history %}<span class="s-{{ s|replace(' ', '-') }}" title="{{ rid }}: {{ s }}"></span>{% endfor %}</div>
<table class="tests"><tr><th>outcome</th><th>test</th><th>message</th></tr>
{% for t in c.tests %}<tr class="t-{{ t.outcome }}"><td class="s-{{ t.outcome }}">{{ t.outcome }}</td><td>{{ t.name }}{% if t.flaky %}<span class="badge flake">flake</span>{% endif %}{% if t.since %}<span class="badge new" title="last passed in {{ t.since }}">new since last green ({{ t.since }})</span>{% endif %}</td><td class="msg">{{ t.message }}</td></tr>{% endfor %}
</table>
{% if c.logs %}<p>logs: {% for name, href in c.logs %}<a href="{{ href }}">{{ name }}</a> {% endfor %}</p>{% endif %}
</div>
{% endfor %}
<h2>Seconds per arch across runs</h2>
{% for p in plots %}<figure data-arch="{{ p.arch }}"><figcaption>{{ p.arch }}: boot (blue) and tests (orange), max {{ p.max }} s</figcaption>
<svg width="{{ p.w }}" height="{{ p.h }}" viewBox="0 0 {{ p.w }} {{ p.h }}" role="img">
<rect width="{{ p.w }}" height="{{ p.h }}" fill="#fafafa" stroke="#ccc"/>
<polyline fill="none" stroke="#2471a3" stroke-width="2" points="{{ p.boot }}"/>
<polyline fill="none" stroke="#e67e22" stroke-width="2" points="{{ p.tests }}"/></svg></figure>{% endfor %}
<script>
function show(id){document.querySelectorAll('.details.open').forEach(e=>e.classList.remove('open'));
var d=document.getElementById('d-'+id); if(d){d.classList.add('open'); d.scrollIntoView();}}
</script>
</body></html>"""


def _label(counts: Counter) -> str:
    status = cell_status(counts)
    if status in ("unsupported", "not run"):
        return status
    return " ".join(f"{counts[o]} {o}" for o in ("passed", "failed", "error") if counts.get(o)) or status


def _points(values: list[float], n: int, w: int, h: int, top: float) -> str:
    if not values:
        return ""
    step = (w - 20) / max(n - 1, 1)
    return " ".join(f"{10 + i * step:.1f},{h - 10 - (v / top) * (h - 20):.1f}" for i, v in enumerate(values))


def render(runs: list, out: Path) -> Path:
    """`runs` oldest first; the last is the one shown. Writes out/index.html."""
    run = runs[-1]
    hist = analyse(runs)
    grids = []
    # cell id by (distro, bootstrapper, provider, arch, kubernetes): one pass over the records
    id_of = {tuple(r.axes.get(a) for a in ("distro", "bootstrapper", "provider", "arch", "kubernetes")): r.cell
             for r in run.records}
    for b in blocks(run):
        ids = {key: id_of[(*b.key, *key)] for key in b.cells}
        g = {"title": b.title, "versions": b.versions, "arches": b.arches, "cells": {}}
        for key, counts in b.cells.items():
            h = hist.get(ids[key])
            g["cells"][key] = {"id": ids[key], "status": cell_status(counts), "label": _label(counts),
                               "flaky": bool(h and h.flaky), "new": bool(h and h.new_since_green)}
        grids.append(g)
    by_cell = defaultdict(list)
    for r in run.records:
        by_cell[r.cell].append(r)
    details = []
    for cell, recs in by_cell.items():
        h = hist[cell]
        logs = sorted({(n, os.path.relpath(p, out)) for r in recs for n, p in r.artifacts.items()})
        details.append({"id": cell, "status": cell_status(Counter(r.outcome for r in recs)), "history": h.statuses,
                        "logs": logs, "tests": [{"outcome": r.outcome, "name": r.test.split("::", 1)[-1],
                                                 "message": r.message, "flaky": r.test in h.flaky,
                                                 "since": h.new_since_green.get(r.test)} for r in recs]})
    plots = []
    per_run: dict = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))  # arch -> run id -> [boot, tests]
    arch_of = {r.cell: r.axes.get("arch") for x in runs for r in x.records}
    for cell, h in hist.items():
        for rid, d in h.durations:
            per_run[arch_of.get(cell)][rid][1] += d
        for rid, b in h.boot:
            per_run[arch_of.get(cell)][rid][0] += b
    for arch in sorted({a for a in arch_of.values() if a}, key=platforms.arch_order):
        boot = [per_run[arch][x.id][0] for x in runs]
        tests = [per_run[arch][x.id][1] for x in runs]
        top = max(boot + tests + [1.0])
        plots.append({"arch": arch, "w": 360, "h": 120, "max": round(top, 1),
                      "boot": _points(boot, len(runs), 360, 120, top), "tests": _points(tests, len(runs), 360, 120, top)})
    totals = ", ".join(f"{n} {o}" for o, n in Counter(r.outcome for r in run.records).most_common())
    if run_status(run) == NOTHING_JUDGED:  # skips alone are not green
        totals = f"{NOTHING_JUDGED}: {totals or 'no tests'}"
    html = Environment(autoescape=select_autoescape(default=True)).from_string(TEMPLATE).render(
        run=run, runs=runs, grids=grids, details=details, plots=plots, colours=COLOURS, totals=totals,
        status=run_status(run))
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(html)
    return out / "index.html"
