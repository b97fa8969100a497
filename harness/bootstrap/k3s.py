"""k3s as docs.k3s.io documents it: the install script with a pinned INSTALL_K3S_VERSION (or
the minor's channel, INSTALL_K3S_CHANNEL=v1.X), `k3s kubectl`. Offline (--artifacts): the local
k3s binary, its systemd unit written by the harness (what the install script would write), and
registries.yaml mirroring docker.io/registry.k8s.io to the harness registry, where the
artifacts' images (e.g. k3s-airgap-images-<arch>.tar) were pushed.
"""
from __future__ import annotations

import yaml

from ..common.errors import InfraError, UserError
from ..matrix.cells import Cell
from . import timeouts
from .base import Binary
from .planned import PlannedBootstrapper
from .steps import APT, APT_UPDATE, REGISTRY_PLACEHOLDER, Step, heredoc

INSTALL = "https://get.k3s.io"
# where the install script puts k3s (k3s-io/k3s install.sh setup_env: BIN_DIR=/usr/local/bin unless
# INSTALL_K3S_BIN_DIR or a read-only /usr/local/bin), as the
# air-gapped path does; on the node transport's PATH (steps.NODE_PATH)
K3S = "/usr/local/bin/k3s"
UNIT = """[Unit]
Description=Lightweight Kubernetes
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
ExecStart=/usr/local/bin/k3s server --write-kubeconfig-mode 644
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
"""


class K3sBootstrapper(PlannedBootstrapper):
    name = "k3s"
    kubeconfig = "/etc/rancher/k3s/k3s.yaml"

    def pin(self, cell: Cell) -> str:
        v = self.options.k3s_version
        if v and not v.removeprefix("v").startswith(cell.release.minor + "."):
            raise UserError(f"--k3s-version {v} is not a {cell.release.minor} release (cell {cell.id})")
        return f"INSTALL_K3S_VERSION={v}" if v else f"INSTALL_K3S_CHANNEL=v{cell.release.minor}"

    def binaries(self, cell: Cell) -> list[Binary]:
        # k3s is one static Go binary carrying kubelet, kube-proxy and containerd
        return [Binary("sh", version_args=()), Binary("k3s", version=cell.release.tag, go=True)]

    def check(self, cell: Cell) -> None:
        art = self.artifacts(cell)
        if art is not None and art.missing(("k3s",)):
            raise InfraError(f"k3s offline: --artifacts {art.dir}/bin has no k3s", retryable=False)

    def plan(self, cell: Cell, registry_host: str = REGISTRY_PLACEHOLDER,
             facts: dict | None = None) -> list[Step]:
        art = self.artifacts(cell)
        steps = [APT_UPDATE]
        if art is None or "k3s" not in art.binaries():
            steps += [
                Step("node", f"{APT} install -y --no-install-recommends curl ca-certificates", "curl for the script", installs=("/usr/bin/curl",)),
                Step("node", f"curl -sfL --connect-timeout 10 -o /tmp/k3s-install.sh {INSTALL} && {self.pin(cell)} "
                             f"INSTALL_K3S_SKIP_START=true sh /tmp/k3s-install.sh",
                     f"k3s ({self.pin(cell)}) by its install script", url=INSTALL, installs=(K3S,)),
            ]
        else:
            k3s = art.binaries()["k3s"]
            steps += [
                Step("host", f"copy {k3s} -> node:/usr/local/bin/k3s", "k3s from the artifacts",
                     copy=(str(k3s), K3S, "0755")),
                Step("node", "ln -sf k3s /usr/local/bin/kubectl && ln -sf k3s /usr/local/bin/crictl",
                     "kubectl and crictl links, as the install script makes them"),
                Step("node", heredoc("/etc/systemd/system/k3s.service", UNIT), "k3s' systemd unit"),
            ]
        mirror = self.registry_mirror(registry_host)
        if mirror:
            # docs.k3s.io/installation/private-registry: mirrors with plain-HTTP endpoints
            text = yaml.safe_dump({"mirrors": {r: {"endpoint": [f"http://{mirror}"]}
                                               for r in ("docker.io", "registry.k8s.io")}}, sort_keys=False)
            steps.append(Step("node", heredoc("/etc/rancher/k3s/registries.yaml", text),
                              "images from the harness registry"))
        return steps + [
            Step("node", "systemctl daemon-reload && systemctl enable --now k3s", "k3s server", phase="install"),
            Step("node", f"for i in $(seq {timeouts.seconds(timeouts.CLUSTER_READY, facts) // 2}); do "
                         "k3s kubectl get nodes 2>/dev/null | grep -q ' Ready' && exit 0; "
                         "sleep 2; done; k3s kubectl get nodes; exit 1", "node Ready", phase="install"),
            self.kubeconfig_step(),
        ]
