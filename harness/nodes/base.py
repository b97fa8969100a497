"""What every provider shares: a Node (a machine, the way to run a command on it, its facts and
how to stop it), the transports a node is reached through, and the Provider base. A provider is
small: it subclasses Provider and overrides `start`, handing its Node the transport that runs a
command there, as each pytest-testinfra backend owns its transport and overrides one method.

A provider never judges the product: it only provides a node and its facts
(accelerator, boot seconds, engine version), or raises InfraError.
"""
from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from testinfra.backend.base import BaseBackend

from ..common.errors import InfraError, NodeLost
from ..matrix.cells import Cell
from ..services.ports import free_port


# ---- transports: how this machine runs a command on a node ----------------------------------

class Transport:
    """This machine itself. `argv(script)` is the command line that runs the shell script `script`
    on the node, its stdin passed through: the testinfra host, file copies and tunnels are all
    built on it, so a new kind of node needs only its own argv."""

    name = "local"
    lost_exit: int | None = None  # an exit status that means the transport failed, not the command

    def argv(self, script: str) -> list[str]:
        return ["sh", "-c", script]

    def forward_argv(self, local_port: int, remote_port: int) -> list[str] | None:
        """The command that makes 127.0.0.1:local_port here reach the node's 127.0.0.1:remote_port;
        None when this transport has no tunnel."""
        return None

    def login(self) -> str | None:
        """What a person types for a shell on the node (None: it is this machine)."""
        return None

    def testinfra_host(self):
        """A testinfra Host whose every command goes through this transport."""
        from testinfra.host import Host

        backend = _Backend(self)
        host = Host(backend)
        backend.set_host(host)
        return host


@dataclass
class Ssh(Transport):
    """OpenSSH with a client config whose host `node` is the machine (sshconfig.write): a pinned
    known_hosts and one ControlMaster connection that every command reuses."""

    config: Path
    name = "ssh"
    lost_exit = 255  # ssh's own failure (connection lost), as testinfra's ssh backend reads it

    def argv(self, script: str) -> list[str]:
        return ["ssh", "-F", str(self.config), "node", script]

    def forward_argv(self, local_port: int, remote_port: int) -> list[str]:
        # a local forward added to the node's ControlMaster (closed with it)
        return ["ssh", "-F", str(self.config), "-O", "forward", "-L",
                f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}", "node"]

    def login(self) -> str:
        return f"ssh -F {self.config} node"


@dataclass
class DockerExec(Transport):
    """`docker exec` into a container on the given engine (its URL passed on the command line:
    the process environment is left alone)."""

    engine: str
    container: str
    name = "docker"

    def argv(self, script: str) -> list[str]:
        return ["docker", "-H", self.engine, "exec", "-i", self.container, "sh", "-c", script]

    def login(self) -> str:
        return f"docker -H {self.engine} exec -it {self.container} sh"


class _Backend(BaseBackend):
    """testinfra's side of a Transport: one small backend runs every transport's argv."""

    NAME = "archmatrix"

    def __init__(self, transport: Transport):
        self.transport = transport
        super().__init__(transport.name)

    def run(self, command: str, *args: str, **kwargs):
        cmd = self.get_command(command, *args)
        p = subprocess.run(self.transport.argv(cmd), stdin=subprocess.DEVNULL, capture_output=True)
        out = self.result(p.returncode, self.encode(cmd), p.stdout, p.stderr)
        if p.returncode == self.transport.lost_exit:
            raise RuntimeError(out)  # as testinfra's ssh backend does; Node turns it into an InfraError
        return out


@dataclass
class Lost:
    """What the lab saw when a node's connection failed: one sentence, whether only the connection
    dropped (the guest answers a fresh one), and the files that show it (console, QEMU's log, ssh -v)."""

    cause: str
    recoverable: bool = False
    artifacts: dict = field(default_factory=dict)
    tail: str = ""  # the console's last lines


