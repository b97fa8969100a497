"""containerd, shared by every bootstrapper that installs it (distro, kubeadm): its configuration
(the default config, the sandbox image kubeadm expects, the harness registry as a plain-HTTP
mirror, and for a kubelet the systemd cgroup driver; containerd 1.6/1.7, config version 2), and
the runtime capability read back from the node (the sandbox image configured and pulled)."""
from __future__ import annotations

import json
import re

from ..matrix.cells import Cell
from .capabilities import ConfiguresRuntime
from .steps import Step

CONFIG = "/etc/containerd/config.toml"
# where Debian's containerd package puts the programs the steps run (its file list: /usr/bin)
PROGRAMS = ("/usr/bin/containerd", "/usr/bin/ctr")


def steps(sandbox_ref: str, plain_http: str | None = None, systemd_cgroup: bool = False) -> list[Step]:
    edits = [f"s|^\\( *sandbox_image = \\).*|\\1\"{sandbox_ref}\"|"]
    if systemd_cgroup:
        # kubeadm's kubelet defaults to the systemd cgroup driver since 1.22; the runtime must agree
        # (kubernetes.io/docs/setup/production-environment/container-runtimes/#containerd-systemd)
        edits.append("s|^\\( *SystemdCgroup = \\).*|\\1true|")
    mirror = "" if plain_http is None else (
        f" && printf '\\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{plain_http}\"]\\n  endpoint = "
        f"[\"http://{plain_http}\"]\\n' >> {CONFIG}")
    return [
        Step("node", f"mkdir -p /etc/containerd && containerd config default > {CONFIG}", "containerd's default config"),
        Step("node", "sed -i " + " ".join(f"-e '{e}'" for e in edits) + f" {CONFIG}{mirror}",
             f"sandbox image {sandbox_ref}" + (", systemd cgroups" if systemd_cgroup else "")),
        Step("node", "systemctl restart containerd && for i in $(seq 60); do ctr version >/dev/null 2>&1 && "
                     "exit 0; sleep 1; done; exit 1", "containerd up"),
    ]


class ContainerdRuntime(ConfiguresRuntime):
    """The sandbox image as the node's containerd has it."""

    def sandbox_image(self, node, cell: Cell) -> str | None:
        out = node.run("containerd config dump")
        m = re.search(r'^\s*sandbox_image\s*=\s*"([^"]+)"', out.stdout, re.M)
        return m.group(1) if m else None

    def pulled_sandbox_config(self, node, cell: Cell) -> tuple[str | None, dict]:
        """(reference, image config) of the sandbox image as the node's containerd holds it: the
        manifest it chose from the index for its own platform (or the one manifest of a single-arch
        image, as an air-gapped artifacts dir may hold), and that manifest's config."""
        ref = self.sandbox_image(node, cell)
        if ref is None:
            return None, {}
        ls = node.run(f"ctr -n k8s.io images ls name=={ref}").stdout.splitlines()
        if len(ls) < 2:
            return ref, {}
        digest = ls[1].split()[2]
        index = json.loads(node.run(f"ctr -n k8s.io content get {digest}").stdout)
        if "config" in index:  # not an index: a single-arch image's manifest
            return ref, json.loads(node.run(f"ctr -n k8s.io content get {index['config']['digest']}").stdout)
        for m in index.get("manifests", []):
            got = node.run(f"ctr -n k8s.io content get {m['digest']}")
            if got.rc == 0:
                cfg_digest = json.loads(got.stdout)["config"]["digest"]
                return ref, json.loads(node.run(f"ctr -n k8s.io content get {cfg_digest}").stdout)
        return ref, {}
