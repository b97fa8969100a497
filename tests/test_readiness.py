"""Readiness against Debian's docker-registry on loopback, seeded with a complete release set
and a set with holes; then a registry that is down, stalled, refusing (401) or broken (500)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from harness.matrix import kube_versions, platforms
from harness.oci import client as registry
from harness.oci import readiness
from harness.oci.layout import push
from harness.services.registry import LocalRegistry
from conftest import ROOT, image_for, registry_and_layout

REL = kube_versions.resolve("1.33")
ARCHES = ("amd64", "arm64", "ppc64le", "s390x")


img = image_for


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    reg, lay = registry_and_layout(tmp_path_factory)
    full = [img(a) for a in ARCHES]
    jobs = []
    for name, ref in REL.images(f"{reg.host}/complete").items():
        jobs.append((ref.rsplit(":", 1)[1], full, ref))
    for name, ref in REL.images(f"{reg.host}/holes").items():
        tag = ref.rsplit(":", 1)[1]
        if name == "kube-proxy":
            jobs.append((tag, [img(a) for a in ARCHES if a != "s390x"], ref))  # a missing arch
        elif name == "etcd":
            continue  # a missing tag
        elif name == "coredns":
            jobs.append((tag, [img(a) if a != "ppc64le" else img(a, config_platform={"os": "linux", "architecture": "amd64"})
                               for a in ARCHES], ref))  # a config that lies
        else:
            jobs.append((tag, full, ref))
    jobs.append(("1.36", [img(a) for a in ARCHES if a != "s390x"], f"{reg.host}/holes/busybox:1.36"))
    for i, (tag, images, ref) in enumerate(jobs):
        t = f"t{i}"
        lay.tag(t, images)
        push(lay, t, ref)
    yield reg
    reg.stop()


def rows_by(rows):
    return {(r.image, r.platform): r for r in rows}


def test_complete_set_is_ready(seeded):
    rows = readiness.check(REL, [platforms.arch(a) for a in ARCHES], f"{seeded.host}/complete")
    assert len(rows) == 7 * 4 and all(r.ok for r in rows), [r.message for r in rows if not r.ok]
    assert all(r.digest.startswith("sha256:") for r in rows)


def test_holes_are_each_judged_right(seeded):
    rows = rows_by(readiness.check(REL, [platforms.arch(a) for a in ARCHES], f"{seeded.host}/holes",
                                   extra=[f"{seeded.host}/holes/busybox:1.36"]))
    assert rows[("kube-proxy", "linux/s390x")].status == "missing"
    assert rows[("kube-proxy", "linux/arm64")].status == "present"
    assert all(rows[("etcd", f"linux/{a}")].status == "missing" for a in ARCHES)
    assert "not found (404)" in rows[("etcd", "linux/amd64")].message
    assert rows[("coredns", "linux/ppc64le")].status == "mismatch"
    assert "image config says linux/amd64" in rows[("coredns", "linux/ppc64le")].message
    assert rows[("coredns", "linux/s390x")].status == "present"
    bb = rows[(f"{seeded.host}/holes/busybox:1.36", "linux/s390x")]
    assert bb.status == "missing" and bb.message.endswith("would fail with exec format error on s390x")
    assert sum(not r.ok for r in rows.values()) == 1 + 4 + 1 + 1


def test_cli_table_json_junit(seeded, tmp_path, run_cli):
    images = tmp_path / "images.yaml"
    images.write_text(f"images: [{seeded.host}/holes/busybox:1.36]\n")
    out = run_cli("readiness", "--k8s", "1.33", "--arch", "ppc64le,s390x", "--registry", f"{seeded.host}/holes",
                  "--images", str(images), "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"))
    assert out.returncode == 1
    assert "linux/ppc64le" in out.stdout.splitlines()[0] and "MISSING:" in out.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data) == 8 * 2
    from junitparser import JUnitXml

    cases = [c for s in JUnitXml.fromfile(str(tmp_path / "r.xml")) for c in s]
    assert len(cases) == 16
    failed = {c.name for c in cases if c.result and c.result[0]._tag == "failure"}
    assert "kube-proxy[linux/s390x]" in failed and "etcd[linux/ppc64le]" in failed
    ok = run_cli("readiness", "--k8s", "1.33", "--arch", "arm64", "--registry", f"{seeded.host}/complete")
    assert ok.returncode == 0 and "7 present, 0 not ready" in ok.stdout


def test_bad_images_file(tmp_path, run_cli):
    f = tmp_path / "i.yaml"
    f.write_text("images: {a: b}\n")
    out = run_cli("readiness", "--images", str(f), "--registry", "127.0.0.1:9")
    assert out.returncode == 2 and "expected a list of image references" in out.stderr


def test_down_registry_is_an_error_per_image_fast():
    dead = LocalRegistry()
    host = dead.host
    dead.stop()
    t0 = time.monotonic()
    rows = readiness.check(REL, [platforms.arch("amd64")], host, client=registry.Client(timeout=2, retries=1))
    assert time.monotonic() - t0 < 10
    assert len(rows) == 7 and all(r.status == "error" and f"cannot reach {host}" in r.message for r in rows)


def test_stalled_registry_times_out_boundedly(seeded):
    """A real registry, stopped with SIGSTOP: connections are accepted by the kernel, never answered."""
    os.killpg(seeded.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        rows = readiness.check(REL, [platforms.arch("amd64")], f"{seeded.host}/complete",
                               client=registry.Client(timeout=1, retries=1))
        took = time.monotonic() - t0
    finally:
        os.killpg(seeded.pid, signal.SIGCONT)
    assert all(r.status == "error" for r in rows) and took < 15, took
    assert readiness.check(REL, [platforms.arch("amd64")], f"{seeded.host}/complete")[0].ok  # recovers


def test_401_is_missing_and_500_is_error(tmp_path, seeded):
    # 401: the same registry software with htpasswd auth (bcrypt comes with paramiko)
    import bcrypt
    pw = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "htpasswd").write_text(f"user:{pw}\n")
    with LocalRegistry(tmp_path / "locked", extra_config=(
            f"auth:\n  htpasswd:\n    realm: test\n    path: {tmp_path / 'htpasswd'}\n")) as locked:
        rows = readiness.check(REL, [platforms.arch("amd64")], locked.host, client=registry.Client(timeout=2, retries=0))
        # the registry answered: the image is not there for an anonymous pull (not the lab failing)
        assert all(r.status == "missing" and "unauthorized (401)" in r.message for r in rows), rows[0].message
    # 500: a tag whose link file the storage driver cannot read (a directory where a file belongs)
    link = next((seeded.root / "data").rglob("complete/pause/_manifests/tags/3.10/current/link"))
    saved = link.read_bytes()
    link.unlink()
    link.mkdir()
    try:
        rows = readiness.check(REL, [platforms.arch("amd64")], f"{seeded.host}/complete",
                               client=registry.Client(timeout=2, retries=1))
        pause = rows_by(rows)[("pause", "linux/amd64")]
        assert pause.status == "error" and "answered 500" in pause.message, pause.message
        assert rows_by(rows)[("etcd", "linux/amd64")].ok  # the others still complete
    finally:
        link.rmdir()
        link.write_bytes(saved)


def _stage(seeded, tmp_path, repo):
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [amd64, s390x], distro: [debian12], kubernetes: ['1.33'], bootstrapper: [kubeadm], "
                 "provider: [ssh]}\n")
    return subprocess.run([sys.executable, "-m", "pytest", "suites/test_readiness.py", "--matrix", str(m), "--readiness",
                           "--image-repository", f"{seeded.host}/{repo}", "-rs", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True)


def test_readiness_stage_marks_cells_unsupported(seeded, tmp_path):
    out = _stage(seeded, tmp_path, "holes")
    # every cell unsupported: its tests deselected with the reason, and nothing was judged (exit 5)
    assert out.returncode == 5 and "14 deselected" in out.stdout, out.stdout
    assert "unsupported: readiness: " in out.stdout
    assert "holes/kube-proxy:v1.33.0: expected an entry for linux/s390x" in out.stdout  # s390x cell
    assert f"holes/etcd:{REL.etcd}: not found (404)" in out.stdout  # amd64 cell
    out = _stage(seeded, tmp_path, "complete")
    assert out.returncode == 0 and "14 passed" in out.stdout, out.stdout


def test_the_registry_dies_with_a_killed_owner(request):
    """atexit never runs in a SIGKILLed owner (a crashed xdist worker, `timeout -s KILL`): the registry
    must still stop (two were found orphaned on this machine before it had PDEATHSIG)."""
    owner = subprocess.Popen([sys.executable, "-c", "import time\nfrom harness.services.registry import LocalRegistry\n"
                              "r = LocalRegistry()\nprint(r.pid, r.root, flush=True)\ntime.sleep(600)"],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    pid, root = owner.stdout.readline().split()
    pid = int(pid)
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))  # the killed owner's temp dir
    os.kill(pid, 0)  # it runs
    owner.send_signal(signal.SIGKILL)
    owner.wait(10)
    for _ in range(80):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            break
        time.sleep(0.25)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"docker-registry {pid} outlived its SIGKILLed owner")
