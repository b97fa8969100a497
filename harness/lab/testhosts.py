"""SSH test hosts for the ssh provider, on this machine: each is an `sshd` in its own network
namespace, joined to the root namespace by a veth pair whose root end is addressed (a /30 of
10.250.0.0/16), so the client's packets go over that link and never out through eth0.

`archmatrix testhosts up --inventory hosts.yaml` starts them and writes an inventory that
claims what you ask (a host may lie about its arch: that is how the refusal is tested);
`archmatrix testhosts down --inventory hosts.yaml` stops each sshd by its PID and deletes its
namespace (which deletes the veth pair). Root only.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ..common.errors import InfraError, UserError
from ..common.paths import cache_dir
from ..services import waiting

PREFIX = "amh"  # netns and veth names: amh<N>, amh<N>r (root end), amh<N>n (namespace end)


@dataclass
class LabHost:
    name: str
    claims_arch: str
    claims_distro: str
    index: int
    pid: int
    address: str
    dir: str

    @property
    def ns(self) -> str:
        return f"{PREFIX}{self.index}"

    @property
    def veth(self) -> str:
        return f"{PREFIX}{self.index}r"


def _ip(*args: str) -> None:
    out = subprocess.run(["ip", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise InfraError(f"ip {' '.join(args)}: {out.stderr.strip()}", retryable=False)


def _claim_namespace() -> int:
    """The first free index: `ip netns add` fails if the name exists, so two runs never share one. Its veth
    name must be free too: a run with a private /run (a fresh root, a container) sees none of the host's
    namespace names, but shares its network namespace, where the host's runs have their veth pairs."""
    for i in range(1, 250):
        if Path(f"/sys/class/net/{PREFIX}{i}r").exists():
            continue
        if subprocess.run(["ip", "netns", "add", f"{PREFIX}{i}"], capture_output=True).returncode == 0:
            return i
    raise InfraError("no free test-host namespace index (amh1..amh249 all exist: run `archmatrix testhosts down`)")


def start(name: str, claims_arch: str, claims_distro: str, base: Path, client_key: Path) -> LabHost:
    if os.geteuid() != 0:
        raise UserError("test hosts need root (network namespaces and veth pairs)")
    i = _claim_namespace()
    ns, root_end, ns_end = f"{PREFIX}{i}", f"{PREFIX}{i}r", f"{PREFIX}{i}n"
    d = base / ns
    d.mkdir(parents=True, exist_ok=True)
    addr = f"10.250.{i}.2"
    proc = None
    try:
        _ip("link", "add", root_end, "type", "veth", "peer", "name", ns_end, "netns", ns)
        _ip("addr", "add", f"10.250.{i}.1/30", "dev", root_end)
        _ip("link", "set", root_end, "up")
        _ip("-n", ns, "addr", "add", f"{addr}/30", "dev", ns_end)
        _ip("-n", ns, "link", "set", ns_end, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "hostkey")], check=True)
        shutil.copyfile(client_key.with_suffix(".pub"), d / "authorized_keys")
        (d / "sshd_config").write_text(
            f"ListenAddress {addr}\nPort 22\nHostKey {d / 'hostkey'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
            f"PidFile {d / 'sshd.pid'}\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n")
        # sshd needs /run/sshd: a private mount namespace with its own /run leaves the host's alone
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "sh", "-c",
                                 f"mount -t tmpfs tmpfs /run && mkdir /run/sshd && exec /usr/sbin/sshd -D -e -f "
                                 f"{d / 'sshd_config'}"], stdin=subprocess.DEVNULL,
                                stdout=open(d / "sshd.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        host = LabHost(name, claims_arch, claims_distro, i, proc.pid, addr, str(d))
        _wait_listening(addr, proc, d)
        return host
    except BaseException:
        if proc is not None:
            _kill(proc.pid)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
        raise


def _wait_listening(addr: str, proc: subprocess.Popen, d: Path) -> None:
    def banner() -> bool:
        try:
            with socket.create_connection((addr, 22), timeout=1) as s:
                return s.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    waiting.until_ready(proc, banner, 10, 0.1,
                        exited=lambda: InfraError(f"sshd in {d.name} exited: {(d / 'sshd.log').read_text()[-500:]}"),
                        late=lambda: InfraError(f"sshd in {d.name} did not listen on {addr}:22 within 10 s"))


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                os.waitpid(pid, os.WNOHANG)
                return
        except (ProcessLookupError, ChildProcessError, FileNotFoundError):
            return
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


def stop(host: LabHost) -> None:
    """sshd by its PID, then every process left in the namespace (sshd's per-connection children
    call setsid, so they are not in its group), the veth pair, the namespace."""
    _kill(host.pid)
    pids = subprocess.run(["ip", "netns", "pids", host.ns], capture_output=True, text=True).stdout.split()
    for pid in map(int, pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "link", "del", host.veth], capture_output=True)
    subprocess.run(["ip", "netns", "del", host.ns], capture_output=True)
    shutil.rmtree(host.dir, ignore_errors=True)


def vanish(host: LabHost) -> None:
    """The host goes away mid-run: its link goes down (packets to it are dropped, nothing answers)."""
    _ip("link", "set", host.veth, "down")


def inventory(hosts: list[LabHost], client_key: Path, known_hosts: Path) -> dict:
    known_hosts.write_text("".join(f"{h.address} {' '.join((Path(h.dir) / 'hostkey.pub').read_text().split()[:2])}\n"
                                   for h in hosts))
    return {"hosts": [{"name": h.name, "arch": h.claims_arch, "distro": h.claims_distro, "address": h.address,
                       "port": "22", "user": "root", "key": str(client_key), "known_hosts": str(known_hosts)}
                      for h in hosts], "wait": "30"}


# ---- the CLI: up writes the inventory and a state file beside it; down reads the state -------

def _state(inv: Path) -> Path:
    return inv.with_name(inv.name + ".state.json")


def up(inv: Path, specs: list[str]) -> list[LabHost]:
    """specs: NAME:ARCH:DISTRO, the arch/distro each host claims (the host is really this machine)."""
    if _state(inv).exists():
        raise UserError(f"{_state(inv)} exists: run `archmatrix testhosts down --inventory {inv}` first")
    base = cache_dir() / "testhosts"
    base.mkdir(exist_ok=True)
    key = base / "client_ed25519"
    if not key.is_file():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "archmatrix-testhosts", "-f", str(key)],
                       check=True)
    hosts: list[LabHost] = []
    try:
        for spec in specs:
            parts = spec.split(":")
            if len(parts) != 3:
                raise UserError(f"--host {spec}: expected NAME:ARCH:DISTRO, e.g. alpha:amd64:debian12")
            hosts.append(start(*parts, base=base, client_key=key))
            _state(inv).write_text(json.dumps([asdict(h) for h in hosts]))
        inv.write_text(yaml.safe_dump(inventory(hosts, key, base / f"known_hosts-{hosts[0].ns}"), sort_keys=False))
    except BaseException:
        for h in hosts:
            stop(h)
        _state(inv).unlink(missing_ok=True)
        raise
    return hosts


def down(inv: Path) -> list[LabHost]:
    st = _state(inv)
    if not st.is_file():
        raise UserError(f"{st}: no test hosts were started with --inventory {inv}")
    hosts = [LabHost(**h) for h in json.loads(st.read_text())]
    for h in hosts:
        stop(h)
    st.unlink()
    return hosts
