"""Real QEMU nodes: amd64 (native arch, KVM probed then TCG) and s390x (foreign, big-endian:
the arch most likely to show byte-order bugs, and the quickest foreign image to build here).
Images are built once per machine (content-addressed cache) and shared by every test."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from harness.matrix import platforms
from harness.common.errors import InfraError
from harness.host import binfmt
from harness.nodes.images import build as images
from harness.matrix.cells import Cell
from harness.nodes import pair, qemu
from conftest import ROOT, need

A = platforms.arch


@pytest.mark.parametrize("p", [pytest.param(p, id=p.name) for p in platforms.PLATFORMS])
def test_command_line_comes_from_the_table(p, tmp_path):
    img = images.BaseImage(tmp_path, p.name, "debian13")
    cmd = qemu.command(p, img, tmp_path / "o.qcow2", 2222, tmp_path / "s.log", "tcg")
    assert cmd[0] == p.qemu.system and cmd[cmd.index("-machine") + 1] == p.qemu.machine
    assert f"console={p.qemu.console}" in cmd[cmd.index("-append") + 1]
    nic = f"{p.qemu.net},netdev=net0" + (",romfile=" if p.qemu.net.endswith("-pci") else "")  # no PXE ROM to find
    assert f"{p.qemu.disk},drive=disk0" in cmd and nic in cmd and cmd[cmd.index("-vga") + 1] == "none"
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in cmd[cmd.index("-netdev") + 1]  # loopback only
    assert ("-cpu" in cmd) == bool(p.qemu.cpu) and ("-bios" in cmd) == bool(p.qemu.bios)


@pytest.mark.parametrize("p", [pytest.param(p, id=p.name) for p in platforms.PLATFORMS])
def test_a_join_cells_second_nic_is_a_loopback_socket_of_the_arch_model(p, tmp_path):
    """The private link (nodes/pair.py): a second NIC of the table's model, with its own MAC, on a
    socket netdev bound to or connecting to the host's loopback; never mcast."""
    img = images.BaseImage(tmp_path, p.name, "debian13")
    cp, worker = pair.ends(40123)
    cmds = [qemu.command(p, img, tmp_path / "o.qcow2", 2222, tmp_path / "s.log", "tcg", link=e) for e in (cp, worker)]
    assert "socket,id=net1,listen=127.0.0.1:40123" in cmds[0] and "socket,id=net1,connect=127.0.0.1:40123" in cmds[1]
    for cmd, end in zip(cmds, (cp, worker)):
        nic = f"{p.qemu.net},netdev=net1,mac={end.mac}" + (",romfile=" if p.qemu.net.endswith("-pci") else "")
        assert nic in cmd and not any("mcast" in a for a in cmd)
    assert cp.mac != worker.mac and cp.address != worker.address
    plain = qemu.command(p, img, tmp_path / "o.qcow2", 2222, tmp_path / "s.log", "tcg")
    assert "net1" not in " ".join(plain)  # a node of a one-node cell has one NIC


def test_missing_qemu_binary_names_the_package(tmp_path):
    fake = dataclasses.replace(A("s390x"), qemu=dataclasses.replace(A("s390x").qemu, system="qemu-system-nope"))
    node = qemu.QemuNode(Cell("s390x", "debian12", "1.32", "none", "qemu"), tmp_path, None, "tcg")
    node.p = fake
    with pytest.raises(InfraError, match="qemu-system-nope not found: apt-get install qemu-system-misc"):
        node.start()


@pytest.fixture(scope="module")
def image(request):
    def get(arch):
        need("mmdebstrap")
        return images.build(A(arch), platforms.distro("debian12"), progress=lambda m: print(m, flush=True))
    return get


@pytest.mark.parametrize("arch", ["amd64", "s390x"])
def test_boot_uname_and_one_connection(arch, image, tmp_path):
    image(arch)
    prov = qemu.QemuProvider(progress=print)
    cell = Cell(arch, "debian12", "1.32", "none", "qemu")
    node = prov.provision(cell, tmp_path)
    try:
        assert node.host.run("uname -m").stdout.strip() == A(arch).uname
        assert node.facts["accelerator"] in ("kvm", "tcg") and node.facts["boot_seconds"] > 0
        out = node.host.run("cat /proc/cpuinfo | head -3; ls /etc/ssh/ssh_host_ed25519_key.pub")
        assert out.rc == 0
        # every later command rides the one ssh ControlMaster connection
        assert node.transport.config.read_text().count("ControlMaster auto") == 1
        sockets = list(node.transport.config.parent.glob("cm"))
        assert len(sockets) == 1
        pid = json.loads(next(qemu.run_dir().glob(f"{os.getpid()}-*.json")).read_text())["pid"]
    finally:
        node.teardown()
    assert not qemu._alive(pid)
    assert not list(qemu.run_dir().glob(f"{os.getpid()}-*.json"))
    assert "ARCHMATRIX-READY" in (tmp_path / "serial.log").read_text()


