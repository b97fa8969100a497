"""Reports: results.json from a real run, JUnit read back by junitparser, the TestGrid layout,
history/flakes/new-since-green on a crafted history, and the dashboard in headless Chromium."""
import json
import shutil
import subprocess
import sys

import pytest

from harness.report import history, results
from harness.report.results import Record, Run
from conftest import ROOT, need, unavailable

AX = dict(distro="debian12", bootstrapper="none", provider="qemu")


def rec(arch, k8s, test, outcome, msg="", boot=None):
    cell = f"{arch}-debian12-v{k8s}-none-qemu"
    return Record(cell, f"suites/test_x.py::{test}[{cell}]", outcome, 1.5, msg, dict(AX, arch=arch, kubernetes=k8s),
                  {"provision_seconds": boot} if boot else {}, {})


def crafted(tmp_path):
    """Four runs: s390x flips with the same inputs (flake); ppc64le fails from run 3 on, when its
    inputs changed (new since last green = run 2, no flake); arm64 flips but its inputs changed
    each time (not a flake)."""
    runs = []
    plan = {  # run -> (s390x test_a, ppc64le test_a, arm64 test_a, arm64 inputs)
        1: ("passed", "passed", "passed", "i1"),
        2: ("failed", "passed", "failed", "i2"),
        3: ("passed", "failed", "passed", "i3"),
        4: ("failed", "failed", "passed", "i3"),
    }
    for n, (s, p, a, ai) in plan.items():
        run = Run(f"run{n}", 1000.0 + n, 1001.0 + n)
        run.records = [rec("s390x", "1.33", "test_a", s, "expected x, found y" if s == "failed" else "", boot=20 + n),
                       rec("ppc64le", "1.33", "test_a", p, "expected pause:3.10, found pause:3.9" if p == "failed" else "",
                           boot=26),
                       rec("arm64", "1.33", "test_a", a, boot=59 - n),
                       rec("riscv64", "1.33", "test_a", "unsupported", "unsupported: no riscv64 pause image"),
                       rec("amd64", "1.32", "test_a", "error", "infrastructure error: boot timed out", boot=33)]
        run.inputs = {"s390x-debian12-v1.33-none-qemu": "same",
                      "ppc64le-debian12-v1.33-none-qemu": "p1" if n < 3 else "p2",
                      "arm64-debian12-v1.33-none-qemu": ai}
        runs.append(run)
    return runs


def test_history_flakes_and_new_since_green(tmp_path):
    h = history.analyse(crafted(tmp_path))
    s390x, ppc, arm = (h[f"{a}-debian12-v1.33-none-qemu"] for a in ("s390x", "ppc64le", "arm64"))
    test = "suites/test_x.py::test_a[{}-debian12-v1.33-none-qemu]"
    assert s390x.flaky == {test.format("s390x")}
    assert not ppc.flaky and not arm.flaky  # ppc64le failed twice in a row; arm64's inputs changed
    assert ppc.new_since_green == {test.format("ppc64le"): "run2"}
    assert s390x.new_since_green == {test.format("s390x"): "run3"}
    assert [s for _, s in s390x.statuses] == ["passed", "failed", "passed", "failed"]
    assert h["amd64-debian12-v1.32-none-qemu"].new_since_green == {}  # never green: not "new"


