"""The shape kubeadm, MicroK8s and k3s share: a plan of steps (printed by `archmatrix plan`),
its `prepare` steps run before any suite, its `install` steps bring the cluster up, and the
cluster's kubeconfig is fetched to the cell's artifacts and reached through an SSH tunnel."""
from __future__ import annotations

import re

from ..common.errors import InfraError
from ..matrix.cells import Cell
from ..services import noderegistry
from .airgap import Artifacts
from .base import Bootstrapper
from .capabilities import BringsUpCluster, Cluster
from .steps import REGISTRY_PLACEHOLDER, Step, kubeconfig_step, run_steps


class PlannedBootstrapper(Bootstrapper, BringsUpCluster):
    kubeconfig = ""  # where the bootstrapper leaves the admin kubeconfig on the node
    api_port = 6443

    def artifacts(self, cell: Cell) -> Artifacts | None:
        return Artifacts.load(self.options.artifacts, cell.platform) if self.options.artifacts else None

    def registry_mirror(self, registry_host: str) -> str | None:
        """The harness registry as the node sees it, when images come from --artifacts."""
        if self.options.artifacts is None:
            return None
        return noderegistry.guest_host(registry_host)

    def plan(self, cell: Cell, registry_host: str = REGISTRY_PLACEHOLDER,
             facts: dict | None = None) -> list[Step]:  # pragma: no cover
        raise NotImplementedError

    def kubeconfig_step(self) -> Step:
        """The plan's last step: what install() does on this machine once the cluster is up."""
        return kubeconfig_step(self.kubeconfig, self.api_port)

    def _steps(self, node, cell: Cell, phase: str, progress) -> None:
        reg = self.node_registry(cell, progress)
        run_steps(node, lambda facts: [s for s in self.plan(cell, reg.host, facts) if s.phase == phase],
                  node.artifacts / "bootstrap.log", progress, self.name)

    def prepare(self, node, cell: Cell, progress=print) -> None:
        self.check(cell)  # refused before any step runs (issue #16 item 8)
        if cell.provider == "docker":
            raise InfraError(f"{self.name} needs a node with network (docker nodes run with none)", retryable=False)
        art = self.artifacts(cell)
        if art is not None:
            art.push(self.node_registry(cell, progress).host, progress)
        self._steps(node, cell, "prepare", progress)
        node.facts["bootstrap"] = self.name + (" (artifacts)" if art else "")

    def install(self, node, cell: Cell) -> Cluster:
        self._steps(node, cell, "install", print)
        return fetch_kubeconfig(node, self.kubeconfig, self.api_port)


def fetch_kubeconfig(node, remote_path: str, api_port: int) -> Cluster:
    """The cluster's admin kubeconfig, saved to the cell's artifacts with its server replaced by an
    SSH tunnel to the node's API port (the API certificate carries 127.0.0.1)."""
    r = node.run(f"cat {remote_path}")
    if r.rc != 0:
        raise InfraError(f"{node.cell.id}: no kubeconfig at {remote_path} on the node: {r.stderr.strip()}")
    port = node.forward(api_port)
    path = node.artifacts / "kubeconfig"
    path.write_text(re.sub(r"server: https://\S+", f"server: https://127.0.0.1:{port}", r.stdout))
    path.chmod(0o600)
    name = node.run("hostname").stdout.strip()
    return Cluster(path, node_name=name or None)
