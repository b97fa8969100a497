"""The per-arch publish table and the containerd table, through the rules built on them: for each
fact a cell that must be refused (with the source in the reason) and one that must pass, seen in
matrix expansion and `archmatrix list`."""
from datetime import date

import pytest

from harness.matrix import kube_versions as kv
from harness.matrix import cells as matrix
from harness.matrix import platforms, upstream


def _cells(tmp_path, arches, distros, bootstrappers, kubernetes="[latest]"):
    p = tmp_path / "m.yaml"
    p.write_text(f"axes:\n  arch: [{arches}]\n  distro: [{distros}]\n  kubernetes: {kubernetes}\n"
                 f"  bootstrapper: [{bootstrappers}]\n  provider: [qemu]\n")
    return p, {c.id: c for c in matrix.cells_for(p)}


# (cell that must be refused, words its reason carries, cell of the same bootstrapper that must pass)
RULES = [
    ("arm-debian12-v1.37-kubeadm-qemu", ["pkgs.k8s.io", "not arm", "kubernetes/release#2960"],
     "s390x-debian12-v1.37-kubeadm-qemu"),
    ("riscv64-debian13-v1.37-kubeadm-qemu", ["pkgs.k8s.io", "not riscv64"], "ppc64le-debian13-v1.37-kubeadm-qemu"),
    ("ppc64le-debian12-v1.37-microk8s-qemu", ["Snap Store", "not ppc64le", "canonical/microk8s#2810"],
     "arm64-debian12-v1.37-microk8s-qemu"),
    ("arm-debian13-v1.37-microk8s-qemu", ["Snap Store", "not arm"], "amd64-debian13-v1.37-microk8s-qemu"),
    ("riscv64-debian13-v1.37-microk8s-qemu", ["Snap Store", "not riscv64"], "s390x-debian13-v1.37-microk8s-qemu"),
    ("ppc64le-debian12-v1.37-k3s-qemu", ["k3s-io/k3s releases", "not ppc64le", "setup_verify_arch"],
     "arm-debian12-v1.37-k3s-qemu"),
    ("riscv64-debian13-v1.37-k3s-qemu", ["k3s-io/k3s releases", "not riscv64", "k3s-io/k3s#14641"],
     "s390x-debian13-v1.37-k3s-qemu"),
]


@pytest.mark.parametrize("refused,words,passes", RULES, ids=[r[0] for r in RULES])
def test_publish_table_refuses_and_passes_in_expansion_and_list(tmp_path, run_cli, refused, words, passes):
    p, cells = _cells(tmp_path, "amd64, arm64, arm, ppc64le, s390x, riscv64", "debian12, debian13",
                      "kubeadm, microk8s, k3s")
    assert all(w in cells[refused].unsupported for w in words), cells[refused].unsupported
    assert cells[passes].unsupported is None
    listed = dict(line.split("  (unsupported: ", 1) if "  (unsupported: " in line else (line, None)
                  for line in run_cli("list", "--matrix", str(p)).stdout.splitlines())
    assert all(w in listed[refused] for w in words) and listed[passes] is None


def test_default_matrix_has_no_hand_written_publish_rules():
    from conftest import ROOT

    rules = matrix.load(ROOT / "matrix.yaml").unsupported
    # what remains is about this lab (container nodes have no network), never about what upstream publishes
    assert rules and all(r.match.provider == "docker" and r.match.arch is None for r in rules)


def test_artifacts_replace_upstream_packages_but_not_the_runtime(tmp_path):
    r = kv.resolve("1.37")
    deb13 = platforms.distro("debian13")
    assert "pkgs.k8s.io" in upstream.refusal("kubeadm", "riscv64", r, deb13)
    # a riscv64 port's own kubeadm: containerd's riscv64 tarball carries it
    assert upstream.refusal("kubeadm", "riscv64", r, deb13, own_binaries=True) is None
    # a 32-bit arm port's own kubeadm: no containerd 1.37 supports for arm (bookworm's 1.6 is in no row)
    why = upstream.refusal("kubeadm", "arm", r, platforms.distro("debian12"), own_binaries=True)
    assert "no containerd that Kubernetes 1.37 supports for arm" in why and "not arm" in why


def test_microk8s_s390x_uses_the_edge_channel_and_says_so():
    assert upstream.microk8s_channel("1.37", "amd64") == ("1.37/stable", None)
    channel, why = upstream.microk8s_channel("1.37", "s390x")
    assert channel == "1.37/edge" and "canonical/microk8s#1611" in why
    from harness import bootstrap
    from harness.bootstrap.base import Options

    cell = matrix.Cell("s390x", "debian13", "1.37", "microk8s", "qemu")
    steps = bootstrap.get("microk8s", Options()).plan(cell)
    install = next(s for s in steps if "snap install microk8s" in s.command)
    assert "--channel=1.37/edge" in install.command and "edge channels only" in install.why


# ---- containerd per (release, distro, arch) -------------------------------------------------------

TODAY = date(2026, 11, 21)


@pytest.mark.parametrize("minor,distro,arch,source,version,words", [
    # 1.36's row is 2.3.0+, 2.2.0+: bookworm's 1.6.20 is not in it -> containerd's tarball, 2.3 (2.2 is EOL)
    ("1.36", "debian12", "s390x", "release", "2.3.4", ["not in 1.36's row", "newest maintained line"]),
    ("1.36", "debian13", "ppc64le", "release", "2.3.4", ["1.7.24 is not in 1.36's row"]),
    # 1.33 lists 1.7.24+: trixie's package would do, but 1.7 is past its end of life today
    ("1.33", "debian13", "amd64", "release", "2.0.11", ["past its end of life"]),
    # 1.37 has no row in containerd's matrix yet: the newest LTS, said so
    ("1.37", "debian13", "riscv64", "release", "2.3.4", ["no 1.37 row yet", "newest LTS"]),
])
def test_containerd_choice(minor, distro, arch, source, version, words):
    c = upstream.containerd_for(kv.resolve(minor), platforms.distro(distro), arch, today=TODAY)
    assert (c.source, c.version) == (source, version), c
    assert all(w in c.reason for w in words), c.reason
    assert c.url == f"https://github.com/containerd/containerd/releases/download/v{version}/" \
                    f"containerd-{version}-linux-{arch}.tar.gz"


def test_containerd_from_the_distro_when_its_row_lists_it_and_it_is_maintained():
    c = upstream.containerd_for(kv.resolve("1.33"), platforms.distro("debian13"), "arm64", today=date(2026, 5, 1))
    assert (c.source, c.version) == ("distro", "1.7.24") and "1.7.24+" in c.reason


def test_containerd_refused_where_no_source_has_one():
    c = upstream.containerd_for(kv.resolve("1.36"), platforms.distro("debian12"), "arm", today=TODAY)
    assert c.source is None and "linux/arm" not in c.reason and "not arm" in c.reason


def test_from_1_38_containerd_must_be_2():
    r138 = kv.Release("1.38", None, None, None, None, in_table=False)
    c = upstream.containerd_for(r138, platforms.distro("debian13"), "amd64", today=TODAY)
    assert c.source == "release" and c.version.startswith("2.") and "cgroup driver" in c.reason
