"""The outcome model (docs/ARCHITECTURE.md "Outcomes"): failed means the product, error means the
lab, and a run that judged nothing says so. Each verdict on real inputs: bootstrap steps run on
this machine, the real binaries suite with a binary truly absent here, the real pause suite
against Debian's docker-registry on loopback (stopped, answering 500, missing a tag, denying
a token), real recorded Node objects."""
import contextlib
import json
import os
import subprocess
import sys

import pytest

from harness.bootstrap.steps import Step, run_steps
from harness.common.errors import InfraError, ProductFailure
from harness.matrix import platforms
from harness.matrix.cells import Cell
from harness.nodes.base import Node, Transport
from harness.oci.client import Client
from harness.oci.layout import push
from harness.services.ports import free_port
from harness.services.registry import LocalRegistry
from conftest import COUNTING_CONFTEST, ROOT, image_for, need, registry_and_layout

HOST = platforms.host().name
HOST_DISTRO = (platforms.host_distro() or platforms.DISTROS[0]).name


# ---- bootstrap steps: whose step failed decides the outcome ---------------------------------

@pytest.fixture
def here(tmp_path):
    """This machine as a node (the local provider's transport): the steps really run."""
    return Node(Cell(HOST, HOST_DISTRO, "1.32", "none", "local"), Transport(), tmp_path)


def test_a_failed_product_step_is_a_product_failure_with_step_command_and_tail(here, tmp_path):
    log = tmp_path / "bootstrap.log"
    steps = [Step("node", "echo plumbing done", "the harness's config", lab=True),
             Step("node", "echo 'containerd: failed to load TOML: invalid config' >&2; exit 1", "containerd up"),
             Step("node", "echo never", "never reached")]
    with pytest.raises(ProductFailure) as e:
        run_steps(here, steps, log, progress=lambda m: None, label="distro")
    f = e.value
    assert str(f) == "distro: bootstrap step 'containerd up' failed (exit 1)"
    assert f.step == "containerd up" and f.command.startswith("echo 'containerd: failed to load TOML")
    assert f.log_tail == "containerd: failed to load TOML: invalid config" and f.artifacts == {"bootstrap log": log}
    text = f.report()
    assert text.startswith("product failure: distro: bootstrap step 'containerd up' failed (exit 1)\n  step: "
                           "containerd up\n  command: echo")
    assert "never" not in log.read_text().replace("never reached", "")  # the step after it did not run


def test_a_failed_lab_step_is_an_infrastructure_error(here, tmp_path):
    with pytest.raises(InfraError) as e:
        run_steps(here, [Step("node", "echo 'no such directory' >&2; exit 2", "the harness registry as a mirror",
                              lab=True)], tmp_path / "b.log", progress=lambda m: None)
    assert str(e.value).startswith("harness step 'the harness registry as a mirror' failed (exit 2)")
    assert e.value.retryable is False and e.value.log_tail == "no such directory"


def test_a_full_disk_or_an_unreachable_url_is_the_lab_whatever_the_step(here, tmp_path):
    need("apt-get")
    # /dev/full: every write fails with the kernel's ENOSPC, as on a full disk
    with pytest.raises(InfraError, match=r"the node's disk is full \(No space left on device\) in step 'unpack'"):
        run_steps(here, [Step("node", "cat /etc/hostname > /dev/full", "unpack")], tmp_path / "b.log", progress=lambda m: None)
    # a product step (installing the runtime) from a mirror that is a closed loopback port: apt-get
    # exits 0 with "W: Failed to fetch"; the URL is named and it is the lab's, not retried. apt's
    # state is a tmp dir and no proxy is used: the host's lists and network stay untouched.
    url = f"http://127.0.0.1:{free_port()}/debian"
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    (tmp_path / "cache" / "archives" / "partial").mkdir(parents=True)
    (tmp_path / "s.list").write_text(f"deb [trusted=yes] {url} bookworm main\n")
    apt = (f"apt-get update -o Dir::Etc::SourceList={tmp_path}/s.list -o Dir::Etc::SourceParts=/nonexistent "
           f"-o Dir::State::Lists={tmp_path}/lists -o Dir::Cache={tmp_path}/cache -o Debug::NoLocking=1 "
           f"-o APT::Sandbox::User=root -o Acquire::Retries=0 -o Acquire::http::Proxy=DIRECT")
    with pytest.raises(InfraError) as e:
        run_steps(here, [Step("node", apt, "runtime from the distro")], tmp_path / "b.log", progress=lambda m: None)
    assert str(e.value).startswith(f"the node cannot reach {url}/dists/bookworm/InRelease (Err:1 {url} bookworm")
    assert e.value.retryable is False


