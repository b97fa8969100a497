"""The container runtime and kubectl from the node distro's own packages: the path that runs end
to end here. The node reaches its distro mirror through QEMU's user-mode NAT and pulls the
sandbox image from the harness's registry (noderegistry) at the user-net gateway.

Debian 12 ships containerd 1.6, runc and kubernetes-client (kubectl 1.20); Debian 13 ships
`kubectl` 1.32. containerd's sandbox_image is set to pause:<the cell release's pause version>
(kubeadm's constants, see kube_versions), served by the harness.
"""
from __future__ import annotations

import json
import re
import time

from .. import noderegistry
from ..errors import InfraError
from ..matrix import Cell
from . import VERSION_ARGS, Binary, Bootstrapper, Step

KUBECTL_PACKAGE = {"bookworm": "kubernetes-client"}  # trixie and later: "kubectl"
APT = "DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=0 -o Acquire::http::Timeout=10"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"


class DistroBootstrapper(Bootstrapper):
    name = "distro"

    def __init__(self, mirror: str | None = None):
        self.mirror = mirror  # None: the node image's own sources (the distro mirror)

    def binaries(self, cell: Cell) -> list[Binary]:
        # judged by arch and that they run: Debian builds these with its own Go, not the release's
        return [Binary("sh", version_args=())] + [Binary(n, version_args=VERSION_ARGS[n])
                                                  for n in ("kubectl", "containerd", "runc")]

    def sandbox_ref(self, cell: Cell, registry_host: str) -> str:
        port = registry_host.rsplit(":", 1)[1]
        return f"{noderegistry.GUEST_GATEWAY}:{port}/pause:{cell.release.pause}"

    def plan(self, cell: Cell, registry_host: str = "127.0.0.1:PORT") -> list[Step]:
        ref = self.sandbox_ref(cell, registry_host)
        gateway = ref.split("/", 1)[0]
        kubectl = KUBECTL_PACKAGE.get(cell.os.release, "kubectl")
        steps = []
        if self.mirror:
            steps.append(Step("node", f"echo 'deb {self.mirror} {cell.os.release} main' > /etc/apt/sources.list",
                              "use this mirror"))
        return steps + [
            Step("node", f"{APT} update", "package lists from the distro mirror (fails fast when unreachable)"),
            Step("node", f"{APT} install -y --no-install-recommends containerd runc {kubectl}",
                 "runtime and kubectl from the distro"),
            Step("node", f"mkdir -p /etc/containerd && containerd config default > {CONTAINERD_CONFIG}", ""),
            Step("node", f"sed -i 's|^\\( *sandbox_image = \\).*|\\1\"{ref}\"|' {CONTAINERD_CONFIG} && printf "
                         f"'\\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{gateway}\"]\\n  endpoint = "
                         f"[\"http://{gateway}\"]\\n' >> {CONTAINERD_CONFIG}",
                 f"sandbox image = the release's pause ({cell.release.pause}), from the harness registry"),
            Step("node", "systemctl restart containerd && for i in $(seq 60); do ctr version >/dev/null 2>&1 && "
                         "exit 0; sleep 1; done; exit 1", "containerd up"),
            Step("node", f"ctr -n k8s.io images pull --plain-http {ref}", "the node's runtime pulls the pause image"),
        ]

    def prepare(self, node, cell: Cell, progress=print) -> None:
        if cell.provider not in ("qemu",):
            raise InfraError(f"bootstrapper distro needs a node on QEMU user networking to reach the harness "
                             f"registry (provider {cell.provider} is not)", retryable=False)
        reg = noderegistry.registry(cell.release.pause, progress)
        log = node.artifacts / "bootstrap.log"
        with open(log, "a") as out:
            for step in self.plan(cell, reg.host):
                t0 = time.monotonic()
                progress(f"distro: {step.why or step.command[:60]}")
                r = node.run(step.command)
                out.write(f"$ {step.command}\n{r.stdout}{r.stderr}\n(exit {r.rc}, {time.monotonic() - t0:.1f} s)\n")
                # apt-get update exits 0 when a source is unreachable ("W: Failed to fetch"): look too
                if r.rc != 0 or "update" in step.command and "Failed to fetch" in r.stdout + r.stderr:
                    raise self._failure(step, r, log)
        node.facts["bootstrap"] = "distro"

    @staticmethod
    def _failure(step: Step, r, log) -> InfraError:
        text = r.stdout + r.stderr
        url = re.search(r"Failed to fetch (\S+)", text)
        if url:
            why = next((x.strip() for x in text.splitlines() if x.startswith("Err:")), "")
            return InfraError(f"the node cannot reach {url.group(1)} ({why or 'failed to fetch'})",
                              artifacts={"bootstrap log": log}, retryable=False)
        return InfraError(f"bootstrap step failed (exit {r.rc}): {step.command[:120]}", artifacts={"bootstrap log": log},
                          log_tail="\n".join(text.strip().splitlines()[-15:]))

    def sandbox_image(self, node, cell: Cell) -> str | None:
        out = node.run("containerd config dump")
        m = re.search(r'^\s*sandbox_image\s*=\s*"([^"]+)"', out.stdout, re.M)
        return m.group(1) if m else None

    def pulled_sandbox_config(self, node, cell: Cell) -> tuple[str, dict] | None:
        """(reference, image config) of the sandbox image as the node's containerd holds it: the
        manifest it chose from the index for its own platform, and that manifest's config."""
        ref = self.sandbox_image(node, cell)
        if ref is None:
            return None
        ls = node.run(f"ctr -n k8s.io images ls name=={ref}").stdout.splitlines()
        if len(ls) < 2:
            return ref, {}
        digest = ls[1].split()[2]
        index = json.loads(node.run(f"ctr -n k8s.io content get {digest}").stdout)
        for m in index.get("manifests", [index]):
            got = node.run(f"ctr -n k8s.io content get {m['digest']}")
            if got.rc == 0 and m is not index:
                cfg_digest = json.loads(got.stdout)["config"]["digest"]
                return ref, json.loads(node.run(f"ctr -n k8s.io content get {cfg_digest}").stdout)
        return ref, {}
