"""The base every bootstrapper shares: the run's options, the binaries it promises, its plan of
steps and the node-level preparation the suites judge before any cluster exists."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..common.errors import InfraError
from ..matrix.cells import Cell
from .steps import REGISTRY_PLACEHOLDER, Step

# Every binary any bootstrapper may install: the binaries suite is parametrized over this list.
KNOWN_BINARIES = ("sh", "kubectl", "kubelet", "kubeadm", "kube-proxy", "containerd", "runc", "crictl", "k3s")
# How each one prints its version and exits (never run a daemon bare: containerd would start serving).
VERSION_ARGS = {"sh": (), "kubectl": ("version", "--client"), "kubelet": ("--version",), "kubeadm": ("version",),
                "kube-proxy": ("--version",), "containerd": ("--version",), "runc": ("--version",),
                "crictl": ("--version",), "k3s": ("--version",)}


@dataclass(frozen=True)
class Binary:
    """What a bootstrapper promises about one binary on the node."""

    name: str
    required: bool = True  # absent -> failure (else: checked only when present)
    version: str | None = None  # expected in `--version` output, e.g. "v1.32" or "1.6.20"
    version_args: tuple[str, ...] = ("--version",)
    go: bool = False  # a Go program: check build info against the release
    static: bool | None = None  # None: either is fine


@dataclass(frozen=True)
class Options:
    """What a run tells its bootstrappers (plugin and CLI options)."""

    artifacts: Path | None = None  # --artifacts DIR: air-gapped binaries, images, snaps
    package_base: str | None = None  # --package-base URL: a mirror of pkgs.k8s.io (kubeadm)
    k3s_version: str | None = None  # --k3s-version v1.32.3+k3s1 (default: the minor's channel)
    # a mirror of GitHub's release downloads in their layout (<base>/<owner>/<repo>/releases/download/...):
    # containerd's and runc's release assets and flannel's manifest (kubeadm); tests point it at a
    # closed loopback port, a rehearsal at its stand-ins
    release_base: str | None = None
    # the containerd release a kubeadm cell installs from release_base instead of the one
    # upstream.containerd_for chooses: a rehearsal's stand-in carries Debian's build of another
    # version, said here (and in its results) rather than by loosening the plan's version check
    containerd_version: str | None = None
    # the rehearsal's stand-ins for MicroK8s' and k3s' sources (harness/rehearsal/{microk8s,k3s}.py):
    # a directory of <channel>/{base,microk8s}.snap installed --dangerous instead of the Snap Store;
    # get.k3s.io, and the install script's GITHUB_URL and INSTALL_K3S_CHANNEL_URL
    snap_base: str | None = None
    k3s_install_url: str | None = None
    k3s_github_url: str | None = None
    k3s_channel_url: str | None = None


class Bootstrapper:
    """What every bootstrapper does: promise binaries, plan its steps, prepare the node. What only
    some can do is a capability (capabilities.py) that the suites ask for with isinstance."""

    name = "base"

    def __init__(self, options: Options | None = None, lab=None):
        self.options = options or Options()
        self.lab = lab  # the run's services (services.lab.Lab): the registry the nodes pull from

    def binaries(self, cell: Cell) -> list[Binary]:
        return []

    def check(self, cell: Cell) -> None:
        """Refuse what cannot work for this cell (a join cell without its second node, a missing
        air-gapped binary) with an InfraError, before a node is started or anything is installed:
        the plugin calls it before it asks for the node, and prepare() before its first step."""

    def plan(self, cell: Cell, registry_host: str = REGISTRY_PLACEHOLDER,
             facts: dict | None = None) -> list[Step]:
        """Every command this bootstrapper runs for the cell, in order (`archmatrix plan CELL`).
        facts: the node's (accelerator, boot_seconds, what it answered): None before there is one."""
        return []

    def prepare(self, node, cell: Cell, progress=print) -> None:
        """Node-level setup (runtime, packages) before any suite looks at the node."""

    def node_registry(self, cell: Cell, progress=print):
        """The run's registry the nodes pull from, with the cell release's pause in it."""
        if self.lab is None:
            raise InfraError(f"bootstrapper {self.name} needs the run's Lab (the registry its nodes pull from)",
                             retryable=False)
        return self.lab.node_registry(cell.release.pause, progress)