def test_steps_that_succeed_raise_nothing(here, tmp_path):
    run_steps(here, [Step("node", "true", "a"), Step("node", "echo ok", "b", lab=True)], tmp_path / "b.log",
              progress=lambda m: None)
    assert (tmp_path / "b.log").read_text().count("(exit 0,") == 2


# ---- the plugin: a product failure is `failed` everywhere, with and without xdist ------------

MATRIX = f"""
axes:
  arch: [{HOST}]
  distro: [{HOST_DISTRO}]
  kubernetes: ["1.31", "1.32", "1.33"]
  bootstrapper: [none]
  provider: [local]
"""
# Test bootstrappers, made by the real registry call the plugin uses (bootstrap.get), counting
# what runs in $LOG: 1.31 fails a product step on this machine, 1.32 promises kubelet (absent
# here), 1.33 fails a lab step.
CONFTEST = COUNTING_CONFTEST + '''
import harness.bootstrap as bootstrap
from harness.bootstrap.base import Binary
from harness.bootstrap.none import NoBootstrapper
from harness.bootstrap.steps import Step, run_steps

class Stepping(NoBootstrapper):
    def binaries(self, cell):
        return [Binary("sh", version_args=()), Binary("kubelet", version_args=("--version",))] \\
            if cell.kubernetes == "1.32" else [Binary("sh", version_args=())]

    def plan(self, cell, registry_host=None, facts=None):
        if cell.kubernetes == "1.31":
            return [Step("node", "echo 'containerd: failed to load TOML: invalid config' >&2; exit 1", "containerd up")]
        if cell.kubernetes == "1.33":
            return [Step("node", "echo 'cannot write the mirror config' >&2; exit 1", "harness mirror", lab=True)]
        return [Step("node", "true", "nothing to do")]

    def prepare(self, node, cell, progress=print):
        log(event="prepare", cell=cell.id)
        run_steps(node, self.plan(cell), node.artifacts / "bootstrap.log", progress, "stepping")
        node.facts["bootstrap"] = "stepping"

bootstrap.get = lambda name, options=None, lab=None: Stepping(options, lab)
'''


