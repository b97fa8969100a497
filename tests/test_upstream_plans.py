"""kubeadm, MicroK8s and k3s plans per distro family, bootstrapper and version: the commands a
user with network would see run (`archmatrix plan CELL`), checked against the upstream facts
they encode (pkgs.k8s.io repository per minor, kubeadm config API per minor, the release's
pause as sandbox image, snap channel <minor>/stable, k3s channel or pinned version), and the
air-gapped variants built from a real --artifacts directory."""
import json
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

from harness.matrix import cells as matrix
from harness.matrix import platforms
from harness import nodes
from harness.bootstrap import airgap, get
from harness.bootstrap.base import Options
from harness.bootstrap.kubeadm import config_api, repo_url
from harness.common.errors import InfraError, UserError
from harness.oci.layout import Layout
from harness.matrix.cells import Cell
from harness.services.noderegistry import pause_images
from conftest import need


def text(steps, phase=None):
    return "\n".join(s.command for s in steps if phase is None or s.phase == phase)


@pytest.mark.parametrize("distro", ["debian12", "debian13", "ubuntu2404"])
@pytest.mark.parametrize("k8s,api,pause", [("1.30", "v1beta3", "3.9"), ("1.32", "v1beta4", "3.10"),
                                           ("1.36", "v1beta4", "3.10.2")])
def test_kubeadm_plan_per_family_and_minor(distro, k8s, api, pause):
    steps = get("kubeadm").plan(Cell("arm64", distro, k8s, "kubeadm", "qemu"))
    t = text(steps)
    repo = f"https://pkgs.k8s.io/core:/stable:/v{k8s}/deb/"
    assert f"{repo}Release.key" in t
    assert f"deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {repo} /" in t
    assert "install -y kubelet kubeadm kubectl" in t and "apt-mark hold kubelet kubeadm kubectl" in t
    assert f'sandbox = "registry.k8s.io/pause:{pause}"' in t and "SystemdCgroup = true" in t
    assert "swapoff -a" in t and "modprobe br_netfilter" in t and "net.ipv4.ip_forward = 1" in t
    init = text(steps, "install")
    assert f"apiVersion: kubeadm.k8s.io/{api}" in init and "kubernetesVersion: $(kubeadm version -o short)" in init
    assert "imageRepository: registry.k8s.io" in init and "cgroupDriver: systemd" in init
    assert "kubeadm init --config /root/kubeadm.yaml" in init
    assert "taint nodes --all node-role.kubernetes.io/control-plane-" in init
    assert '127.0.0.1' in init  # the API certificate carries the tunnel's address
    # every prepare step comes before every install step, and the fetch of the key names its URL
    phases = [s.phase for s in steps]
    assert phases == sorted(phases, key=["prepare", "install"].index)
    assert next(s for s in steps if "Release.key" in s.command).url == repo


def test_kubeadm_repository_layout_and_config_api():
    assert repo_url("1.31") == "https://pkgs.k8s.io/core:/stable:/v1.31/deb/"
    assert repo_url("1.31", "http://mirror.example/k8s/") == "http://mirror.example/k8s/core:/stable:/v1.31/deb/"
    with pytest.raises(InfraError, match="no package repository layout for distro family 'windows'"):
        repo_url("1.31", family="windows")
    assert (config_api("1.30"), config_api("1.31")) == ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4")


def test_package_base_replaces_pkgs_k8s_io():
    steps = get("kubeadm", Options(package_base="http://10.0.2.2:9/pkgs")).plan(
        Cell("s390x", "debian12", "1.32", "kubeadm", "qemu"))
    assert "pkgs.k8s.io" not in text(steps)
    assert "http://10.0.2.2:9/pkgs/core:/stable:/v1.32/deb/Release.key" in text(steps)


def test_windows_worker_joins_a_linux_control_plane(tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [amd64], distro: [windows2022], kubernetes: ['1.32'], bootstrapper: [kubeadm], "
                 "provider: [ssh]}\n")
    alone = matrix.cells_for(m)[0]
    with pytest.raises(UserError, match="windows2022 nodes join a Linux control plane; add a control_plane: rule"):
        get("kubeadm").plan(alone)
    m.write_text(m.read_text() + "control_plane:\n  - match: {distro: windows2022}\n"
                                 "    node: {arch: amd64, distro: debian12}\n")
    cell = matrix.cells_for(m)[0]
    assert cell.control_plane == ("amd64", "debian12") and cell.id == alone.id
    steps = get("kubeadm").plan(cell)
    cp = [s for s in steps if s.where == "control-plane"]
    worker = [s for s in steps if s.where == "node"]
    assert "kubeadm init --config /root/kubeadm.yaml" in text(cp)
    assert "kubeadm token create --print-join-command" in text(cp)
    assert "PrepareNode.ps1 -KubernetesVersion" in text(worker) and "stable-1.32.txt" in text(worker)
    assert worker[-1].command.endswith("--cri-socket npipe:////./pipe/containerd-containerd")
    assert steps.index(cp[-1]) < steps.index(worker[0])  # the control plane exists before the join
    get("kubeadm").check(cell)  # join cells run; the provider must give the second node
    with pytest.raises(InfraError, match="provider ssh cannot give a join cell .* its control-plane node yet"):
        nodes.get("ssh", progress=print).provision(cell, tmp_path / "node")