def test_suite_runs_on_an_emulated_s390x_node(image, tmp_path):
    image("s390x")
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [s390x], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [none], provider: [qemu]}\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "suites/test_binaries.py", "--matrix", str(m), "-q",
                          "-p", "no:cacheprovider", "--reports-dir", str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0 and "2 passed" in out.stdout, out.stdout[-3000:]  # sh: arch and runs
    run = json.loads((tmp_path / "results.json").read_text())
    props = [r["properties"] for r in run["records"] if r["outcome"] == "passed"]
    assert props and all(p["accelerator"] == "tcg" and p["qemu_version"] for p in props)


def test_never_ready_is_an_error_with_serial_tail(image, tmp_path):
    img = image("amd64")
    node = qemu.QemuNode(Cell("amd64", "debian12", "1.32", "none", "qemu"), tmp_path, img, "tcg")
    node.start()
    pid = node.proc.pid
    with pytest.raises(InfraError) as e:
        node.wait_ready(4, print)  # far too short: the console has not said READY yet
    assert "no ready marker on the console after 4 s" in str(e.value)
    assert e.value.artifacts["serial"] == tmp_path / "serial.log"
    assert not qemu._alive(pid)


def test_qemu_dies_with_a_crashed_owner_and_gc_reaps_records(image, tmp_path):
    """SIGKILL the process that started QEMU (as when an xdist worker crashes): QEMU goes too."""
    image("amd64")
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from harness.nodes.images import build as images
        from harness.matrix import platforms
        from harness.matrix.cells import Cell
        from harness.nodes import qemu
        img = images.lookup(platforms.arch("amd64"), platforms.distro("debian12"))
        n = qemu.QemuNode(Cell("amd64", "debian12", "1.32", "none", "qemu"), Path({str(tmp_path)!r}), img, "tcg")
        n.start()
        print(n.proc.pid, flush=True)
        time.sleep(600)
    """))
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    qemu_pid = int(owner.stdout.readline())
    assert qemu._alive(qemu_pid)
    owner.send_signal(signal.SIGKILL)
    owner.wait(10)
    for _ in range(40):
        if not qemu._alive(qemu_pid):
            break
        time.sleep(0.25)
    assert not qemu._alive(qemu_pid)
    found = qemu.reap()  # the crashed owner's registration is reaped
    assert any(f["pid"] == qemu_pid for f in found)


def test_sigint_tears_the_node_down(image, tmp_path):
    image("amd64")
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [amd64], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [none], provider: [qemu]}\n")
    # SIGINT back to its default in the child: under a non-interactive shell's background job (CI) it is
    # ignored, and Python then never turns it into KeyboardInterrupt (as in test_base_images)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "suites/test_binaries.py", "--matrix", str(m), "-q", "-s",
                             "-p", "no:cacheprovider", "--reports-dir", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    pid = None
    while time.monotonic() < deadline and pid is None:
        recs = [json.loads(r.read_text()) for r in qemu.run_dir().glob(f"{proc.pid}-*.json")]
        pid = recs[0]["pid"] if recs else None
        time.sleep(0.5)
    assert pid and qemu._alive(pid)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    for _ in range(40):
        if not qemu._alive(pid):
            break
        time.sleep(0.25)
    assert not qemu._alive(pid)
    assert not list(qemu.run_dir().glob(f"{proc.pid}-*.json"))


@pytest.mark.parametrize("p", [pytest.param(p, id=p.name) for p in platforms.PLATFORMS if p is not platforms.host()])
def test_binfmt_entry_registered_for_foreign_arch(p):
    need(p.qemu_user)
    binfmt.ensure(p)
    entry = Path("/proc/sys/fs/binfmt_misc") / p.qemu_user.removesuffix("-static")
    assert entry.is_file() and "enabled" in entry.read_text()


def _qemu_pids_of(owner_pid: int) -> list[dict]:
    return [json.loads(r.read_text()) for r in qemu.run_dir().glob(f"{owner_pid}-*.json")]


def test_keep_nodes_on_failure_keeps_a_failed_cell_and_gc_stops_it(image, tmp_path):
    """A failing test with --keep-nodes on-failure: the node outlives pytest, `gc --list` prints its ssh
    command, that command reaches the node, and `gc --kept` stops it by its PID."""
    image("amd64")
    (tmp_path / "m.yaml").write_text("axes: {arch: [amd64], distro: [debian12], kubernetes: ['1.32'], "
                                     "bootstrapper: [none], provider: [qemu]}\n")
    (tmp_path / "test_fails.py").write_text("def test_fails(host):\n    assert host.run('uname -m').stdout == 'nope'\n")
    out = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_fails.py"), "-q", "-p", "no:cacheprovider",
                          "--matrix", str(tmp_path / "m.yaml"), "--reports-dir", str(tmp_path / "r"),
                          "--keep-nodes", "on-failure"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1 and "1 failed" in out.stdout, out.stdout[-2000:]
    assert "node kept (failed): ssh -F" in out.stdout + out.stderr
    kept = [json.loads(r.read_text()) for r in qemu.run_dir().glob("*.json")]
    kept = [k for k in kept if k.get("kept") and k["artifacts"].startswith(str(tmp_path))]
    assert len(kept) == 1 and qemu._alive(kept[0]["pid"])
    try:
        listed = subprocess.run([sys.executable, "-m", "harness.cli", "gc", "--list"], capture_output=True, text=True,
                                cwd=ROOT)
        line = next(x for x in listed.stdout.splitlines() if f"qemu pid {kept[0]['pid']}" in x)
        assert line.startswith("kept: ") and kept[0]["ssh"] in line
        uname = subprocess.run(kept[0]["ssh"].split() + ["uname", "-m"], capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
        assert uname.stdout.strip() == "x86_64", uname.stderr
        plain = subprocess.run([sys.executable, "-m", "harness.cli", "gc"], capture_output=True, text=True, cwd=ROOT)
        assert qemu._alive(kept[0]["pid"]), plain.stdout  # plain gc leaves kept nodes alone
    finally:
        gone = subprocess.run([sys.executable, "-m", "harness.cli", "gc", "--kept"], capture_output=True, text=True,
                              cwd=ROOT)
    assert f"stopped: {kept[0]['cell']} qemu pid {kept[0]['pid']} (kept by --keep-nodes)" in gone.stdout
    for _ in range(40):
        if not qemu._alive(kept[0]["pid"]):
            break
        time.sleep(0.25)
    assert not qemu._alive(kept[0]["pid"])
    assert not Path(kept[0]["tmp"]).exists() and not Path(kept[0]["overlay"]).exists()


def test_a_slow_image_s_boot_deadline_grows_with_its_recorded_boots(tmp_path, monkeypatch):
    """A flat 300 s ran out on Debian 13's emulated s390x boot: an image gets BOOT_HEADROOM times its
    slowest recorded boot when that is longer, and a faster boot never lowers the record."""
    monkeypatch.setattr(qemu, "boot_times_file", lambda: tmp_path / "boot-seconds.json")
    img = types.SimpleNamespace(path=tmp_path / "debian13-s390x-1ca26435f1ce")  # only its name is read
    assert qemu.boot_deadline(img, "tcg") == qemu.BOOT_TIMEOUT["tcg"]  # nothing recorded yet
    qemu.record_boot(img, "tcg", 40.0)
    assert qemu.boot_deadline(img, "tcg") == qemu.BOOT_TIMEOUT["tcg"]  # 3 x 40 s is less than 300 s
    qemu.record_boot(img, "tcg", 250.0)
    qemu.record_boot(img, "tcg", 30.0)
    assert qemu.boot_deadline(img, "tcg") == 750.0
    assert qemu.boot_deadline(img, "kvm") == qemu.BOOT_TIMEOUT["kvm"]  # per accelerator
    (tmp_path / "boot-seconds.json").write_text("{not json")  # a torn file is no record, not an error
    assert qemu.boot_deadline(img, "tcg") == qemu.BOOT_TIMEOUT["tcg"]
