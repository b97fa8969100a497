"""The rehearsal (harness/rehearsal): the pkgs.k8s.io stand-in is a real signed apt repository that
real apt accepts with its key and refuses with another; the runner stops each plan before its first
step that needs Kubernetes, writes its results whole and exits by the outcome model; and one kubeadm
cell runs for real on an emulated amd64 Debian 12 node through the plan up to `kubeadm init`."""
import json
import shutil
import subprocess
import types
import urllib.request
from pathlib import Path

import pytest

from harness.bootstrap import get
from harness.bootstrap.base import Options
from harness.bootstrap.containerd import wrong_version
from harness.bootstrap.kubeadm import KEYRING, repo_url
from harness.common.errors import InfraError, ProductFailure
from harness.host import debian
from harness.matrix.cells import Cell
from harness.rehearsal import github, pkgs, runner
from harness.rehearsal.server import StandIns
from conftest import need

CELL = Cell("amd64", "debian12", "1.37", "kubeadm", "qemu")


def _apt(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Real apt-get on this machine, in a private root (never the host's apt state)."""
    opts = debian._apt_options(root, "amd64") + ["-o", "APT::Sandbox::User=root",
                                                 "-o", f"Dir::Etc::trustedparts={root / 'parts'}"]
    return subprocess.run(["apt-get", *opts, *args], capture_output=True, text=True)


def test_the_stand_in_repository_is_accepted_with_its_key_and_refused_with_another(tmp_path):
    """The key step a kubeadm plan runs (download Release.key, gpg --dearmor) and apt-get update against
    the repository: its own key passes, a throwaway key of another run fails the update (a real failing
    input: apt says the repository is not signed by a key it trusts)."""
    for tool in ("gpg", "dpkg-deb", "apt-get"):
        need(tool)
    served = tmp_path / "served"
    pkgs.build(served, [CELL], print)
    other = pkgs.Key("another run's key")
    try:
        (tmp_path / "other.asc").write_text(other.armored())
    finally:
        other.close()
    with StandIns(served) as srv:
        url = repo_url("1.37", srv.host_url + "/pkgs")
        assert url == f"{srv.host_url}/pkgs/core:/stable:/v1.37/deb/"
        with urllib.request.urlopen(url + "Release.key", timeout=10) as f:
            (tmp_path / "right.asc").write_bytes(f.read())
        results = {}
        for name in ("right", "other"):
            root = tmp_path / f"apt-{name}"
            for d in ("state/lists/partial", "cache/archives/partial", "parts"):
                (root / d).mkdir(parents=True)
            (root / "status").touch()
            keyring = root / "keyring.gpg"
            subprocess.run(["gpg", "--batch", "--yes", "--dearmor", "-o", str(keyring), str(tmp_path / f"{name}.asc")],
                           check=True, capture_output=True)
            (root / "sources.list").write_text(f"deb [signed-by={keyring}] {url} /\n")
            results[name] = (_apt(root, "update"), _apt(root, "install", "--print-uris", "-y", "kubeadm", "kubelet",
                                                        "kubectl"))
        assert any(p.startswith("/pkgs/core:/stable:/v1.37/deb/InRelease") for p in srv.requests), srv.requests
    update, install = results["right"]
    assert update.returncode == 0 and "W:" not in update.stderr, update.stderr
    # kubelet pulls kubernetes-cni (metadata.yaml), the rest comes from Debian (not in this private root)
    assert "kubeadm_1.37.0-1.1_amd64.deb" in install.stdout or "iptables" in install.stdout + install.stderr
    update, _ = results["other"]
    assert update.returncode != 0, update.stdout
    assert "NO_PUBKEY" in update.stderr or "not signed" in update.stderr, update.stderr


def test_the_packages_carry_upstreams_names_versions_dependencies_and_paths(tmp_path):
    need("dpkg-deb")
    need("gpg")
    pkgs.build(tmp_path, [CELL], print)
    d = pkgs.repo_dir(tmp_path, "1.37")
    index = (d / "Packages").read_text()
    assert {line.split()[1] for line in index.splitlines() if line.startswith("Package:")} == {
        "kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni"}

    def contents(name):
        deb = next((d / "amd64").glob(f"{name}_*.deb"))
        return deb, subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout

    deb, files = contents("kubelet")
    assert "./usr/bin/kubelet" in files and "./lib/systemd/system/kubelet.service" in files
    assert "kubernetes-cni (>= 1.2.0)" in subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"],
                                                          capture_output=True, text=True).stdout
    _, files = contents("kubeadm")
    assert "./lib/systemd/system/kubelet.service.d/10-kubeadm.conf" in files
    _, files = contents("kubernetes-cni")
    assert "./opt/cni/bin/bridge" in files
    # the stand-in kubeadm answers what the plan asks, and nothing else
    script = tmp_path / "kubeadm"
    script.write_text(pkgs.kubeadm_script(CELL.release))
    script.chmod(0o755)
    assert subprocess.run([str(script), "version", "-o", "short"], capture_output=True, text=True).stdout == "v1.37.0\n"
    init = subprocess.run([str(script), "init"], capture_output=True, text=True)
    assert init.returncode == 1 and "stand-in" in init.stderr


def test_a_containerd_of_another_version_than_the_plan_chose_fails_its_step(debian_binary):
    """The plan checks the installed containerd against the one it chose: Debian's real 2.1.9 binary
    answers `--version`; a plan that chose 2.3.4 (upstream.containerd_for) refuses it, one told the
    stand-in's version (Options.containerd_version, as the rehearsal does) accepts it."""
    from harness.matrix import platforms

    binary = debian_binary("containerd", platforms.arch("amd64"), "usr/bin/containerd", "sid")
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout
    assert " 2.1.9" in out, out
    chosen = get("kubeadm", Options()).containerd(CELL)
    assert chosen.version == "2.3.4"
    assert wrong_version(out, chosen.version) == "containerd 2.1.9 installed, the plan chose 2.3.4"
    told = get("kubeadm", Options(containerd_version=github.CONTAINERD)).containerd(CELL)
    assert wrong_version(out, told.version) is None
    assert told.url.endswith("/v2.1.9/containerd-2.1.9-linux-amd64.tar.gz") and told.runc == "v1.3.6"
    step = next(s for s in get("kubeadm", Options()).plan(CELL) if s.asks == "containerd_version")
    assert step.verify(out) and step.verify("containerd github.com/containerd/containerd/v2 v2.3.4 abc") is None


def test_the_rehearsal_stops_before_the_first_step_that_needs_kubernetes():
    steps = get("kubeadm", Options(package_base="http://h/pkgs", release_base="http://h/github")).plan(CELL)
    before, stop = runner.until_kubernetes(steps)
    assert stop.command.startswith("kubeadm init") and stop.kubernetes
    assert not any(s.kubernetes for s in before) and len(before) == steps.index(stop)
    assert before[-1].why.startswith("kubeadm config")  # its heredoc asks the (stand-in) kubeadm its version
    assert runner.until_kubernetes(before) == (before, None)


def test_cells_without_a_stand_in_or_that_cannot_exist_are_skipped_and_the_results_file_is_whole(tmp_path):
    cells = runner.select(["arm,amd64"], ["debian12"], ["kubeadm,microk8s"], ["1.37"])
    assert [c.id for c in cells] == ["arm-debian12-v1.37-kubeadm-qemu", "arm-debian12-v1.37-microk8s-qemu",
                                     "amd64-debian12-v1.37-kubeadm-qemu", "amd64-debian12-v1.37-microk8s-qemu"]
    skipped = [c for c in cells if c.arch == "arm" or runner.stand_in_modules(c.bootstrapper) is None]
    results = runner.run(skipped, tmp_path, provider_factory=lambda p: pytest.fail("no node for skipped cells"))
    assert all(r.outcome == "skipped" for r in results) and runner.exit_code(results) == 0
    doc = json.loads((tmp_path / "rehearsal.json").read_text())
    assert doc["cluster"] == "rehearsal" and all(c["cluster"] == "rehearsal" for c in doc["cells"])
    why = {c["id"]: c["why"] for c in doc["cells"]}
    assert "pkgs.k8s.io" in why["arm-debian12-v1.37-kubeadm-qemu"]
    if runner.stand_in_modules("microk8s") is None:
        assert why["amd64-debian12-v1.37-microk8s-qemu"].startswith("no stand-in yet")
    assert "cluster: rehearsal" in runner.grid(results)
    assert not list(tmp_path.glob(".rehearsal-*"))  # nothing half-written beside it


class _NoBoot:
    """A provider whose node never comes up (the lab's failure)."""

    def __init__(self, progress):
        pass

    def provision(self, cell, artifacts):
        raise InfraError("the node did not boot in 300 s")


def test_a_lab_failure_is_an_error_and_the_exit_code_says_so(tmp_path):
    r = runner.CellResult(CELL)
    runner._one_cell(r, Options(containerd_version="2.1.9"), tmp_path / "cell", _NoBoot, print)
    assert r.outcome == "error" and "did not boot" in r.why and r.stopped_at.startswith("before a node")
    assert runner.exit_code([r]) == 1
    failed = runner.CellResult(CELL, outcome="failed")
    assert runner.exit_code([failed]) == 1 and runner.exit_code([runner.CellResult(CELL)]) == 0


def test_bad_input_is_one_line_and_exit_2(run_cli):
    p = run_cli("rehearse", "--arch", "sparc")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "sparc" in p.stderr, p.stderr
    p = run_cli("rehearse", "--bootstrapper", "kubeadmm")
    assert p.returncode == 2 and "kubeadmm" in p.stderr and "Traceback" not in p.stderr


def test_a_kubeadm_cell_rehearses_on_a_real_amd64_debian12_node_up_to_kubeadm_init(tmp_path):
    """The real plan on a real emulated node, against the stand-ins: key download + dearmor, the
    sources line, apt-get update against the signed repository, install, holds, containerd 2.x from
    the release-layout tarball with its config read back, kubelet enabled; stopped before kubeadm init."""
    for tool in ("mmdebstrap", "gpg", "dpkg-deb"):
        need(tool)
    seen = {}

    def inspect(node, result):
        for name, cmd in {"keyring": f"test -s {KEYRING} && echo present", "holds": "apt-mark showhold",
                          "sources": "cat /etc/apt/sources.list.d/kubernetes.list",
                          "dump": "containerd config dump", "containerd": "containerd --version",
                          "kubectl": "kubectl version --client", "kubelet": "systemctl is-enabled kubelet"}.items():
            seen[name] = node.run(cmd).stdout

    results = runner.run([CELL], tmp_path, progress=print, inspect=inspect)
    r = results[0]
    assert r.outcome == "rehearsed", r.why
    assert r.stopped_at == "kubeadm init" and "needs a real Kubernetes binary" in r.why
    assert all(s["outcome"] == "passed" and s["seconds"] >= 0 for s in r.steps)
    assert seen["keyring"].strip() == "present"
    assert seen["holds"].split() == ["kubeadm", "kubectl", "kubelet"]
    assert "/pkgs/core:/stable:/v1.37/deb/ /" in seen["sources"]
    assert " 2.1.9" in seen["containerd"] and "version = 3" in seen["dump"]
    assert "SystemdCgroup = true" in seen["dump"] and "/opt/cni/bin" in seen["dump"]
    assert "v1.36" in seen["kubectl"]  # Debian sid's real kubectl (no 1.37 in Debian)
    assert seen["kubelet"].strip() == "enabled"
    doc = json.loads((tmp_path / "rehearsal.json").read_text())
    assert doc["cells"][0]["cluster"] == "rehearsal" and doc["cells"][0]["outcome"] == "rehearsed"
    assert "github" in doc["stand_ins"] and "2.1.9" in doc["stand_ins"]["github"]
    fetched = doc["fetched"]
    for path in ("/pkgs/core:/stable:/v1.37/deb/Release.key", "/pkgs/core:/stable:/v1.37/deb/InRelease",
                 "/pkgs/core:/stable:/v1.37/deb/amd64/kubeadm_1.37.0-1.1_amd64.deb",
                 "/github/containerd/containerd/releases/download/v2.1.9/containerd-2.1.9-linux-amd64.tar.gz",
                 "/github/opencontainers/runc/releases/download/v1.3.6/runc.amd64"):
        assert path in fetched, fetched
    assert "archmatrix rehearsal stand-in for kubeadm" in (tmp_path / "rehearsal" / CELL.id / "bootstrap.log").read_text()


class _Interrupted:
    """A provider interrupted while it boots (Ctrl-C, or SIGTERM through the CLI's handler)."""

    def __init__(self, progress):
        pass

    def provision(self, cell, artifacts):
        raise KeyboardInterrupt


def test_an_interrupted_rehearsal_still_writes_whole_results_and_stops_its_server(tmp_path, monkeypatch):
    built = []

    def build(root, cells, progress):
        (root / "f").write_text("x")
        built.append(root)
        return {}

    Source = types.ModuleType("harness.rehearsal.fake")  # a stand-in source of the contract's shape
    Source.build, Source.options = build, lambda node_url: {"package_base": node_url}

    monkeypatch.setattr(runner, "stand_in_modules", lambda b: [Source])
    cells = [CELL, Cell("amd64", "debian13", "1.37", "kubeadm", "qemu")]
    with pytest.raises(KeyboardInterrupt):
        runner.run(cells, tmp_path, provider_factory=_Interrupted)
    doc = json.loads((tmp_path / "rehearsal.json").read_text())
    assert [(c["outcome"], c["why"]) for c in doc["cells"]] == [
        ("error", "interrupted (Ctrl-C or SIGTERM) during this cell"), ("skipped", "interrupted before this cell")]
    assert built and not built[0].exists()  # the stand-ins' files removed, the server stopped (nothing_leaks)
