"""One OpenSSH client config for a node: pinned known_hosts (never StrictHostKeyChecking=no),
batch mode (an unknown key is an error, not a prompt) and one ControlMaster connection per
node that every check reuses (a new connection costs ~1 s under emulation, a reused one ~0.1 s).
Shared by the qemu and ssh providers; their nodes' Ssh transport runs `ssh -F` with it."""
from __future__ import annotations

from pathlib import Path


def write(directory: Path, *, hostname: str, port: int, user: str, key: Path, known_hosts: Path,
          jump: str | None = None, alive_interval: int = 15, connect_timeout: int = 30) -> Path:
    cfg = directory / "ssh_config"
    lines = ["Host node", f"  HostName {hostname}", f"  Port {port}", f"  User {user}",
             f"  IdentityFile {key}", "  IdentitiesOnly yes", "  BatchMode yes",
             f"  UserKnownHostsFile {known_hosts}", "  StrictHostKeyChecking yes", "  GlobalKnownHostsFile /dev/null",
             "  ControlMaster auto", f"  ControlPath {directory}/cm", "  ControlPersist 600",
             f"  ConnectTimeout {connect_timeout}", f"  ServerAliveInterval {alive_interval}", "  ServerAliveCountMax 3"]
    if jump:
        lines.append(f"  ProxyJump {jump}")
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def master_pid(directory: Path) -> int | None:
    """The PID of the node's ControlMaster (`ssh -O check` says "Master running (pid=N)"), None if none."""
    import re
    import subprocess

    if not (directory / "cm").exists():
        return None
    try:
        p = subprocess.run(["ssh", "-F", str(directory / "ssh_config"), "-O", "check", "node"], capture_output=True,
                           text=True, timeout=10, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    m = re.search(r"pid=(\d+)", p.stdout + p.stderr)
    return int(m.group(1)) if m else None


def close(directory: Path) -> None:
    """Stop the node's ControlMaster (it would otherwise linger for ControlPersist). `-O exit` waits for
    the master to say goodbye to its peer: with a frozen or vanished peer that can outlast any bound,
    so past 10 s the master is killed by its own PID. Never raises: it runs in teardowns, where an
    exception would turn a cell that passed into an error."""
    import os
    import signal
    import subprocess

    if not (directory / "cm").exists():
        return
    pid = master_pid(directory)
    try:
        subprocess.run(["ssh", "-F", str(directory / "ssh_config"), "-O", "exit", "node"], capture_output=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    except (subprocess.SubprocessError, OSError):
        pass
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)  # gone already after -O exit: ProcessLookupError
        except (ProcessLookupError, PermissionError):
            pass
    (directory / "cm").unlink(missing_ok=True)


def probe(directory: Path, bound: float, log: Path | None = None) -> tuple[bool, str]:
    """A fresh connection beside the ControlMaster (ControlPath none, -v): (it answered, the last
    line ssh said). Its debug output goes to `log` (the ssh debug tail of an error cell)."""
    import subprocess

    argv = ["ssh", "-v", "-F", str(directory / "ssh_config"), "-o", "ControlPath=none", "-o",
            f"ConnectTimeout={max(1, int(bound))}", "node", "true"]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=bound, stdin=subprocess.DEVNULL)
        ok, err = p.returncode == 0, p.stderr
    except subprocess.TimeoutExpired as e:
        ok = False
        err = (e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or "") + \
            f"\nno answer within {bound:.0f} s"
    if log is not None:
        log.write_text(f"$ {' '.join(argv)}\n{err}")
    lines = [x for x in err.splitlines() if x.strip() and not x.startswith("debug")]
    return ok, (lines[-1].strip() if lines else "")