def test_foreign_arch_worker_joins_an_amd64_control_plane(tmp_path):
    """`archmatrix plan` of a join cell: both nodes prepared, each for its own arch; the control
    plane initialised on its private address; the join command taken from it and run on the worker;
    the worker (the cell's node, which the suites judge) waited Ready on the control plane."""
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [s390x], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [kubeadm], "
                 "provider: [qemu]}\ncontrol_plane:\n  - match: {arch: s390x}\n    node: {arch: amd64, distro: debian12}\n")
    cell = matrix.cells_for(m)[0]
    b = get("kubeadm", Options(release_base="http://10.0.2.2:9/gh"))
    steps = b.plan(cell)
    cp = [s for s in steps if s.where == "control-plane"]
    worker = [s for s in steps if s.where == "node"]
    # each node its own arch's downloads (containerd's release tarball: 1.32 on Debian 12 takes it)
    assert "linux-amd64.tar.gz" in text(cp) and "linux-s390x" not in text(cp)
    assert "linux-s390x.tar.gz" in text(worker) and "linux-amd64" not in text(worker)
    for side, address in ((cp, "192.168.77.1"), (worker, "192.168.77.2")):
        assert "SystemdCgroup = true" in text(side) and "systemctl enable --now kubelet" in text(side)
        assert f"KUBELET_EXTRA_ARGS=--node-ip={address}" in text(side, "prepare")
    assert "kubeadm init" not in text(worker) and "kubeadm init --config /root/kubeadm.yaml" in text(cp, "install")
    config = yaml.safe_load_all(next(s.command for s in cp if "InitConfiguration" in s.command).split("\n", 1)[1]
                                .rsplit("EOF", 1)[0])
    init, cluster, _ = list(config)
    assert init["localAPIEndpoint"] == {"advertiseAddress": "192.168.77.1", "bindPort": 6443}
    assert cluster["controlPlaneEndpoint"] == "192.168.77.1:6443"
    token = next(s for s in cp if s.command == "kubeadm token create --print-join-command")
    assert token.asks == "join_command" and token.kubernetes
    # the join command must name the control plane's private address: one that does not fails the step
    good = "kubeadm join 192.168.77.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00"
    assert token.verify(good) is None
    assert "does not name the control plane's private address" in token.verify(good.replace("192.168.77.1", "10.0.2.15"))
    order = [s.why for s in steps if s.phase == "install"]
    assert order.index("kubeadm init") < order.index("a join command") < order.index("kubeadm join") \
        < order.index("the worker Ready")
    assert "taint nodes --all" not in text(steps)  # the control plane keeps its taint: pods go to the worker
    # once the control plane has answered, the worker runs its join command, and the Ready wait names it
    facts = {"join_command": "[preflight] ...\n" + good, "node_name": "archmatrix-s390x"}
    filled = b.plan(cell, facts=facts)
    assert next(s for s in filled if s.why == "kubeadm join").command == good
    assert "node/archmatrix-s390x " in next(s for s in filled if s.why == "the worker Ready").command
    assert all(s.kubernetes for s in filled if s.why in ("kubeadm init", "kubeadm join", "the worker Ready"))
    b.check(cell)  # no longer refused


