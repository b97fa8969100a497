"""kubeadm, as kubernetes.io documents it ("Installing kubeadm", "Creating a cluster with kubeadm",
"Container runtimes"), for Debian-family nodes:

prepare (node-level, before any suite): swap off, overlay + br_netfilter, the bridge/forwarding
sysctls, containerd from the distro with systemd cgroups and the release's sandbox image, then
kubelet/kubeadm/kubectl from pkgs.k8s.io's repository for the cell's minor
(`https://pkgs.k8s.io/core:/stable:/v1.X/deb/`, one repository per minor, key Release.key) --
or, with --artifacts, the contributor's binaries copied to the node and their image tarballs
pushed to the harness registry, which then is kubeadm's imageRepository (nothing fetched from
the internet for Kubernetes itself).

install: `kubeadm init --config` (kubernetesVersion = the installed kubeadm's own version,
imageRepository, pod subnet, 127.0.0.1 in the API certificate for the tunnel), a CNI (flannel,
or the artifacts' manifests), the control-plane taint removed for single-node cells, Ready
waited for; admin.conf fetched to the cell's artifacts with its server rewritten to an SSH
tunnel. A cell with a control plane elsewhere (matrix `control_plane:`, e.g. a Windows or
foreign-arch worker) joins it with `kubeadm join`.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import replace

import yaml

from ..binaries.release import STATIC
from ..common.errors import InfraError, ProductFailure, Unavailable, UserError
from ..matrix import upstream
from ..matrix.cells import Cell
from ..nodes import pair
from . import containerd, timeouts
from .base import VERSION_ARGS, Binary
from .capabilities import Joins
from .planned import PlannedBootstrapper, fetch_kubeconfig
from .steps import APT, APT_UPDATE, REGISTRY_PLACEHOLDER, Step, heredoc, run_steps

GITHUB = "https://github.com"  # release downloads: <GITHUB>/<owner>/<repo>/releases/download/...
PKGS = "https://pkgs.k8s.io"  # --package-base replaces it (a mirror); the path below is upstream's
KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
CURL = "curl -fsSL --connect-timeout 10 --retry 0"
POD_SUBNET = "10.244.0.0/16"  # flannel's default network
FLANNEL = "https://github.com/flannel-io/flannel/releases/latest/download/kube-flannel.yml"
ADMIN = "/etc/kubernetes/admin.conf"
API_PORT = 6443  # kube-apiserver's secure port, kubeadm's default bindPort (kubeadm init --apiserver-bind-port)
# What the harness's stand-in kubeadm/kubelet print (tests, the rehearsal; no real one exists here):
# a join that met one is a rehearsal, said in its results, never counted as kubeadm passing
STAND_IN = "archmatrix stand-in"
JOIN_PLACEHOLDER = "<the join command printed on the control plane>"
KUBECTL = f"kubectl --kubeconfig {ADMIN}"
CONFIG = "/root/kubeadm.yaml"
# kubernetesVersion: the installed kubeadm's own, asked on the node when the config is written (the
# heredoc expands it), so the cluster is the version of the binaries under test, whatever the patch
INSTALLED_VERSION = "$(kubeadm version -o short)"
# The images come from that kubeadm too, once it is on the node (kubernetes.io "kubeadm config":
# `kubeadm config images list --kubernetes-version`; with the version given it asks no network);
# the table (matrix/kube_versions.py) is cross-checked against them, and used only without a node.
ASK_VERSION = "kubeadm version -o short"
ASK_IMAGES = f"kubeadm config images list --kubernetes-version {INSTALLED_VERSION}"
NEEDS = ("kubeadm", "kubelet", "kubectl")  # what an air-gapped kubeadm node needs from the artifacts
# where pkgs.k8s.io's packages put them: %{_bindir} (kubernetes/release
# cmd/krel/templates/latest/{kubeadm,kubelet,kubectl}/*.spec, built into debs with debbuild)
PACKAGED = tuple(f"/usr/bin/{n}" for n in NEEDS)
# kubelet's unit and kubeadm's drop-in, as the kubelet/kubeadm debs install them
# (kubernetes/release cmd/krel/templates/latest/kubelet/kubelet.service, kubeadm/10-kubeadm.conf)
KUBELET_UNIT = """[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
# containerd's own unit for its release tarball (containerd.service at tag v2.3.4, comments dropped;
# docs/getting-started.md puts it in /usr/local/lib/systemd/system)
CONTAINERD_UNIT = """[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target dbus.service

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""
KUBEADM_DROPIN = """[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""


def repo_url(minor: str, base: str = PKGS, family: str = "debian") -> str:
    """pkgs.k8s.io has one repository per minor release (kubernetes.io/blog/2023/08/15/pkgs-k8s-io-introduction)."""
    kind = {"debian": "deb", "ubuntu": "deb"}.get(family)
    if kind is None:
        raise InfraError(f"kubeadm: no package repository layout for distro family '{family}'", retryable=False)
    return f"{base.rstrip('/')}/core:/stable:/v{minor}/{kind}/"


def listed_images(text: str) -> dict[str, str]:
    """`kubeadm config images list` output -> image name (without registry) -> tag:
    registry.k8s.io/coredns/coredns:v1.11.3 -> {"coredns": "v1.11.3"}."""
    out = {}
    for line in text.split():
        path, _, tag = line.rpartition(":")
        if path and "/" in path:
            out[path.rsplit("/", 1)[1]] = tag
    return out


def image_facts(cell: Cell, facts: dict | None) -> tuple[dict[str, str], str, str | None]:
    """(image name -> tag, where they came from, the warning when kubeadm on the node and the
    table disagree). kubeadm's own listing wins once the node has answered (Step.asks)."""
    facts = facts or {}
    table = {}
    listed = listed_images(facts.get("kubeadm_images", ""))
    version = facts.get("kubeadm_version") or None
    if cell.release.in_table:
        img = cell.release.images_at(version if listed else None)
        table = {"pause": img.pause, "etcd": img.etcd, "coredns": img.coredns}
    if not listed:
        return table, "the built-in table (kubeadm is not on a node yet)", None
    wrong = [(f"{n}:{listed.get(n)}", f"{n}:{t}") for n, t in table.items() if listed.get(n) != t]
    warning = None
    if wrong:
        warning = (f"kubeadm {version} on the node lists {', '.join(k for k, _ in wrong)}, the built-in table says "
                   f"{', '.join(t for _, t in wrong)} for {version}: using kubeadm's")
    elif not cell.release.in_table:
        warning = f"kubernetes {cell.release.minor} is not in the built-in table: images from kubeadm {version} only"
    return listed, f"kubeadm {version} on the node", warning


def config_api(minor: str) -> str:
    """kubeadm.k8s.io/v1beta4 from 1.31 (v1beta3 is deprecated there, removed in 1.34 or later)."""
    major, m = (int(x) for x in minor.split("."))
    return "kubeadm.k8s.io/v1beta4" if (major, m) >= (1, 31) else "kubeadm.k8s.io/v1beta3"


class KubeadmBootstrapper(containerd.ContainerdRuntime, Joins, PlannedBootstrapper):
    name = "kubeadm"
    kubeconfig = ADMIN

    def binaries(self, cell: Cell) -> list[Binary]:
        # upstream binaries: static Go programs built with the release's toolchain, right version
        return [Binary("sh", version_args=())] + [
            # kubelet is the one built with cgo (hack/lib/golang.sh KUBE_STATIC_LIBRARIES lacks it)
            Binary(n, version=cell.release.tag, version_args=VERSION_ARGS[n], go=True, static=n in STATIC)
            for n in NEEDS
        ] + [Binary(n, version_args=VERSION_ARGS[n]) for n in ("containerd", "runc")]

    def image_repository(self, cell: Cell, registry_host: str) -> str:
        """registry.k8s.io, or the harness registry (as the node sees it) when images come from artifacts."""
        return self.registry_mirror(registry_host) or "registry.k8s.io"

    def containerd(self, cell: Cell) -> upstream.ContainerdChoice:
        """The containerd this cell's release supports, and where it comes from (matrix/upstream.py)."""
        choice = upstream.containerd_for(cell.release, cell.os, cell.arch)
        given = self.options.containerd_version
        if given and choice.source == "release":
            line = upstream.LINES.get(".".join(given.split(".")[:2]))
            runc = line.runc if line else choice.runc  # the runc that line is tested with
            return upstream.ContainerdChoice("release", given, f"given (Options.containerd_version), instead of "
                                             f"{choice.version}: {choice.reason}",
                                             url=upstream.TARBALL.format(v=given, arch=cell.arch), runc=runc)
        return choice

    def check(self, cell: Cell) -> None:
        choice = self.containerd(cell)
        if choice.source is None and self.artifacts(cell) is None:
            raise InfraError(f"kubeadm: {choice.reason}", retryable=False)
        if cell.control_plane:  # its control plane is prepared too: refuse what cannot work there as well
            self.check(cell.control_plane_cell())
        art = self.artifacts(cell)
        if art is not None and art.missing(("kubeadm", "kubelet")):
            raise InfraError(f"kubeadm init cannot run: --artifacts {art.dir}/bin has no "
                             f"{', '.join(art.missing(('kubeadm', 'kubelet')))}", retryable=False)

    def expected_pause(self, node, cell: Cell) -> str | None:
        """The pause the installed kubeadm lists (the table's only before it answered)."""
        return image_facts(cell, node.facts)[0].get("pause")

    def _prepare_one(self, node, cell: Cell, progress=print) -> None:
        super().prepare(node, cell, progress)
        _, node.facts["images_source"], warning = image_facts(cell, node.facts)
        if warning:
            node.facts["images_warning"] = warning
            progress(f"kubeadm: warning: {warning}")

    # ---- the plan --------------------------------------------------------------------------

    def plan(self, cell: Cell, registry_host: str = REGISTRY_PLACEHOLDER,
             facts: dict | None = None) -> list[Step]:
        if cell.control_plane and cell.os.os == "windows":
            cp = cell.control_plane_cell()
            return ([replace(s, where="control-plane") for s in self.plan(cp, registry_host)]
                    + self.join_plan(cell, registry_host))
        if cell.control_plane:  # both nodes prepared (each its own arch), then init, join, Ready
            return ([replace(s, where="control-plane") for s in self.link_plan(cell, "control-plane", registry_host)]
                    + self.link_plan(cell, "node", registry_host, facts) + self.join_plan(cell, registry_host, facts))
        return self.node_plan(cell, registry_host, facts) + self.init_plan(cell, registry_host, facts)

    def link_plan(self, cell: Cell, side: str, registry_host: str, facts: dict | None = None) -> list[Step]:
        """A join cell's node preparation on one side of its private link (nodes/pair.py): the
        node's own plan (its own arch), and kubelet on the link's address, not on the user-mode NIC
        where every QEMU node is 10.0.2.15 (kubernetes/kubeadm#203: kubelet takes the default
        route's address). KUBELET_EXTRA_ARGS from /etc/default/kubelet, which the kubeadm drop-in
        reads (kubernetes/release cmd/krel/templates/latest/kubeadm/10-kubeadm.conf; KUBEADM_DROPIN)."""
        node_cell = cell.control_plane_cell() if side == "control-plane" else cell
        address = pair.CONTROL_PLANE_ADDRESS if side == "control-plane" else pair.WORKER_ADDRESS
        steps = self.node_plan(node_cell, registry_host, facts)
        return steps[:-1] + [
            Step("node", f"echo 'KUBELET_EXTRA_ARGS=--node-ip={address}' > /etc/default/kubelet",
                 f"kubelet's node IP: {address}, on the private link"),
            steps[-1],  # kubelet enabled, with it
            Step("node", "hostname", "the node's name", asks="node_name", lab=True)]

    def node_plan(self, cell: Cell, registry_host: str, facts: dict | None = None) -> list[Step]:
        """Everything before `kubeadm init|join` on a Linux node."""
        if cell.os.os != "linux":
            raise UserError(f"kubeadm: {cell.distro} nodes join a Linux control plane; "
                            f"add a control_plane: rule for them to matrix.yaml")
        art = self.artifacts(cell)
        repo = self.image_repository(cell, registry_host)
        pause = image_facts(cell, facts)[0].get("pause", "<the pause kubeadm on the node lists>")
        sandbox = f"{repo}/pause:{pause}"
        steps = [
            Step("node", "swapoff -a && sed -i '/\\sswap\\s/ s/^#*/#/' /etc/fstab",
                 "swap off (kubelet refuses to start with swap on by default)", idempotent=True),
            Step("node", "printf 'overlay\\nbr_netfilter\\n' > /etc/modules-load.d/k8s.conf && modprobe overlay && "
                         "modprobe br_netfilter", "kernel modules overlay, br_netfilter", idempotent=True),
            Step("node", "printf 'net.bridge.bridge-nf-call-iptables = 1\\nnet.bridge.bridge-nf-call-ip6tables = 1\\n"
                         "net.ipv4.ip_forward = 1\\n' > /etc/sysctl.d/k8s.conf && sysctl --system >/dev/null",
                 "sysctls: bridged traffic through iptables, IPv4 forwarding", idempotent=True),
            APT_UPDATE,
        ]
        if art is None:
            url = repo_url(cell.release.minor, self.options.package_base or PKGS, cell.os.family)
            steps += self.runtime_plan(cell) + [

                Step("node", f"mkdir -p -m 755 /etc/apt/keyrings && {CURL} -o /tmp/kubernetes-release.key "
                             f"{url}Release.key && gpg --batch --yes --dearmor -o {KEYRING} /tmp/kubernetes-release.key",
                     f"the v{cell.release.minor} repository's key", url=url),
                Step("node", f"echo 'deb [signed-by={KEYRING}] {url} /' > /etc/apt/sources.list.d/kubernetes.list",
                     f"pkgs.k8s.io repository for v{cell.release.minor}", idempotent=True),
                Step("node", f"{APT} update && {APT} install -y kubelet kubeadm kubectl && "
                             f"apt-mark hold kubelet kubeadm kubectl", "kubelet, kubeadm, kubectl", url=url,
                     installs=PACKAGED, idempotent=True),
            ]
        else:
            missing = art.missing(NEEDS)
            steps += [Step("node", f"{APT} install -y --no-install-recommends containerd runc conntrack iptables "
                                   f"ethtool socat containernetworking-plugins && mkdir -p /opt/cni/bin && "
                                   f"cp -n /usr/lib/cni/* /opt/cni/bin/",
                           "runtime, kubelet's tools and CNI plugins from the distro", installs=containerd.PROGRAMS,
                           idempotent=True)]
            steps += [Step("host", f"copy {path} -> node:/usr/local/bin/{name}", f"{name} from the artifacts",
                           copy=(str(path), f"/usr/local/bin/{name}", "0755"))
                      for name, path in art.binaries().items()]
            if missing:
                steps.append(Step("host", f"# --artifacts {art.dir}/bin has no {', '.join(missing)}: kubeadm init will "
                                          f"not run", "missing artifacts"))
            steps += [Step("host", f"skopeo copy {src} -> {registry_host}/{name}", "image from the artifacts")
                      for _, src, name in art.image_refs()]
            steps += [Step("node", heredoc("/etc/systemd/system/kubelet.service", KUBELET_UNIT), "kubelet's unit", idempotent=True),
                      Step("node", heredoc("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", KUBEADM_DROPIN),
                           "kubeadm's kubelet drop-in", idempotent=True)]
        plain_http = None if art is None else repo
        steps += [Step("node", ASK_VERSION, "the installed kubeadm's version", asks="kubeadm_version"),
                  Step("node", ASK_IMAGES, "the images the installed kubeadm uses (cross-checked against the table)",
                       asks="kubeadm_images")]
        choice = self.containerd(cell)
        expected = choice.version if art is None and choice.source == "release" else None
        steps += containerd.steps(sandbox, plain_http=plain_http, systemd_cgroup=True, facts=facts, expected=expected,
                                  require=expected is not None)
        steps.append(Step("node", "systemctl daemon-reload && systemctl enable --now kubelet",
                          "kubelet enabled (it restarts until kubeadm init gives it a config)"))
        return steps

    def mirrored(self, url: str) -> str:
        """A GitHub release download, from --release-base's mirror when one is given."""
        base = self.options.release_base
        return url if not base else base.rstrip("/") + url.removeprefix(GITHUB)

    def runtime_plan(self, cell: Cell) -> list[Step]:
        """containerd and runc as upstream.containerd_for chose them, and curl and gpg for the
        repository key. From the distro: its packages. From containerd's release: the tarball and
        runc's binary, each checked against the sums its project publishes, and containerd's unit."""
        choice = self.containerd(cell)
        tools = "apt-transport-https ca-certificates curl gpg"
        if choice.source != "release":  # "distro"; None: refused by check(), shown in the plan
            return [Step("node", f"{APT} install -y --no-install-recommends containerd runc {tools}",
                         f"runtime: {choice}; curl and gpg for the repository key",
                         installs=containerd.PROGRAMS + ("/usr/bin/curl", "/usr/bin/gpg"), idempotent=True)]
        arch, name = cell.arch, choice.url.rsplit("/", 1)[1]
        runc = f"runc.{arch}"
        tarball, runc_url, runc_sums = (self.mirrored(u) for u in (choice.url, upstream.RUNC.format(
            v=choice.runc, name=runc), upstream.RUNC.format(v=choice.runc, name="runc.sha256sum")))
        return [
            Step("node", f"{APT} install -y --no-install-recommends {tools}", "curl and gpg for the downloads and "
                 "the repository key", installs=("/usr/bin/curl", "/usr/bin/gpg"), idempotent=True),
            Step("node", f"cd /tmp && {CURL} -O {tarball} -O {tarball}.sha256sum && sha256sum -c "
                         f"{name}.sha256sum && tar Cxzf /usr/local {name}",
                 f"containerd {choice.version} from containerd's release tarball, checksum verified: {choice.reason}",
                 url=tarball, installs=("/usr/local/bin/containerd", "/usr/local/bin/ctr")),
            Step("node", f"cd /tmp && {CURL} -O {runc_url} -O {runc_sums} && grep ' {runc}$' "
                         f"runc.sha256sum | sha256sum -c && install -m 755 {runc} /usr/local/sbin/runc",
                 f"runc {choice.runc}, the one containerd {choice.version} is tested with, checksum verified",
                 url=runc_url, installs=("/usr/local/sbin/runc",)),
            Step("node", heredoc("/usr/local/lib/systemd/system/containerd.service", CONTAINERD_UNIT),
                 "containerd's systemd unit", idempotent=True),
            Step("node", "systemctl daemon-reload && systemctl enable containerd", "containerd enabled"),
        ]

    def kubeadm_config(self, cell: Cell, registry_host: str, facts: dict | None = None,
                       advertise: str | None = None) -> str:
        """kubeadm's config file: InitConfiguration, ClusterConfiguration, KubeletConfiguration
        (kubernetes.io "Configuring each kubelet in your cluster using kubeadm", kubeadm config API),
        with kubeadm's waits scaled for the node (timeouts.py)."""
        api = config_api(cell.release.minor)
        init = {"apiVersion": api, "kind": "InitConfiguration",
                "nodeRegistration": {"criSocket": "unix:///run/containerd/containerd.sock"}}
        api_server = {"certSANs": ["127.0.0.1", "localhost"]}  # the kubeconfig reaches it through an SSH tunnel
        cluster = {}
        if advertise:  # a join cell's control plane: the API server on its private link, which workers join
            # (kubeadm config API, cmd/kubeadm/app/apis/kubeadm/v1beta3|v1beta4: InitConfiguration.localAPIEndpoint
            # {advertiseAddress, bindPort}, ClusterConfiguration.controlPlaneEndpoint; the flags
            # --apiserver-advertise-address / --control-plane-endpoint in kubernetes.io's `kubeadm init` reference)
            init["localAPIEndpoint"] = {"advertiseAddress": advertise, "bindPort": API_PORT}
            cluster["controlPlaneEndpoint"] = f"{advertise}:{API_PORT}"
        if api.endswith("v1beta4"):
            init["timeouts"] = {k: timeouts.duration(v, facts) for k, v in timeouts.KUBEADM_INIT.items()}
        else:
            api_server["timeoutForControlPlane"] = timeouts.duration(timeouts.KUBEADM_V1BETA3_CONTROL_PLANE, facts)
        return yaml.safe_dump_all([
            init,
            {"apiVersion": api, "kind": "ClusterConfiguration", "kubernetesVersion": INSTALLED_VERSION,
             "imageRepository": self.image_repository(cell, registry_host), "networking": {"podSubnet": POD_SUBNET},
             **cluster, "apiServer": api_server},
            {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "cgroupDriver": "systemd"},
        ], sort_keys=False)

    def init_plan(self, cell: Cell, registry_host: str, facts: dict | None = None) -> list[Step]:
        taint = "node-role.kubernetes.io/control-plane-"
        if cell.release.key < (1, 25):
            taint += " node-role.kubernetes.io/master-"
        return [
            Step("node", heredoc(CONFIG, self.kubeadm_config(cell, registry_host, facts), expand=True),
                 "kubeadm config: kubernetesVersion from the installed kubeadm, imageRepository", phase="install"),
            Step("node", f"kubeadm init --config {CONFIG}", "kubeadm init", phase="install", kubernetes=True),
            *self.cni_plan(cell),
            Step("node", f"{KUBECTL} taint nodes --all {taint}",
                 "single-node cell: workloads may run on the control plane", phase="install"),
            Step("node", f"{KUBECTL} wait --for=condition=Ready node --all "
                         f"--timeout={timeouts.seconds(timeouts.NODE_READY, facts)}s", "node Ready", phase="install"),
            self.kubeconfig_step(),
        ]

    def cni_plan(self, cell: Cell) -> list[Step]:
        """The pod network, applied through the API server (so it needs a real one)."""
        art = self.artifacts(cell)
        manifests = art.manifests() if art else []
        if not manifests:
            return [Step("node", f"{KUBECTL} apply -f {self.mirrored(FLANNEL)}", "CNI: flannel",
                         url=self.mirrored(FLANNEL), phase="install", kubernetes=True)]
        return [Step("host", f"copy {m} -> node:/root/cni/{m.name}", "CNI manifest from the artifacts",
                     phase="install", copy=(str(m), f"/root/cni/{m.name}", "0644")) for m in manifests] + [
            Step("node", f"{KUBECTL} apply -f /root/cni/", "CNI", phase="install", kubernetes=True)]

    def join_plan(self, cell: Cell, registry_host: str = REGISTRY_PLACEHOLDER,
                  facts: dict | None = None) -> list[Step]:
        join = JOIN_PLACEHOLDER
        if cell.os.os == "windows":
            # kubernetes.io "Adding Windows worker nodes" with kubernetes-sigs/sig-windows-tools
            tools = "https://github.com/kubernetes-sigs/sig-windows-tools/releases/latest/download"
            return [
                Step("control-plane", "kubeadm token create --print-join-command", "a join command", phase="install",
                 kubernetes=True),
                Step("node", f"curl.exe -fsSLO {tools}/Install-Containerd.ps1; .\\Install-Containerd.ps1",
                     "containerd for Windows", url=tools, phase="install"),
                Step("node", f"curl.exe -fsSLO {tools}/PrepareNode.ps1; .\\PrepareNode.ps1 -KubernetesVersion "
                             f"$(curl.exe -fsSL https://dl.k8s.io/release/stable-{cell.release.minor}.txt)",
                     "kubelet and kubeadm for Windows", url=tools, phase="install"),
                Step("node", f"{join} --cri-socket npipe:////./pipe/containerd-containerd",
                     "kubeadm join", phase="install", kubernetes=True),
            ]
        # Linux: the control plane initialised on its private address, a join command taken from it and
        # run on the worker (kubernetes.io "Creating a cluster with kubeadm": `kubeadm token create
        # --print-join-command` prints `kubeadm join <endpoint> --token ... --discovery-token-ca-cert-hash
        # sha256:...`), the pod network, the worker Ready. The worker is the cell's node: the suites judge it.
        # The control plane keeps its NoSchedule taint: untolerated pods must land on the worker.
        facts = facts or {}
        cp, address = cell.control_plane_cell(), pair.CONTROL_PLANE_ADDRESS
        endpoint = f"{address}:{API_PORT}"
        join = _last_line(facts.get("join_command", "")) or join
        worker = facts.get("node_name") or "<the node's hostname>"

        def names_endpoint(out: str) -> str | None:
            line = _last_line(out)
            return None if line.startswith(f"kubeadm join {endpoint} ") else (
                f"the join command does not name the control plane's private address {endpoint}: {line[:160]!r}")

        on_cp = [replace(s, where="control-plane") for s in (
            Step("node", heredoc(CONFIG, self.kubeadm_config(cp, registry_host, facts, advertise=address), expand=True),
                 f"kubeadm config: the API server advertised on the private link, {endpoint}", phase="install"),
            Step("node", f"kubeadm init --config {CONFIG}", "kubeadm init", phase="install", kubernetes=True),
            Step("node", "kubeadm token create --print-join-command", "a join command", phase="install",
                 kubernetes=True, asks="join_command", verify=names_endpoint))]
        return on_cp + [
            Step("node", join, "kubeadm join", phase="install", kubernetes=True),
            *[replace(s, where="control-plane") for s in self.cni_plan(cp)],
            flannel_on_link(),
            Step("control-plane", f"{KUBECTL} wait --for=condition=Ready node/{worker} "
                                  f"--timeout={timeouts.seconds(timeouts.NODE_READY, facts)}s", "the worker Ready",
                 phase="install", kubernetes=True),
            self.kubeconfig_step(),
        ]

    # ---- a join cell's two nodes ----------------------------------------------------------------

    def _control_plane(self, node, cell: Cell):
        if getattr(node, "control_plane", None) is None:
            raise InfraError(f"{cell.id}: a join cell's node came without its control-plane node (provider "
                             f"{cell.provider})", retryable=False)
        return node.control_plane

    def prepare(self, node, cell: Cell, progress=print) -> None:
        if not cell.control_plane or cell.os.os == "windows":
            return self._prepare_one(node, cell, progress)
        self.check(cell)
        cp_node, cp = self._control_plane(node, cell), cell.control_plane_cell()
        if cp.arch != cell.arch and any(a is not None and a.images() for a in (self.artifacts(cp), self.artifacts(cell))):
            # artifact images are pushed by name, one arch each (airgap.py): in a two-arch pair one node would
            # pull the other's (even the pause, over the harness registry's multi-arch one). Needs index pushes.
            raise InfraError(f"kubeadm join cell {cell.id}: --artifacts images are pushed single-arch, so the "
                             f"{cp.arch} and {cell.arch} nodes would pull each other's; leave <arch>/images empty for "
                             f"a two-arch join cell (multi-arch pushes are not built yet)", retryable=False)
        for side, n, c in (("control-plane", cp_node, cp), ("node", node, cell)):
            art = self.artifacts(c)
            reg = self.node_registry(c, progress)
            if art is not None:
                art.push(reg.host, progress)
            run_steps(n, lambda facts, side=side: [s for s in self.link_plan(cell, side, reg.host, facts)
                                                   if s.phase == "prepare"],
                      n.artifacts / "bootstrap.log", progress, f"{self.name} {c.arch} {side}")
            n.facts["bootstrap"] = self.name + (" (artifacts)" if art else "")
            _, n.facts["images_source"], warning = image_facts(c, n.facts)
            if warning:
                n.facts["images_warning"] = warning
        node.facts["control_plane_bootstrap"] = f"{cp_node.facts['bootstrap']}, kubeadm {cp_node.facts.get('kubeadm_version')}"

    def install(self, node, cell: Cell):
        if not cell.control_plane or cell.os.os == "windows":
            return super().install(node, cell)
        cp_node = self._control_plane(node, cell)
        reg = self.node_registry(cell, print)
        log = node.artifacts / "bootstrap.log"
        try:
            run_steps(node, lambda facts: [s for s in self.plan(cell, reg.host, facts) if s.phase == "install"],
                      log, print, f"{self.name} join", on={"control-plane": cp_node})
        except ProductFailure as e:
            # a stand-in took kubeadm's steps: no API server answers after it, so a step that then exits
            # non-zero is where the rehearsal stops; a wrong answer (a step's verify) stays the product's
            checked = log.read_text(errors="replace").rstrip().splitlines()[-1].startswith("# check failed")
            if self._stand_ins(node, log) and not checked:
                raise Unavailable(f"rehearsal (stand-in kubeadm, no real Kubernetes binary here): stopped at "
                                  f"'{e.step}', the first step that needs a real API server") from e
            raise
        self._stand_ins(node, log)
        cluster = fetch_kubeconfig(cp_node, ADMIN, API_PORT)
        cluster.node_name = node.facts.get("node_name") or cluster.node_name  # the worker: the suites judge it
        return cluster

    @staticmethod
    def _stand_ins(node, log) -> bool:
        """Did a stand-in answer a step (STAND_IN in the log)? Then the results say `cluster: rehearsal`."""
        lines = sorted({x.strip() for x in log.read_text(errors="replace").splitlines() if STAND_IN in x})
        if lines:
            node.facts["cluster"] = "rehearsal"
            node.facts["stand_ins"] = "; ".join(lines)
        return bool(lines)


def flannel_on_link() -> Step:
    """flannel's VXLAN on the join cell's private link. Unset, flanneld takes the default route's
    interface: 10.0.2.15, QEMU's NAT address, on every node, so pod traffic between the nodes would go
    nowhere. `--iface-regex` matches an interface by its IP address (flannel-io/flannel#1538; README
    "--iface-regex"); one pattern fits both nodes whatever each names its NIC (enp0s4, enc2, ...). The
    DaemonSet is found by its `app: flannel` label, whichever namespace the manifest uses."""
    regex = "^" + re.escape(pair.SUBNET.rsplit(".", 1)[0] + ".")
    patch = json.dumps([{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": f"--iface-regex={regex}"}])
    find = f"{KUBECTL} get ds -A -l app=flannel -o jsonpath='{{.items[0].metadata.namespace}} {{.items[0].metadata.name}}'"
    return Step("control-plane", f"set -- $({find}) && {KUBECTL} -n \"$1\" patch ds \"$2\" --type json -p {shlex.quote(patch)}",
                f"CNI: flannel on the private link ({pair.SUBNET})", phase="install", kubernetes=True)


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].strip() if lines else ""