@pytest.fixture
def stepping(pytester, monkeypatch, tmp_path):
    # the test needs a required binary truly absent (never run here, so not in the deps table)
    if any(os.access(os.path.join(d, "kubelet"), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.skip("kubelet is installed on this machine: the test needs a binary that is truly absent")
    pytester.makefile(".yaml", matrix=MATRIX)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_binaries=(ROOT / "suites" / "test_binaries.py").read_text())
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("LOG", str(log))
    monkeypatch.setenv("ARCHMATRIX_RELEASES", "table")
    monkeypatch.setenv("COLUMNS", "300")  # the short summary's messages, untruncated
    pytester.log = log
    return pytester


def _events(p):
    return [json.loads(x) for x in p.log.read_text().splitlines()]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_product_failures_are_failed_and_lab_failures_error_in_every_report(stepping, workers, run_cli):
    p = stepping
    r = p.runpytest_subprocess(*workers, "-p", "no:cacheprovider", "-rfE", "--junitxml=j.xml")
    # per cell: sh's arch and runs; 1.32 also kubelet's (absent: 2 failed); linkage and Go: nothing promised
    r.assert_outcomes(passed=0 + 2, failed=2 + 2, errors=2)
    summary = r.stdout.str()
    assert "FAILED test_binaries.py::test_arch[sh-" in summary and "ERROR test_binaries.py::test_arch[sh-" in summary
    r.stdout.fnmatch_lines(["*FAILED *test_arch[[]sh-*-v1.31-*]* - product failure: stepping: bootstrap step *"])
    r.stdout.fnmatch_lines(["*FAILED *test_arch[[]kubelet-*-v1.32-*]* - product failure: kubelet: expected on *"])
    r.stdout.fnmatch_lines(["*ERROR *test_arch[[]sh-*-v1.33-*]* - infrastructure error: harness step 'harness *"])
    run = json.loads((p.path / "reports" / "results.json").read_text())
    by = {}
    for rec in run["records"]:
        by.setdefault(rec["cell"].split("-")[2], []).append(rec)
    # 1.31: both tests that needed the bootstrap report the one failed step, with its command and output
    assert {x["outcome"] for x in by["v1.31"]} == {"failed"} and len({x["message"] for x in by["v1.31"]}) == 1
    msg = by["v1.31"][0]["message"]
    assert "step: containerd up" in msg and "command: echo 'containerd: failed to load TOML" in msg
    assert "containerd: failed to load TOML: invalid config" in msg.split("last lines of the log:")[1]
    assert by["v1.31"][0]["artifacts"]["bootstrap log"].endswith("bootstrap.log")
    assert sorted(x["outcome"] for x in by["v1.32"]) == ["failed", "failed", "passed", "passed"]
    assert {x["outcome"] for x in by["v1.33"]} == {"error"}
    # never retried: each cell provisioned and prepared once, the failed step run once
    ev = _events(p)
    for k in ("1.31", "1.32", "1.33"):
        cell = f"{HOST}-{HOST_DISTRO}-v{k}-none-local"
        assert [e["event"] for e in ev if e["cell"] == cell] == ["provision", "prepare"], ev
    blog = (p.path / "reports" / "artifacts" / f"{HOST}-{HOST_DISTRO}-v1.31-none-local" / "bootstrap.log").read_text()
    assert blog.count("$ echo 'containerd: failed to load TOML") == 1
    # JUnit (pytest's): <failure> for the product, <error> for the lab
    junit = (p.path / "j.xml").read_text()
    assert junit.count("<failure") == 4 and junit.count("<error") == 2
    # the grid and the dashboard
    r.stdout.fnmatch_lines([f"{HOST_DISTRO} / none / local", "*v1.31*v1.32*v1.33", f"*{HOST}*2✗*2✓ 2✗*2E*"])
    out = run_cli("report", str(p.path / "reports" / "results.json"), "--out", str(p.path / "site"))
    assert out.returncode == 0, out.stderr
    html = (p.path / "site" / "index.html").read_text()
    for k, status in (("1.31", "failed"), ("1.32", "failed"), ("1.33", "error")):
        assert f'data-cell="{HOST}-{HOST_DISTRO}-v{k}-none-local" data-status="{status}"' in html
    from junitparser import JUnitXml

    ours = JUnitXml.fromfile(str(p.path / "site" / "testgrid" / "artifacts" / "junit_01.xml"))
    kinds = sorted(c.result[0]._tag for s in ours for c in s if c.result)
    assert kinds == ["error", "error", "failure", "failure", "failure", "failure"]


# ---- registry answers inside a registry check -------------------------------------------------

def _suites(tmp_path, *args):
    """The real suites run as a user runs them (from the repository), reports under tmp_path:
    (the process, results.json, pytest's JUnit)."""
    out = tmp_path / "r"
    p = subprocess.run([sys.executable, "-m", "pytest", *map(str, args), "-p", "no:cacheprovider", "-rfs",
                        "--reports-dir", str(out), "--junitxml", str(out / "j.xml")], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "ARCHMATRIX_RELEASES": "table"}, timeout=300)
    return p, json.loads((out / "results.json").read_text()), (out / "j.xml").read_text()


def _pause_suite(tmp_path, repository):
    tmp_path.mkdir(parents=True, exist_ok=True)
    m = tmp_path / "m.yaml"
    m.write_text(f"axes: {{arch: [amd64], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [none], "
                 f"provider: [local]}}\n")
    p, run, junit = _suites(tmp_path, "suites/test_pause_image.py", "--matrix", m, "--image-repository", repository)
    return p, {r["test"].split("::")[1].split("[")[0]: r for r in run["records"]}, junit


PAUSE = "3.10"  # kubeadm's pause for 1.32 (kube_versions)
REGISTRY_TESTS = ("test_pause_is_multi_arch", "test_pause_has_cell_platform", "test_pause_config_matches_entry")