def test_archmatrix_plan_shows_both_nodes_of_a_join_cell(tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [s390x], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [kubeadm], "
                 "provider: [qemu]}\ncontrol_plane:\n  - match: {arch: s390x}\n    node: {arch: amd64, distro: debian12}\n")
    out = subprocess.run([sys.executable, "-m", "harness.cli", "plan", "--matrix", str(m), "s390x-debian12"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "linux-amd64.tar.gz" in out.stdout and "linux-s390x.tar.gz" in out.stdout
    assert "--node-ip=192.168.77.1" in out.stdout and "--node-ip=192.168.77.2" in out.stdout
    assert "kubeadm token create --print-join-command" in out.stdout and "controlPlaneEndpoint: 192.168.77.1:6443" in out.stdout


def test_control_plane_of_another_release(tmp_path):
    """`node: {kubernetes: ...}` names the control plane's version: the plan installs it there, and
    the node registration suite judges the cell's kubelet against it (version skew policy)."""
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [s390x], distro: [debian12], kubernetes: ['1.34'], bootstrapper: [kubeadm], "
                 "provider: [qemu]}\ncontrol_plane:\n  - match: {arch: s390x}\n"
                 "    node: {arch: amd64, distro: debian12, kubernetes: v1.36}\n")
    cell = matrix.cells_for(m)[0]
    assert cell.kubernetes == "1.34" and cell.control_plane_release.minor == "1.36"
    assert cell.control_plane_cell().kubernetes == "1.36"
    steps = get("kubeadm").plan(cell)
    assert "core:/stable:/v1.36/deb" in text([s for s in steps if s.where == "control-plane"])
    assert "core:/stable:/v1.34/deb" in text([s for s in steps if s.where == "node"])
    m.write_text(m.read_text().replace("v1.36", "1.99"))
    with pytest.raises(UserError, match=r"m.yaml:4: control_plane\[0\].node.kubernetes: kubernetes 1.99: newer than the built-in table and its facts cannot come from upstream"):
        matrix.cells_for(m)


def test_control_plane_rule_is_validated(tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [amd64], distro: [debian12], kubernetes: [latest], bootstrapper: [kubeadm], "
                 "provider: [qemu]}\ncontrol_plane:\n  - match: {arch: amd64}\n    node: {arch: sparc, distro: debian12}\n")
    with pytest.raises(UserError, match=r"m.yaml:4: control_plane\[0\].node.arch: .*sparc"):
        matrix.cells_for(m)


@pytest.mark.parametrize("k8s", ["1.30", "1.33"])
def test_microk8s_channel_per_minor(k8s):
    steps = get("microk8s").plan(Cell("arm64", "debian13", k8s, "microk8s", "qemu"))
    t = text(steps)
    assert f"snap install microk8s --classic --channel={k8s}/stable" in t
    assert "install -y --no-install-recommends snapd" in t
    assert "microk8s status --wait-ready" in text(steps, "install") and "microk8s config >" in text(steps, "install")
    assert next(s for s in steps if "snap install" in s.command).url == "https://api.snapcraft.io"


def test_k3s_channel_or_pinned_version():
    cell = Cell("s390x", "debian12", "1.32", "k3s", "qemu")
    assert "INSTALL_K3S_CHANNEL=v1.32 INSTALL_K3S_SKIP_START=true sh /tmp/k3s-install.sh" in text(get("k3s").plan(cell))
    pinned = text(get("k3s", Options(k3s_version="v1.32.3+k3s1")).plan(cell))
    assert "INSTALL_K3S_VERSION=v1.32.3+k3s1" in pinned and "CHANNEL" not in pinned
    with pytest.raises(UserError, match=r"--k3s-version v1.31.5\+k3s1 is not a 1.32 release"):
        get("k3s", Options(k3s_version="v1.31.5+k3s1")).plan(cell)
    assert "k3s kubectl get nodes" in text(get("k3s").plan(cell), "install")


# ---- air-gapped: a real --artifacts directory ------------------------------------------------

def docker_archive(tmp_path, p: platforms.Platform, ref: str):
    """A docker-archive tarball of the harness's busybox pause for one arch, made by skopeo."""
    lay = Layout(tmp_path / f"layout-{p.name}")
    lay.tag("x", [next(i for i in pause_images() if i.platform["architecture"] == p.name)])
    out = tmp_path / f"{ref.rsplit('/', 1)[-1].replace(':', '_')}.tar"
    subprocess.run(["skopeo", "copy", "--quiet", "--override-arch", p.name, f"oci:{lay.path}:x",
                    f"docker-archive:{out}:{ref}"], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return out


@pytest.fixture
def artifacts_dir(tmp_path, debian_binary):
    need("skopeo")
    p = platforms.arch("arm64")
    root = tmp_path / "artifacts"
    (root / "arm64" / "bin").mkdir(parents=True)
    (root / "arm64" / "images").mkdir()
    shutil.copy(debian_binary("kubernetes-client", p, "usr/bin/kubectl", "bookworm"), root / "arm64/bin/kubectl")
    for ref in ("registry.k8s.io/pause:3.10", "registry.k8s.io/kube-apiserver-arm64:v1.32.0"):
        shutil.move(docker_archive(tmp_path, p, ref), root / "arm64/images")
    return root


def test_airgap_names_and_missing_binaries(artifacts_dir):
    art = airgap.Artifacts.load(artifacts_dir, platforms.arch("arm64"))
    assert sorted(n for _, _, n in art.image_refs()) == ["kube-apiserver:v1.32.0", "pause:3.10"]
    assert art.missing(("kubeadm", "kubelet", "kubectl")) == ["kubeadm", "kubelet"]
    assert airgap.find(["/nonexistent", str(artifacts_dir / "arm64" / "bin"), str(artifacts_dir)]) == artifacts_dir
    with pytest.raises(UserError, match=r"no s390x/ in it"):
        airgap.Artifacts.load(artifacts_dir, platforms.arch("s390x"))
    assert airgap.registry_name("registry.k8s.io/coredns/coredns:v1.11.3", platforms.arch("arm64")) == \
        "coredns/coredns:v1.11.3"


def test_kubeadm_airgapped_plan(artifacts_dir):
    b = get("kubeadm", Options(artifacts=artifacts_dir))
    cell = Cell("arm64", "debian12", "1.32", "kubeadm", "qemu")
    steps = b.plan(cell, "127.0.0.1:5555")
    t = text(steps)
    assert "pkgs.k8s.io" not in t and "curl" not in t
    assert "imageRepository: 10.0.2.2:5555" in text(steps, "install")
    assert '"10.0.2.2:5555/pause:3.10"' in t and 'registry.mirrors."10.0.2.2:5555"' in t
    copies = [s.copy for s in steps if s.copy]
    assert copies == [(str(artifacts_dir / "arm64/bin/kubectl"), "/usr/local/bin/kubectl", "0755")]
    assert "has no kubeadm, kubelet" in t  # shown in the plan, before anything runs
    assert "-> 127.0.0.1:5555/kube-apiserver:v1.32.0" in t
    with pytest.raises(InfraError, match=r"kubeadm init cannot run: --artifacts .*/arm64/bin has no kubeadm, kubelet"):
        b.check(cell)


def test_microk8s_and_k3s_airgapped_plans(tmp_path):
    root = tmp_path / "a"
    (root / "s390x" / "snap").mkdir(parents=True)
    (root / "s390x" / "bin").mkdir()
    (root / "s390x" / "snap" / "microk8s_7394.snap").write_bytes(b"hsqs")
    with pytest.raises(UserError, match="microk8s_7394.snap has no microk8s_7394.assert beside it"):
        get("microk8s", Options(artifacts=root)).plan(Cell("s390x", "debian12", "1.32", "microk8s", "qemu"))
    (root / "s390x" / "snap" / "microk8s_7394.assert").write_text("type: snap-declaration\n")
    t = text(get("microk8s", Options(artifacts=root)).plan(Cell("s390x", "debian12", "1.32", "microk8s", "qemu"),
                                                          "127.0.0.1:5555"))
    assert "snap ack /root/microk8s_7394.assert && snap install /root/microk8s_7394.snap --classic" in t
    assert "--channel" not in t and "certs.d/registry.k8s.io/hosts.toml" in t and 'server = "http://10.0.2.2:5555"' in t
    k3s = get("k3s", Options(artifacts=root))
    cell = Cell("s390x", "debian12", "1.32", "k3s", "qemu")
    with pytest.raises(InfraError, match="has no k3s"):
        k3s.check(cell)
    (root / "s390x" / "bin" / "k3s").write_bytes(b"\x7fELF")
    t = text(k3s.plan(cell, "127.0.0.1:5555"))
    assert "get.k3s.io" not in t and "ExecStart=/usr/local/bin/k3s server" in t
    registries = yaml.safe_load(t.split("registries.yaml <<'EOF'\n", 1)[1].split("EOF", 1)[0])
    mirror = {"endpoint": ["http://10.0.2.2:5555"]}
    assert registries == {"mirrors": {"docker.io": mirror, "registry.k8s.io": mirror}}


def test_airgap_images_are_pushed_to_a_real_registry(artifacts_dir, tmp_path):
    """The artifacts' tarballs reach Debian's docker-registry under kubeadm's names, with the
    arch they were built for (read back with skopeo, not from our own bookkeeping)."""
    need("docker-registry")
    from harness.services.registry import LocalRegistry

    reg = LocalRegistry(tmp_path / "reg")
    try:
        pushed = airgap.Artifacts.load(artifacts_dir, platforms.arch("arm64")).push(reg.host, progress=print)
        assert sorted(pushed) == ["kube-apiserver:v1.32.0", "pause:3.10"]
        out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--config",
                              f"docker://{reg.host}/kube-apiserver:v1.32.0"], capture_output=True, text=True,
                             check=True)
        assert json.loads(out.stdout)["architecture"] == "arm64"
    finally:
        reg.stop()


