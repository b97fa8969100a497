"""The QEMU image cache under faults: a corrupt entry is rebuilt (never booted), a full disk
leaves nothing half-written, two runs at once build once and boot on different ports, and
Ubuntu cloud images are imported from files the user supplies (offline: the error says which)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.matrix import platforms
from harness.common.errors import InfraError, UserError
from harness.nodes.images import build as images
from harness.nodes.images import cloud
from harness.nodes.images.cache import verify
from harness.nodes import qemu
from conftest import ROOT, need

A, D = platforms.arch, platforms.distro


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private, empty archmatrix cache for this test (the real one is left alone)."""
    c = tmp_path / "cache"
    c.mkdir()
    monkeypatch.setenv("ARCHMATRIX_CACHE", str(c))
    return c


@pytest.fixture(scope="module")
def amd64_image():
    need("mmdebstrap")
    return images.build(A("amd64"), D("debian12"), progress=print)


def test_corrupt_entry_is_detected_and_verify_names_the_file(amd64_image, cache):
    entry = images.images_dir() / amd64_image.path.name
    shutil.copytree(amd64_image.path, entry)
    assert images.lookup(A("amd64"), D("debian12")) is not None
    with open(entry / "kernel", "r+b") as f:  # same size, one byte flipped: only sha256 can tell
        f.seek(4096)
        b = f.read(1)
        f.seek(4096)
        f.write(bytes([b[0] ^ 0xFF]))
    assert verify(images.lookup(A("amd64"), D("debian12"))) == ["kernel: sha256 differs from the manifest"]
    with open(entry / "disk.qcow2", "r+b") as f:  # half-written: shorter than the manifest says
        f.truncate(1 << 20)
    assert images.lookup(A("amd64"), D("debian12")) is None  # never handed to QEMU


def test_disk_full_while_building_leaves_no_half_image(amd64_image, cache):
    """A corrupt entry is removed and rebuilt; the rebuild runs out of space (a 150 MB tmpfs):
    an InfraError naming the step, and nothing of the entry or its work dir stays in the cache."""
    images_dir = images.images_dir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150m", "tmpfs", str(images_dir)], check=True)
    try:
        entry = images_dir / amd64_image.path.name
        entry.mkdir()
        (entry / "manifest.json").write_text(json.dumps({"files": {"disk.qcow2": {"size": 1, "sha256": "x"}}}))
        lines = []
        with pytest.raises(InfraError) as e:
            images.build(A("amd64"), D("debian12"), progress=lines.append)
        assert any("incomplete or corrupt, rebuilding" in x for x in lines)
        assert f"mmdebstrap failed (the disk holding {images_dir} is full)" == str(e.value)
        assert sorted(p.name for p in images_dir.iterdir()) == [entry.name + ".lock"]
    finally:
        subprocess.run(["umount", "-l", str(images_dir)], check=True)


def _build_mounts(cache) -> list[str]:
    """The mounts under the cache, as the host sees them and as the build's own processes see them: a
    build runs in a private mount namespace (nodes/images/cache.py), so its chroot mounts are only in
    its processes' /proc/PID/mounts."""
    lines = []
    pids = subprocess.run(["pgrep", "-f", f"mmdebstrap.*{cache}"], capture_output=True, text=True).stdout.split()
    for f in ["/proc/mounts", *(f"/proc/{pid}/mounts" for pid in pids)]:
        try:
            lines += [line for line in Path(f).read_text().splitlines(keepends=True) if str(cache) in line]
        except OSError:
            pass  # that process has exited
    return lines


