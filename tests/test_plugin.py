"""The plugin end to end on small matrices, in a scratch directory (pytester)."""
import json

import pytest

from harness.matrix import platforms
from conftest import alive

HOST = platforms.host().name
HOST_DISTRO = (platforms.host_distro() or platforms.DISTROS[0]).name

MATRIX = f"""
axes:
  arch: [{HOST}, s390x]
  distro: [{HOST_DISTRO}]
  kubernetes: ["1.31", "1.32"]
  bootstrapper: [none]
  provider: [local]
"""

SUITE = """
import json, os

def test_one(cell, node, host):
    with open(os.environ["LOG"], "a") as f:
        f.write(json.dumps({"cell": cell.id, "node": id(node), "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}) + "\\n")
    assert host.system_info.type == "linux"

def test_two(cell, node):
    assert node.run("uname -m").stdout.strip() == cell.platform.uname

def test_cluster(cluster):
    pass
"""


@pytest.fixture
def scratch(pytester, monkeypatch, tmp_path):
    pytester.makefile(".yaml", matrix=MATRIX)
    pytester.makepyfile(test_suite=SUITE)
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("LOG", str(log))
    pytester.log = log
    return pytester


def records(p):
    return [json.loads(line) for line in p.log.read_text().splitlines()]


def test_cells_run_unsupported_deselected_with_reason_and_one_node_per_cell(scratch):
    r = scratch.runpytest("-p", "no:cacheprovider")
    # 2 supported cells x 2 passed; their cluster test and every test of the 2 unsupported cells
    # cannot apply by construction: deselected, one summary line per reason
    r.assert_outcomes(passed=4, deselected=8)
    r.stdout.fnmatch_lines(["*not judged, by construction (deselected at collection: 8 tests):",
                            f"*  6 unsupported: local provider runs only this machine's arch ({HOST}) [[]2 cells[]]",
                            "*  2 bootstrapper none brings up no cluster (node-level suites only)"])
    recs = records(scratch)
    assert sorted(x["cell"] for x in recs) == [f"{HOST}-{HOST_DISTRO}-v1.31-none-local",
                                               f"{HOST}-{HOST_DISTRO}-v1.32-none-local"]
    assert len({x["node"] for x in recs}) == 2
    # the unsupported cells are still reported: one record each, with the reason
    run = json.loads((scratch.path / "reports" / "results.json").read_text())
    unsupported = [x for x in run["records"] if x["outcome"] == "unsupported"]
    assert sorted(x["cell"] for x in unsupported) == ["s390x-" + HOST_DISTRO + "-v1.31-none-local",
                                                      "s390x-" + HOST_DISTRO + "-v1.32-none-local"]
    assert all(x["message"] == f"unsupported: local provider runs only this machine's arch ({HOST})"
               for x in unsupported)
    assert run["cells"]["s390x-" + HOST_DISTRO + "-v1.31-none-local"]["arch"] == "s390x"


def test_filters_select_cells(scratch):
    r = scratch.runpytest("--k8s", "v1.32", "--arch", "x86_64,s390x" if HOST == "amd64" else HOST, "-q")
    r.assert_outcomes(passed=2, deselected=1 + (3 if HOST == "amd64" else 0))


def test_bad_filter_is_usage_error(scratch):
    r = scratch.runpytest("--arch", "riscv64")
    assert r.ret == 4
    r.stderr.fnmatch_lines(["ERROR: --arch riscv64: matches no cell in *matrix.yaml"])
    assert "Traceback" not in r.stderr.str() + r.stdout.str()


