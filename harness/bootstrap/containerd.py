"""containerd's configuration, shared by every bootstrapper that installs it (distro, kubeadm):
the default config, the sandbox image kubeadm expects, the harness registry as a plain-HTTP
mirror, and (for a kubelet) the systemd cgroup driver. containerd 1.6/1.7 (config version 2)."""
from __future__ import annotations

from . import Step

CONFIG = "/etc/containerd/config.toml"


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
