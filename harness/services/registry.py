"""Debian's `docker-registry` (distribution 2.x) on loopback, owned by PID: for the nodes'
runtimes to pull the harness's own images, and for tests. Stopped on exit, always."""
from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path

import requests

from ..common.errors import InfraError
from . import procs, waiting
from .ports import free_port

BINARY = "docker-registry"


class LocalRegistry:
    def __init__(self, root: Path | None = None, port: int | None = None, bind: str = "127.0.0.1",
                 extra_config: str = ""):
        """`extra_config`: YAML appended to the config (an `auth:` section, say); with auth on,
        readiness is a 401 from /v2/ instead of a 200."""
        if shutil.which(BINARY) is None:
            raise InfraError(f"{BINARY} is not installed: apt-get install docker-registry", retryable=False)
        self._tmp = None if root else tempfile.mkdtemp(prefix="archmatrix-registry-")
        self.root = Path(root or self._tmp)
        self.port = port or free_port()
        self.host = f"{bind}:{self.port}" if bind != "0.0.0.0" else f"127.0.0.1:{self.port}"
        cfg = self.root / "config.yml"
        self.root.mkdir(parents=True, exist_ok=True)
        cfg.write_text(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {self.root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {bind}:{self.port}\n" + extra_config)
        self._ready = 401 if "auth:" in extra_config else 200
        self.log = self.root / "registry.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([BINARY, "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=procs.die_with_parent())  # atexit misses a SIGKILLed owner
        atexit.register(self.stop)
        self._wait()

    def _answers(self) -> bool:
        try:
            return requests.get(f"http://{self.host}/v2/", timeout=1).status_code == self._ready
        except requests.RequestException:
            return False

    def _wait(self, seconds: float = 15) -> None:
        waiting.until_ready(self.proc, self._answers, seconds, 0.1, stop=self.stop,
                            exited=lambda: InfraError(f"docker-registry exited ({self.proc.returncode}): "
                                                      f"{self.log.read_text()[-500:]}"),
                            late=lambda: InfraError(f"docker-registry on {self.host} not ready after {seconds} s"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        procs.stop(self.proc, grace=5)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