def test_artifact_tarball_without_a_name_is_refused(tmp_path):
    bad = tmp_path / "a" / "amd64" / "images"
    bad.mkdir(parents=True)
    with tarfile.open(bad / "x.tar", "w") as t:
        t.add(__file__, arcname="README")
    with pytest.raises(UserError, match="neither a docker-archive"):
        airgap.Artifacts.load(tmp_path / "a", platforms.arch("amd64")).image_refs()


def test_plan_cli_for_each_bootstrapper(run_cli, tmp_path, artifacts_dir):
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [arm64], distro: [debian13], kubernetes: ['1.32'], bootstrapper: [kubeadm, microk8s, "
                 "k3s], provider: [qemu]}\n")
    for b, want in (("kubeadm", "core:/stable:/v1.32/deb/"), ("microk8s", "--channel=1.32/stable"),
                    ("k3s", "INSTALL_K3S_CHANNEL=v1.32")):
        out = run_cli("plan", f"arm64-debian13-v1.32-{b}-qemu", "--matrix", str(m))
        assert out.returncode == 0 and want in out.stdout, out.stderr
        assert "# prepare: node-level" in out.stdout and "# install: the cluster" in out.stdout
    out = run_cli("plan", "arm64-debian13-v1.32-kubeadm-qemu", "--matrix", str(m), "--artifacts", str(artifacts_dir))
    assert out.returncode == 0 and "[host] copy" in out.stdout and "pkgs.k8s.io" not in out.stdout
    out = run_cli("plan", "arm64-debian13-v1.32-kubeadm-qemu", "--matrix", str(m), "--artifacts", str(tmp_path))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "not a directory laid out" in out.stderr
    out = run_cli("plan", "arm64-debian13-v1.32-k3s-qemu", "--matrix", str(m), "--k3s-version", "v1.30.1+k3s1")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "is not a 1.32 release" in out.stderr


# ---- check() before prepare(): a cell that cannot run is refused before anything is installed ----