@pytest.fixture(scope="module")
def pause_registry(tmp_path_factory):
    """A real docker-registry holding pause:3.10 for amd64 and s390x under `good/`."""
    reg, lay = registry_and_layout(tmp_path_factory)
    lay.tag("p", [image_for("amd64"), image_for("s390x")])
    push(lay, "p", f"{reg.host}/good/pause:{PAUSE}")
    yield reg
    reg.stop()


def test_a_published_pause_passes(pause_registry, tmp_path):
    p, recs, _ = _pause_suite(tmp_path, f"{pause_registry.host}/good")
    assert p.returncode == 0, p.stdout[-2000:]
    assert {t: recs[t]["outcome"] for t in REGISTRY_TESTS} == dict.fromkeys(REGISTRY_TESTS, "passed")


def test_a_missing_tag_is_failed(pause_registry, tmp_path):
    p, recs, junit = _pause_suite(tmp_path, f"{pause_registry.host}/nowhere")
    assert p.returncode == 1
    assert {recs[t]["outcome"] for t in REGISTRY_TESTS} == {"failed"}
    assert "expected the pause image kubeadm 1.32 pulls, found no such tag" in recs[REGISTRY_TESTS[0]]["message"]
    assert junit.count("<failure") == 3 and "<error" not in junit


def test_a_stopped_registry_is_an_error(tmp_path):
    need("docker-registry")
    dead = LocalRegistry(tmp_path / "dead")
    host = dead.host
    dead.stop()
    p, recs, junit = _pause_suite(tmp_path, f"{host}/good")
    assert p.returncode == 1
    assert {recs[t]["outcome"] for t in REGISTRY_TESTS} == {"error"}
    assert f"cannot reach {host}" in recs[REGISTRY_TESTS[0]]["message"]
    assert junit.count("<error") == 3 and "<failure" not in junit


@contextlib.contextmanager
def unreadable(link):
    """The registry cannot read this link file (a directory where the file belongs): it answers 500."""
    saved = link.read_bytes()
    link.unlink()
    link.mkdir()
    try:
        yield
    finally:
        link.rmdir()
        link.write_bytes(saved)


def test_a_registry_answering_500_is_an_error_for_the_index_and_for_an_entry(pause_registry, tmp_path):
    data = pause_registry.root / "data"
    tag = next(data.rglob(f"good/pause/_manifests/tags/{PAUSE}/current/link"))
    with unreadable(tag):
        p, recs, _ = _pause_suite(tmp_path / "index", f"{pause_registry.host}/good")
    assert {recs[t]["outcome"] for t in REGISTRY_TESTS} == {"error"}
    assert "answered 500" in recs[REGISTRY_TESTS[0]]["message"]
    # the index reads, the amd64 entry's manifest answers 500: that check was a raw exception, `failed`
    index = Client().manifest(f"{pause_registry.host}/good/pause:{PAUSE}")
    amd64 = next(m["digest"] for m in index.body["manifests"] if m["platform"]["architecture"] == "amd64")
    rev = next(data.rglob(f"good/pause/_manifests/revisions/sha256/{amd64.split(':')[1]}/link"))
    with unreadable(rev):
        p, recs, junit = _pause_suite(tmp_path / "entry", f"{pause_registry.host}/good")
    assert recs["test_pause_is_multi_arch"]["outcome"] == "passed"
    assert recs["test_pause_has_cell_platform"]["outcome"] == "passed"
    entry = recs["test_pause_config_matches_entry"]
    assert entry["outcome"] == "error" and "answered 500" in entry["message"], entry
    assert junit.count("<error") == 1


def test_a_denied_pull_is_failed(tmp_path):
    """docker-registry with token auth whose token service grants nothing (as a registry answers a
    private image): the registry answers 401 to the token, the image is not there for us."""
    from test_token_auth import ISSUER, SERVICE, TokenService

    need("docker-registry")
    need("skopeo")
    seed = LocalRegistry(tmp_path / "reg")
    from harness.oci.layout import Layout

    lay = Layout(tmp_path / "layout")
    lay.tag("p", [image_for("amd64")])
    push(lay, "p", f"{seed.host}/private/pause:{PAUSE}")
    seed.stop()
    tokens = TokenService(tmp_path, grant=False)
    reg = LocalRegistry(tmp_path / "reg", port=seed.port, extra_config=(
        f"auth:\n  token:\n    realm: {tokens.realm}\n    service: {SERVICE}\n"
        f"    issuer: {ISSUER}\n    rootcertbundle: {tokens.bundle}\n"))
    try:
        p, recs, junit = _pause_suite(tmp_path, f"{reg.host}/private")
    finally:
        reg.stop()
        tokens.stop()
    assert tokens.requests, "the client asked the token service"
    assert {recs[t]["outcome"] for t in REGISTRY_TESTS} == {"failed"}
    assert "unauthorized (401)" in recs[REGISTRY_TESTS[0]]["message"]
    assert junit.count("<failure") == 3 and "<error" not in junit


