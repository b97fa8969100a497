"""kubeadm on a real emulated amd64 node, as far as this machine allows (no Kubernetes server
binary exists here): the online path fails fast, naming the containerd release URL it could not
reach (a closed port on the host's loopback stands in for GitHub's release downloads and
pkgs.k8s.io, so nothing leaves the machine); an air-gapped cell without kubeadm is refused before
any step runs; with stand-in kubeadm and kubelet scripts (named as such: no real one exists here)
the air-gapped path copies the artifacts' binaries to the node, asks the installed kubeadm for its
version and images, pushes the image tarballs to the harness registry and the node's containerd
pulls its sandbox image from there; the API tunnel is a real SSH forward through the node's
ControlMaster."""
import json
import os
import shutil
import socket
import time

import pytest

from harness.matrix import platforms
from harness.services.lab import Lab
from harness.bootstrap import get
from harness.bootstrap.base import Options
from harness.bootstrap.capabilities import ConfiguresRuntime
from harness.common.errors import InfraError, ProductFailure
from harness.nodes.images import build as images
from harness.services.ports import free_port
from harness.matrix.cells import Cell
from harness.nodes import qemu
from harness.rehearsal import pkgs
from conftest import need
from test_upstream_plans import docker_archive


def test_kubeadm_on_a_real_node_fails_fast_online_and_stages_air_gapped(tmp_path, debian_binary):
    need("mmdebstrap")
    need("docker-registry")
    need("skopeo")
    p = platforms.arch("amd64")
    images.build(p, platforms.distro("debian12"), progress=print)
    art = tmp_path / "artifacts"
    (art / "amd64" / "bin").mkdir(parents=True)
    (art / "amd64" / "images").mkdir()
    shutil.copy(debian_binary("kubernetes-client", p, "usr/bin/kubectl", "bookworm"), art / "amd64/bin/kubectl")
    shutil.move(docker_archive(tmp_path, p, "registry.k8s.io/pause:3.10"), art / "amd64/images")

    cell = Cell("amd64", "debian12", "1.32", "kubeadm", "qemu")
    lab = Lab()
    node = qemu.QemuProvider(progress=print).provision(cell, tmp_path / "node")
    closed = f"http://10.0.2.2:{free_port()}"
    base = f"{closed}/pkgs"
    try:
        # 1. online, downloads unreachable: the failing step ends in seconds, with the URL named
        steps = []
        t0 = time.monotonic()
        with pytest.raises(InfraError) as e:
            get("kubeadm", Options(package_base=base, release_base=closed), lab).prepare(node, cell,
                                                                                      progress=steps.append)
        print(f"online prepare failed after {time.monotonic() - t0:.1f} s: {e.value}")
        log = (tmp_path / "node" / "bootstrap.log").read_text()
        key_step = log[log.index("containerd-"):]
        failed_in = float(key_step.split("(exit ")[1].split(", ")[1].split(" s)")[0])
        assert str(e.value).startswith(f"the node cannot reach {closed}/containerd/containerd/releases/download/v")
        assert "(curl: (7)" in str(e.value)
        assert e.value.retryable is False and failed_in < 15, failed_in
        assert node.run("swapon --show").stdout.strip() == ""  # the steps before it did run
        assert node.run("lsmod").stdout.count("br_netfilter") >= 1
        assert node.run("sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"

        # 2. air-gapped without kubeadm: refused before any step runs (the log does not grow)
        b = get("kubeadm", Options(artifacts=art), lab)
        before = (tmp_path / "node" / "bootstrap.log").read_text()
        with pytest.raises(InfraError, match=r"kubeadm init cannot run: .*amd64/bin has no kubeadm, kubelet"):
            b.prepare(node, cell, progress=print)
        assert (tmp_path / "node" / "bootstrap.log").read_text() == before

        # 3. air-gapped with stand-ins: binaries copied, kubeadm asked, images from the harness registry
        (art / "amd64/bin/kubeadm").write_text(pkgs.kubeadm_script(cell.release, "v1.32.0"))  # the rehearsal's
        (art / "amd64/bin/kubelet").write_text("#!/bin/sh\necho 'archmatrix stand-in for kubelet' >&2\nexit 1\n")
        b.prepare(node, cell, progress=print)
        reg = lab.node_registry(cell.release.pause)
        sandbox = f"10.0.2.2:{reg.host.rsplit(':', 1)[1]}/pause:3.10"
        out = node.run("/usr/local/bin/kubectl version --client")
        assert out.rc == 0 and "v1.20" in out.stdout, out.stdout + out.stderr
        dump = node.run("containerd config dump").stdout
        assert f'sandbox_image = "{sandbox}"' in dump and "SystemdCgroup = true" in dump
        pulled = node.run(f"ctr -n k8s.io images pull --plain-http {sandbox} && ctr -n k8s.io images ls -q")
        assert pulled.rc == 0 and sandbox in pulled.stdout, pulled.stderr
        # the runtime capability the pause suite asks for: kubeadm's containerd, read back from the node
        assert isinstance(b, ConfiguresRuntime) and b.sandbox_image(node, cell) == sandbox
        ref, config = b.pulled_sandbox_config(node, cell)
        assert ref == sandbox and (config["os"], config["architecture"]) == ("linux", "amd64"), config
        assert node.run("systemctl is-enabled kubelet").stdout.strip() == "enabled"
        assert node.facts["bootstrap"] == "kubeadm (artifacts)"
        assert node.facts["kubeadm_version"] == "v1.32.0" and node.facts["images_source"] == "kubeadm v1.32.0 on the node"
        assert "images_warning" not in node.facts
        # kubeadm init exiting non-zero is the product's step failing (failed, not error): here the stand-in
        with pytest.raises(ProductFailure, match=r"bootstrap step 'kubeadm init' failed \(exit 1\)"):
            b.install(node, cell)  # the stand-in cannot init: the first step that needs a real kubeadm
        assert f"{pkgs.STANDIN} for kubeadm (no Kubernetes binary exists here): init --config" in (
            tmp_path / "node" / "bootstrap.log").read_text()

        # 4. the API tunnel: a local forward through the node's ControlMaster reaches its loopback
        port = node.forward(22)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            assert s.recv(64).startswith(b"SSH-2.0-OpenSSH")
    finally:
        node.teardown()
        lab.stop()


# A stand-in kubeadm (no real one exists here), named as such in everything it prints: it answers
# what the plan asks, records `init`'s config and succeeds *as a stand-in*, prints a join command
# whose endpoint it reads from that recorded config (so the address is the harness's, not the
# stand-in's), and records `join`'s arguments. Anything else it refuses.
STAND_IN_KUBEADM = """#!/bin/sh
echo "archmatrix stand-in for kubeadm $*" >&2
case "$*" in
  'version -o short') echo v1.32.0 ;;
  'config images list --kubernetes-version v1.32.0') printf '%s\\n' {listing} ;;
  'init --config /root/kubeadm.yaml') cp /root/kubeadm.yaml /root/stand-in-init.yaml ;;
  'token create --print-join-command')
    ep=$(sed -n 's/^ *controlPlaneEndpoint: *//p' /root/stand-in-init.yaml)
    echo "kubeadm join $ep --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:stand-in" ;;
  join\\ *) echo "$*" > /root/stand-in-join.args ;;
  *) echo 'a stand-in cannot do this' >&2; exit 1 ;;
esac
"""


@pytest.mark.slow
@pytest.mark.multinode
def test_two_node_kubeadm_join_cell_rehearses_both_nodes(tmp_path, debian_binary):
    """A join cell (amd64 control plane, s390x worker) on two real QEMU nodes joined by their
    private link: both prepared for real from the Debian archive (each its own arch's containerd,
    config read back, the harness registry's pause pulled for its arch), the link carrying TCP both
    ways, init on the control plane's private address, the join command it printed run on the
    worker; then the first step that needs a real API server is where the rehearsal stops."""
    from harness.common.errors import Unavailable
    from harness.nodes import pair

    need("mmdebstrap")
    need("docker-registry")
    need("skopeo")
    cell = Cell("s390x", "debian12", "1.32", "kubeadm", "qemu", control_plane=("amd64", "debian12"))
    cp_cell = cell.control_plane_cell()
    listing = " ".join(cell.release.images(patch="v1.32.0").values())
    art = tmp_path / "artifacts"
    for c in (cp_cell, cell):
        p = c.platform
        images.build(p, c.os, progress=print)
        (art / p.name / "bin").mkdir(parents=True)
        shutil.copy(debian_binary("kubernetes-client", p, "usr/bin/kubectl", "bookworm"), art / p.name / "bin/kubectl")
        (art / p.name / "bin/kubeadm").write_text(STAND_IN_KUBEADM.format(listing=listing))
        (art / p.name / "bin/kubelet").write_text("#!/bin/sh\necho 'archmatrix stand-in for kubelet' >&2\nexit 1\n")
    lab = Lab()
    b = get("kubeadm", Options(artifacts=art), lab)
    node = qemu.QemuProvider(progress=print).provision(cell, tmp_path / "node")
    ours = [json.loads(r.read_text()) for r in qemu.run_dir().glob(f"{os.getpid()}-*.json")]
    port = int(node.facts["private_link"].rsplit("127.0.0.1:", 1)[1])
    try:
        cp = node.control_plane
        assert (node.cell, cp.cell) == (cell, cp_cell) and len(ours) == 2 and pair.listening(port)
        # the private link carries TCP both ways (each side's sshd answers the other over it)
        assert pair.reaches(node, pair.CONTROL_PLANE_ADDRESS).startswith("SSH-2.0-OpenSSH")
        assert pair.reaches(cp, pair.WORKER_ADDRESS).startswith("SSH-2.0-OpenSSH")

        b.prepare(node, cell, progress=print)
        reg = lab.node_registry(cell.release.pause)
        sandbox = f"10.0.2.2:{reg.host.rsplit(':', 1)[1]}/pause:3.10"
        for n, c in ((cp, cp_cell), (node, cell)):
            dump = n.run("containerd config dump").stdout
            assert f'sandbox_image = "{sandbox}"' in dump and "SystemdCgroup = true" in dump, c.arch
            assert n.run("dpkg-query -W -f '${Architecture}' containerd runc").stdout == c.platform.debian * 2
            assert n.run("cat /etc/default/kubelet").stdout.strip().endswith(
                pair.CONTROL_PLANE_ADDRESS if n is cp else pair.WORKER_ADDRESS)
            pulled = n.run(f"ctr -n k8s.io images pull --plain-http {sandbox}")
            assert pulled.rc == 0, pulled.stderr
            ref, config = b.pulled_sandbox_config(n, c)
            assert (config["os"], config["architecture"]) == ("linux", c.platform.oci_platform()["architecture"]), config
            assert n.facts["bootstrap"] == "kubeadm (artifacts)" and n.facts["kubeadm_version"] == "v1.32.0"

        with pytest.raises(Unavailable, match=r"rehearsal .*stopped at 'CNI: flannel', the first step that needs "
                                              r"a real API server"):
            b.install(node, cell)
        init = cp.run("cat /root/stand-in-init.yaml").stdout
        assert "advertiseAddress: 192.168.77.1" in init and "controlPlaneEndpoint: 192.168.77.1:6443" in init
        joined = node.run("cat /root/stand-in-join.args").stdout
        assert joined.startswith("join 192.168.77.1:6443 --token "), joined
        assert cp.run("test -e /root/stand-in-join.args").rc == 1  # the join ran on the worker, not there
        facts = node.facts
        assert facts["cluster"] == "rehearsal" and "stand-in for kubeadm join 192.168.77.1:6443" in facts["stand_ins"]
        assert facts["control_plane_node"].startswith("amd64 debian12 qemu") and "(s390x, " in facts["private_link"]
        # the link still carries traffic after both nodes' preparation (networkd's DHCP on it took nothing away)
        assert pair.reaches(node, pair.CONTROL_PLANE_ADDRESS).startswith("SSH-2.0-OpenSSH")
        print({k: v for k, v in facts.items() if k != "stand_ins"})
    finally:
        node.teardown()
        lab.stop()
    # nothing left: both QEMUs (by the PIDs their records named), the link's port
    assert not any(qemu._alive(r["pid"]) for r in ours) and not pair.listening(port)