class RecordingNode:
    """The node side of prepare() for tests of what a plan does in which order: every command is
    recorded (and succeeds); nothing is installed anywhere. Real nodes run the same steps in
    tests/test_distro_bootstrap.py."""

    def __init__(self, cell, tmp_path):
        self.cell, self.artifacts, self.facts, self.commands = cell, tmp_path, {}, []

    def run(self, command, *args):
        self.commands.append(command)
        from types import SimpleNamespace
        return SimpleNamespace(rc=0, stdout=self.answer(command), stderr="")

    def answer(self, command):
        """`containerd config dump`: the config the plan wrote (a real containerd merges it over its
        defaults: tests/test_containerd_config.py reads real ones back)."""
        if command == "containerd config dump":
            written = [c for c in self.commands if "/etc/containerd/config.toml <<" in c]
            return written[-1].split("\n", 1)[1].rsplit("\nEOF", 1)[0] if written else ""
        if command == "containerd --version":  # the release tarball the plan unpacked (its version is checked)
            import re
            got = [m for c in self.commands for m in re.findall(r"containerd-(\d+\.\d+\.\d+)-linux-", c)]
            return f"containerd github.com/containerd/containerd/v2 v{got[-1]} 0\n" if got else ""
        return ""

    def put(self, src, dest, mode):
        self.commands.append(f"put {dest}")


class RegistryOnly:
    """The run's Lab as prepare() sees it: a registry address (no registry is contacted)."""

    def node_registry(self, pause, progress=print):
        from types import SimpleNamespace
        return SimpleNamespace(host="127.0.0.1:5000")


def test_refused_cells_install_nothing(tmp_path):
    """A join cell whose node came without its control-plane node and an offline k3s cell without its binary are refused by
    prepare() itself, before any step runs: their bootstrap log has no apt step (issue #16 item 8)."""
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [s390x], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [kubeadm], "
                 "provider: [qemu]}\ncontrol_plane:\n  - match: {arch: s390x}\n    node: {arch: amd64, distro: debian12}\n")
    (tmp_path / "a" / "s390x" / "bin").mkdir(parents=True)
    for b, cell, refusal in (
            (get("kubeadm", lab=RegistryOnly()), matrix.cells_for(m)[0], "came without its control-plane node"),
            (get("k3s", Options(artifacts=tmp_path / "a"), lab=RegistryOnly()),
             Cell("s390x", "debian12", "1.32", "k3s", "qemu"), "has no k3s")):
        node = RecordingNode(cell, tmp_path / b.name)
        node.artifacts.mkdir()
        with pytest.raises(InfraError, match=refusal):
            b.prepare(node, cell, progress=lambda m: None)
        log = node.artifacts / "bootstrap.log"
        assert node.commands == [] and not (log.exists() and "apt-get" in log.read_text())
    # the same node for a cell that can run does get its apt steps (the recorder records)
    ok = Cell("s390x", "debian12", "1.32", "kubeadm", "qemu")
    node = RecordingNode(ok, tmp_path / "ok")
    node.artifacts.mkdir()
    get("kubeadm", lab=RegistryOnly()).prepare(node, ok, progress=lambda m: None)
    assert any("apt-get" in c for c in node.commands) and "apt-get" in (node.artifacts / "bootstrap.log").read_text()


# ---- every command a plan runs is found the way the plan runs it (issue #16 item 1) -------------

def airgap_root(tmp_path):
    """A real --artifacts layout for arm64 with every binary and the snap each plan may install."""
    root = tmp_path / "art"
    (root / "arm64" / "bin").mkdir(parents=True)
    (root / "arm64" / "snap").mkdir()
    for n in ("kubeadm", "kubelet", "kubectl", "k3s"):
        (root / "arm64" / "bin" / n).write_bytes(b"\x7fELF")
    (root / "arm64" / "snap" / "microk8s_1.snap").write_bytes(b"hsqs")
    (root / "arm64" / "snap" / "microk8s_1.assert").write_text("type: snap-declaration\n")
    return root


# the distro bootstrapper has no air-gapped variant (it installs from the distro mirror): not a case
WAYS = [(b, o) for b in ("distro", "kubeadm", "microk8s", "k3s") for o in (False, True) if not (o and b == "distro")]


@pytest.mark.parametrize("distro", ["debian12", "debian13", "ubuntu2404"])
@pytest.mark.parametrize("bootstrapper,offline", WAYS, ids=[f"{b}-{'artifacts' if o else 'online'}" for b, o in WAYS])
def test_every_command_is_found_as_the_plan_runs_it(bootstrapper, distro, offline, tmp_path):
    """Each node command's first word (and every $(...)'s) is a shell builtin, an absolute path,
    or on the non-login PATH of the node transport (steps.NODE_PATH, read on real nodes by
    tests/test_node_path.py) in the base image or put there by an earlier step of the plan."""
    from harness.bootstrap.steps import unfound

    opts = Options(artifacts=airgap_root(tmp_path)) if offline else Options()
    steps = get(bootstrapper, opts).plan(Cell("arm64", distro, "1.32", bootstrapper, "qemu"), "127.0.0.1:5000")
    assert unfound(steps) == []


def test_unfound_names_what_a_non_login_shell_cannot_find():
    """The checker fails real defects: MicroK8s by bare name (on /snap/bin, a login shell's PATH
    only), curl before the step that installs it; and passes them once fixed."""
    from harness.bootstrap.steps import APT_UPDATE, Step, unfound

    snap = Step("node", "snap install microk8s --classic", "microk8s", installs=("/snap/bin/microk8s",))
    apt = Step("node", "apt-get install -y snapd", "snapd", installs=("/usr/bin/snap",))
    bare = Step("node", "microk8s status --wait-ready", "ready")
    assert unfound([APT_UPDATE, apt, snap, bare]) == [
        "microk8s: not found on the node's PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin) by "
        "`microk8s status --wait-ready` (ready)"]
    assert unfound([APT_UPDATE, apt, snap, Step("node", "/snap/bin/microk8s status", "ready")]) == []
    assert unfound([Step("node", "x=$(curl -fsSL u) && echo $x", "key")])[0].startswith("curl: not found")
    assert unfound([Step("node", "apt-get install -y curl", "curl", installs=("/usr/bin/curl",)),
                    Step("node", "x=$(curl -fsSL u) && echo $x", "key")]) == []
    assert unfound([apt, snap, Step("node", "/snap/bin/other", "x")]) == ["/snap/bin/other: not found by `/snap/bin/other` (x)"]


