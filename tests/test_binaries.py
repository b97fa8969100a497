"""ELF/PE checks and artifacts mode on real Debian binaries of every seed arch, plus the broken
cases (wrong arch, truncated, not ELF, 32-bit in a 64-bit cell) and release tarball layouts."""
import io
import subprocess
import sys
import tarfile

import pytest

from harness.binaries import node as facts
from harness.binaries import release as artifacts
from harness.matrix import kube_versions, platforms
from harness.checks import elf
from harness.nodes.local import LocalProvider
from harness.matrix.cells import Cell
from conftest import ROOT

A = platforms.arch
SEED = ("amd64", "arm64", "arm", "ppc64le", "s390x")


@pytest.fixture(scope="module")
def kubectl(debian_binary):
    """Debian trixie's kubectl 1.32 for each seed arch (a real Go build)."""
    return {a: debian_binary("kubectl", A(a), "usr/bin/kubectl", "trixie") for a in SEED}


@pytest.mark.parametrize("arch", SEED)
def test_real_kubectl_has_its_arch_and_go_build_info(kubectl, arch):
    with open(kubectl[arch], "rb") as f:
        exe = elf.inspect(f)
    assert exe.platform is A(arch)
    assert elf.check_arch("kubectl", exe, A(arch)).ok
    assert exe.go_version and exe.go_version.startswith("go1.")
    assert exe.go_settings.get("path", "").endswith("/cmd/kubectl")  # Debian builds it from k8s.io/kubectl
    # Debian builds kubectl 1.32 with its own Go: a real, explained toolchain difference
    v = elf.check_go("kubectl", exe, kube_versions.resolve("1.32"))
    assert v.ok == (kube_versions.go_minor(exe.go_version) == "1.23"), v.message
    if not v.ok:
        assert "expected Go 1.23.x for Kubernetes 1.32 (go1.23.3), found go1." in v.message


def test_check_artifacts_cli_on_all_five_arches(debian_binary, run_cli):
    for a in SEED:
        debian_binary("kubectl", A(a), "usr/bin/kubectl", "trixie")
    from harness.host import debian

    debs = [str(debian.download("kubectl", A(a).debian, "trixie")) for a in SEED]
    debs += [str(debian.download("containerd", "ppc64el", "bookworm")), str(debian.download("runc", "arm64", "bookworm"))]
    out = run_cli("check-artifacts", *debs, "--k8s", "1.32")
    assert out.returncode == 0, out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith(f"{len(SEED) + 6} passed, 0 failed")  # 5 ctr + 1 runc


def test_wrong_arch_is_named(kubectl, run_cli):
    from harness.host import debian

    deb = debian.download("kubectl", "s390x", "trixie")
    out = run_cli("check-artifacts", str(deb), "--arch", "ppc64le")
    assert out.returncode == 1
    assert (f"FAIL {deb}!/usr/bin/kubectl: expected ELF EM_PPC64 64-bit little-endian (ppc64le), "
            f"found ELF EM_S390 64-bit big-endian (s390x)") in out.stdout


def test_32_bit_binary_in_64_bit_cell(kubectl):
    with open(kubectl["arm"], "rb") as f:
        v = elf.check_arch(str(kubectl["arm"]), elf.inspect(f), A("arm64"))
    assert not v.ok
    assert "expected ELF EM_AARCH64 64-bit little-endian (arm64), found ELF EM_ARM 32-bit little-endian (arm)" in v.message


def test_truncated_binary(kubectl, tmp_path):
    cut = tmp_path / "kubectl"
    cut.write_bytes(kubectl["s390x"].read_bytes()[:200_000])
    a = artifacts.Artifact(str(cut), A("s390x"), "linux", cut.read_bytes())
    (v,) = [x for x in artifacts.check(a) if not x.ok]
    assert str(cut) in v.message and "truncated" in v.message
    tiny = artifacts.Artifact("tiny", A("s390x"), "linux", b"\x7fELF\x02\x02\x01")
    (v,) = artifacts.check(tiny)
    assert not v.ok and "truncated: 7 bytes, the ELF header alone needs 64" in v.message


def test_not_an_executable(tmp_path):
    a = artifacts.Artifact("kubelet", A("amd64"), "linux", b"#!/bin/sh\necho not a binary\n")
    (v,) = artifacts.check(a)
    assert not v.ok and "kubelet: expected an executable for linux/amd64, found not an ELF or PE executable" in v.message


def _tarball(path, members):
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            t.addfile(info, io.BytesIO(data))
    return path


