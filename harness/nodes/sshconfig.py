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


def close(directory: Path) -> None:
    """Stop the node's ControlMaster (it would otherwise linger for ControlPersist)."""
    import subprocess

    if (directory / "cm").exists():
        subprocess.run(["ssh", "-F", str(directory / "ssh_config"), "-O", "exit", "node"], capture_output=True,
                       timeout=10)