# ---- waits scaled by the node's accelerator and boot time (issue #16 item 7) --------------------

def kubeadm_init_config(steps):
    body = next(s.command for s in steps if "kubeadm.yaml <<" in s.command)
    return list(yaml.safe_load_all(body.split("\n", 1)[1].rsplit("\nEOF", 1)[0]))


@pytest.mark.parametrize("facts,factor", [(None, 1), ({"accelerator": "kvm", "boot_seconds": 9}, 1),
                                          ({"accelerator": "tcg", "boot_seconds": 12}, 3),
                                          ({"accelerator": "tcg", "boot_seconds": 95}, 10),
                                          ({"accelerator": "tcg", "boot_seconds": 4000}, 20)])
def test_waits_scale_with_the_node(facts, factor):
    """kubeadm v1beta4 `timeouts` (4m control plane and kubelet), v1beta3's timeoutForControlPlane,
    MicroK8s `status --wait-ready --timeout` and k3s' Ready poll grow with the node's measured
    slowdown under TCG, and are upstream's own on KVM/hardware or with no node facts."""
    from harness.bootstrap import timeouts

    assert timeouts.factor(facts) == factor
    cell = Cell("s390x", "debian12", "1.32", "kubeadm", "qemu")
    init = kubeadm_init_config(get("kubeadm").plan(cell, facts=facts))[0]
    minutes = f"{4 * factor}m0s"
    assert init["timeouts"] == {"controlPlaneComponentHealthCheck": minutes, "kubeletHealthCheck": minutes,
                                "kubernetesAPICall": f"{factor}m0s", "etcdAPICall": f"{2 * factor}m0s"}
    old = kubeadm_init_config(get("kubeadm").plan(Cell("s390x", "debian12", "1.30", "kubeadm", "qemu"), facts=facts))
    assert old[1]["apiServer"]["timeoutForControlPlane"] == minutes and "timeouts" not in old[0]
    assert f"--timeout={300 * factor}s" in text(get("kubeadm").plan(cell, facts=facts), "install")
    mk = text(get("microk8s").plan(Cell("s390x", "debian12", "1.32", "microk8s", "qemu"), facts=facts), "install")
    assert f"/snap/bin/microk8s status --wait-ready --timeout {600 * factor}" in mk
    k3s = text(get("k3s").plan(Cell("s390x", "debian12", "1.32", "k3s", "qemu"), facts=facts), "install")
    assert f"for i in $(seq {300 * factor}); do k3s kubectl get nodes" in k3s


# ---- images from the installed kubeadm, cross-checked against the table (issue #16 item 3) ------

def listing(version, pause, etcd="3.5.16-0", coredns="v1.11.3"):
    """What `kubeadm config images list --kubernetes-version <version>` prints."""
    return "\n".join([f"registry.k8s.io/kube-{c}:{version}" for c in
                      ("apiserver", "controller-manager", "scheduler", "proxy")] +
                     [f"registry.k8s.io/coredns/coredns:{coredns}", f"registry.k8s.io/pause:{pause}",
                      f"registry.k8s.io/etcd:{etcd}"]) + "\n"


class KubeadmNode(RecordingNode):
    """A recording node whose kubeadm answers the plan's questions as a real one would."""

    def __init__(self, cell, tmp_path, version, images):
        super().__init__(cell, tmp_path)
        self.answers = {"kubeadm version -o short": version + "\n",
                        "kubeadm config images list": images}

    def answer(self, command):
        return next((a for q, a in self.answers.items() if command.startswith(q)), None) or super().answer(command)


def test_kubeadm_images_come_from_the_installed_kubeadm(tmp_path):
    """Once kubeadm is on the node, the sandbox image is the pause it lists for its own version; a
    difference from the table is a warning naming both, recorded on the cell; without a node the
    plan says it used the table."""
    from harness.bootstrap.kubeadm import image_facts

    cell = Cell("amd64", "debian12", "1.32", "kubeadm", "qemu")
    plan = get("kubeadm").plan(cell)
    assert '"registry.k8s.io/pause:3.10"' in text(plan)
    assert image_facts(cell, None)[1] == "the built-in table (kubeadm is not on a node yet)"
    asks = [s for s in plan if s.asks]
    assert [s.asks for s in asks] == ["kubeadm_version", "kubeadm_images", "containerd_version"]
    assert "kubeadm config images list --kubernetes-version $(kubeadm version -o short)" in asks[1].command
    assert plan.index(asks[1]) < next(i for i, s in enumerate(plan) if "sandbox image" in s.why)
    for version, pause, warning in (("v1.32.3", "3.10", None), ("v1.32.9", "3.10.7", "pause:3.10.7")):
        node = KubeadmNode(cell, tmp_path / version, version, listing(version, pause))
        node.artifacts.mkdir()
        get("kubeadm", lab=RegistryOnly()).prepare(node, cell, progress=lambda m: None)
        config = next(c for c in node.commands if "/etc/containerd/config.toml <<" in c)
        assert f'sandbox = "registry.k8s.io/pause:{pause}"' in config
        assert node.facts["kubeadm_version"] == version
        assert node.facts["images_source"] == f"kubeadm {version} on the node"
        assert get("kubeadm").expected_pause(node, cell) == pause  # what the pause suite then expects
        if warning is None:
            assert "images_warning" not in node.facts
        else:
            assert node.facts["images_warning"] == (
                f"kubeadm {version} on the node lists pause:3.10.7, the built-in table says pause:3.10 "
                f"for {version}: using kubeadm's")


