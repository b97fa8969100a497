"""A private Docker engine owned by PID: Debian's `dockerd` (docker.io) with its own data root,
exec root, socket and pidfile in a temp dir, no bridge and no iptables rules (nodes have no
network: every check goes through `docker exec`). Stopped on exit; PR_SET_PDEATHSIG stops it
if its owner dies; `archmatrix gc` removes what a killed owner left on disk.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from ..common.errors import InfraError
from . import procs, waiting

PREFIX = "am-dockerd-"


class DockerEngine:
    def __init__(self, progress=print):
        if shutil.which("dockerd") is None:
            raise InfraError("dockerd is not installed: apt-get install docker.io", retryable=False)
        # short path: the socket lives here (unix socket paths are limited to ~108 bytes)
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        (self.root / "owner").write_text(str(os.getpid()))
        self.url = f"unix://{self.root}/docker.sock"
        self.log = self.root / "dockerd.log"
        t0 = time.monotonic()
        progress(f"starting a private dockerd ({self.root})")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "--pidfile", str(self.root / "dockerd.pid"), "-H", self.url, "--bridge=none", "--iptables=false",
             "--ip-masq=false", "--ip-forward=false"],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=procs.die_with_parent(signal.SIGTERM))  # TERM: it stops its containers
        atexit.register(self.stop)
        self._wait()
        self.start_seconds = round(time.monotonic() - t0, 2)

    def _answers(self) -> bool:
        import docker

        if not (self.root / "docker.sock").exists():
            return False
        try:
            docker.DockerClient(base_url=self.url, timeout=5).ping()
            return True
        except Exception:  # noqa: BLE001 - not up yet: any API error means "try again"
            return False

    def _wait(self, seconds: float = 60) -> None:
        waiting.until_ready(self.proc, self._answers, seconds, 0.2, stop=self.stop,
                            exited=lambda: InfraError(f"dockerd exited ({self.proc.returncode})", retryable=False,
                                                      log_tail=self.log.read_text(errors="replace")[-800:]),
                            late=lambda: InfraError(f"dockerd did not answer on {self.url} within {seconds:.0f} s"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """Containers first (by the engine), then dockerd and its containerd by PID, then the dir."""
        if self.proc.poll() is None:
            try:
                import docker

                client = docker.DockerClient(base_url=self.url, timeout=30)
                for c in client.containers.list(all=True):
                    c.remove(force=True)
            except Exception:  # noqa: BLE001 - the engine may already be half down: SIGTERM anyway
                pass
        procs.stop(self.proc, grace=30)  # dockerd stops its containerd on SIGTERM
        _remove(self.root)


def _remove(root: Path) -> None:
    """An engine's leftover processes, its mounts and its directory."""
    _kill_group_leftovers(root)
    for sub in ("data", "exec"):
        subprocess.run(["umount", "-R", "-l", str(root / sub)], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def _kill_group_leftovers(root: Path) -> None:
    """containerd and its shims started by dockerd carry the engine's dir on their command line."""
    out = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout.split()
    for pid in map(int, out):
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def reap(dry_run: bool = False) -> list[str]:
    """Engine dirs whose owner is gone (a killed run): their processes and files."""
    found = []
    for d in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            owner = int((d / "owner").read_text())
            os.kill(owner, 0)
            continue
        except (OSError, ValueError):
            pass
        found.append(str(d))
        if not dry_run:
            _remove(d)
    return found


def version(url: str) -> str:
    import docker

    return str(docker.DockerClient(base_url=url, timeout=10).version().get("Version"))
