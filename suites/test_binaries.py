"""Binaries the cell's bootstrapper installs: right arch, right linkage, they run, right versions."""
import pytest

from harness.binaries import node as facts
from harness.bootstrap.base import KNOWN_BINARIES
from harness.checks import elf
from harness.common.errors import ProductFailure

_cache: dict = {}


@pytest.fixture(params=KNOWN_BINARIES)
def binary(request, cell, node, bootstrapper):
    """(spec, location, headers) of one binary on the node; skips what this bootstrapper doesn't install."""
    name = request.param
    spec = next((b for b in bootstrapper.binaries(cell) if b.name == name), None)
    if spec is None:
        pytest.skip(f"bootstrapper {cell.bootstrapper} does not install {name}")
    key = (cell.id, name)
    if key not in _cache:
        found = facts.locate(node, name)
        exe = None
        if found is not None:
            try:
                exe = facts.inspect(node, found)
            except elf.NotExecutable as e:
                exe = e
        _cache[key] = (found, exe)
    found, exe = _cache[key]
    if found is None:
        if spec.required:
            raise ProductFailure(f"{name}: expected on the node's PATH ({cell.bootstrapper} installs it), found nothing")
        why = node.facts.get(f"absent:{name}")  # the bootstrapper knows why (e.g. the distro lacks it)
        pytest.skip(f"{name}: not on this node: {why}" if why else
                    f"{name}: not on this node (optional for bootstrapper {cell.bootstrapper})")
    if isinstance(exe, elf.NotExecutable):
        raise ProductFailure(f"{found.path}: expected an executable for {cell.arch}, found {exe}")
    return spec, found, exe


def test_arch(binary, cell):
    spec, found, exe = binary
    verdict = elf.check_arch(found.path, exe, cell.platform, os=cell.os.os)
    assert verdict.ok, verdict.message


@pytest.mark.archmatrix_judges("static", "linkage")  # deselected where nothing is promised
def test_linkage(binary, cell):
    spec, found, exe = binary
    if spec.static is None:  # nothing promised: nothing to judge (not a pass)
        pytest.skip(f"bootstrapper {cell.bootstrapper} promises no linkage for {spec.name}")
    verdict = elf.check_linkage(found.path, exe, spec.static)
    assert verdict.ok, verdict.message


def test_runs(binary, node):
    spec, found, exe = binary
    args = spec.version_args or (("-c", "true") if spec.name == "sh" else ())
    out = node.run("timeout 120", found.path, *args)  # a binary that hangs is a finding, not a hung run
    assert out.rc != 124, f"{found.path} {' '.join(args)}: did not exit within 120 s"
    assert out.rc == 0, f"{found.path}: expected to run on the node, exit {out.rc}: {out.stderr.strip()[:300]}"
    if spec.version:
        verdict = elf.check_version(found.path, out.stdout + out.stderr, spec.version)
        assert verdict.ok, verdict.message


@pytest.mark.archmatrix_judges("go", "Go toolchain")  # deselected where nothing is promised
def test_go_toolchain(binary, cell, record_property):
    spec, found, exe = binary
    if not spec.go:
        pytest.skip(f"bootstrapper {cell.bootstrapper} promises no Go toolchain for {spec.name}")
    verdict = elf.check_go(found.path, exe, cell.release)
    if verdict.warning:
        record_property("warning", verdict.message)
    assert verdict.ok, verdict.message


# ---- artifacts mode: release binaries checked with no node (--artifacts PATH) --------------

def pytest_generate_tests(metafunc):
    if "artifact" not in metafunc.fixturenames:
        return
    from harness.binaries import release as artifacts
    from harness.matrix import cells as matrix
    from harness.common.errors import UserError

    found = []
    try:
        for path in matrix.split_values(metafunc.config.getoption("am_artifacts")):
            found += artifacts.scan(path)
    except UserError as e:
        raise pytest.UsageError(f"--artifacts {e}") from None
    if not found:
        # cannot apply to this run: deselected at collection with this reason (harness.plugin)
        metafunc.parametrize("artifact", [pytest.param(None, marks=pytest.mark.archmatrix_not_applicable(
            "no --artifacts PATH given (release binaries are checked only when asked)"))], ids=["none"])
        return
    metafunc.parametrize("artifact", found, ids=[f"{a.platform.name if a.platform else 'unknown'}-{a.binary}"
                                                 for a in found])


def test_artifact(artifact, request):
    from harness.binaries import release as artifacts
    from harness.matrix import kube_versions

    ks = request.config.getoption("am_kubernetes")
    release = kube_versions.resolve(ks[0].split(",")[0]) if ks else None
    bad = [v.message for v in artifacts.check(artifact, release) if not v.ok]
    assert not bad, "; ".join(bad)