# ---- nothing judged --------------------------------------------------------------------------

SKIPPING = """
import pytest

def test_needs_a_thing(cell):
    pytest.skip("no such thing on this node")

def test_needs_a_cluster(cluster):
    pass
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_a_run_of_only_skips_judged_nothing_and_exits_5(pytester, monkeypatch, workers, run_cli):
    monkeypatch.setenv("ARCHMATRIX_RELEASES", "table")
    pytester.makefile(".yaml", matrix=MATRIX)
    pytester.makepyfile(test_suite=SKIPPING)
    r = pytester.runpytest_subprocess(*workers, "-p", "no:cacheprovider")
    assert r.ret == 5  # pytest's "no tests": nox -s matrix fails on it
    r.stdout.fnmatch_lines([f"*{HOST}*nothing judged*nothing judged*nothing judged*",
                            "run: nothing judged: no test passed or failed (exit 5); the lines above say why"])
    results = pytester.path / "reports" / "results.json"
    out = run_cli("report", str(results), "--out", str(pytester.path / "site"))
    assert out.returncode == 0, out.stderr
    html = (pytester.path / "site" / "index.html").read_text()
    assert html.count('class="cell s-nothing-judged"') == 3
    assert '<p class="totals" data-status="nothing judged">nothing judged: 3 skipped' in html
    finished = json.loads((pytester.path / "site" / "testgrid" / "finished.json").read_text())
    assert finished["passed"] is False and finished["metadata"]["archmatrix-status"] == "nothing judged"
    # everything deselected: pytest's own exit 5, the reasons on their line, results.json still written
    r = pytester.runpytest_subprocess(*workers, "-p", "no:cacheprovider", "-k", "cluster")
    assert r.ret == 5
    r.stdout.fnmatch_lines(["*3 bootstrapper none brings up no cluster (node-level suites only)"])
    assert json.loads(results.read_text())["records"] == []


def test_run_passed_needs_something_judged():
    from harness.report.grid import cell_status, run_status
    from harness.report.results import Record, Run
    from collections import Counter

    run = Run("r", 1.0)
    run.records = [Record("c", "t1", "skipped"), Record("d", "t", "unsupported")]
    assert not run.passed and run.judged == 0 and run_status(run) == "nothing judged"
    run.records.append(Record("c", "t2", "passed"))
    assert run.passed and run_status(run) == "passed"
    run.records.append(Record("c", "t3", "failed"))
    assert not run.passed and run_status(run) == "failed"
    assert cell_status(Counter(skipped=3)) == "nothing judged"
    assert cell_status(Counter(unsupported=1)) == "unsupported"
    assert cell_status(Counter(skipped=3, passed=1)) == "passed"


# ---- recorded nodes: judged whatever the provider, and nothing provisioned -------------------

def test_a_recorded_windows_node_is_judged_without_a_windows_provider(tmp_path, run_cli):
    """Before: local (this machine's distro only) and qemu (no Windows) made both cells unsupported
    and nothing was judged. Now the recorded Node object is judged, and no node is provisioned."""
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [amd64], distro: [windows2022], kubernetes: ['1.32'], bootstrapper: [none], "
                 "provider: [local, qemu]}\n")
    listed = run_cli("list", "--json", "--matrix", str(m))
    assert all(c["unsupported"] for c in json.loads(listed.stdout))  # without recorded nodes: cannot exist here
    node = ROOT / "tests" / "fixtures" / "nodes" / "amd64-windows-acs-engine-v1.9.0-alpha.0.yaml"
    p, run, _ = _suites(tmp_path, "suites", "--matrix", m, "--recorded-nodes", node)
    assert "provisioning with" not in p.stdout + p.stderr  # no node, not even for the node suites
    assert "--recorded-nodes: recorded Node objects are judged, no node is provisioned to inspect" in p.stdout
    for cell in ("amd64-windows2022-v1.32-none-local", "amd64-windows2022-v1.32-none-qemu"):
        got = {r["test"].split("::")[1].split("[")[0]: r["outcome"] for r in run["records"] if r["cell"] == cell}
        # the fragment (nodeInfo only, kubelet v1.9.0-alpha): its nodeInfo agrees with the cell, the rest is judged
        assert got["test_node_info"] == "passed" and got["test_kubelet_version"] == "failed", got
        assert got["test_os_label"] == "failed" and "unsupported" not in got.values(), got


def test_no_node_registered_for_the_arch_is_failed(tmp_path):
    """Two real recorded nodes, amd64 and arm64: the arm64 cell finds its node and is judged; the
    s390x cell finds none, a product finding (was pytest.fail in the fixture: an `error`)."""
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [arm64, s390x], distro: [debian12], kubernetes: ['1.35'], bootstrapper: [kubeadm], "
                 "provider: [ssh]}\n")
    nodes = ROOT / "tests" / "fixtures" / "nodes"
    recorded = f"{nodes / 'amd64-k3s-v1.35.4+k3s1.yaml'},{nodes / 'arm64-minikube-v1.35.0.yaml'}"
    p, run, junit = _suites(tmp_path, "suites/test_node_registration.py", "--matrix", m, "--recorded-nodes", recorded)
    assert p.returncode == 1, p.stdout[-3000:]
    s390x = [r for r in run["records"] if r["cell"].startswith("s390x-")]
    arm64 = [r for r in run["records"] if r["cell"].startswith("arm64-")]
    assert s390x and {r["outcome"] for r in s390x} == {"failed"}, [(r["test"], r["outcome"]) for r in s390x]
    assert all("expected a node for s390x among 2 nodes, found none" in r["message"] for r in s390x)
    assert "passed" in {r["outcome"] for r in arm64} and "error" not in {r["outcome"] for r in run["records"]}
    assert junit.count("<failure") == len(s390x) + sum(r["outcome"] == "failed" for r in arm64)
    assert "<error" not in junit


@pytest.mark.parametrize("bootstrapper,arch", [("distro", "s390x"), ("kubeadm", "amd64"), ("microk8s", "amd64"),
                                               ("k3s", "amd64")])
def test_the_products_steps_are_not_the_labs(bootstrapper, arch):
    """What the issue names as the product's steps stay the product's in every plan (their failure is
    `failed`); the kubeconfig tunnel and the distro's package lists are the lab's."""
    from harness import bootstrap
    from harness.bootstrap.steps import APT_UPDATE

    steps = bootstrap.get(bootstrapper).plan(Cell(arch, "debian12", "1.32", bootstrapper, "qemu"))
    product = ("kubeadm init", "condition=Ready", "snap install microk8s", "systemctl restart containerd",
               "enable --now k3s", "install -y --no-install-recommends containerd", "install -y kubelet")
    named = [s for s in steps if any(p in s.command for p in product)]
    assert named and not [s.command for s in named if s.lab]
    lab = [s for s in steps if s.command.startswith("fetch node:") or s.command == APT_UPDATE.command]
    assert lab and all(s.lab for s in lab)


def test_nox_matrix_reports_where_the_plugin_wrote():
    """`nox -s matrix -- --reports-dir D` reads results.json from D (it read reports/ whatever D was)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("noxfile", ROOT / "noxfile.py")
    nf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nf)
    assert nf.reports_dir(["--arch", "s390x"]) == "reports"
    assert nf.reports_dir(["--arch", "s390x", "--reports-dir", "out/n1"]) == "out/n1"
    assert nf.reports_dir(["--reports-dir=out/n2", "-n", "2"]) == "out/n2"


def test_nox_tests_runs_the_files_given():
    """`nox -s tests -- tests/test_layout.py` ran the whole suite plus that file (`pytest tests tests/x.py`)."""
    import ast
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "tests")
    calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "run"
             and n.args and getattr(n.args[0], "value", None) == "pytest"]
    assert len(calls) == 1
    assert not any(getattr(a, "value", None) == "tests" for a in calls[0].args), "a fixed 'tests' argument"
