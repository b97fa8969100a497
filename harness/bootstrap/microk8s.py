"""MicroK8s as Canonical documents it: snapd from the distro, `snap install microk8s --classic
--channel=<minor>/stable` (`<minor>/edge` where MicroK8s publishes the arch on edge only: upstream.py),
`microk8s status --wait-ready`, `microk8s config`. Offline (--artifacts):
`snap ack` the assertion and install the local .snap, and point MicroK8s' containerd at the
harness registry (certs.d hosts.toml per upstream registry) where the artifacts' images were pushed.
"""
from __future__ import annotations

from ..common.errors import InfraError
from ..matrix import upstream
from ..matrix.cells import Cell
from . import timeouts
from .base import Binary
from .planned import PlannedBootstrapper
from .steps import APT, APT_UPDATE, REGISTRY_PLACEHOLDER, Step, heredoc

STORE = "https://api.snapcraft.io"
CERTS = "/var/snap/microk8s/current/args/certs.d"
# snapd links every snap's commands into /snap/bin, which only login shells have on PATH (snapd's
# /etc/profile.d/apps-bin-path.sh); plans run over a non-login shell: the absolute path (steps.NODE_PATH)
MICROK8S = "/snap/bin/microk8s"
SNAP = "/usr/bin/snap"  # Debian's and Ubuntu's snapd package
MIRRORED = ("docker.io", "registry.k8s.io", "quay.io", "ghcr.io")  # where MicroK8s' add-on images come from


class MicroK8sBootstrapper(PlannedBootstrapper):
    name = "microk8s"
    kubeconfig = "/root/microk8s.kubeconfig"
    api_port = 16443

    def channel(self, cell: Cell) -> str:
        """<minor>/stable, or <minor>/edge where MicroK8s publishes an arch on edge only (upstream.py)."""
        return upstream.microk8s_channel(cell.release.minor, cell.arch)[0]

    def prepare(self, node, cell: Cell, progress=print) -> None:
        super().prepare(node, cell, progress)
        if self.artifacts(cell) is None:
            node.facts["snap_channel"] = self.channel(cell)  # a cell's properties say when it is edge

    def binaries(self, cell: Cell) -> list[Binary]:
        # kubelet and friends live inside the snap (kubelite), not on PATH: the node's shell only
        return [Binary("sh", version_args=())]

    def check(self, cell: Cell) -> None:
        art = self.artifacts(cell)
        if art is not None and art.snap("microk8s") is None:
            raise InfraError(f"microk8s offline: --artifacts {art.dir}/snap has no microk8s_*.snap + .assert",
                             retryable=False)

    def plan(self, cell: Cell, registry_host: str = REGISTRY_PLACEHOLDER,
             facts: dict | None = None) -> list[Step]:
        art = self.artifacts(cell)
        steps = [
            APT_UPDATE,
            Step("node", f"{APT} install -y --no-install-recommends snapd squashfs-tools && systemctl enable --now "
                         f"snapd.socket snapd.service && snap wait system seed.loaded", "snapd from the distro",
                 installs=(SNAP,)),
        ]
        snap = art.snap("microk8s") if art else None
        if snap is None:
            channel, edge = upstream.microk8s_channel(cell.release.minor, cell.arch)
            steps.append(Step("node", f"snap install microk8s --classic --channel={channel}",
                              f"MicroK8s {channel} from the Snap Store" + (f" ({edge})" if edge else ""), url=STORE,
                              installs=(MICROK8S,)))
        else:
            s, a = snap
            steps += [Step("host", f"copy {s} -> node:/root/{s.name}", "the MicroK8s snap from the artifacts",
                           copy=(str(s), f"/root/{s.name}", "0644")),
                      Step("host", f"copy {a} -> node:/root/{a.name}", "its assertion",
                           copy=(str(a), f"/root/{a.name}", "0644")),
                      Step("node", f"snap ack /root/{a.name} && snap install /root/{s.name} --classic",
                           "MicroK8s from the local snap (offline)", installs=(MICROK8S,))]
        mirror = self.registry_mirror(registry_host)
        if mirror:
            for reg in MIRRORED:
                hosts = f'server = "http://{mirror}"\n\n[host."http://{mirror}"]\n  capabilities = ["pull", "resolve"]\n'
                steps.append(Step("node", heredoc(f"{CERTS}/{reg}/hosts.toml", hosts), f"{reg} images from the harness"
                                                                                       f" registry"))
            steps.append(Step("node", "snap restart microk8s", "MicroK8s' containerd reads the mirrors"))
        return steps + [
            Step("node", f"{MICROK8S} status --wait-ready --timeout {timeouts.seconds(timeouts.CLUSTER_READY, facts)}",
                 "MicroK8s ready", phase="install"),
            Step("node", f"{MICROK8S} config > {self.kubeconfig}", "its kubeconfig", phase="install"),
            Step("node", f"{MICROK8S} kubectl wait --for=condition=Ready node --all "
                         f"--timeout={timeouts.seconds(timeouts.NODE_READY, facts)}s", "node Ready",
                 phase="install"),
            self.kubeconfig_step(),
        ]
