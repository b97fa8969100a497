"""Bootstrappers turn a Node into a Cluster (kubetest2's deployer `Up`), and say which
binaries they put on the node, so the binaries suite knows what to check.
"""
from __future__ import annotations

import importlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import InfraError
from ..matrix.cells import BOOTSTRAPPERS, Cell

_IMPLEMENTATIONS = {
    "none": "harness.bootstrap.none:NoBootstrapper",
    "distro": "harness.bootstrap.distro:DistroBootstrapper",
    "kubeadm": "harness.bootstrap.kubeadm:KubeadmBootstrapper",
    "microk8s": "harness.bootstrap.microk8s:MicroK8sBootstrapper",
    "k3s": "harness.bootstrap.k3s:K3sBootstrapper",
}

# apt inside a node: no prompts, and an unreachable mirror fails at once instead of retrying
APT = (
    "DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=0 -o Acquire::http::Timeout=10"
    " -o Acquire::Languages=none"  # no Translation-en: 6 of bookworm's 15 MB of lists, parsed under emulation
)

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


@dataclass(frozen=True)
class Step:
    """One command of a bootstrapper's plan: where it runs (node, control-plane, host) and why.
    `url`: what the step fetches, named in the error when the node cannot reach it."""

    where: str
    command: str
    why: str = ""
    url: str | None = None
    phase: str = "prepare"  # prepare: node-level, before any suite; install: brings the cluster up
    copy: tuple[str, str, str] | None = None  # host file -> node path, mode (air-gapped artifacts)


APT_UPDATE = Step("node", f"{APT} update", "package lists from the distro mirror (fails fast when unreachable)")


@dataclass(frozen=True)
class Options:
    """What a run tells its bootstrappers (plugin and CLI options)."""

    artifacts: Path | None = None  # --artifacts DIR: air-gapped binaries, images, snaps
    package_base: str | None = None  # --package-base URL: a mirror of pkgs.k8s.io (kubeadm)
    k3s_version: str | None = None  # --k3s-version v1.32.3+k3s1 (default: the minor's channel)


# curl exits 6/7/28 (resolve, connect, timeout) and apt's "Failed to fetch": the node cannot reach a URL
_UNREACHABLE = re.compile(r"Failed to fetch (\S+)|curl: \((?:6|7|28|35)\)[^\n]*|error: cannot communicate with server"
                          r"|dial tcp[^\n]*")


def run_steps(node, steps: list[Step], log: Path, progress=print, label: str = "") -> None:
    """Run steps on the node in order, each logged with its output and seconds; the first failure
    raises an InfraError. A step that cannot reach its URL is a fast, named, non-retryable failure."""
    with open(log, "a") as out:
        for step in steps:
            t0 = time.monotonic()
            if step.copy:
                progress(f"{label}: {step.why}")
                node.put(Path(step.copy[0]), step.copy[1], step.copy[2])
                out.write(f"# {step.command} ({time.monotonic() - t0:.1f} s)\n")
                continue
            if step.where != "node":
                continue  # host steps (registry pushes, the kubeconfig) are the bootstrapper's own code
            progress(f"{label}: {step.why or step.command[:60]}")
            r = node.run(step.command)
            text = r.stdout + r.stderr
            out.write(f"$ {step.command}\n{text}\n(exit {r.rc}, {time.monotonic() - t0:.1f} s)\n")
            out.flush()
            # apt-get update exits 0 when a source is unreachable ("W: Failed to fetch"): read its output too
            unreachable = _UNREACHABLE.search(text)
            if r.rc != 0 or unreachable and "Failed to fetch" in unreachable.group(0):
                raise _failure(step, r.rc, text, unreachable, log)


def _failure(step: Step, rc: int, text: str, unreachable, log: Path) -> InfraError:
    if unreachable:
        url = unreachable.group(1) or step.url or "(see the bootstrap log)"
        why = next((x.strip() for x in text.splitlines() if x.startswith("Err:")), "") or unreachable.group(0).strip()
        return InfraError(f"the node cannot reach {url} ({why})", artifacts={"bootstrap log": log}, retryable=False)
    return InfraError(f"bootstrap step failed (exit {rc}): {step.command[:120]}", artifacts={"bootstrap log": log},
                      log_tail="\n".join(text.strip().splitlines()[-15:]))


class Bootstrapper:
    name = "base"

    def __init__(self, options: Options | None = None):
        self.options = options or Options()

    def binaries(self, cell: Cell) -> list[Binary]:
        return []

    def plan(self, cell: Cell) -> list[Step]:
        """Every command this bootstrapper runs for the cell, in order (`archmatrix plan CELL`)."""
        return []

    def prepare(self, node, cell: Cell, progress=print) -> None:
        """Node-level setup (runtime, packages) before any suite looks at the node."""

    def pulled_sandbox_config(self, node, cell: Cell) -> tuple[str, dict] | None:
        """(reference, config) of the sandbox image the node's runtime pulled; None without a runtime."""
        return None

    def sandbox_image(self, node, cell: Cell) -> str | None:
        """The pause image the node's runtime is configured with; None when there is no runtime."""
        return None

    def install(self, node, cell: Cell) -> Cluster | None:
        """Bring the cluster up on the node; None when this bootstrapper makes no cluster."""
        return None


def get(name: str, options: Options | None = None) -> Bootstrapper:
    assert name in BOOTSTRAPPERS, name
    spec = _IMPLEMENTATIONS.get(name)
    if spec is None:
        raise InfraError(f"bootstrapper '{name}' is not available in this version of archmatrix "
                         f"(available: {', '.join(_IMPLEMENTATIONS)})", retryable=False)
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)(options)