def test_merge_shards_and_reject_overlap(tmp_path):
    a, b = Run("r", 1.0, 2.0, shard="1/2"), Run("r", 1.5, 3.0, shard="2/2")
    a.records, b.records = [rec("s390x", "1.33", "t", "passed")], [rec("arm64", "1.33", "t", "failed")]
    m = results.merge([a, b])
    assert len(m.records) == 2 and m.started == 1.0 and m.finished == 3.0
    b.records.append(rec("s390x", "1.33", "t2", "passed"))
    from harness.common.errors import UserError

    with pytest.raises(UserError, match="cell s390x-debian12-v1.33-none-qemu appears in two shards"):
        results.merge([a, b])


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A real run of the suites on this machine (local provider), with its results.json."""
    out = tmp_path_factory.mktemp("real")
    p = subprocess.run([sys.executable, "-m", "pytest", "suites", "--provider", "local", "-q", "-p", "no:cacheprovider",
                        "--reports-dir", str(out), "--junitxml", str(out / "pytest-junit.xml")],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-2000:]
    assert "archmatrix ==" in p.stdout and "amd64" in p.stdout  # the terminal grid
    return out


def test_real_run_results_and_junit_round_trip(real_run, tmp_path, run_cli):
    from junitparser import JUnitXml, Properties

    run = results.load(real_run / "results.json")
    assert run.records and {r.outcome for r in run.records} <= set(results.OUTCOMES)
    out = run_cli("report", str(real_run / "results.json"), "--out", str(tmp_path / "site"))
    assert out.returncode == 0, out.stderr
    xml = JUnitXml.fromfile(str(tmp_path / "site" / "testgrid" / "artifacts" / "junit_01.xml"))
    cases = {(s.name, c.name): c for s in xml for c in s}
    assert len(cases) == len(run.records)
    for r in run.records:
        case = cases[(r.cell, r.test.rpartition("::")[2])]
        props = {p.name: p.value for p in case.child(Properties)}
        assert props["archmatrix.arch"] == r.axes["arch"] and props["archmatrix.provider"] == "local"
        assert props.get("archmatrix.accelerator") == "native" or r.outcome != "passed"
        kind = case.result[0]._tag if case.result else "passed"
        assert kind == {"passed": "passed", "failed": "failure", "error": "error"}.get(r.outcome, "skipped")
    tg = tmp_path / "site" / "testgrid"
    finished = json.loads((tg / "finished.json").read_text())
    assert finished["result"] == "SUCCESS" and finished["metadata"]["archmatrix-provider"] == "local"
    assert json.loads((tg / "started.json").read_text())["timestamp"] > 0
    assert (tg / "build-log.txt").read_text().startswith(("PASSED", "SKIPPED"))
    # pytest's own JUnit keeps the per-test properties too (junit_family = xunit1)
    pj = JUnitXml.fromfile(str(real_run / "pytest-junit.xml"))
    assert any(p.name == "archmatrix.cell" for s in pj for c in s for p in (c.child(Properties) or ()))


def test_report_merges_shard_dirs(tmp_path, run_cli):
    for k in (1, 2):
        run = Run("nightly", 10.0 + k, 20.0 + k, shard=f"{k}/2")
        run.records = [rec("s390x" if k == 1 else "arm64", "1.33", "t", "passed")]
        results.save(run, tmp_path / f"shard{k}" / "results.json")
    out = run_cli("report", "--merge", str(tmp_path / "shard1"), str(tmp_path / "shard2"), "--out", str(tmp_path / "site"))
    assert out.returncode == 0, out.stderr
    merged = results.load(tmp_path / "site" / "results.json")
    assert {r.cell for r in merged.records} == {"s390x-debian12-v1.33-none-qemu", "arm64-debian12-v1.33-none-qemu"}
    bad = run_cli("report", str(tmp_path / "shard1"), str(tmp_path / "shard2"), "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "pass --merge" in bad.stderr


@pytest.fixture
def browser():
    need("chromium")
    try:
        import playwright.sync_api as pw
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


def test_dashboard_in_headless_chromium(browser, tmp_path, run_cli):
    runs = crafted(tmp_path)
    for r in runs[:-1]:
        results.save(r, tmp_path / "hist" / f"{r.id}.json")
    results.save(runs[-1], tmp_path / "now" / "results.json")
    out = run_cli("report", str(tmp_path / "now" / "results.json"), "--history", str(tmp_path / "hist"),
                  "--out", str(tmp_path / "site"))
    assert out.returncode == 0, out.stderr
    page_file = tmp_path / "site" / "index.html"
    requests_seen = []
    page = browser.new_page()
    page.on("request", lambda r: requests_seen.append(r.url))
    page.goto(page_file.as_uri())
    assert all(u.startswith("file://") for u in requests_seen), requests_seen  # nothing fetched
    cells = page.eval_on_selector_all("td.cell[data-cell]", "els => els.map(e => [e.dataset.cell, e.dataset.status, "
                                      "getComputedStyle(e).backgroundColor, e.textContent])")
    by = {c[0]: c for c in cells}
    assert by["s390x-debian12-v1.33-none-qemu"][1:3] == ["failed", "rgb(209, 52, 47)"]
    assert by["arm64-debian12-v1.33-none-qemu"][1:3] == ["passed", "rgb(46, 157, 79)"]
    assert by["riscv64-debian12-v1.33-none-qemu"][1] == "unsupported"
    assert by["amd64-debian12-v1.32-none-qemu"][1:3] == ["error", "rgb(142, 68, 173)"]
    assert "flake" in by["s390x-debian12-v1.33-none-qemu"][3] and "new" in by["ppc64le-debian12-v1.33-none-qemu"][3]
    not_run = page.eval_on_selector_all("td.cell.s-not-run", "els => els.length")
    assert not_run == 5  # arm64/ppc64le/riscv64/s390x have no v1.32 cell, amd64 no v1.33
    details = page.locator("[id='d-ppc64le-debian12-v1.33-none-qemu']")
    assert not details.is_visible()
    page.click("td[data-cell='ppc64le-debian12-v1.33-none-qemu']")
    assert details.is_visible()
    text = details.inner_text()
    assert "expected pause:3.10, found pause:3.9" in text and "new since last green (run2)" in text
    assert details.locator(".strip span").count() == 4
    assert page.locator("figure[data-arch] svg polyline").count() == 2 * 5
    page.screenshot(path=str(ROOT / "reports" / "dashboard-test.png"), full_page=True)


def test_real_run_dashboard_in_chromium(browser, real_run, tmp_path, run_cli):
    out = run_cli("report", str(real_run / "results.json"), "--out", str(tmp_path / "site"))
    assert out.returncode == 0, out.stderr
    page = browser.new_page()
    page.goto((tmp_path / "site" / "index.html").as_uri())
    cells = page.eval_on_selector_all("td.cell[data-cell]", "els => els.map(e => [e.dataset.cell, e.dataset.status])")
    run = results.load(real_run / "results.json")
    assert sorted(map(tuple, cells)) == sorted({(r.cell, "passed") for r in run.records})
    page.click(f"td[data-cell='{cells[0][0]}']")
    assert "test_arch[sh-" in page.locator(f"[id='d-{cells[0][0]}']").inner_text()
