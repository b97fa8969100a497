"""Faults a night meets, injected into real parts: a dropped SSH ControlMaster (its PID killed), a
killed QEMU (SIGKILL), a frozen QEMU (SIGSTOP), during a bootstrap step. Each ends the way the lab
saw it: one sentence naming the cell, the step and the cause, the console and QEMU's log attached;
a dropped connection to a guest that answers re-runs an idempotent step once (`recovered`).

CI runs the faults that share one amd64 node (drop twice, then kill: ~2 min with the boot). The
frozen guest (45 s bound) and the plugin-level runs, with and without -n 2, are in `nox -s faults`
(ARCHMATRIX_FAULTS=1)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.bootstrap.steps import Step, run_steps
from harness.common.errors import InfraError, NodeLost, ProductFailure
from harness.matrix import platforms
from harness.matrix.cells import Cell
from harness.nodes import qemu, sshconfig
from harness.nodes.base import Node, Transport
from harness.nodes.images import build as images
from conftest import ROOT, alive, need

LONG = pytest.mark.skipif(not os.environ.get("ARCHMATRIX_FAULTS"),
                          reason="the long fault set runs in `nox -s faults` (ARCHMATRIX_FAULTS=1): CI's budget "
                                 "holds only the faults that share one node")


# ---- no node: what a lost transport says when it says nothing ---------------------------------

class Mute(Transport):
    """A transport that fails as ssh does (exit 255) and writes nothing to stderr."""

    name = "ssh"
    lost_exit = 255

    def argv(self, script):
        return ["sh", "-c", "exit 255"]


def test_a_silent_lost_transport_is_a_sentence_not_a_repr(tmp_path):
    node = Node(Cell("amd64", "debian12", "1.32", "none", "local"), Mute(), tmp_path)
    with pytest.raises(NodeLost) as e:
        node.run("true")
    assert str(e.value) == "amd64-debian12-v1.32-none-local: lost the connection to the node (ssh exited 255 and " \
                           "said nothing)"
    assert "CommandResult" not in e.value.report() and not e.value.recoverable
    with pytest.raises(NodeLost, match="ssh exited 255"):  # later commands fail at once, the same way
        node.run("true")
    assert node.recover() is False  # no look at the node said the guest answers: not recovered


def test_a_lost_node_in_a_step_names_the_step_and_is_not_rerun(tmp_path):
    node = Node(Cell("amd64", "debian12", "1.32", "none", "local"), Mute(), tmp_path)
    log = tmp_path / "bootstrap.log"
    with pytest.raises(NodeLost) as e:
        run_steps(node, [Step("node", "apt-get update", "package lists", idempotent=True)], log, lambda m: None,
                  "distro")
    assert str(e.value).endswith("lost the connection to the node (ssh exited 255 and said nothing) during distro "
                                 "bootstrap step 'package lists'")
    assert e.value.artifacts["bootstrap log"] == log and log.read_text().count("$ apt-get update") == 1


def test_a_node_that_will_not_stop_never_errors_its_cell(pytestconfig, tmp_path, monkeypatch):
    """The ppc64le night: stopping the node raised SubprocessError (`ssh -O exit` past its 10 s) in the
    pool's teardown, after the cell's last test. The pool says it and goes on."""
    from harness import plugin
    from harness.plugin import NodePool

    said = []
    monkeypatch.setattr(plugin, "progress", lambda config, cell, message: said.append(message))

    def stop():
        raise subprocess.TimeoutExpired(["ssh", "-O", "exit", "node"], 10)

    cell = Cell("amd64", "debian12", "1.32", "none", "local")
    pool = NodePool(pytestconfig, lab=None)
    pool.cell, pool.node = cell, Node(cell, Transport(), tmp_path, stop=stop)
    pool.release()  # raises nothing
    assert pool.node is None
    assert said and said[0].startswith("stopping the node: TimeoutExpired: ")


def test_plans_mark_their_idempotent_steps():
    from harness.bootstrap.distro import DistroBootstrapper

    steps = DistroBootstrapper().plan(Cell("s390x", "debian12", "1.32", "distro", "qemu"), "127.0.0.1:5000")
    assert all(s.idempotent for s in steps if s.where == "node"), [s.name for s in steps if not s.idempotent]


# ---- one real amd64 node, three faults -------------------------------------------------------

@pytest.fixture(scope="module")
def amd64_image():
    need("mmdebstrap")
    return images.build(platforms.arch("amd64"), platforms.distro("debian12"), progress=lambda m: print(m, flush=True))


def _when_running(marker, then, deadline: float = 120):
    """In a thread: wait until this node's ssh client (its own config: other runs on this machine
    run the same commands) runs a command matching `marker`, then call `then()` and record when
    (the fault injection, as a person or a crash would). `marker` may be a function returning the
    full pattern, or None while the node does not exist yet."""
    hit = {}

    def watch():
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            pattern = marker() if callable(marker) else marker
            if pattern and subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0:
                time.sleep(1)  # the command is running on the guest
                hit["at"] = time.monotonic()
                then()
                return
            time.sleep(0.2)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t, hit


def _ssh_running(config: Path, command: str) -> str:
    return f"^ssh -F {config} node .*{command}"


def _kill_master(node):
    pid = sshconfig.master_pid(node.transport.config.parent)
    assert pid, "no ControlMaster to kill"
    os.kill(pid, signal.SIGKILL)


def test_drop_recovers_an_idempotent_step_errors_another_and_a_killed_qemu_says_so(amd64_image, tmp_path):
    cell = Cell("amd64", "debian12", "1.32", "distro", "qemu")
    node = qemu.QemuProvider(progress=print).provision(cell, tmp_path)
    log = tmp_path / "bootstrap.log"
    lines = []
    qemu_pid = json.loads(next(qemu.run_dir().glob(f"{os.getpid()}-*.json")).read_text())["pid"]
    try:
        # 0. the guest's disk full during a product step: the lab's error (ENOSPC from the guest's own
        # ext4, not a stand-in), named, not retried; the node is usable again once the file is gone
        free = node.run("stat -f -c '%f %S' /").stdout.split()
        # fallocate leaves room for its own extent metadata; dd then writes the rest until ENOSPC
        fill = node.run(f"fallocate -l {int(free[0]) * int(free[1]) - (64 << 20)} /fill && "
                        f"{{ dd if=/dev/zero of=/fill2 bs=1M 2>/dev/null; true; }} && echo filled")
        assert fill.stdout.strip() == "filled", fill.stderr
        with pytest.raises(InfraError) as e:
            run_steps(node, [Step("node", "head -c 8388608 /dev/zero > /etc/containerd-config.toml",
                                  "containerd config")], log, lines.append, "distro")
        assert str(e.value) == "the node's disk is full (No space left on device) in step 'containerd config'"
        assert e.value.retryable is False and not isinstance(e.value, ProductFailure)
        assert node.run("rm -f /fill /fill2 /etc/containerd-config.toml && echo x > /etc/archmatrix-ok && echo ok").stdout == "ok\n"

        # 1. the ControlMaster killed during an idempotent step: run once more on a new connection
        t, hit = _when_running(_ssh_running(node.transport.config, "sleep 11"), lambda: _kill_master(node))
        run_steps(node, [Step("node", "sleep 11; echo step-done", "package lists", idempotent=True)], log,
                  lines.append, "distro")
        t.join()
        assert hit and node.facts["recovered"] == "ssh drop during 'package lists'"
        text = log.read_text()
        assert "# SSH connection dropped (" in text and "the guest still answers a fresh connection" in text
        assert text.count("$ sleep 11; echo step-done") == 2 and "step-done\n" in text and "(exit 0," in text
        assert any("running 'package lists' once more on a new connection" in x for x in lines)

        # 2. the same drop during a step that is not idempotent: the cell's error, named
        t, hit = _when_running(_ssh_running(node.transport.config, "sleep 12"), lambda: _kill_master(node))
        with pytest.raises(NodeLost) as e:
            run_steps(node, [Step("node", "sleep 12; echo once", "containerd up")], log, lines.append, "distro")
        t.join()
        assert str(e.value).startswith(f"{cell.id}: SSH connection dropped (")
        assert str(e.value).endswith("the guest still answers a fresh connection during distro bootstrap step "
                                     "'containerd up' (not idempotent: not run again)")
        assert "CommandResult" not in e.value.report() and e.value.artifacts["bootstrap log"] == log
        assert "debug1:" in Path(e.value.artifacts["ssh debug"]).read_text()  # ssh -v of the fresh connection
        assert node.recover() and node.run("echo again").stdout == "again\n"

        # 3. QEMU SIGKILLed during a step: its exit, not the connection
        t, hit = _when_running(_ssh_running(node.transport.config, "sleep 40"), lambda: os.killpg(qemu_pid, signal.SIGKILL))
        with pytest.raises(NodeLost) as e:
            run_steps(node, [Step("node", "sleep 40", "package lists", idempotent=True)], log, lines.append, "distro")
        t.join()
        detect = time.monotonic() - hit["at"]
        print(f"killed QEMU detected in {detect:.1f} s: {e.value}")
        assert str(e.value) == f"{cell.id}: QEMU exited (killed by signal 9) during distro bootstrap step 'package lists'"
        assert e.value.log_tail and "ARCHMATRIX-READY" in Path(e.value.artifacts["serial"]).read_text()
        assert {"serial", "qemu log", "commands", "bootstrap log"} <= set(e.value.artifacts)
        assert "recovered" in node.facts and not e.value.recoverable
    finally:
        node.teardown()
    assert not qemu._alive(qemu_pid) and not list(qemu.run_dir().glob(f"{os.getpid()}-*.json"))


@LONG
def test_a_frozen_guest_is_detected_within_its_bound_and_killed(amd64_image, tmp_path):
    cell = Cell("amd64", "debian12", "1.32", "distro", "qemu")
    node = qemu.QemuProvider(progress=print).provision(cell, tmp_path)
    qemu_pid = json.loads(next(qemu.run_dir().glob(f"{os.getpid()}-*.json")).read_text())["pid"]
    bound = qemu.FREEZE_BOUND[node.facts["accelerator"]]
    assert node.facts["freeze_bound_seconds"] == bound
    try:
        t, hit = _when_running(_ssh_running(node.transport.config, "sleep 300"), lambda: os.killpg(qemu_pid, signal.SIGSTOP))
        with pytest.raises(NodeLost) as e:
            run_steps(node, [Step("node", "sleep 300", "package lists", idempotent=True)], tmp_path / "b.log",
                      print, "distro")
        t.join()
        detect = time.monotonic() - hit["at"]
        print(f"frozen guest detected in {detect:.1f} s: {e.value}")
        assert str(e.value).startswith(f"{cell.id}: guest stopped answering (its QEMU process is stopped: state T): "
                                       f"no SSH keepalive answer for {bound} s")
        assert "QEMU killed (SIGKILL) during distro bootstrap step 'package lists'" in str(e.value)
        assert not qemu._alive(qemu_pid)  # SIGKILLed while stopped: SIGTERM would not have ended it
        assert "recovered" not in node.facts
    finally:
        node.teardown()
    assert not qemu._alive(qemu_pid)


# ---- a killed image build leaves no mounts ----------------------------------------------------

def _mounted_anywhere(path: str) -> list[int]:
    """PIDs whose mount namespace has a mount at `path` (the host's and any other)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if any(line.split()[1] == path for line in (d / "mounts").read_text().splitlines()):
                    found.append(int(d.name))
            except (OSError, IndexError):
                continue
    return found


def test_a_sigkilled_build_leaves_no_mounts(tmp_path):
    """The runner every build step goes through (images/cache.run, as mmdebstrap does) mounts proc
    in a root, then its run is SIGKILLed by process group: the mount never reached the host's
    namespace and is gone with the build's own (a tiny command instead of a 6-minute build)."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root (the image build runs as root too)")
    need("unshare")
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    flag = tmp_path / "flag"
    owner = subprocess.Popen([sys.executable, "-c", f"""
from pathlib import Path
from harness.nodes.images.cache import run
run(["sh", "-c", "mount -t proc proc {root}/proc && touch {flag} && sleep 120"], "mount test",
    Path({str(tmp_path / 'build.log')!r}))
"""], cwd=ROOT, start_new_session=True)
    try:
        for _ in range(100):
            if flag.exists():
                break
            time.sleep(0.1)
        assert flag.exists(), (tmp_path / "build.log").read_text()
        inside = _mounted_anywhere(f"{root}/proc")
        assert inside and os.getpid() not in inside  # mounted, but only in the build's own namespace
        os.killpg(owner.pid, signal.SIGKILL)
        owner.wait(10)
        for _ in range(50):
            if not _mounted_anywhere(f"{root}/proc"):
                break
            time.sleep(0.1)
        assert not _mounted_anywhere(f"{root}/proc")
        assert not any(alive(p) for p in inside)
    finally:
        if owner.poll() is None:
            os.killpg(owner.pid, signal.SIGKILL)
            owner.wait(10)



# ---- whole runs: the real suites, a distro cell faulted during apt update, a local cell beside it --

QEMU_CELL = "amd64-debian12-v1.32-distro-qemu"
MATRIX = f"""
axes: {{arch: [amd64], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [distro], provider: [qemu]}}
include:
  - {{arch: amd64, distro: debian12, kubernetes: "1.32", bootstrapper: none, provider: local}}
"""


def _record_of(run_root: Path) -> dict | None:
    """The live QEMU node record (qemu.run_dir) of the faulted cell of the run under `run_root`."""
    for rec in qemu.run_dir().glob("*.json"):
        try:
            info = json.loads(rec.read_text())
        except (OSError, ValueError):
            continue
        if info.get("cell") == QEMU_CELL and info.get("artifacts", "").startswith(str(run_root)):
            return info
    return None


def _inject(fault: str, run_root: Path):
    def act():
        info = _record_of(run_root)
        assert info, "no node record"
        if fault == "drop":
            os.kill(sshconfig.master_pid(Path(info["tmp"])), signal.SIGKILL)
        else:
            os.killpg(info["pid"], signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
    def pattern():  # apt update of the distro plan (every bootstrap starts with it), by this run's node
        info = _record_of(run_root)
        return _ssh_running(Path(info["tmp"]) / "ssh_config", "apt-get .*update$") if info else None
    return _when_running(pattern, act, deadline=1500)


EXPECTED = {
    "kill": ("error", f"infrastructure error: {QEMU_CELL}: QEMU exited (killed by signal 9) during distro bootstrap "
                      f"step 'package lists from the distro mirror (fails fast when unreachable)'"),
    "freeze": ("error", f"infrastructure error: {QEMU_CELL}: guest stopped answering (its QEMU process is stopped: "
                        f"state T): no SSH keepalive answer for 45 s"),
    "drop": ("passed", ""),
}


@LONG
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
@pytest.mark.parametrize("fault", ["kill", "freeze", "drop"])
def test_a_faulted_cell_says_what_happened_and_the_others_are_unchanged(fault, workers, pytester, shared_cache,
                                                                        amd64_image):
    need("docker-registry")
    pytester.makefile(".yaml", matrix=MATRIX)
    for suite in ("test_binaries.py", "test_pause_image.py"):
        (pytester.path / suite).write_text((ROOT / "suites" / suite).read_text())
    t, hit = _inject(fault, pytester.path)
    r = subprocess.run([sys.executable, "-m", "pytest", *workers, "-p", "no:cacheprovider", "-rfE",
                        "--junitxml=j.xml"], cwd=pytester.path, capture_output=True, text=True, timeout=2400,
                       env={**os.environ, "ARCHMATRIX_RELEASES": "table", "COLUMNS": "300"})
    t.join()
    ended = time.monotonic()
    print(r.stdout[-5000:])
    assert hit, "the fault was never injected"
    print(f"FIGURE {fault} {workers}: run ended {ended - hit['at']:.0f} s after the fault")
    run = json.loads((pytester.path / "reports" / "results.json").read_text())
    faulted = [x for x in run["records"] if x["cell"] == QEMU_CELL]
    others = [x for x in run["records"] if x["cell"] != QEMU_CELL]
    # the local cell, unchanged: what this machine has passes, what it has not is skipped as ever
    assert "passed" in {x["outcome"] for x in others} and {x["outcome"] for x in others} <= {"passed", "skipped"}
    outcome, message = EXPECTED[fault]
    assert faulted and {x["outcome"] for x in faulted} == {outcome}, [(x["test"], x["outcome"]) for x in faulted]
    if outcome == "error":
        assert all(x["message"].startswith(message) for x in faulted), faulted[0]["message"]
        arts = faulted[0]["artifacts"]
        assert {"serial", "qemu log", "bootstrap log"} <= set(arts), arts
        assert "ARCHMATRIX-READY" in Path(arts["serial"]).read_text()
        assert "apt-get" in Path(arts["bootstrap log"]).read_text()
        assert r.returncode == 1 and "CommandResult" not in r.stdout and "[gw" not in faulted[0]["message"]
        junit = (pytester.path / "j.xml").read_text()
        assert "archmatrix.artifact.serial" in junit
    else:
        assert r.returncode == 0, r.stdout[-3000:]
        props = next(x["properties"] for x in faulted if "recovered" in x["properties"])
        assert props["recovered"].startswith("ssh drop during 'package lists from the distro mirror")
    # nothing left: no QEMU of this run, no record (nothing_leaks checks processes and mounts too)
    assert _record_of(pytester.path) is None


# ---- a lock left by a killed run (item 6) -----------------------------------------------------

@pytest.mark.parametrize("which", ["host lock", "image build lock"])
def test_a_lock_held_by_a_sigkilled_run_never_blocks_the_next(which, tmp_path):
    """A real process takes the lock (an ssh host's, an image cache entry's) and is SIGKILLed while
    holding it: while it lived the lock was really held; after, the next taker gets it at once."""
    from filelock import FileLock, Timeout

    env = {**os.environ, "ARCHMATRIX_CACHE": str(tmp_path / "cache")}
    take = {"host lock": "from harness.nodes.ssh import _lock; import types; "
                         "l = _lock(types.SimpleNamespace(name='gamma')); l.acquire(timeout=0)",
            "image build lock": "from harness.nodes.images.cache import locked, images_dir; "
                                "c = locked(images_dir() / 'debian12-amd64-x', print); c.__enter__()"}[which]
    owner = subprocess.Popen([sys.executable, "-c", f"{take}; print('held', flush=True); import time; time.sleep(120)"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "held"
        path = {"host lock": tmp_path / "cache/host-locks/gamma.lock",
                "image build lock": tmp_path / "cache/images/debian12-amd64-x.lock"}[which]
        with pytest.raises(Timeout):
            FileLock(str(path)).acquire(timeout=0.5)  # really held by the owner
        owner.kill()
        owner.wait(10)
        lock = FileLock(str(path))
        lock.acquire(timeout=0)  # the kernel dropped the dead owner's lock: no wait, no stale file to clean
        lock.release()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
