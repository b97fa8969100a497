"""Providers turn a Cell into a Node. Each one is small: it subclasses Provider and
overrides `start` (and `stop` when it owns something), as each pytest-testinfra
backend overrides one method of a shared base.

A provider never judges the product: it only provides a node and its facts
(accelerator, boot seconds, engine version), or raises InfraError.
"""
from __future__ import annotations

import importlib
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..common.errors import InfraError, UserError
from ..matrix.cells import PROVIDERS, Cell

# name -> module:class, imported only when a cell uses it (paramiko/docker are slow to import)
_IMPLEMENTATIONS = {
    "local": "harness.nodes.local:LocalProvider",
    "qemu": "harness.nodes.qemu:QemuProvider",
    "ssh": "harness.nodes.ssh:SshProvider",
    "docker": "harness.nodes.docker:DockerProvider",
}


@dataclass
class Node:
    cell: Cell
    url: str  # a testinfra host spec: local://, ssh://user@host:port, docker://id
    artifacts: Path
    facts: dict = field(default_factory=dict)  # reported as properties: accelerator, boot_seconds, ...
    stop: Callable[[], None] | None = None
    ssh_config: str | None = None  # testinfra ssh_config for hosts that need a pinned known_hosts
    keep: Callable[[], str] | None = None  # leave the node running (--keep-nodes); returns how to reach it
    _host: object = None

    lost: str | None = None  # why the connection to the node was lost: later commands fail at once

    @property
    def host(self):
        """The testinfra Host for this node: one connection, reused by every check."""
        if self._host is None:
            import testinfra

            kwargs = {"ssh_config": self.ssh_config} if self.ssh_config else {}
            self._host = testinfra.get_host(self.url, **kwargs)
            self._host.backend.run = self._guarded(self._host.backend.run)
        return self._host

    def _guarded(self, run):
        """testinfra's ssh backend raises RuntimeError when ssh itself fails (exit 255): that is the
        node going away, an infrastructure error, not a product failure."""
        def guarded(command, *args, **kwargs):
            if self.lost:
                raise InfraError(f"{self.cell.id}: {self.lost}", retryable=False)
            try:
                return run(command, *args, **kwargs)
            except RuntimeError as e:
                out = e.args[0] if e.args else None
                detail = (getattr(out, "stderr", "") or str(e)).strip().splitlines()
                self.lost = f"lost the connection to the node ({detail[-1] if detail else 'ssh exit 255'})"
                raise InfraError(f"{self.cell.id}: {self.lost}", retryable=False) from None
        return guarded

    def run(self, command: str, *args: str):
        """Run a command on the node (arguments are quoted). Returns testinfra's CommandResult."""
        return self.host.run(command + "".join(" " + shlex.quote(a) for a in args))

    def read_range(self, path: str, offset: int, size: int) -> bytes:
        """`size` bytes of a file on the node from `offset`: binaries are read in pieces, not copied."""
        out = self.run("dd status=none iflag=skip_bytes,count_bytes bs=65536 if=%s skip=%d count=%d"
                       % (shlex.quote(path), offset, size))
        if out.rc != 0:
            raise InfraError(f"{self.cell.id}: reading {path} on the node failed: {out.stderr.strip()}")
        return out.stdout_bytes

    def put(self, local: Path, remote: str, mode: str = "0755") -> None:
        """Copy a host file onto the node (air-gapped artifacts): streamed over the node's own
        connection (ssh through its ControlMaster, docker exec), no scp or sftp needed on the node."""
        q = shlex.quote(remote)
        script = f"mkdir -p $(dirname {q}) && cat > {q}.part && chmod {mode} {q}.part && mv {q}.part {q}"
        if self.ssh_config:
            argv = ["ssh", "-F", self.ssh_config, "node", script]
        elif self.url.startswith("docker://"):
            argv = ["docker", "exec", "-i", self.url.removeprefix("docker://"), "sh", "-c", script]
        else:
            argv = ["sh", "-c", script]
        with open(local, "rb") as f:
            p = subprocess.run(argv, stdin=f, capture_output=True, timeout=1800)
        if p.returncode != 0:
            raise InfraError(f"{self.cell.id}: copying {local} to the node's {remote} failed: "
                             f"{p.stderr.decode(errors='replace').strip()[-300:]}")

    def forward(self, remote_port: int) -> int:
        """A loopback port on this machine that reaches 127.0.0.1:remote_port on the node: an SSH
        local forward added to the node's ControlMaster (`ssh -O forward`), closed with it."""
        if not self.ssh_config:
            raise InfraError(f"{self.cell.id}: provider {self.cell.provider} has no SSH connection to tunnel "
                             f"through", retryable=False)
        from ..services.registry import free_port

        self.run("true")  # the ControlMaster exists once a command has run
        port = free_port()
        p = subprocess.run(["ssh", "-F", self.ssh_config, "-O", "forward", "-L",
                            f"127.0.0.1:{port}:127.0.0.1:{remote_port}", "node"], capture_output=True, text=True,
                           timeout=30)
        if p.returncode != 0:
            raise InfraError(f"{self.cell.id}: SSH tunnel to the node's port {remote_port} failed: {p.stderr.strip()}")
        return port

    def detach(self) -> str | None:
        """Keep the node after the run if the provider can (returns how to reach it), else tear it down."""
        if self.keep is None:
            self.teardown()
            return None
        self.stop = None
        if self._host is not None:
            self._host = None
        return self.keep()

    def teardown(self) -> None:
        if self.stop is not None:
            stop, self.stop = self.stop, None
            stop()


class Provider:
    """Base: provision = start + record timing. Subclasses implement `start`."""

    name = "base"

    def __init__(self, progress: Callable[[str], None] = print, keep_nodes: bool = False, **options):
        self.progress = progress  # one line per long step (image build, boot): the user sees it is alive
        self.keep_nodes = keep_nodes  # nodes may be kept after the run (--keep-nodes): start them detachable
        self.options = options  # provider-specific: inventory (ssh), docker_host (docker)

    def start(self, cell: Cell, artifacts: Path) -> Node:  # pragma: no cover - interface
        raise NotImplementedError

    def provision(self, cell: Cell, artifacts: Path) -> Node:
        artifacts.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        node = self.start(cell, artifacts)
        node.facts.setdefault("provider", self.name)
        node.facts.setdefault("provision_seconds", round(time.monotonic() - t0, 2))
        return node


def get(name: str, progress=print, keep_nodes: bool = False, **options) -> Provider:
    if name not in PROVIDERS:
        raise UserError(f"unknown provider '{name}'; known: {', '.join(PROVIDERS)}")
    spec = _IMPLEMENTATIONS.get(name)
    if spec is None:
        raise InfraError(f"provider '{name}' is not available in this version of archmatrix "
                         f"(available: {', '.join(_IMPLEMENTATIONS)})", retryable=False)
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)(progress=progress, keep_nodes=keep_nodes,
                                                                  **options)
