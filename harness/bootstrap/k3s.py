"""k3s as docs.k3s.io documents it: the install script with a pinned INSTALL_K3S_VERSION (or
the minor's channel, INSTALL_K3S_CHANNEL=v1.X), `k3s kubectl`. Offline (--artifacts): the local
k3s binary, its systemd unit written by the harness (what the install script would write), and
registries.yaml mirroring docker.io/registry.k8s.io to the harness registry, where the
artifacts' images (e.g. k3s-airgap-images-<arch>.tar) were pushed.
"""
from __future__ import annotations

import re

import yaml

from ..common.errors import InfraError, UserError
from ..matrix.cells import Cell
from . import containerd, timeouts
from .base import Binary
from .planned import PlannedBootstrapper
from .steps import APT, APT_UPDATE, REGISTRY_PLACEHOLDER, Step, heredoc

INSTALL = "https://get.k3s.io"
# where the install script puts k3s (k3s-io/k3s install.sh setup_env: BIN_DIR=/usr/local/bin unless
# INSTALL_K3S_BIN_DIR or a read-only /usr/local/bin), as the
# air-gapped path does; on the node transport's PATH (steps.NODE_PATH)
K3S = "/usr/local/bin/k3s"
# the containerd config k3s writes from its template once its agent has run (docs.k3s.io
# advanced#configuring-containerd: /var/lib/rancher/k3s/agent/etc/containerd/config.toml)
CONTAINERD_CONFIG = "/var/lib/rancher/k3s/agent/etc/containerd/config.toml"
PAUSE_IMAGE = "docker.io/rancher/mirrored-pause"  # k3s' --pause-image default's repository
# k3s' --pause-image default (pkg/cli/cmds/agent.go PauseImageFlag, later const_linux.go
# DefaultPauseImage) was rancher/mirrored-pause:3.6 in every release up to July 2026; k3s-io/k3s#14339
# bumped it to 3.10.2 on master (so v1.37.0) with backports #14389 (1.36), #14390 (1.35), #14391 (1.34),
# #14392 (1.33), validated in v1.36.2, v1.35.6, v1.34.9, v1.33.13 (k3s-io/k3s#14384); 1.32 and older
# had no backport. Minor -> (first patch with 3.10.2, or None: 3.6 throughout).
PAUSE_BUMP = {"1.27": None, "1.28": None, "1.29": None, "1.30": None, "1.31": None, "1.32": None,
              "1.33": "v1.33.13", "1.34": "v1.34.9", "1.35": "v1.35.6", "1.36": "v1.36.2", "1.37": "v1.37.0"}
OLD_PAUSE, NEW_PAUSE = "3.6", "3.10.2"
# `k3s agent --help` prints each flag's default as urfave/cli does: ... (default: "rancher/mirrored-pause:3.6")
_HELP_PAUSE = re.compile(r'--pause-image\b[^\n]*\(default: "([^"]+)"\)')


def _patch_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version.split("+", 1)[0])[:3])


def shipped_pause_tag(minor: str, version: str | None = None) -> str | None:
    """The pause tag k3s `version` (e.g. v1.34.9+k3s1; None: the minor's newest, what its channel
    installs) uses by default, from the table (None: a minor the table lacks)."""
    if minor not in PAUSE_BUMP:
        return None
    bump = PAUSE_BUMP[minor]
    if bump is None:
        return OLD_PAUSE
    return NEW_PAUSE if version is None or _patch_key(version) >= _patch_key(bump) else OLD_PAUSE


def help_pause(text: str) -> str | None:
    """The --pause-image default in `k3s agent --help` output."""
    m = _HELP_PAUSE.search(text or "")
    return m.group(1) if m else None


def qualified(ref: str) -> str:
    """An image reference with Docker Hub's implicit registry spelled out (rancher/x -> docker.io/rancher/x)."""
    first = ref.split("/", 1)[0]
    return ref if "/" in ref and ("." in first or ":" in first or first == "localhost") else f"docker.io/{ref}"
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


class K3sBootstrapper(containerd.ContainerdRuntime, PlannedBootstrapper):
    name = "k3s"
    kubeconfig = "/etc/rancher/k3s/k3s.yaml"
    own_pause = True
    ctr = f"{K3S} ctr"  # k3s' embedded containerd, through its own client

    # ---- the runtime it configures (ConfiguresRuntime) ------------------------------------------

    def version(self, cell: Cell, facts: dict | None = None) -> str | None:
        """The k3s version: the installed one's answer, else the pin (None: the channel's newest)."""
        m = re.search(r"k3s version (v\S+)", (facts or {}).get("k3s_version", ""))
        return m.group(1) if m else self.options.k3s_version

    def shipped_pause(self, cell: Cell, facts: dict | None = None) -> tuple[str, str] | None:
        tag = shipped_pause_tag(cell.release.minor, self.version(cell, facts))
        return (PAUSE_IMAGE, tag) if tag else None

    def sandbox_image(self, node, cell: Cell) -> str | None:
        """What k3s' containerd was configured with once k3s has run, else the installed k3s' default."""
        r = node.run(f"cat {CONTAINERD_CONFIG}")
        if r.rc == 0:
            try:
                return containerd.in_use(r.stdout)["sandbox"]
            except containerd.tomllib.TOMLDecodeError:
                return None
        ref = help_pause(node.run(f"{K3S} agent --help").stdout)
        return qualified(ref) if ref else None

    def expected_pause(self, node, cell: Cell) -> str | None:
        shipped = self.shipped_pause(cell, node.facts)
        return shipped[1] if shipped else None

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
            o = self.options
            install = o.k3s_install_url or INSTALL
            # where the script downloads from (install.sh: GITHUB_URL for <url>/download/<version>/
            # {k3s<suffix>,sha256sum-<arch>.txt}, INSTALL_K3S_CHANNEL_URL for the channel's redirect)
            env = "".join(f"{k}={v} " for k, v in (("GITHUB_URL", o.k3s_github_url),
                                                    ("INSTALL_K3S_CHANNEL_URL", o.k3s_channel_url)) if v)
            steps += [
                Step("node", f"{APT} install -y --no-install-recommends curl ca-certificates", "curl for the script",
                     installs=("/usr/bin/curl",)),
                Step("node", f"curl -sfL --connect-timeout 10 -o /tmp/k3s-install.sh {install} && {env}{self.pin(cell)} "
                             f"INSTALL_K3S_SKIP_START=true sh /tmp/k3s-install.sh",
                     f"k3s ({self.pin(cell)}) by its install script", url=install, installs=(K3S,)),
                Step("node", f"{K3S} --version", "the installed k3s' version", asks="k3s_version"),
                Step("node", f"{K3S} agent --help", "the installed k3s' default sandbox image (--pause-image)",
                     verify=lambda text: None if help_pause(text) else "`k3s agent --help` names no --pause-image "
                                                                        "default"),
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
            Step("node", "systemctl daemon-reload && systemctl enable --now k3s", "k3s server", phase="install",
                 kubernetes=True),
            Step("node", f"for i in $(seq {timeouts.seconds(timeouts.CLUSTER_READY, facts) // 2}); do "
                         "k3s kubectl get nodes 2>/dev/null | grep -q ' Ready' && exit 0; "
                         "sleep 2; done; k3s kubectl get nodes; exit 1", "node Ready", phase="install", kubernetes=True),
            self.kubeconfig_step(),
        ]
