"""The private link of a join cell (matrix `control_plane:` rules): its worker node and the
control-plane node it joins, each with a second NIC on a link of their own, addressed over SSH.

Why a link of their own: every QEMU node's first NIC is user-mode networking, where each node is
10.0.2.15 behind its own NAT and cannot reach the other. The second NIC is a QEMU `-netdev socket`
pair over this machine's loopback (one side listen=127.0.0.1:P, the other connect=127.0.0.1:P:
Ethernet frames over one TCP connection; never mcast, which would leave loopback).

Other provider pairs have the same contract, the worker's and the control plane's private
addresses reachable from each other: an ssh host (hosts.yaml) already has an address on a network
of its own, so ssh+qemu needs the QEMU side bridged to it (a tap on a bridge with the host's
interface, which this machine's network rule forbids here), and ssh+ssh needs only the two
inventory addresses. Only qemu+qemu is built (QemuProvider.start_pair).
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

from ..common.errors import InfraError

SUBNET = "192.168.77.0/24"  # private (RFC 1918) and unused by QEMU's user-mode net (10.0.2.0/24) and flannel (10.244/16)
PREFIX = 24
CONTROL_PLANE_ADDRESS = "192.168.77.1"
WORKER_ADDRESS = "192.168.77.2"
# Both ends set the same MTU: a socket netdev carries whole frames, so Ethernet's 1500 fits unchanged
MTU = 1500
# 52:54:00 is QEMU's own prefix; without a mac= each QEMU process gives its NICs the same default
# sequence (52:54:00:12:34:56, ...), so two nodes' second NICs would collide on the link
CONTROL_PLANE_MAC = "52:54:00:77:00:01"
WORKER_MAC = "52:54:00:77:00:02"


@dataclass(frozen=True)
class End:
    """One node's side of the link: how QEMU joins it, and the address the node gets."""

    mode: str  # "listen" (started first) or "connect"
    port: int  # on 127.0.0.1
    mac: str
    address: str

    def netdev(self, netdev_id: str) -> str:
        return f"socket,id={netdev_id},{self.mode}=127.0.0.1:{self.port}"


def ends(port: int) -> tuple[End, End]:
    """(control plane, worker): the control plane listens, so it starts first."""
    return (End("listen", port, CONTROL_PLANE_MAC, CONTROL_PLANE_ADDRESS),
            End("connect", port, WORKER_MAC, WORKER_ADDRESS))


def listening(port: int) -> bool:
    """Is something listening on 127.0.0.1:port? Read from /proc, not by connecting: QEMU's
    socket netdev takes the first connection it accepts as its peer."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            return any(line.split()[1] == want and line.split()[3] == "0A" for line in list(f)[1:])
    except OSError:
        return False


def wait_listening(port: int, alive, timeout: float = 30) -> None:
    """Until the listening side's QEMU has bound its port (it binds before it boots the guest)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(port):
            return
        if not alive():
            raise InfraError(f"the control plane's QEMU exited before it listened on 127.0.0.1:{port} "
                             f"(the private link)", retryable=False)
        time.sleep(0.2)
    raise InfraError(f"the control plane's QEMU did not listen on 127.0.0.1:{port} (the private link) in "
                     f"{timeout:.0f} s")


def configure(node, end: End) -> str:
    """Address the node's side of the link over SSH (found by its MAC, whatever the guest names
    it); returns the interface name. Read back: the address and MTU the node reports."""
    script = (f"for d in /sys/class/net/*; do [ \"$(cat $d/address)\" = {end.mac} ] && i=${{d##*/}}; done; "
              f"[ -n \"$i\" ] || {{ echo 'no NIC with MAC {end.mac}' >&2; exit 1; }}; "
              f"ip link set dev \"$i\" mtu {MTU} up && ip addr replace {end.address}/{PREFIX} dev \"$i\" && "
              f"echo \"$i\" && cat /sys/class/net/$i/mtu && ip -4 -o addr show dev \"$i\"")
    r = node.run(script)
    lines = r.stdout.split("\n")
    if r.rc != 0 or len(lines) < 3 or lines[1].strip() != str(MTU) or f" {end.address}/{PREFIX} " not in lines[2]:
        raise InfraError(f"{node.cell.id}: the private link's NIC ({end.mac}) did not take {end.address}/{PREFIX} "
                         f"mtu {MTU}: {(r.stdout + r.stderr).strip()[-300:]}", retryable=False)
    return lines[0].strip()


def reaches(node, address: str, port: int = 22, timeout: int = 20) -> str:
    """A TCP connect from the node to address:port over the link (bash's /dev/tcp: the base image
    has no nc); returns the first line the other side sent ("" if it sent none)."""
    script = (f"timeout {timeout} bash -c {shlex.quote(f'exec 3<>/dev/tcp/{address}/{port} && head -n 1 <&3')}")
    r = node.run(script)
    if r.rc != 0:
        raise InfraError(f"{node.cell.id}: no TCP connection to {address}:{port} over the private link "
                         f"(exit {r.rc}: {r.stderr.strip()[-200:]})", retryable=False)
    return r.stdout.split("\n", 1)[0].strip()
