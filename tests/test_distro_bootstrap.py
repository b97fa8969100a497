"""The distro bootstrapper: plans per distro and release, a real emulated node that cannot reach
its mirror failing at once with the URL named, and the whole path on a real s390x node (distro
containerd pulls the harness's pause index and gets its own arch)."""
import json
import subprocess
import sys
import time

import pytest

from harness.matrix import platforms
from harness.services.lab import Lab
from harness.bootstrap.distro import DistroBootstrapper
from harness.common.errors import InfraError
from harness.nodes.images import build as images
from harness.services.ports import free_port
from harness.matrix.cells import Cell
from harness.nodes import qemu
from conftest import ROOT, need


@pytest.mark.parametrize("distro,k8s,kubectl,pause", [("debian12", "1.27", "kubernetes-client", "3.9"),
                                                      ("debian13", "1.32", "kubectl", "3.10")])
def test_plan_per_distro_and_release(distro, k8s, kubectl, pause, run_cli, tmp_path):
    cell = Cell("s390x", distro, k8s, "distro", "qemu")
    steps = DistroBootstrapper().plan(cell, "127.0.0.1:5000")
    text = "\n".join(s.command for s in steps)
    assert "install -y --no-install-recommends containerd runc\n" in text + "\n"
    assert f"if apt-cache policy {kubectl} | grep -q 'Candidate: [0-9]'; then" in text
    assert f'sandbox_image = "10.0.2.2:5000/pause:{pause}"' in text and "version = 2\n" in text
    assert text.endswith(f"containerd config dump\nctr -n k8s.io images pull --plain-http 10.0.2.2:5000/pause:{pause}")
    m = tmp_path / "m.yaml"
    m.write_text(f"axes: {{arch: [s390x], distro: [{distro}], kubernetes: ['{k8s}'], bootstrapper: [distro], "
                 f"provider: [qemu]}}\n")
    out = run_cli("plan", f"s390x-{distro}-v{k8s}-distro-qemu", "--matrix", str(m))
    assert out.returncode == 0 and "[node] " in out.stdout and f"pause:{pause}" in out.stdout


def test_unreachable_mirror_fails_fast_naming_the_url(tmp_path):
    """The node's mirror is a closed port on the host's loopback (10.0.2.2 from the guest): the
    connection is refused at once, nothing leaves the machine, and the error names the URL."""
    need("mmdebstrap", "mmdebstrap")
    images.build(platforms.arch("amd64"), platforms.distro("debian12"), progress=print)
    cell = Cell("amd64", "debian12", "1.32", "distro", "qemu")
    node = qemu.QemuProvider(progress=print).provision(cell, tmp_path)
    mirror = f"http://10.0.2.2:{free_port()}/debian"
    lab = Lab()
    try:
        t0 = time.monotonic()
        with pytest.raises(InfraError) as e:
            DistroBootstrapper(lab=lab, mirror=mirror).prepare(node, cell, progress=print)
        print(f"failed after {time.monotonic() - t0:.1f} s: {e.value}")
    finally:
        node.teardown()
        lab.stop()
    assert str(e.value).startswith(f"the node cannot reach {mirror}/dists/bookworm/")
    assert e.value.retryable is False and "bootstrap log" in e.value.artifacts
    assert "Connection refused" in (tmp_path / "bootstrap.log").read_text()


def test_distro_runtime_end_to_end_on_s390x(tmp_path):
    need("mmdebstrap", "mmdebstrap")
    need("docker-registry", "docker-registry")
    images.build(platforms.arch("s390x"), platforms.distro("debian12"), progress=print)
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [s390x], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [distro], "
                 "provider: [qemu]}\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "suites/test_binaries.py", "suites/test_pause_image.py",
                          "--matrix", str(m), "-q", "-p", "no:cacheprovider", "--reports-dir", str(tmp_path / "r")],
                         cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:]
    run = json.loads((tmp_path / "r/results.json").read_text())
    passed = {r["test"].split("::")[1] for r in run["records"] if r["outcome"] == "passed"}
    for t in ("test_arch[containerd-", "test_runs[runc-", "test_arch[kubectl-", "test_runtime_sandbox_image[",
              "test_runtime_pulled_pause_is_node_arch["):
        assert any(p.startswith(t) for p in passed), (t, sorted(passed))
    props = next(r["properties"] for r in run["records"] if r["outcome"] == "passed")
    assert props["bootstrap"] == "distro" and props["bootstrap_seconds"] > 0