@dataclass
class Node:
    cell: Cell
    transport: Transport
    artifacts: Path
    facts: dict = field(default_factory=dict)  # reported as properties: accelerator, boot_seconds, ...
    stop: Callable[[], None] | None = None
    keep: Callable[[], str] | None = None  # leave the node running (--keep-nodes); returns how to reach it
    _host: object = None
    control_plane: "Node | None" = None  # a join cell's: the node it joins (its stop/keep are this node's too)

    # the provider's look at a lost connection: (ssh's last words) -> Lost; None: ssh's words only
    diagnose: Callable[[str], "Lost"] | None = None
    reconnect: Callable[[], None] | None = None  # drop the old connection so the next command makes a new one
    lost: "Lost | None" = None  # why the connection to the node was lost: later commands fail at once

    @property
    def host(self):
        """The testinfra Host for this node: one connection, reused by every check."""
        if self._host is None:
            self._host = self.transport.testinfra_host()
            self._host.backend.run = self._guarded(self._host.backend.run)
        return self._host

    def _guarded(self, run):
        """The backend raises RuntimeError when the transport itself fails (ssh's exit 255): that is
        the node going away (or only its connection), an infrastructure error, not a product failure.
        The provider looks at what happened (Node.diagnose) and says it in one sentence."""
        def guarded(command, *args, **kwargs):
            if self.lost:
                raise self._error(self.lost)
            try:
                return run(command, *args, **kwargs)
            except RuntimeError as e:
                out = e.args[0] if e.args else None
                said = (getattr(out, "stderr", "") or "").strip().splitlines()
                # never the CommandResult's repr: ssh said nothing, so say what it did
                said = said[-1].strip() if said else f"{self.transport.name} exited {getattr(out, 'rc', '?')} " \
                                                     f"and said nothing"
                self.lost = self.diagnose(said) if self.diagnose else Lost(f"lost the connection to the node ({said})")
                raise self._error(self.lost) from None
        return guarded

    def _error(self, lost: "Lost") -> NodeLost:
        return NodeLost(f"{self.cell.id}: {lost.cause}", cause=lost.cause, recoverable=lost.recoverable,
                        artifacts=lost.artifacts, log_tail=lost.tail)

    def recover(self) -> bool:
        """After a dropped connection to a guest that still answers: a new connection for the next
        command. False when the loss is not a dropped connection or the provider cannot reconnect."""
        if self.lost is None or not self.lost.recoverable or self.reconnect is None:
            return False
        self.reconnect()
        self.lost = None
        return True

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
        """Copy a host file onto the node (air-gapped artifacts): streamed through the node's own
        transport (ssh through its ControlMaster, docker exec), no scp or sftp needed on the node."""
        q = shlex.quote(remote)
        script = f"mkdir -p $(dirname {q}) && cat > {q}.part && chmod {mode} {q}.part && mv {q}.part {q}"
        argv = self.transport.argv(script)
        with open(local, "rb") as f:
            p = subprocess.run(argv, stdin=f, capture_output=True, timeout=1800)
        if p.returncode != 0:
            raise InfraError(f"{self.cell.id}: copying {local} to the node's {remote} failed: "
                             f"{p.stderr.decode(errors='replace').strip()[-300:]}")

    def forward(self, remote_port: int) -> int:
        """A loopback port on this machine that reaches 127.0.0.1:remote_port on the node, through
        the node's transport (an SSH local forward on its ControlMaster, closed with it)."""
        port = free_port()
        argv = self.transport.forward_argv(port, remote_port)
        if argv is None:
            raise InfraError(f"{self.cell.id}: provider {self.cell.provider} has no SSH connection to tunnel "
                             f"through", retryable=False)
        self.run("true")  # an SSH ControlMaster exists once a command has run
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
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

    def __init__(self, progress: Callable[[str], None] = print, keep_nodes: bool = False, lab=None, **options):
        self.progress = progress  # one line per long step (image build, boot): the user sees it is alive
        self.keep_nodes = keep_nodes  # nodes may be kept after the run (--keep-nodes): start them detachable
        self.lab = lab  # the run's services (services.lab.Lab): a provider uses them, never stops them
        self.options = options  # provider-specific: inventory (ssh)

    def start(self, cell: Cell, artifacts: Path) -> Node:  # pragma: no cover - interface
        raise NotImplementedError

    def start_pair(self, cell: Cell, artifacts: Path) -> Node:
        """A join cell's worker node, its `control_plane` the node it joins, on a private link
        (nodes/pair.py says what each provider pair needs)."""
        raise InfraError(f"{cell.id}: provider {self.name} cannot give a join cell (matrix control_plane:) its "
                         f"control-plane node yet: only qemu+qemu pairs are built (nodes/pair.py)", retryable=False)

    def provision(self, cell: Cell, artifacts: Path) -> Node:
        artifacts.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        node = self.start_pair(cell, artifacts) if cell.control_plane else self.start(cell, artifacts)
        node.facts.setdefault("provider", self.name)
        node.facts.setdefault("provision_seconds", round(time.monotonic() - t0, 2))
        return node
