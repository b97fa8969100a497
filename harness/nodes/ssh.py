"""Real hosts from an inventory (hosts.yaml). A cell takes a free host that claims its arch and
distro, under a per-host lock (xdist workers and concurrent runs never share one), verifies
what the host really is (`uname -s -m`) and refuses a host whose claim is false. Host keys
come from the inventory's known_hosts and are checked by OpenSSH (batch mode: an unknown key
fails, it never prompts). Reports get the host's name and address, never key material.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from filelock import FileLock, Timeout

from ..common.errors import InfraError, Unavailable, UserError
from ..common.paths import cache_dir
from ..matrix import inventory
from ..matrix.cells import Cell
from . import sshconfig
from .base import Lost, Node, Provider, Ssh


def _lock(host: inventory.Host) -> FileLock:
    d = cache_dir() / "host-locks"
    d.mkdir(exist_ok=True)
    return FileLock(str(d / f"{host.name}.lock"))


class SshProvider(Provider):
    name = "ssh"

    def start(self, cell: Cell, artifacts: Path) -> Node:
        path = self.options.get("inventory")
        if not path:
            raise UserError("provider ssh needs an inventory: --inventory hosts.yaml")
        inv = inventory.load(path)
        hosts = [h for h in inv.hosts if (h.arch, h.distro) == (cell.arch, cell.distro)]
        if not hosts:
            raise Unavailable(f"no host in {path} claims {cell.arch}/{cell.distro}")
        host, lock = self._take(hosts, inv.wait)
        tmp = Path(tempfile.mkdtemp(prefix="am-ssh-"))

        def stop():
            sshconfig.close(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            lock.release()

        try:
            cfg = sshconfig.write(tmp, hostname=host.address, port=host.port, user=host.user, key=host.key_path(),
                                  known_hosts=host.known_hosts_path(), jump=host.jump, alive_interval=2,
                                  connect_timeout=10)
            facts = self._verify(cell, host, cfg, artifacts)
        except BaseException:
            stop()
            raise

        def diagnose(said: str) -> Lost:
            # a fresh connection beside the ControlMaster tells a dropped connection from a host gone
            ok, why = sshconfig.probe(tmp, 15, artifacts / "ssh-probe.log")
            files = {"ssh debug": artifacts / "ssh-probe.log"}
            if ok:
                return Lost(f"SSH connection to host {host.name} dropped ({said}); the host still answers a fresh "
                            f"connection", recoverable=True, artifacts=files)
            return Lost(f"host {host.name} ({host.address}:{host.port}) stopped answering SSH ({said}; a fresh "
                        f"connection: {why or 'no answer within 15 s'})", artifacts=files)

        return Node(cell, Ssh(cfg), artifacts, facts, stop=stop, diagnose=diagnose,
                    reconnect=lambda: sshconfig.close(tmp))

    def _take(self, hosts: list[inventory.Host], wait: int):
        """The first free matching host; if all are busy, poll them until `wait` seconds pass."""
        deadline, said = time.monotonic() + wait, False
        while True:
            for h in hosts:
                lock = _lock(h)
                try:
                    lock.acquire(timeout=0)
                    return h, lock
                except Timeout:
                    continue
            if time.monotonic() >= deadline:
                raise Unavailable(f"every matching host ({', '.join(h.name for h in hosts)}) stayed busy for {wait} s")
            if not said:
                self.progress(f"waiting up to {wait} s for a free host ({', '.join(h.name for h in hosts)} busy)")
                said = True
            time.sleep(1)

    def _verify(self, cell: Cell, host: inventory.Host, cfg: Path, artifacts: Path) -> dict:
        where = f"host {host.name} ({host.address}:{host.port})"
        t0 = time.monotonic()
        try:
            out = subprocess.run(["ssh", "-F", str(cfg), "node", "uname -s -m; . /etc/os-release; echo $ID $VERSION_CODENAME"],
                                 capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        except subprocess.TimeoutExpired:
            raise InfraError(f"{where}: no answer over SSH within 60 s") from None
        (artifacts / "ssh-verify.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            err = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"ssh exit {out.returncode}"
            if "Host key verification failed" in out.stderr or "No ED25519 host key is known" in out.stderr:
                raise InfraError(f"{where}: its host key is not in {host.known_hosts_path()} (check the key "
                                 f"out of band, then add it; archmatrix never accepts unknown keys)", retryable=False)
            raise InfraError(f"{where}: SSH failed: {err}")
        lines = out.stdout.split("\n")
        kernel, machine = (lines[0].split() + ["?", "?"])[:2]
        expected_os = "Linux" if cell.os.os == "linux" else cell.os.os
        if machine != cell.platform.uname or kernel != expected_os:
            raise InfraError(f"{where} claims {cell.arch} ({cell.os.os}) in the inventory but is {machine} "
                             f"({kernel}): refused", retryable=False)
        os_release = lines[1].strip() if len(lines) > 1 else ""
        facts = {"ssh_host": host.name, "address": f"{host.address}:{host.port}", "os_release": os_release,
                 "verify_seconds": round(time.monotonic() - t0, 2)}
        claimed = f"{cell.os.family} {cell.os.release}"
        if os_release and os_release != claimed:  # recorded and shown, not refused: the arch is what is judged
            self.progress(f"{where}: inventory says {cell.distro}, /etc/os-release says {os_release}")
        return facts