# ---- containerd for kubeadm cells from upstream.containerd_for (issue #16 item 4) ---------------

@pytest.mark.parametrize("arch,distro,k8s", [("amd64", "debian12", "1.36"), ("s390x", "debian13", "1.32"),
                                             ("ppc64le", "ubuntu2404", "1.37")])
def test_kubeadm_containerd_comes_from_containerd_for(arch, distro, k8s):
    """The runtime step installs the containerd upstream.containerd_for picks, says why, verifies
    the release tarball against the .sha256sum containerd publishes beside it, and installs the
    runc that containerd tag is tested with (runc.sha256sum verified); the CNI plugins come with
    kubelet (kubernetes-cni)."""
    from harness.matrix import kube_versions, upstream

    cell = Cell(arch, distro, k8s, "kubeadm", "qemu")
    choice = upstream.containerd_for(cell.release, cell.os, arch)
    steps = get("kubeadm").plan(cell)
    runtime = [s for s in steps if choice.reason in s.why]
    assert runtime, f"no step says why this containerd: {choice.reason}"
    t = text(steps)
    if choice.source == "release":
        name = f"containerd-{choice.version}-linux-{arch}.tar.gz"
        assert choice.url.endswith("/" + name) and f"{choice.url}.sha256sum" in t
        assert f"sha256sum -c {name}.sha256sum && tar Cxzf /usr/local {name}" in t
        runc = f"https://github.com/opencontainers/runc/releases/download/{choice.runc}/runc.{arch}"
        assert runc in t and f"grep ' runc.{arch}$' runc.sha256sum | sha256sum -c" in t
        assert f"install -m 755 runc.{arch} /usr/local/sbin/runc" in t
        assert "ExecStart=/usr/local/bin/containerd" in t and " containerd runc " not in t
        assert runtime[0].url == choice.url and "/usr/local/bin/containerd" in runtime[0].installs
    else:
        assert choice.source == "distro" and "install -y --no-install-recommends containerd runc" in t
    assert "install -y kubelet kubeadm kubectl" in t  # kubelet depends on kubernetes-cni (/opt/cni/bin)
    mirrored = text(get("kubeadm", Options(release_base="http://10.0.2.2:9")).plan(cell))
    if choice.source == "release":
        assert "github.com" not in mirrored and choice.url.replace("https://github.com", "http://10.0.2.2:9") in mirrored


def test_kubeadm_refuses_an_arch_without_a_containerd():
    from harness.matrix import upstream

    cell = Cell("arm", "debian12", "1.36", "kubeadm", "qemu")
    choice = upstream.containerd_for(cell.release, cell.os, "arm")
    assert choice.source is None
    with pytest.raises(InfraError, match="no containerd that Kubernetes 1.36 supports for arm"):
        get("kubeadm").check(cell)


class AnsweringNode(RecordingNode):
    """A RecordingNode whose commands answer as `answers` says: {command prefix: (rc, stdout, stderr)}."""

    def __init__(self, cell, tmp_path, answers):
        super().__init__(cell, tmp_path)
        self.answers = answers

    def run(self, command, *args):
        from types import SimpleNamespace
        got = next((v for k, v in self.answers.items() if command.startswith(k)), None)
        if got is None:
            return super().run(command, *args)
        self.commands.append(command)
        return SimpleNamespace(rc=got[0], stdout=got[1], stderr=got[2])


