"""MicroK8s as Canonical documents it: snapd from the distro, `snap install microk8s --classic
--channel=<minor>/stable` (`<minor>/edge` where MicroK8s publishes the arch on edge only: upstream.py),
`microk8s status --wait-ready`, `microk8s config`. Offline (--artifacts):
`snap ack` the assertion and install the local .snap, and point MicroK8s' containerd at the
harness registry (certs.d hosts.toml per upstream registry) where the artifacts' images were pushed.
"""
from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..common.errors import InfraError
from ..matrix import upstream
from ..matrix.cells import Cell
from . import containerd, timeouts
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
# MicroK8s runs its own containerd from this template: the snap's install hook copies $SNAP/default-args
# to $SNAP_DATA/args (canonical/microk8s snap/hooks/install, `cp -r --preserve=mode ${SNAP}/default-args
# ${SNAP_DATA}/args`); snapcraft.yaml's microk8s part puts microk8s-resources/default-args there
TEMPLATE = "/var/snap/microk8s/current/args/containerd-template.toml"
TEMPLATE_SOURCE = "microk8s-resources/default-args/containerd-template.toml"  # in canonical/microk8s
# The pause each MicroK8s track ships: `sandbox_image` in TEMPLATE_SOURCE at the track's tag vX.Y of
# canonical/microk8s (read at v1.28 40275f34, v1.29 b25957fe, v1.30 36d44b9b, v1.31 d2d944e5: pause:3.7;
# v1.32 e2b2a2f9, v1.33 c9079bdf, v1.34 f236aad5, v1.35 edf41ffd, v1.36 e254fda9: pause:3.10, bumped by
# canonical/microk8s#4770 for 1.32). No v1.37 tag yet: the installed template is the only answer there.
PAUSE = {"1.28": "3.7", "1.29": "3.7", "1.30": "3.7", "1.31": "3.7",
         "1.32": "3.10", "1.33": "3.10", "1.34": "3.10", "1.35": "3.10", "1.36": "3.10"}
PAUSE_IMAGE = "registry.k8s.io/pause"  # the template's repository at every tag above


def template_sandbox(text: str) -> str | None:
    """The sandbox image a MicroK8s containerd template configures (config version 2's CRI table)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    return doc.get("plugins", {}).get(containerd.V2_CRI.strip('"'), {}).get("sandbox_image")


class MicroK8sBootstrapper(containerd.ContainerdRuntime, PlannedBootstrapper):
    name = "microk8s"
    kubeconfig = "/root/microk8s.kubeconfig"
    api_port = 16443
    own_pause = True
    ctr = f"{MICROK8S} ctr"  # MicroK8s' own containerd, through its wrapper

    # ---- the runtime it configures (ConfiguresRuntime) ------------------------------------------

    def shipped_pause(self, cell: Cell) -> tuple[str, str] | None:
        """(image, tag) of the pause the cell's MicroK8s track ships, from the table (None: not in it)."""
        tag = PAUSE.get(cell.release.minor)
        return (PAUSE_IMAGE, tag) if tag else None

    def sandbox_image(self, node, cell: Cell) -> str | None:
        r = node.run(f"cat {TEMPLATE}")
        return template_sandbox(r.stdout) if r.rc == 0 else None

    def expected_pause(self, node, cell: Cell) -> str | None:
        """The pause this MicroK8s track ships (the table's; the installed template is checked against it)."""
        shipped = self.shipped_pause(cell)
        return shipped[1] if shipped else None

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
        if snap is None and self.options.snap_base:
            steps += self.standin_snap_steps(cell)
        elif snap is None:
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
            # the installed command, found the way every later step runs it (#16 finding 1: a bare
            # `microk8s` exits 127 over the node transport's non-login shell)
            Step("node", f"{MICROK8S} version", "the installed MicroK8s' version", asks="microk8s_version"),
            Step("node", f"cat {TEMPLATE}", "its containerd template (the sandbox image it configures)",
                 verify=lambda text: None if template_sandbox(text) else
                 f"{TEMPLATE} names no sandbox_image"),
            Step("node", f"{MICROK8S} status --wait-ready --timeout {timeouts.seconds(timeouts.CLUSTER_READY, facts)}",
                 "MicroK8s ready", phase="install", kubernetes=True),
            Step("node", f"{MICROK8S} config > {self.kubeconfig}", "its kubeconfig", phase="install", kubernetes=True),
            Step("node", f"{MICROK8S} kubectl wait --for=condition=Ready node --all "
                         f"--timeout={timeouts.seconds(timeouts.NODE_READY, facts)}s", "node Ready",
                 phase="install", kubernetes=True),
            self.kubeconfig_step(),
        ]

    def standin_snap_steps(self, cell: Cell) -> list[Step]:
        """The rehearsal's Snap Store: --snap-base serves <name>_<revision>.snap files (built by
        harness/rehearsal/microk8s.py), which the node's snapd installs unsigned (--dangerous): its
        base first (snapd installs a snap's base before it, from the store when it can), then MicroK8s."""
        base, url = self.options.snap_base.rstrip("/"), f"{self.options.snap_base.rstrip('/')}/"
        channel = self.channel(cell).replace("/", "-")
        get = "curl -fsS --connect-timeout 10 -o"
        return [
            Step("node", f"{APT} install -y --no-install-recommends curl ca-certificates", "curl for the stand-in "
                 "store", installs=("/usr/bin/curl",), lab=True),
            Step("node", f"{get} /root/standin-snapd.snap {base}/{channel}/snapd.snap && {get} "
                         f"/root/standin-base.snap {base}/{channel}/base.snap && {get} /root/microk8s.snap "
                         f"{base}/{channel}/microk8s.snap", "the stand-in snaps (rehearsal: no Snap Store here)",
                 url=url, lab=True),
            # snapd installs the snapd system snap before a snap with a non-core base (from the store)
            Step("node", f"{SNAP} install --dangerous /root/standin-snapd.snap", "the stand-in snapd snap", lab=True),
            Step("node", f"{SNAP} install --dangerous /root/standin-base.snap", "the stand-in base snap", lab=True),
            Step("node", f"{SNAP} install --dangerous --classic /root/microk8s.snap",
                 "MicroK8s (stand-in snap) by the node's snapd", installs=(MICROK8S,)),
        ]
