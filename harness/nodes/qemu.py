"""QEMU system emulation nodes. Every per-arch setting comes from the platform table's Qemu
row; this module only assembles them. A node is a qcow2 overlay on a cached base image,
booted with its kernel directly, reached over SSH through a user-mode port forward on
127.0.0.1 (a port the OS picked), its host key pinned from the serial console.

Leak-proofing: QEMU runs in its own session with a pidfile; PR_SET_PDEATHSIG kills it if
the process that started it dies (xdist worker crash); every live node is registered
in a run directory so `archmatrix gc` and the next run reap what an owner left behind.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from ..common.errors import InfraError
from ..common.paths import cache_dir
from ..matrix import platforms
from ..matrix.cells import Cell
from ..services import procs
from ..services.ports import free_port
from . import pair, sshconfig
from .base import Lost, Node, Provider, Ssh
from .images import build as images

BOOT_TIMEOUT = {"kvm": 90, "tcg": 300}  # seconds; TCG boots measured at 20-60 s here, x2 nodes at once
# An image whose boots were slow gets this many times its slowest recorded boot (Debian 13's systemd
# on an emulated s390x took minutes between two console lines and ran past the flat 300 s)
BOOT_HEADROOM = 3
# A guest that answers no SSH keepalive for this long is frozen (ServerAliveInterval = bound / 3,
# ServerAliveCountMax 3). TCG guests under load stall for seconds (2 cores, 4 runs at once): 45 s;
# KVM guests do not.
FREEZE_BOUND = {"kvm": 15, "tcg": 45}


def run_dir() -> Path:
    d = cache_dir() / "run"
    d.mkdir(parents=True, exist_ok=True)
    return d


def nic(q: platforms.Qemu, netdev: str, mac: str | None = None) -> list[str]:
    """-device for a NIC of the arch's model on `netdev`."""
    # romfile= on a PCI NIC: no PXE option ROM to find (efi-virtio.rom is in ipxe-qemu, also only
    # Recommended); the node boots from -kernel, never from the network
    return ["-device", f"{q.net},netdev={netdev}" + (f",mac={mac}" if mac else "")
            + (",romfile=" if q.net.endswith("-pci") else "")]


def command(p: platforms.Platform, img: images.BaseImage, overlay: Path, port: int, serial: Path, accel: str,
            smp: int = 2, memory_mb: int = 2048, link: pair.End | None = None) -> list[str]:
    """The whole QEMU command line for a node of arch `p` (all per-arch knowledge is in `p.qemu`);
    `link`: a second NIC on a join cell's private link (nodes/pair.py)."""
    q = p.qemu
    root, seed = img.boot()
    cmd = [q.system, "-machine", q.machine, "-accel", "kvm" if accel == "kvm" else "tcg,thread=multi",
           # -vga none: no display, and no VGA option ROM to find (vgabios-stdvga.bin is in seabios, which
           # qemu-system-ppc only Recommends: pseries failed to start in a fresh root without it)
           "-smp", str(smp), "-m", str(memory_mb), "-display", "none", "-vga", "none", "-no-reboot",
           "-kernel", str(img.kernel), "-initrd", str(img.initrd),
           "-append", f"root={root} rw console={q.console} panic=-1",
           "-drive", f"file={overlay},if=none,id=disk0,format=qcow2",
           "-device", f"{q.disk},drive=disk0",
           "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22", *nic(q, "net0"),
           "-serial", f"file:{serial}", "-monitor", "none"]
    if link is not None:
        cmd += ["-netdev", link.netdev("net1"), *nic(q, "net1", link.mac)]
    if seed is not None:  # cloud-init NoCloud data for imported cloud images
        cmd += ["-drive", f"file={seed},if=none,id=seed,format=raw,readonly=on", "-device", f"{q.disk},drive=seed"]
    if accel == "kvm":
        cmd += ["-cpu", "host"]
    elif q.cpu:
        cmd += ["-cpu", q.cpu]
    if q.bios:
        cmd += ["-bios", q.bios]
    return cmd