def test_a_join_cell_prepares_both_nodes_then_joins_through_the_control_planes_command(tmp_path):
    """The order of a join cell's steps on its two nodes, recorded (the real nodes: the two-node
    test in test_upstream_bootstrap.py): each node prepared with its own arch, init and the join
    command on the control plane, the join on the worker with the command the control plane
    printed; a stand-in that answered makes it a rehearsal that stops (skipped) at the first step
    needing an API server, and a wrong join command fails the product's step."""
    from harness.common.errors import ProductFailure, Unavailable

    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [s390x], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [kubeadm], "
                 "provider: [qemu]}\ncontrol_plane:\n  - match: {arch: s390x}\n    node: {arch: amd64, distro: debian12}\n")
    cell = matrix.cells_for(m)[0]
    join = "kubeadm join 192.168.77.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00"
    for printed, outcome in ((join, Unavailable), (join.replace("192.168.77.1", "10.0.2.15"), ProductFailure)):
        cp = AnsweringNode(cell.control_plane_cell(), tmp_path / printed[13:20] / "cp", {
            "kubeadm init": (0, "", "archmatrix stand-in for kubeadm init --config /root/kubeadm.yaml\n"),
            "kubeadm token create": (0, printed + "\n", ""),
            "kubectl ": (1, "", "error: stat /etc/kubernetes/admin.conf: no such file or directory\n"),
            "hostname": (0, "archmatrix-amd64\n", "")})
        worker = AnsweringNode(cell, tmp_path / printed[13:20] / "worker", {"hostname": (0, "archmatrix-s390x\n", "")})
        worker.control_plane = cp
        for n in (cp, worker):
            n.artifacts.mkdir(parents=True)
        b = get("kubeadm", Options(release_base="http://10.0.2.2:9/gh"), lab=RegistryOnly())
        b.prepare(worker, cell, progress=lambda m: None)
        assert any("linux-amd64.tar.gz" in c for c in cp.commands) and not any("s390x" in c for c in cp.commands)
        assert any("linux-s390x.tar.gz" in c for c in worker.commands)
        assert "--node-ip=192.168.77.1" in "\n".join(cp.commands) and "--node-ip=192.168.77.2" in "\n".join(worker.commands)
        assert worker.facts["node_name"] == "archmatrix-s390x" and worker.facts["bootstrap"] == "kubeadm"
        before = len(worker.commands)
        with pytest.raises(outcome) as e:
            b.install(worker, cell)
        log = (worker.artifacts / "bootstrap.log").read_text()
        assert "$ [control-plane] kubeadm init --config /root/kubeadm.yaml" in log
        if outcome is Unavailable:
            assert worker.commands[before:] == [join]  # the worker ran the join command the control plane printed
            assert "stopped at 'CNI: flannel', the first step that needs a real API server" in str(e.value)
            assert worker.facts["cluster"] == "rehearsal" and "stand-in for kubeadm init" in worker.facts["stand_ins"]
        else:  # the join command is the product's: one that names another address fails its step
            assert worker.commands[before:] == [] and "does not name the control plane's private address" in str(e.value)
            assert worker.facts["cluster"] == "rehearsal"  # a stand-in answered, whatever failed


def test_a_two_arch_join_cell_refuses_single_arch_artifact_images(tmp_path):
    """Artifact images are pushed single-arch by name: an amd64 control plane and an s390x worker
    would pull each other's, so such a cell is refused before any step; with no images it runs."""
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [s390x], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [kubeadm], "
                 "provider: [qemu]}\ncontrol_plane:\n  - match: {arch: s390x}\n    node: {arch: amd64, distro: debian12}\n")
    cell = matrix.cells_for(m)[0]
    art = tmp_path / "a"
    for arch in ("amd64", "s390x"):
        (art / arch / "bin").mkdir(parents=True)
        for n in ("kubeadm", "kubelet", "kubectl"):
            (art / arch / "bin" / n).write_text("#!/bin/sh\n")
    (art / "amd64" / "images").mkdir()
    (art / "amd64" / "images" / "pause.tar").write_bytes(b"")
    worker = RecordingNode(cell, tmp_path / "w")
    worker.control_plane = RecordingNode(cell.control_plane_cell(), tmp_path / "cp")
    b = get("kubeadm", Options(artifacts=art), lab=RegistryOnly())
    with pytest.raises(InfraError, match="amd64 and s390x nodes would pull each other's"):
        b.prepare(worker, cell, progress=lambda m: None)
    assert worker.commands == [] and worker.control_plane.commands == []
    (art / "amd64" / "images" / "pause.tar").unlink()
    for n in (worker, worker.control_plane):
        n.artifacts.mkdir()
    b.prepare(worker, cell, progress=lambda m: None)
    assert worker.commands and worker.control_plane.commands


def test_a_join_cell_puts_flannel_on_the_private_link(tmp_path):
    """flannel would take 10.0.2.15 (QEMU's NAT, the same on every node) for its VXLAN: the join plan
    adds `--iface-regex` matching both link addresses and nothing else, as a JSON patch a real shell
    and a real JSON parser read back."""
    import re
    import shlex

    from harness.bootstrap.kubeadm import flannel_on_link
    from harness.nodes import pair

    step = flannel_on_link()
    words = shlex.split(step.command.split(" && ", 1)[1])
    patch = json.loads(words[words.index("-p") + 1])
    value = patch[0]["value"]
    assert patch[0]["path"] == "/spec/template/spec/containers/0/args/-" and value.startswith("--iface-regex=")
    regex = re.compile(value.split("=", 1)[1])
    assert regex.search(pair.CONTROL_PLANE_ADDRESS) and regex.search(pair.WORKER_ADDRESS)
    assert not regex.search("10.0.2.15") and not regex.search("192.168.7.1") and not regex.search("10.192.168.77")
    assert step.where == "control-plane" and step.kubernetes
    m = tmp_path / "m.yaml"
    m.write_text("axes: {arch: [s390x], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [kubeadm], "
                 "provider: [qemu]}\ncontrol_plane:\n  - match: {arch: s390x}\n    node: {arch: amd64, distro: debian12}\n")
    cell = matrix.cells_for(m)[0]
    names = [s.name for s in get("kubeadm").join_plan(cell)]
    assert names.index("CNI: flannel") + 1 == names.index(f"CNI: flannel on the private link ({pair.SUBNET})")