def test_xdist_one_worker_owns_one_cell(scratch):
    # two suite files, as in suites/: a cell's tests must stay on one worker across files (pytest 9.2
    # broke this silently: pytest-dev/pytest-xdist#1386)
    scratch.makepyfile(test_suite_b=SUITE)
    r = scratch.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=8)
    # the controller collects nothing: what the workers deselected still gets its summary lines
    r.stdout.fnmatch_lines(["*not judged, by construction (deselected at collection: 16 tests):",
                            f"*12 unsupported: local provider runs only this machine's arch ({HOST}) [[]2 cells[]]",
                            "* 4 bootstrapper none brings up no cluster (node-level suites only)"])
    by_cell = {}
    for x in records(scratch):
        by_cell.setdefault(x["cell"], set()).add(x["worker"])
    assert len(by_cell) == 2 and all(len(w) == 1 for w in by_cell.values()), by_cell
    # and the unsupported cells, deselected on the workers, are still one record each on the controller
    run = json.loads((scratch.path / "reports" / "results.json").read_text())
    assert sorted(x["cell"] for x in run["records"] if x["outcome"] == "unsupported") == [
        f"s390x-{HOST_DISTRO}-v1.31-none-local", f"s390x-{HOST_DISTRO}-v1.32-none-local"]


def test_items_carry_their_cell_group(scratch):
    items, _ = scratch.inline_genitems()
    for item in items:
        cell = item.callspec.params["cell"]
        assert item.get_closest_marker("xdist_group").args == (cell.id,)


def test_infrastructure_error_is_error_with_report_and_retried_once(scratch, monkeypatch):
    """A provider that fails once (a stand-in for a boot that times out) is retried once and then
    passes; one that always fails ends every test of its cell as `error`, not `failed`."""
    import harness.nodes as nodes
    from harness.common.errors import InfraError
    from harness.nodes.base import Node, Provider, Transport

    calls = []

    class Flaky(Provider):
        name = "local"

        def start(self, cell, artifacts):
            calls.append(cell.id)
            if cell.kubernetes == "1.31" or len([c for c in calls if c == cell.id]) == 1:
                raise InfraError(f"boot timed out for {cell.id}", artifacts={"serial": artifacts / "serial.log"},
                                 log_tail="last serial line")
            return Node(cell, Transport(), artifacts)

    monkeypatch.setattr(nodes, "get", lambda name, **options: Flaky())
    r = scratch.runpytest("--arch", HOST, "-p", "no:cacheprovider", f"--junitxml={scratch.path}/j.xml")
    r.assert_outcomes(passed=2, deselected=2, errors=2)
    r.stdout.fnmatch_lines(["*infrastructure error: boot timed out for *v1.31*", "*artifact serial:*serial.log",
                            "*last serial line*"])
    assert calls.count(f"{HOST}-{HOST_DISTRO}-v1.31-none-local") == 2  # tried, retried once, never again
    assert calls.count(f"{HOST}-{HOST_DISTRO}-v1.32-none-local") == 2
    junit = (scratch.path / "j.xml").read_text()
    assert 'name="archmatrix.arch"' in junit and "archmatrix.artifact.serial" in junit


def test_no_matrix_means_usage_error_for_cell_tests(pytester):
    pytester.makepyfile(test_x="def test_a(cell): pass")
    r = pytester.runpytest()
    assert r.ret != 0
    r.stdout.fnmatch_lines(["*no matrix: give --matrix FILE*"])


def test_plugin_is_inert_for_plain_tests(pytester):
    pytester.makepyfile(test_x="def test_a(): pass")
    pytester.runpytest().assert_outcomes(passed=1)


def test_missing_recorded_nodes_file_is_usage_error(scratch):
    r = scratch.runpytest("--recorded-nodes", "/nonexistent/node.yaml")
    assert r.ret == 4
    r.stderr.fnmatch_lines(["ERROR: --recorded-nodes /nonexistent/node.yaml: file does not exist"])