def qemu_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return out.split("version", 1)[-1].split()[0] if "version" in out else "unknown"


def boot_times_file() -> Path:
    return run_dir().parent / "boot-seconds.json"


def boot_deadline(img: images.BaseImage, accel: str) -> float:
    """The flat bound for the accelerator, or BOOT_HEADROOM times the slowest boot this image has had
    with it on this machine, whichever is longer."""
    try:
        slowest = float(json.loads(boot_times_file().read_text()).get(f"{img.path.name} {accel}", 0))
    except (OSError, ValueError, AttributeError):
        slowest = 0.0
    return max(BOOT_TIMEOUT[accel], BOOT_HEADROOM * slowest)


def record_boot(img: images.BaseImage, accel: str, seconds: float) -> None:
    """Remember a boot's seconds if it is the slowest of this image (written whole: never half a file)."""
    f = boot_times_file()
    try:
        known = json.loads(f.read_text())
    except (OSError, ValueError):
        known = {}
    k = f"{img.path.name} {accel}"
    if seconds > float(known.get(k, 0)):
        known[k] = round(seconds, 1)
        tmp = f.with_name(f"{f.name}.{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
        os.replace(tmp, f)


class QemuNode:
    """One running QEMU process and everything it owns (overlay, known_hosts, ssh control socket)."""

    def __init__(self, cell: Cell, artifacts: Path, img: images.BaseImage, accel: str, detachable: bool = False,
                 link: pair.End | None = None):
        self.cell, self.artifacts, self.img, self.accel, self.link = cell, artifacts, img, accel, link
        self.detachable = detachable  # --keep-nodes: may outlive this process, so no PDEATHSIG (gc reaps it)
        self.p = cell.platform
        self.serial = artifacts / "serial.log"
        self.overlay = artifacts / "overlay.qcow2"
        self.port = free_port()
        self.tmp: Path | None = None  # made by start(): short path, ssh control sockets have a length limit
        self.proc: subprocess.Popen | None = None
        self.record = run_dir() / f"{os.getpid()}-{self.port}.json"

    def start(self) -> None:
        if shutil.which(self.p.qemu.system) is None:
            raise InfraError(f"{self.p.qemu.system} not found: apt-get install {self.p.qemu.package}", retryable=False)
        self.serial.unlink(missing_ok=True)
        self.overlay.unlink(missing_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="am-"))
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(self.img.disk), "-F", "qcow2",
                        str(self.overlay)], check=True, capture_output=True)
        cmd = command(self.p, self.img, self.overlay, self.port, self.serial, self.accel, link=self.link)
        (self.artifacts / "commands.txt").write_text(" ".join(cmd) + "\n")
        self.proc = subprocess.Popen(cmd + ["-pidfile", str(self.tmp / "qemu.pid")], stdin=subprocess.DEVNULL,
                                     stdout=open(self.artifacts / "qemu.log", "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=None if self.detachable else procs.die_with_parent())
        self._write_record(kept=False)

    def _write_record(self, kept: bool) -> None:
        self.record.write_text(json.dumps({
            "owner": os.getpid(), "pid": self.proc.pid, "cell": self.cell.id, "port": self.port, "kept": kept,
            "artifacts": str(self.artifacts), "tmp": str(self.tmp), "overlay": str(self.overlay),
            "ssh": f"ssh -F {self.tmp / 'ssh_config'} node"}))

    def keep(self) -> str:
        """Leave the node running after this process ends (--keep-nodes); `archmatrix gc --kept` stops it."""
        self._write_record(kept=True)
        return f"ssh -F {self.tmp / 'ssh_config'} node"

    def serial_text(self) -> str:
        try:
            return self.serial.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout: float, progress) -> str:
        """Layer 1: the console says the host key and READY; layer 2: a real SSH exchange.
        Returns the pinned host key line."""
        deadline = time.monotonic() + timeout
        hostkey, last_note = None, time.monotonic()
        progress(f"booting ({self.accel}), ready within {timeout:.0f} s or an error")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.failure(f"{self.exited()} before the node was ready")
            text = self.serial_text()
            for line in text.splitlines():
                if line.startswith("ARCHMATRIX-HOSTKEY ssh-ed25519 "):
                    hostkey = line.split(" ", 1)[1].strip()
            if hostkey and "ARCHMATRIX-READY" in text:
                break
            if time.monotonic() - last_note > 15:
                last_note = time.monotonic()
                lines = [x for x in text.splitlines() if x.strip()]
                progress(f"booting ({self.accel}), {len(lines)} console lines: {lines[-1][:80] if lines else '...'}")
            time.sleep(0.5)
        else:
            raise self.failure(f"no ready marker on the console after {timeout:.0f} s ({self.accel})")
        self._write_ssh_config(hostkey)
        # sshd is up by the marker (After=ssh.service): its first answer under emulation can take a minute
        # (a slow guest re-execs sshd-session per connection), so a late marker still gets that minute
        deadline = max(deadline, time.monotonic() + 90)
        said = "no attempt"  # what ssh last said: the error names it (a refused key reads unlike a hung banner)
        while time.monotonic() < deadline:
            try:
                out = subprocess.run(["ssh", "-F", str(self.ssh_config), "node", "uname -m"], capture_output=True,
                                     text=True, stdin=subprocess.DEVNULL, timeout=60)
            except subprocess.TimeoutExpired:
                said = "no answer within 60 s"
                continue
            if out.returncode == 0:
                if out.stdout.strip() != self.p.uname:
                    raise self.failure(f"node says uname -m {out.stdout.strip()}, expected {self.p.uname}")
                return hostkey
            said = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
            time.sleep(1)
        raise self.failure(f"SSH to 127.0.0.1:{self.port} did not answer before the deadline "
                           f"(the console said ready; ssh last said: {said})")

    def _write_ssh_config(self, hostkey: str) -> None:
        known = self.tmp / "known_hosts"
        known.write_text(f"[127.0.0.1]:{self.port} {hostkey}\n")
        self.ssh_config = sshconfig.write(self.tmp, hostname="127.0.0.1", port=self.port, user="root",
                                          key=self.img.ssh_key, known_hosts=known,
                                          alive_interval=FREEZE_BOUND[self.accel] // 3)

    def failure(self, why: str) -> InfraError:
        tail = "\n".join(self.serial_text().splitlines()[-50:])
        self.stop()
        return InfraError(f"{self.cell.id}: {why}", artifacts=self.files(), log_tail=tail)

    def files(self) -> dict:
        """What shows a node's end: its console, QEMU's own output (stderr), its command line."""
        return {"serial": self.serial, "qemu log": self.artifacts / "qemu.log",
                "commands": self.artifacts / "commands.txt"}

    def exited(self) -> str:
        """'QEMU exited (killed by signal 9)' / '... with status 1', and the last line QEMU wrote."""
        rc = self.proc.returncode
        how = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
        try:
            said = [x for x in (self.artifacts / "qemu.log").read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            said = []
        return f"QEMU exited ({how})" + (f"; qemu.log: {said[-1].strip()[:200]}" if said else "")

    def state(self) -> str:
        """The QEMU process's state letter from /proc (T: stopped, as by SIGSTOP)."""
        try:
            return Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return "?"

    def diagnose(self, said: str) -> Lost:
        """The node's SSH connection failed (ssh said `said`): look at what happened. QEMU gone:
        its exit status. QEMU there: a fresh connection (beside the ControlMaster) and the console,
        for up to a third of the freeze bound; neither answering is a frozen guest, whose QEMU is
        then SIGKILLed by its PID (SIGTERM does not end a SIGSTOPped process)."""
        files = {**self.files(), "ssh debug": self.artifacts / "ssh-probe.log"}
        tail = lambda: "\n".join(self.serial_text().splitlines()[-10:])  # noqa: E731
        if self.proc.poll() is not None:
            return Lost(self.exited(), artifacts=self.files(), tail=tail())
        bound = FREEZE_BOUND[self.accel]
        before = self.serial.stat().st_size if self.serial.exists() else 0
        t0 = time.monotonic()
        ok, why = sshconfig.probe(self.tmp, bound / 3, self.artifacts / "ssh-probe.log")
        if ok:
            return Lost(f"SSH connection dropped ({said}); the guest still answers a fresh connection",
                        recoverable=True, artifacts=files, tail=tail())
        if self.proc.poll() is not None:  # died while we looked
            return Lost(self.exited(), artifacts=files, tail=tail())
        waited = bound + (time.monotonic() - t0)
        if self.serial.exists() and self.serial.stat().st_size != before:
            return Lost(f"SSH stopped answering ({said}; a fresh connection: {why or 'no answer'}) while the "
                        f"guest's console is still writing", artifacts=files, tail=tail())
        state = self.state()
        stopped = " (its QEMU process is stopped: state T)" if state == "T" else ""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        return Lost(f"guest stopped answering{stopped}: no SSH keepalive answer for {bound} s ({self.accel} bound) "
                    f"and no console output or fresh SSH connection for {waited - bound:.0f} s more; QEMU "
                    f"killed (SIGKILL)", artifacts=files, tail=tail())

    def reconnect(self) -> None:
        """A new ControlMaster for the next command (the old one is killed by its PID if still there)."""
        sshconfig.close(self.tmp)

    def stop(self) -> None:
        if self.tmp is None:  # never started
            return
        sshconfig.close(self.tmp)
        if self.proc is not None:
            procs.stop(self.proc)
        self.record.unlink(missing_ok=True)
        self.overlay.unlink(missing_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def kvm_usable(p: platforms.Platform) -> bool:
    """KVM only for the native arch, and only if /dev/kvm opens; a probe boot decides (cached)."""
    return p is platforms.host() and os.access("/dev/kvm", os.R_OK | os.W_OK)


def kvm_probe_file() -> Path:
    return run_dir().parent / "kvm-probe.json"


def kvm_probe() -> dict | None:
    """The cached result of the probe boot ({"accelerator": "kvm"|"tcg", ...}), None before the first."""
    f = kvm_probe_file()
    try:
        return json.loads(f.read_text()) if f.is_file() else None
    except ValueError:
        return None


class QemuProvider(Provider):
    name = "qemu"

    def start(self, cell: Cell, artifacts: Path) -> Node:
        reap()
        node, facts = self._made(cell, artifacts)
        t0 = time.monotonic()
        try:
            node.start()
            node.wait_ready(boot_deadline(node.img, node.accel), self.progress)
        except BaseException:  # Ctrl-C during a boot too: the node is stopped by its own PID
            node.stop()
            raise
        facts["boot_seconds"] = round(time.monotonic() - t0, 1)
        record_boot(node.img, node.accel, facts["boot_seconds"])
        facts["freeze_bound_seconds"] = FREEZE_BOUND[node.accel]
        self.progress(f"a frozen guest is detected after {FREEZE_BOUND[node.accel]} s without an SSH answer "
                      f"({node.accel})")
        return Node(cell, Ssh(node.ssh_config), artifacts, facts, stop=node.stop, keep=node.keep,
                    diagnose=node.diagnose, reconnect=node.reconnect)

    def _made(self, cell: Cell, artifacts: Path, link: pair.End | None = None) -> tuple[QemuNode, dict]:
        """A node not started yet (its base image built or found in the cache), and its facts so far."""
        t_img = time.monotonic()
        img = images.build(cell.platform, cell.os, progress=self.progress)
        image_seconds = round(time.monotonic() - t_img, 1)  # ~0 on a cache hit
        accel = self._accelerator(cell, artifacts, img)
        node = QemuNode(cell, artifacts, img, accel, detachable=self.keep_nodes, link=link)
        return node, {"accelerator": accel, "image_seconds": image_seconds,
                      "qemu_version": qemu_version(cell.platform.qemu.system), "image": img.path.name,
                      "kernel": img.manifest["kernel"]}

    def start_pair(self, cell: Cell, artifacts: Path) -> Node:
        """A join cell's worker and the control-plane node it joins, on their private link
        (nodes/pair.py): both boot at once; the worker's Node stops both (each by its PID) and
        carries the control plane's as `control_plane`."""
        reap()
        cp_cell = cell.control_plane_cell()
        cp_end, worker_end = pair.ends(free_port())
        cp, cp_facts = self._made(cp_cell, artifacts / "control-plane", cp_end)
        worker, facts = self._made(cell, artifacts, worker_end)
        cp.artifacts.mkdir(parents=True, exist_ok=True)

        def stop():
            worker.stop()
            cp.stop()

        t0 = time.monotonic()
        try:
            cp.start()  # it listens: the worker's QEMU connects at start-up, so it must find the port bound
            pair.wait_listening(cp_end.port, lambda: cp.proc.poll() is None)
            worker.start()
            for n in (cp, worker):  # two boots at once share this machine's CPU: twice one node's deadline
                n.wait_ready(2 * boot_deadline(n.img, n.accel), lambda m, n=n: self.progress(f"{n.cell.arch}: {m}"))
            boot = round(time.monotonic() - t0, 1)
            cp_node = Node(cp_cell, Ssh(cp.ssh_config), cp.artifacts, {**cp_facts, "boot_seconds": boot},
                           stop=cp.stop, diagnose=cp.diagnose, reconnect=cp.reconnect)
            node = Node(cell, Ssh(worker.ssh_config), artifacts, {**facts, "boot_seconds": boot}, stop=stop,
                        keep=lambda: f"{worker.keep()}  (control plane: {cp.keep()})", control_plane=cp_node,
                        diagnose=worker.diagnose, reconnect=worker.reconnect)
            ifaces = [pair.configure(n, e) for n, e in ((cp_node, cp_end), (node, worker_end))]
        except BaseException:
            stop()
            raise
        node.facts["control_plane_node"] = f"{cp_cell.arch} {cp_cell.distro} qemu ({cp.accel}) {cp_end.address}"
        node.facts["private_link"] = (f"{cp_end.address} ({cp_cell.arch}, {ifaces[0]}) <-> {worker_end.address} "
                                      f"({cell.arch}, {ifaces[1]}), mtu {pair.MTU}, qemu socket netdev on "
                                      f"127.0.0.1:{cp_end.port}")
        return node

    def _accelerator(self, cell: Cell, artifacts: Path, img: images.BaseImage) -> str:
        if not kvm_usable(cell.platform):
            return "tcg"
        known = kvm_probe()
        if known:
            return known["accelerator"]
        self.progress("probing KVM with a real boot (deadline 45 s)")
        trial = QemuNode(cell, artifacts / "kvm-probe", img, "kvm")
        trial.artifacts.mkdir(parents=True, exist_ok=True)
        try:
            trial.start()
            trial.wait_ready(45, self.progress)
            result = "kvm"
        except InfraError as e:
            result = "tcg"
            self.progress(f"KVM unusable here ({e}); using TCG")
        finally:
            trial.stop()
        kvm_probe_file().write_text(json.dumps({"accelerator": result, "host_kernel": os.uname().release,
                                     "checked": time.time()}))
        return result


def reap(dry_run: bool = False, kept: bool = False) -> list[dict]:
    """Stop QEMU nodes whose owner process is gone (a crashed run), and kept nodes when
    `kept`; each by its own PID, with its overlay and ssh directory. Returns what was found."""
    found = []
    for rec in run_dir().glob("*.json"):
        try:
            info = json.loads(rec.read_text())
        except (OSError, ValueError):
            continue
        if info.get("kept") and not kept:
            continue
        if not info.get("kept") and _alive(info["owner"]):
            continue
        found.append(info)
        if not dry_run:
            if _alive(info["pid"]):
                try:
                    os.killpg(info["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if info.get("tmp"):
                sshconfig.close(Path(info["tmp"]))  # a kept node's ssh ControlMaster
                shutil.rmtree(info["tmp"], ignore_errors=True)
            if info.get("overlay"):
                Path(info["overlay"]).unlink(missing_ok=True)
            rec.unlink(missing_ok=True)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