def test_release_tarball_layouts(debian_binary, tmp_path):
    s390x = debian_binary("busybox-static", A("s390x"), "bin/busybox").read_bytes()
    amd64 = debian_binary("busybox-static", A("amd64"), "bin/busybox").read_bytes()
    server = _tarball(tmp_path / "kubernetes-server-linux-s390x.tar.gz",
                      {"kubernetes/server/bin/kube-proxy": s390x, "kubernetes/server/bin/kubelet": amd64,
                       "kubernetes/server/bin/kube-proxy.docker_tag": b"v1.32.0\n"})
    found = {a.binary: a for a in artifacts.scan(server)}
    assert set(found) == {"kube-proxy", "kubelet"} and found["kubelet"].platform is A("s390x")
    assert all(v.ok for v in artifacts.check(found["kube-proxy"]))  # right arch, static
    bad = [v for v in artifacts.check(found["kubelet"]) if not v.ok]
    assert "kubernetes/server/bin/kubelet: expected ELF EM_S390" in bad[0].message and "(amd64)" in bad[0].message
    v = [v for v in artifacts.check(found["kube-proxy"], kube_versions.resolve("1.32")) if not v.ok]
    assert "expected Go build info (go1.23.3), found none" in v[0].message  # busybox is no Go program

    pe_amd64 = debian_binary("systemd-boot-efi", A("amd64"), "usr/lib/systemd/boot/efi/systemd-bootx64.efi").read_bytes()
    pe_arm64 = debian_binary("systemd-boot-efi", A("arm64"), "usr/lib/systemd/boot/efi/systemd-bootaa64.efi").read_bytes()
    node = _tarball(tmp_path / "kubernetes-node-windows-amd64.tar.gz",
                    {"kubernetes/node/bin/kubelet.exe": pe_amd64, "kubernetes/node/bin/kube-proxy.exe": pe_arm64})
    found = {a.binary: a for a in artifacts.scan(node)}
    assert {a.os for a in found.values()} == {"windows"}
    assert all(v.ok for v in artifacts.check(found["kubelet"]))
    (v,) = [v for v in artifacts.check(found["kube-proxy"]) if not v.ok]
    assert "expected PE machine 0x8664 (amd64), found PE machine 0xaa64 (arm64)" in v.message


def test_node_binary_read_in_ranges(kubectl, tmp_path):
    """The suite reads a node's binary through ranged reads: headers + build info, not the file."""
    cell = Cell(platforms.host().name, "debian12", "1.32", "none", "local")
    node = LocalProvider().provision(cell, tmp_path)
    found = facts.Located("kubectl", str(kubectl["s390x"]), kubectl["s390x"].stat().st_size)
    from harness.binaries.rangefile import RangeFile

    rf = RangeFile(lambda off, n: node.read_range(found.path, off, n), found.size)
    exe = elf.inspect(rf)
    assert exe.platform is A("s390x") and exe.go_version
    assert rf.round_trips * 256 * 1024 < found.size / 4, (rf.round_trips, found.size)


def test_binaries_suite_artifacts_mode(kubectl):
    from harness.host import debian

    debs = [str(debian.download("kubectl", A(a).debian, "trixie")) for a in SEED]
    args = [sys.executable, "-m", "pytest", "suites/test_binaries.py", "-k", "test_artifact", "--provider", "local",
            "-p", "no:cacheprovider", "-q"]
    out = subprocess.run(args + [x for d in debs for x in ("--artifacts", d)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "5 passed" in out.stdout, out.stdout[-2000:]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert "1 skipped" in out.stdout and out.returncode == 0


def test_version_output_matching():
    out = "Client Version: v1.32.3\nKustomize Version: v5.5.0\n"
    assert elf.check_version("kubectl", out, "v1.32").ok
    assert elf.check_version("kubectl", out, "1.32.3").ok
    v = elf.check_version("kubectl", out, "v1.3")
    assert not v.ok and "expected version v1.3, found 'Client Version: v1.32.3'" in v.message
    assert not elf.check_version("containerd", "containerd github.com/containerd/containerd 1.6.20~ds1", "1.6.2").ok
    assert elf.check_version("containerd", "containerd github.com/containerd/containerd 1.6.20~ds1", "1.6.20").ok


def test_linkage_verdicts(debian_binary, kubectl):
    with open(debian_binary("busybox-static", A("arm64"), "bin/busybox"), "rb") as f:
        static = elf.inspect(f)
    with open(kubectl["arm64"], "rb") as f:
        dynamic = elf.inspect(f)
    assert elf.check_linkage("busybox", static, True).ok
    v = elf.check_linkage("kubectl", dynamic, True)
    assert not v.ok and v.message == "kubectl: expected static, found dynamic"
    assert elf.check_linkage("kubectl", dynamic, None).ok
