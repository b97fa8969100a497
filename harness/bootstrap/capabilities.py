"""What a bootstrapper may be able to do beyond preparing a node, each a small interface a suite
asks for (kubetest2's optional deployer interfaces): configure a container runtime, bring up a
cluster, join a control plane on another node. And the clusters they bring up."""
from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from ..matrix.cells import Cell
from .steps import REGISTRY_PLACEHOLDER, Step


class ConfiguresRuntime(abc.ABC):
    """Installs and configures the node's container runtime, whose sandbox (pause) image the
    pause suite judges: the one configured, and the one the runtime pulled."""

    @abc.abstractmethod
    def sandbox_image(self, node, cell: Cell) -> str | None:
        """The sandbox image the node's runtime is configured with (None: its config names none)."""

    @abc.abstractmethod
    def pulled_sandbox_config(self, node, cell: Cell) -> tuple[str | None, dict]:
        """(reference, image config) of the sandbox image as the runtime holds it ({}: not pulled)."""

    own_pause = False  # ships its own pause, which may differ from kubeadm's (MicroK8s, k3s)

    def expected_pause(self, node, cell: Cell) -> str | None:
        """The pause tag the runtime should be configured with: the release's, from the table."""
        return cell.release.pause

    def shipped_pause(self, cell: Cell) -> tuple[str, str] | None:
        """(image, tag) of the sandbox image this bootstrapper configures for the cell, known before
        any node exists (None: unknown until the node answers). kubeadm's and the distro's: the
        release's pause from kubeadm's table; MicroK8s and k3s ship their own (their tables)."""
        return ("registry.k8s.io/pause", cell.release.pause) if cell.release.pause else None


class BringsUpCluster(abc.ABC):
    """Brings a cluster up on the prepared node (kubetest2's `Up`): the cluster suites ask for it."""

    @abc.abstractmethod
    def install(self, node, cell: Cell) -> "Cluster":
        """The cluster, reached through a kubeconfig in the cell's artifacts."""


class Joins(abc.ABC):
    """Joins the cell's node to a control plane on another node (matrix `control_plane:` rules)."""

    @abc.abstractmethod
    def join_plan(self, cell: Cell, registry_host: str = REGISTRY_PLACEHOLDER) -> list[Step]:
        """The steps on the joining node (and on the control plane, for its join command)."""



@dataclass
class Cluster:
    """A real cluster reached through a kubeconfig, read with the official client."""

    kubeconfig: Path
    context: str | None = None
    node_name: str | None = None  # the cell's node, when the harness bootstrapped it
    kind = "live"

    def api(self):
        from kubernetes import client, config

        return client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig), context=self.context))

    def nodes(self) -> list[dict]:
        """Node objects as `kubectl get nodes -o json` shows them (camelCase keys)."""
        api = self.api()
        return [api.api_client.sanitize_for_serialization(n) for n in api.list_node().items]


class RecordedCluster:
    """A stand-in for an API server, which cannot run on this machine: it serves Node objects
    recorded from real clusters (files of `kubectl get node -o yaml` output). Every report of a
    run against it says `cluster: recorded`. It cannot schedule pods."""

    kind = "recorded"
    node_name = None

    def __init__(self, paths: list[Path]):
        import yaml

        self.paths = [Path(p) for p in paths]
        self._nodes = []
        for p in self.paths:
            for doc in yaml.safe_load_all(p.read_text()):
                if not doc:
                    continue
                items = doc.get("items", [doc]) if doc.get("kind") == "List" else [doc]
                self._nodes.extend(items)

    def nodes(self) -> list[dict]:
        return list(self._nodes)

    def api(self):
        raise NotImplementedError("a recorded cluster has no API server")
