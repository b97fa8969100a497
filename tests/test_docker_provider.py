"""Container nodes on a real dockerd (Debian's docker.io, its own data root, started and stopped
by the harness): arm64 and s390x nodes through binfmt qemu-user running the node-level suites;
the engine, its containerd and every container are gone after the run and after a crash."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.matrix import platforms
from harness.services import dockerd
from harness.nodes.images import build as images
from conftest import ROOT, alive, need


def _engine_leftovers() -> list[str]:
    dirs = [str(d) for d in Path("/tmp").glob(dockerd.PREFIX + "*")]
    procs = subprocess.run(["pgrep", "-af", dockerd.PREFIX], capture_output=True, text=True).stdout.splitlines()
    return dirs + [p for p in procs if "pgrep" not in p]


@pytest.fixture(scope="module")
def engine_ready():
    """What was there before this module started (another run's live engine on a shared machine) is not
    ours: the tests check that they leave nothing beyond it."""
    before = set(_engine_leftovers())
    need("dockerd")
    need("docker")
    need("mmdebstrap")
    for arch in ("arm64", "s390x"):
        images.build(platforms.arch(arch), platforms.distro("debian12"), progress=print)
    assert not set(_engine_leftovers()) - before
    return before


def test_foreign_container_nodes_run_the_node_suites(engine_ready, tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [arm64, s390x], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [none], "
                 "provider: [docker]}\n")
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}  # the run starts its own engine
    out = subprocess.run([sys.executable, "-m", "pytest", "suites/test_binaries.py", "suites/test_node_registration.py",
                          "--matrix", str(m), "-q", "-p", "no:cacheprovider", "--reports-dir", str(tmp_path / "r")],
                         cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0 and "4 passed" in out.stdout, out.stdout[-3000:]  # sh: arch and runs, per cell
    assert "starting a private dockerd" in out.stdout
    run = json.loads((tmp_path / "r/results.json").read_text())
    # sh's linkage: nothing promised, so nothing judged: deselected at collection, with the reason
    assert not [r for r in run["records"] if "test_linkage[sh-" in r["test"]]
    assert re.search(r"^ +\d+ bootstrapper none promises no linkage for .*\bsh\b", out.stdout, re.M), out.stdout[-3000:]
    passed = [r for r in run["records"] if r["outcome"] == "passed"]
    assert {r["cell"] for r in passed} == {"arm64-debian12-v1.32-none-docker", "s390x-debian12-v1.32-none-docker"}
    for r in passed:
        arch = r["cell"].split("-")[0]
        assert r["properties"]["emulation"] == f"binfmt {platforms.arch(arch).qemu_user}"
        assert r["properties"]["engine"].startswith("20.") and r["properties"]["node_start_seconds"] > 0
    # the registration suite needs a cluster: bootstrapper none says so instead of passing
    assert not [r for r in run["records"] if "test_node_registration" in r["test"]]
    assert re.search(r"^ +16 bootstrapper none brings up no cluster", out.stdout, re.M), out.stdout[-3000:]
    assert not set(_engine_leftovers()) - engine_ready


def test_engine_and_containers_die_with_a_killed_owner_and_gc_cleans_up(engine_ready, tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent("""
        import time
        from pathlib import Path
        from harness.matrix.cells import Cell
        from harness.nodes.docker import DockerProvider
        from harness.services.lab import Lab
        lab = Lab()
        node = DockerProvider(progress=lambda m: None, lab=lab).provision(
            Cell("s390x", "debian12", "1.32", "none", "docker"), Path(%r))
        import docker
        c = docker.DockerClient(base_url=node.transport.engine).containers.get(node.transport.container)
        print(lab.engine.pid, c.attrs["State"]["Pid"], lab.engine.root, flush=True)
        time.sleep(600)
    """ % str(tmp_path / "art")))
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    line = owner.stdout.readline().split()
    assert len(line) == 3, "the owner did not start its node"
    dockerd, container_init, root = int(line[0]), int(line[1]), line[2]
    assert alive(dockerd) and alive(container_init)
    owner.send_signal(signal.SIGKILL)
    owner.wait(10)
    for _ in range(240):  # PDEATHSIG: dockerd gets SIGTERM and stops its containers
        if not alive(dockerd) and not alive(container_init):
            break
        time.sleep(0.25)
    assert not alive(dockerd) and not alive(container_init)
    gc = subprocess.run([sys.executable, "-m", "harness.cli", "gc"], capture_output=True, text=True, cwd=ROOT)
    assert f"removed docker engine dir {root}" in gc.stdout, gc.stdout + gc.stderr
    assert not set(_engine_leftovers()) - engine_ready