FAILING_PROVIDER = """
import harness.nodes as nodes
from harness.common.errors import InfraError
from harness.nodes.base import Provider

class Dies(Provider):
    name = "local"

    def start(self, cell, artifacts):
        raise InfraError(f"QEMU exited (killed by signal 9) during boot of {cell.id}", retryable=False)

nodes.get = lambda name, **options: Dies()
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_an_error_message_is_the_labs_sentence_with_and_without_xdist(scratch, workers):
    """Under xdist a report's text starts with the worker's header ("[gw1] linux -- Python ..."): the
    recorded message must be the error's own first line, whoever ran the test."""
    scratch.makeconftest(FAILING_PROVIDER)
    r = scratch.runpytest_subprocess("--arch", HOST, "-p", "no:cacheprovider", *workers)
    assert r.ret == 1, r.stdout.str()[-2000:]
    run = json.loads((scratch.path / "reports" / "results.json").read_text())
    errors = [x for x in run["records"] if x["outcome"] == "error"]
    assert errors, run["records"]
    for x in errors:
        assert x["message"].startswith("infrastructure error: QEMU exited (killed by signal 9) during boot of "
                                       f"{x['cell']}"), x["message"]


def test_a_worker_killed_mid_test_is_the_lab_s_error_not_a_pass(scratch):
    """A real xdist worker SIGKILLed inside a cell's test (as the OOM killer or a person would): xdist
    reports it with none of the item's properties, after the test's setup passed. The test is an
    error of the lab, named; the other cell is unchanged."""
    scratch.makepyfile(test_crash="""
import os, signal

def test_dies(cell, node):
    if "-v1.31-" in cell.id:
        os.kill(os.getpid(), signal.SIGKILL)
""")
    r = scratch.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "test_crash.py")
    assert r.ret == 1, r.stdout.str()[-2000:]
    run = json.loads((scratch.path / "reports" / "results.json").read_text())
    got = {x["cell"]: x for x in run["records"] if x["test"].startswith("test_crash.py::test_dies")}
    dead, alive = got[f"{HOST}-{HOST_DISTRO}-v1.31-none-local"], got[f"{HOST}-{HOST_DISTRO}-v1.32-none-local"]
    assert dead["outcome"] == "error" and "crashed while running" in dead["message"], dead
    assert run["cells"][dead["cell"]]  # the cell and its axes are in the run, as for any record
    assert alive["outcome"] == "passed", alive


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_sigterm_to_the_run_tears_down_like_ctrl_c(scratch, workers, tmp_path):
    """SIGTERM to pytest (a cancelled CI job) mid-test: every fixture's teardown runs (here a real child
    process it started is stopped by its PID), results.json is written, the exit says interrupted.
    pytest's default would die at once and leave the child, and under xdist the workers, running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "pids"
    scratch.makepyfile(test_long=f"""
import os, subprocess, pytest

@pytest.fixture
def service():
    p = subprocess.Popen(["sleep", "300"])
    with open({str(pids)!r}, "a") as f:
        f.write(f"{{p.pid}} {{os.getpid()}}\\n")
    yield p
    p.terminate()
    p.wait()

def test_long(cell, node, service):
    import time
    time.sleep(120)
""")
    p = subprocess.Popen([sys.executable, "-m", "pytest", *workers, "-p", "no:cacheprovider", "test_long.py"],
                         cwd=scratch.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    want = 2 if workers else 1  # both cells' tests running at once under xdist, one after another without
    end = time.monotonic() + 60
    while time.monotonic() < end and (not pids.exists() or len(pids.read_text().splitlines()) < want):
        time.sleep(0.2)
    time.sleep(0.5)  # inside the test's sleep
    started = [tuple(map(int, line.split())) for line in pids.read_text().splitlines()]
    try:
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=60)[0]
        end = time.monotonic() + 30  # xdist's workers end their teardown after the controller exits (a loaded CI: seconds)
        while time.monotonic() < end and any(alive(pid) for pair in started for pid in pair):
            time.sleep(0.5)
        left = [pid for pair in started for pid in pair if alive(pid)]
        assert p.returncode == 2, out[-2000:]  # pytest's "interrupted"
        assert not left, f"left running after SIGTERM: {left} (fixture processes, workers)"
        assert (scratch.path / "reports" / "results.json").is_file(), out[-2000:]
    finally:  # a failing run must not leave its sleeps behind either
        for pid in (pid for pair in started for pid in pair if alive(pid)):
            os.kill(pid, signal.SIGKILL)

