"""The container runtime and kubectl from the node distro's own packages: the path that runs end
to end here. The node reaches its distro mirror through QEMU's user-mode NAT and pulls the
sandbox image from the harness's registry (the run's Lab's node registry) at the user-net gateway.

Debian 12 ships containerd 1.6, runc and kubernetes-client (kubectl 1.20); Debian 13 ships
`kubectl` 1.32. containerd's sandbox_image is set to pause:<the cell release's pause version>
(kubeadm's constants, see kube_versions), served by the harness.
"""
from __future__ import annotations

from ..common.errors import InfraError
from ..matrix import upstream
from ..matrix.cells import Cell
from ..services import noderegistry
from . import containerd
from .base import VERSION_ARGS, Binary, Bootstrapper
from .steps import APT, APT_UPDATE, REGISTRY_PLACEHOLDER, Step, run_steps

KUBECTL_PACKAGE = {"bookworm": "kubernetes-client"}  # trixie and later: "kubectl"
NOT_PACKAGED = "not packaged for this arch"


class DistroBootstrapper(containerd.ContainerdRuntime, Bootstrapper):
    name = "distro"

    def __init__(self, options=None, lab=None, mirror: str | None = None):
        super().__init__(options, lab)
        self.mirror = mirror  # None: the node image's own sources (the distro mirror)

    def binaries(self, cell: Cell) -> list[Binary]:
        # judged by arch and that they run: Debian builds these with its own Go, not the release's
        return [Binary("sh", version_args=()), Binary("kubectl", required=False, version_args=VERSION_ARGS["kubectl"])] + \
            [Binary(n, version_args=VERSION_ARGS[n]) for n in ("containerd", "runc")]

    def sandbox_ref(self, cell: Cell, registry_host: str) -> str:
        return f"{noderegistry.guest_host(registry_host)}/pause:{cell.release.pause}"

    def plan(self, cell: Cell, registry_host: str = REGISTRY_PLACEHOLDER,
             facts: dict | None = None) -> list[Step]:
        ref = self.sandbox_ref(cell, registry_host)
        gateway = ref.split("/", 1)[0]
        kubectl = KUBECTL_PACKAGE.get(cell.os.release, "kubectl")
        steps = []
        if self.mirror:
            steps.append(Step("node", f"echo 'deb {self.mirror} {cell.os.release} main' > /etc/apt/sources.list",
                              "use this mirror", lab=True, idempotent=True))
        return steps + [
            APT_UPDATE,
            Step("node", f"{APT} install -y --no-install-recommends containerd runc", "runtime from the distro",
                 installs=containerd.PROGRAMS, idempotent=True),
            # not every release packages kubectl for every arch (bookworm has no kubernetes-client for ppc64el)
            Step("node", f"if apt-cache policy {kubectl} | grep -q 'Candidate: [0-9]'; then {APT} install -y "
                         f"--no-install-recommends {kubectl}; else echo '{NOT_PACKAGED}'; fi",
                 "kubectl from the distro, where it is packaged for this arch", idempotent=True),
            *containerd.steps(ref, plain_http=gateway, facts=facts,
                              expected=upstream.DISTRO_CONTAINERD.get(cell.os.release)),
            Step("node", f"ctr -n k8s.io images pull --plain-http {ref}", "the node's runtime pulls the pause image",
                 idempotent=True),
        ]

    def prepare(self, node, cell: Cell, progress=print) -> None:
        if cell.provider not in ("qemu",):
            raise InfraError(f"bootstrapper distro needs a node on QEMU user networking to reach the harness "
                             f"registry (provider {cell.provider} is not)", retryable=False)
        reg = self.node_registry(cell, progress)
        run_steps(node, lambda facts: self.plan(cell, reg.host, facts), node.artifacts / "bootstrap.log", progress,
                  "distro")
        node.facts["bootstrap"] = "distro"
        if node.run("command -v kubectl").rc != 0:
            pkg = KUBECTL_PACKAGE.get(cell.os.release, "kubectl")
            node.facts["absent:kubectl"] = f"{cell.os.release} has no {pkg} package for {cell.platform.debian}"
            progress(f"distro: {node.facts['absent:kubectl']}")