def test_ctrl_c_during_a_build_stops_mmdebstrap_and_unmounts_its_root(cache):
    """Ctrl-C while mmdebstrap runs maintainer scripts (the host's /proc, /sys, /dev/pts and /dev/shm
    are mounted in its root then): mmdebstrap is stopped, those mounts are gone before the work dir is
    removed (rmtree would walk into the host's /dev/shm), and nothing is left in the cache."""
    need("mmdebstrap")
    # SIGINT back to its default in the child: under a non-interactive shell's background job (CI) it is
    # ignored, and Python then never turns it into KeyboardInterrupt
    p = subprocess.Popen([str(Path(sys.executable).parent / "archmatrix"), "images", "build", "--arch", "amd64",
                          "--distro", "debian12"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for _ in range(600):  # the chroot mounts appear once mmdebstrap unpacks the essential set
            if any("/root/proc " in line for line in _build_mounts(cache)):
                break
            assert p.poll() is None, p.stdout.read()
            time.sleep(0.5)
        else:
            pytest.fail("mmdebstrap never mounted /proc in its root within 300 s")
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    print(out)
    assert p.returncode != 0
    with open("/proc/mounts") as f:
        assert [line for line in f if str(cache) in line] == []
    left = subprocess.run(["pgrep", "-f", f"mmdebstrap.*{cache}"], capture_output=True, text=True).stdout.split()
    assert left == []
    assert [x.name for x in images.images_dir().iterdir() if not x.name.endswith(".lock")] == []


def test_a_killed_build_leaves_no_process_and_the_next_build_cleans_up(cache):
    """The process building an image is SIGKILLed (a crashed xdist worker) while mmdebstrap runs:
    every process of the build dies with it (PID namespace); the next build removes the killed
    one's work dir, unmounting what it left mounted, and builds."""
    need("mmdebstrap")
    cmd = [str(Path(sys.executable).parent / "archmatrix"), "images", "build", "--arch", "amd64", "--distro", "debian12"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if any("/root/proc " in line for line in _build_mounts(cache)):
                break
            time.sleep(0.5)
    finally:
        p.kill()
        p.wait()
    for _ in range(20):
        left = subprocess.run(["pgrep", "-f", f"mmdebstrap.*{cache}"], capture_output=True, text=True).stdout.split()
        if not left:
            break
        time.sleep(0.5)
    assert left == []
    stale = [x.name for x in images.images_dir().iterdir() if x.name.startswith(".")]
    assert len(stale) == 1
    lines = []
    img = images.build(A("amd64"), D("debian12"), progress=lines.append)
    assert f"image {img.path.name}: removing {stale[0]}, left by an interrupted build" in lines
    with open("/proc/mounts") as f:
        assert [line for line in f if str(cache) in line] == []
    assert not (images.images_dir() / stale[0]).exists() and verify(img) == []


def test_two_runs_at_once_build_once_and_boot_on_their_own_ports(amd64_image, cache, tmp_path):
    """Two pytest runs of the same cell start together on an empty cache: one builds, the other
    waits for the lock and uses the result; each boots its own node on its own port; both pass."""
    probe = qemu.run_dir().parent / "kvm-probe.json"
    real_probe = Path(os.environ.get("HOME", "/root")) / ".cache/archmatrix/kvm-probe.json"
    if real_probe.is_file():  # this machine's KVM verdict, so the test does not pay another probe boot
        shutil.copyfile(real_probe, probe)
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [amd64], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [none], "
                 "provider: [qemu]}\n")
    runs = [subprocess.Popen([sys.executable, "-m", "pytest", "suites/test_binaries.py", "--matrix", str(m), "-q",
                              "-p", "no:cacheprovider", "--reports-dir", str(tmp_path / f"r{i}")],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for i in (0, 1)]
    outs = [r.communicate(timeout=900)[0] for r in runs]
    for r, out in zip(runs, outs):
        assert r.returncode == 0 and "2 passed" in out, out[-3000:]  # sh: arch and runs
    both = "\n".join(outs)
    assert both.count(": mmdebstrap bookworm") == 1, both  # built once
    assert "another process is building it; waiting for its lock" in both
    ports = [(tmp_path / f"r{i}/artifacts/amd64-debian12-v1.32-none-qemu/commands.txt").read_text()
             .split("hostfwd=tcp:127.0.0.1:")[1].split("-")[0] for i in (0, 1)]
    assert ports[0] != ports[1]
    assert not list(qemu.run_dir().glob("*.json"))  # both nodes gone


def test_ubuntu_offline_error_names_what_to_download_and_where(cache):
    with pytest.raises(UserError) as e:
        images.build(A("arm64"), D("ubuntu2404"), progress=print)
    msg = str(e.value)
    assert "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-arm64.img" in msg
    assert "https://cloud-images.ubuntu.com/noble/current/unpacked/noble-server-cloudimg-arm64-vmlinuz-generic" in msg
    assert str(cache / "downloads") in msg
    cli = subprocess.run([sys.executable, "-m", "harness.cli", "images", "build", "--arch", "arm64", "--distro",
                          "ubuntu2404"], capture_output=True, text=True, cwd=ROOT)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr and "noble-server-cloudimg-arm64.img" in cli.stderr


def test_download_failure_says_where_to_put_the_file(cache):
    # port 9 on loopback: nothing listens, so the download fails at once without leaving the machine
    with pytest.raises(UserError, match=r"cannot download http://127.0.0.1:9/x.img .*put it at .*downloads/x.img"):
        cloud.fetch("http://127.0.0.1:9/x.img", cloud.downloads_dir())
    assert not list(cloud.downloads_dir().iterdir())


def test_ubuntu_cloud_image_is_imported_with_a_nocloud_seed(amd64_image, cache):
    """The import path with real files: a real qcow2 disk, kernel and initrd (ours, named as
    Ubuntu names them: no Ubuntu image is reachable offline) placed where the error says."""
    need("genisoimage")
    names = list(cloud.sources(A("amd64"), D("ubuntu2204")))
    for src, name in zip(("disk.qcow2", "kernel", "initrd"), names):
        shutil.copyfile(amd64_image.path / src, cloud.downloads_dir() / name)
    img = images.build(A("amd64"), D("ubuntu2204"), progress=print)
    assert verify(img) == []
    root, seed = img.boot()
    assert root == "LABEL=cloudimg-rootfs" and seed == img.path / "seed.iso"
    iso = seed.read_bytes()
    assert iso[0x8001:0x8006] == b"CD001" and iso[0x8028:0x8030] == b"cidata  "  # ISO 9660 volume id
    assert img.ssh_key.with_suffix(".pub").read_text().split()[1].encode() in iso  # our login key in user-data
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(img.disk)], capture_output=True,
                                     text=True).stdout)
    base = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(amd64_image.disk)],
                                     capture_output=True, text=True).stdout)
    assert info["virtual-size"] == base["virtual-size"] + (4 << 30)
    cmd = qemu.command(A("amd64"), img, Path("/o.qcow2"), 2222, Path("/s.log"), "tcg")
    assert "root=LABEL=cloudimg-rootfs" in cmd[cmd.index("-append") + 1]
    assert f"file={seed},if=none,id=seed,format=raw,readonly=on" in cmd
