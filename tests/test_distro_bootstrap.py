"""The distro bootstrapper: plans per distro and release, a real emulated node that cannot reach
its mirror failing at once with the URL named, and the whole path on a real s390x node (distro
containerd pulls the harness's pause index and gets its own arch)."""
import json
import os
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
from conftest import COUNTING_CONFTEST, ROOT, need


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
    need("mmdebstrap")
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
    need("mmdebstrap")
    need("docker-registry")
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


# Test bootstrappers for a real run of the suites, made by the registry call the plugin uses
# (bootstrap.get): v1.32 is the distro path with containerd's config broken before it starts (the
# product's step "containerd up" then fails); v1.31 has a mirror that is a closed port (the lab).
BROKEN = COUNTING_CONFTEST + '''
import harness.bootstrap as bootstrap
from harness.bootstrap.distro import DistroBootstrapper
from harness.bootstrap.steps import Step

class BrokenConfig(DistroBootstrapper):
    def plan(self, cell, registry_host="127.0.0.1:PORT", facts=None):
        steps = super().plan(cell, registry_host, facts)
        up = next(i for i, s in enumerate(steps) if s.why == "containerd up")
        return steps[:up] + [Step("node", "echo '[plugins' >> /etc/containerd/config.toml",
                                  "containerd's config broken (by the test)", lab=True)] + steps[up:]

def get(name, options=None, lab=None):
    if os.environ["CELL_K8S"] == "1.32":
        return BrokenConfig(options, lab)
    return DistroBootstrapper(options, lab, mirror=os.environ["DEAD_MIRROR"])

bootstrap.get = get
'''


@pytest.mark.parametrize("k8s,outcome", [("1.32", "failed"), ("1.31", "error")])
def test_a_product_step_failing_on_a_real_node_is_failed_and_not_retried(pytester, shared_cache, tmp_path, k8s,
                                                                         outcome):
    """A real amd64 node under QEMU, the real suites: containerd from Debian that cannot start (its
    config broken) fails every test that needed the bootstrap with that one step, its command and
    output, and nothing is retried; a mirror the node cannot reach is an error."""
    need("mmdebstrap")
    need("docker-registry")
    images.build(platforms.arch("amd64"), platforms.distro("debian12"), progress=print)
    pytester.makefile(".yaml", matrix=f"axes: {{arch: [amd64], distro: [debian12], kubernetes: ['{k8s}'], "
                                     f"bootstrapper: [distro], provider: [qemu]}}\n")
    pytester.makeconftest(BROKEN)
    for suite in ("test_binaries.py", "test_pause_image.py"):
        (pytester.path / suite).write_text((ROOT / "suites" / suite).read_text())
    log = tmp_path / "log.jsonl"
    mirror = f"http://10.0.2.2:{free_port()}/debian"  # the host's loopback from the guest: a closed port
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE", "--junitxml=j.xml"],
        cwd=pytester.path, capture_output=True, text=True, timeout=2400,
        env={**os.environ, "LOG": str(log), "CELL_K8S": k8s, "DEAD_MIRROR": mirror, "ARCHMATRIX_RELEASES": "table"})
    print(r.stdout[-4000:])
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    run = json.loads((pytester.path / "reports" / "results.json").read_text())
    recs = run["records"]
    # sh, containerd, runc, kubectl (arch, runs) and the runtime's two pause tests: all needed the bootstrap
    assert len(recs) == 10 and {x["outcome"] for x in recs} == {outcome}, [(x["test"], x["outcome"]) for x in recs]
    assert len({x["message"] for x in recs}) == 1  # one finding, reported by each test that needed it
    msg = recs[0]["message"]
    if outcome == "failed":
        assert msg.startswith("product failure: distro: bootstrap step 'containerd up' failed (exit 1)"), msg
        assert "command: systemctl restart containerd" in msg and "containerd.service" in msg.split("last lines")[1]
    else:
        assert msg.startswith(f"infrastructure error: the node cannot reach {mirror}/dists/bookworm/"), msg
    events = [json.loads(x) for x in log.read_text().splitlines()]
    assert [e for e in events if e["event"] == "provision"] == [
        {"event": "provision", "cell": f"amd64-debian12-v{k8s}-distro-qemu"}]  # provisioned once: no retry
    blog = (pytester.path / "reports" / "artifacts" / f"amd64-debian12-v{k8s}-distro-qemu" / "bootstrap.log").read_text()
    if outcome == "failed":
        assert blog.count("$ systemctl restart containerd") == 1 and "$ echo '[plugins'" in blog
    else:
        assert blog.count("$ DEBIAN_FRONTEND=noninteractive apt-get") == 1  # apt update, once; nothing after it
    junit = (pytester.path / "j.xml").read_text()
    assert junit.count("<failure" if outcome == "failed" else "<error") == 10
