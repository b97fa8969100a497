"""`archmatrix doctor` on this machine: a real pass, and real failures made by taking something away
(a qemu-system binary off PATH, a full disk under the image cache, no capabilities, an unreachable
mirror), each naming the fix and failing only the cells that need it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.matrix import kube_versions, platforms
from conftest import need

HOST = platforms.host()
V = "v" + kube_versions.resolve("latest").minor  # matrix.yaml's kubernetes axis: [latest]


def path_without(tmp_path, *gone: str) -> str:
    """A PATH dir holding a link to every program of the current PATH except `gone`."""
    d = tmp_path / "bin"
    d.mkdir()
    for entry in reversed(os.environ["PATH"].split(os.pathsep)):
        if os.path.isdir(entry):
            for f in os.listdir(entry):
                full = os.path.join(entry, f)
                if f not in gone and os.access(full, os.X_OK) and not os.path.isdir(full):
                    (d / f).unlink(missing_ok=True)
                    (d / f).symlink_to(full)
    return str(d)


def test_this_machine_can_run_a_native_qemu_cell(run_cli):
    need(HOST.qemu.system)
    out = run_cli("doctor", "--arch", HOST.name, "--distro", "debian12", "--provider", "qemu",
                  "--bootstrapper", "none")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(x.startswith(f"ok    qemu-system {HOST.name}") and "QEMU emulator version" in x for x in lines)
    assert any(x.startswith(f"ok    accelerator {HOST.name}") for x in lines)
    assert any(x.startswith("ok    debian mirror") for x in lines)
    assert lines[-1] == "archmatrix doctor: 1 selected cell can run here"


def test_no_qemu_system_binary_fails_the_cells_that_boot_that_arch(tmp_path, run_cli):
    s390x = platforms.arch("s390x")
    need(s390x.qemu.system)
    env = {"PATH": path_without(tmp_path, s390x.qemu.system)}
    out = run_cli("doctor", "--arch", "s390x", "--distro", "debian12", "--bootstrapper", "none", env=env)
    assert out.returncode == 1, out.stdout
    assert f"FAIL  qemu-system s390x    {s390x.qemu.system} not found" in out.stdout
    assert f"fix: apt-get install -y {s390x.qemu.package}" in out.stdout
    assert f"needed by: s390x-debian12-{V}-none-qemu\n" in out.stdout  # not the docker cell: it boots no VM
    assert out.stderr.startswith(f"archmatrix doctor: 1 of 2 selected cannot run here (s390x-debian12-{V}-none-qemu)")
    docker_only = run_cli("doctor", "--arch", "s390x", "--distro", "debian12", "--provider", "docker", env=env)
    assert docker_only.returncode == 0 and "qemu-system" not in docker_only.stdout, docker_only.stdout


def test_nothing_needed_nothing_checked(run_cli):
    out = run_cli("doctor", "--provider", "local", env={"PATH": "/nonexistent"})
    assert out.returncode == 0 and out.stdout == "archmatrix doctor: 1 selected cell can run here\n", out.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_no_room_in_the_image_cache(tmp_path, run_cli):
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(cache)], check=True)
    try:
        out = run_cli("doctor", "--arch", "s390x", "--distro", "debian12", "--provider", "qemu",
                      env={"ARCHMATRIX_CACHE": str(cache)})
    finally:
        subprocess.run(["umount", str(cache)], check=True)
    assert out.returncode == 1, out.stdout
    assert f"FAIL  image cache disk     0.1 GB free at {cache}/images; 1 image(s) to build (debian12/s390x) " \
           f"need ~3 GB" in out.stdout
    assert "fix: free space there, or set ARCHMATRIX_CACHE to a directory on a bigger disk" in out.stdout


def test_without_capabilities_network_namespaces_fail_the_tests_only(run_cli):
    """Root's uid with an empty capability bounding set (setpriv): what an unprivileged user gets."""
    need("setpriv")
    out = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--",
                          *run_cli_argv(["doctor", "--tests"])], capture_output=True, text=True)
    assert out.returncode == 1, out.stdout
    assert "FAIL  network namespaces   unshare --net: unshare: unshare failed: Operation not permitted" in out.stdout
    assert "needed by: the harness's tests" in out.stdout
    cells = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--",
                            *run_cli_argv(["doctor", "--provider", "local"])], capture_output=True, text=True)
    assert cells.returncode == 0, cells.stdout  # no cell needs a namespace


def run_cli_argv(args):
    return [str(Path(sys.executable).parent / "archmatrix"), *args]


def test_an_unreachable_mirror_fails_the_image_building_cells(run_cli):
    from harness.services.ports import free_port

    url = f"http://127.0.0.1:{free_port()}/debian"  # loopback, nothing listening
    out = run_cli("doctor", "--arch", "amd64", "--distro", "debian12", "--bootstrapper", "none", "--mirror", url)
    assert out.returncode == 1
    assert f"FAIL  debian mirror        {url} (from --mirror): {url}/dists/bookworm/Release: [Errno 111] " \
           "Connection refused" in out.stdout
    assert f"needed by: amd64-debian12-{V}-none-qemu, amd64-debian12-{V}-none-docker\n" in out.stdout


def test_the_cached_kvm_probe_is_what_doctor_reports(tmp_path, run_cli):
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("no usable /dev/kvm here: doctor says TCG without a probe (the other branch)")
    (tmp_path / "kvm-probe.json").write_text(json.dumps({"accelerator": "tcg", "host_kernel": "6.1.0-test"}))
    out = run_cli("doctor", "--arch", HOST.name, "--distro", "debian12", "--provider", "qemu",
                  "--bootstrapper", "none", env={"ARCHMATRIX_CACHE": str(tmp_path)})
    assert f"ok    {'accelerator ' + HOST.name:20} TCG (probe boot on kernel 6.1.0-test, cached in " \
           f"{tmp_path}/kvm-probe.json)" in out.stdout
