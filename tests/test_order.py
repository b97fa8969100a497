"""Longest cells first (issue #19 item 3): from the last run's results.json, else from estimates."""
import json

from harness.matrix import order, platforms
from harness.matrix.cells import Cell

HOST = platforms.host().name
FOREIGN = "s390x" if HOST != "s390x" else "amd64"


def _results(path, durations: dict, image_seconds: dict | None = None):
    """A results.json in the shape the plugin writes (report/results.py), one record per cell."""
    from harness.report import results

    run = results.new_run(None)
    for cid, seconds in durations.items():
        props = {"image_seconds": image_seconds[cid]} if image_seconds and cid in image_seconds else {}
        run.records.append(results.Record(cid, "suites/test_binaries.py::test_x", "passed", seconds, "", {}, props, {}))
    results.save(run, path)
    return path


def test_without_a_record_a_foreign_image_build_and_a_bootstrap_come_first(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHMATRIX_CACHE", str(tmp_path / "empty-cache"))  # no image cached: builds expected
    local = Cell(HOST, "debian12", "1.32", "none", "local")
    native = Cell(HOST, "debian12", "1.32", "none", "qemu")
    foreign = Cell(FOREIGN, "debian12", "1.32", "none", "qemu")
    distro = Cell(HOST, "debian12", "1.32", "distro", "qemu")
    ordered, line = order.longest_first([local, native, distro, foreign], tmp_path / "none.json")
    assert [c.id for c in ordered] == [foreign.id, distro.id, native.id, local.id]
    assert line.startswith(f"cell order: longest first (0 from {tmp_path / 'none.json'}, 4 estimated): {foreign.id} ~")


def test_a_recorded_run_decides_and_a_cached_image_is_not_counted_again(tmp_path, monkeypatch, shared_cache):
    a = Cell(HOST, "debian12", "1.31", "none", "local")
    b = Cell(HOST, "debian12", "1.32", "none", "local")
    c = Cell(HOST, "debian12", "1.32", "none", "qemu")
    f = _results(tmp_path / "results.json", {a.id: 20.0, b.id: 500.0, c.id: 450.0}, {c.id: 400.0})
    from harness.nodes.images import build as images

    cached = images.lookup(c.platform, c.os) is not None
    ordered, line = order.longest_first([a, c, b], f)
    # c's 450 s held a 400 s image build: with the image cached now it is expected to take 50 s
    assert [x.id for x in ordered] == [b.id, c.id, a.id]
    assert order.expected(c, order.recorded(f)) == ((50.0 if cached else 450.0), "recorded")
    assert "(3 from" in line
    # a cell the record lacks is estimated; a torn file is no record, never an error
    (tmp_path / "torn.json").write_text('{"records": [')
    assert order.recorded(tmp_path / "torn.json") == {}
    assert order.expected(a, {}) == (order.estimate(a), "estimated")


def test_the_plugin_runs_the_longest_recorded_cell_first_and_says_so(pytester, tmp_path):
    pytester.makefile(".yaml", matrix=f"axes: {{arch: [{HOST}], distro: [debian12], kubernetes: ['1.31', '1.32'], "
                                      f"bootstrapper: [none], provider: [local]}}\n")
    log = tmp_path / "order.log"
    pytester.makepyfile(test_s=f"""
def test_a(cell, node):
    with open({str(log)!r}, "a") as f:
        f.write(cell.id + "\\n")
""")
    (pytester.path / "reports").mkdir()
    slow = f"{HOST}-debian12-v1.32-none-local"
    _results(pytester.path / "reports" / "results.json", {f"{HOST}-debian12-v1.31-none-local": 3.0, slow: 90.0})
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "1")
    r.assert_outcomes(passed=2)
    assert log.read_text().split() == [slow, f"{HOST}-debian12-v1.31-none-local"]
    r.stdout.fnmatch_lines([f"cell order: longest first (2 from reports/results.json, 0 estimated): {slow} ~90 s, *"])
