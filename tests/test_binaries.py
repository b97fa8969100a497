"""ELF/PE checks and artifacts mode on real Debian binaries of every seed arch, plus the broken
cases (wrong arch, truncated, not ELF, 32-bit in a 64-bit cell, armel in an arm cell, stripped
section headers, a cut build info) and release tarball layouts."""
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
from goelf import blob_offset, strip_section_headers, with_go_version

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


# ---- Go toolchain: Debian's kubectl, each built with Debian's own Go --------------------------

def _exe(data: bytes) -> elf.Exe:
    return elf.inspect(io.BytesIO(data))


@pytest.fixture(scope="module")
def debian_kubectl(debian_binary):
    """bookworm's kubectl 1.20 (go1.19.x, static), trixie's 1.32 (go1.24.x), sid's (a newer Go
    than any Kubernetes release is built with when this was written: go1.27.1 with 1.36.4)."""
    amd64 = A("amd64")
    return {"bookworm": debian_binary("kubernetes-client", amd64, "usr/bin/kubectl", "bookworm"),
            "trixie": debian_binary("kubectl", amd64, "usr/bin/kubectl", "trixie"),
            "sid": debian_binary("kubectl", amd64, "usr/bin/kubectl", "sid")}


def test_go_newer_minor_of_a_moved_line_is_a_warning_naming_both(debian_kubectl):
    exe = _exe(debian_kubectl["trixie"].read_bytes())
    assert kube_versions.go_minor(exe.go_version) == "1.24", exe.go_version  # Debian trixie's Go
    v = elf.check_go("kubectl", exe, kube_versions.resolve("1.32"))
    assert v.ok and v.warning, v.message
    assert f"kubectl: {exe.go_version} differs from v1.32.0's go1.23.3: the v1.32 line moved to Go 1.24" in v.message


def test_go_older_than_the_dot0_release_fails(debian_kubectl):
    bookworm = _exe(debian_kubectl["bookworm"].read_bytes())
    v = elf.check_go("kubectl", bookworm, kube_versions.resolve("1.27"))
    assert not v.ok and f"expected go1.20.3 (v1.27.0's) or newer, found {bookworm.go_version}" in v.message
    trixie = _exe(debian_kubectl["trixie"].read_bytes())
    v = elf.check_go("kubectl", trixie, kube_versions.resolve("1.35"))
    assert not v.ok and f"expected go1.25.5 (v1.35.0's) or newer, found {trixie.go_version}" in v.message


def test_go_newer_than_an_ended_line_ever_had_fails(debian_kubectl):
    trixie = _exe(debian_kubectl["trixie"].read_bytes())
    v = elf.check_go("kubectl", trixie, kube_versions.resolve("1.29"))
    assert not v.ok and "(the line ended with v1.29.14, built with go1.22.12)" in v.message, v.message
    sid = _exe(debian_kubectl["sid"].read_bytes())
    assert kube_versions.go_version_key(sid.go_version) > (1, 24, 9), sid.go_version
    v = elf.check_go("kubectl", sid, kube_versions.resolve("1.31"))
    assert not v.ok and f"expected go1.22.5 to go1.24.9 for Kubernetes 1.31" in v.message, v.message


def test_go_of_the_dot0_release_passes_and_others_are_judged_by_the_line(debian_kubectl):
    """Go versions no Debian binary has, written into a copy of trixie's kubectl the way the Go
    linker lays out its build info."""
    data = debian_kubectl["trixie"].read_bytes()
    v = elf.check_go("kubectl", _exe(with_go_version(data, "go1.23.3")), kube_versions.resolve("1.32"))
    assert v.ok and not v.warning and v.message == "kubectl: go1.23.3 as v1.32.0"
    v = elf.check_go("kubectl", _exe(with_go_version(data, "go1.23.9")), kube_versions.resolve("1.32"))
    assert v.ok and v.warning and "go1.23.9 differs from v1.32.0's go1.23.3: a newer Go 1.23 patch" in v.message
    # a line still maintained may move to any Go minor a Kubernetes release is built with (KEP-3744)
    v = elf.check_go("kubectl", _exe(with_go_version(data, "go1.26.1")), kube_versions.resolve("1.34"))
    assert v.ok and v.warning and "go1.26.1 differs from v1.34.0's go1.24.6" in v.message
    v = elf.check_go("kubectl", _exe(with_go_version(data, "go1.99.0")), kube_versions.resolve("1.35"))
    assert not v.ok and "no Kubernetes release is built with a newer Go minor" in v.message
    v = elf.check_go("kubectl", _exe(with_go_version(data, "go1.22.12")), kube_versions.resolve("1.29"))
    assert v.ok and v.warning and "the v1.29 line moved to Go 1.22 in kubernetes/kubernetes#127604" in v.message


# ---- Go build info without section headers, and cut short ---------------------------------------

@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_go_build_info_found_with_section_headers_stripped(debian_kubectl, suite):
    """bookworm's kubectl is linked by Go's own linker (the blob first in the data segment, where
    `go version` looks); trixie's is a cgo PIE linked externally (the blob after .data.rel.ro)."""
    data = debian_kubectl[suite].read_bytes()
    whole = _exe(data)
    stripped = _exe(strip_section_headers(data))
    assert stripped.problems == () and stripped.platform is A("amd64")
    assert stripped.go_version == whole.go_version and stripped.go_settings == whole.go_settings
    assert elf.check_go("kubectl", stripped, kube_versions.resolve("1.32")).message != \
        "kubectl: expected Go build info (go1.23.3), found none"


def test_go_build_info_cut_short_is_a_named_verdict(debian_kubectl):
    data = debian_kubectl["trixie"].read_bytes()
    at = blob_offset(data)
    for cut, what in ((at + 36, "the version string"), (at + 42, "a length varint at byte 42")):
        exe = _exe(data[:cut])  # no IndexError
        v = elf.check_go("kubectl", exe, kube_versions.resolve("1.32"))
        assert not v.ok and f"found truncated build info at byte {at}: {what}" in v.message, v.message
        assert not elf.check_arch("kubectl", exe, A("amd64")).ok  # and the file is truncated


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
    assert ("expected ELF EM_AARCH64 64-bit little-endian (arm64), found ELF EM_ARM 32-bit little-endian, hard-float, "
            "dynamic linker /lib/ld-linux-armhf.so.3 (arm)") in v.message


def test_truncated_binary(kubectl, tmp_path):
    cut = tmp_path / "kubectl"
    cut.write_bytes(kubectl["s390x"].read_bytes()[:200_000])
    a = artifacts.Artifact(str(cut), A("s390x"), "linux", cut.read_bytes())
    arch, linkage = [x for x in artifacts.check(a) if not x.ok]  # kubectl is in Kubernetes' static set
    assert f"{cut}: truncated: section headers end at byte" in arch.message
    assert f"{cut}: expected static, found its linkage unreadable (truncated:" in linkage.message
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
    # without --artifacts it cannot apply: deselected with the reason, and nothing was judged (exit 5)
    assert "1 no --artifacts PATH given (release binaries are checked only when asked)" in out.stdout
    assert out.returncode == 5, out.stdout[-2000:]


def test_version_of_a_real_kubectl(debian_kubectl):
    """bookworm's kubectl is static: it runs here and prints its version."""
    out = subprocess.run([str(debian_kubectl["bookworm"]), "version", "--client"], capture_output=True, text=True,
                         timeout=60)
    text = out.stdout + out.stderr
    assert 'GitVersion:"v1.20.2"' in text, text
    assert elf.check_version("kubectl", text, "v1.20").ok
    v = elf.check_version("kubectl", text, "v1.2")
    assert not v.ok and v.message.startswith("kubectl: expected version v1.2, found 'Client Version: version.Info{")
    assert not elf.check_version("kubectl", text, "v1.32").ok


def test_version_output_matching():
    out = "Client Version: v1.32.3\nKustomize Version: v5.5.0\n"
    assert elf.check_version("kubectl", out, "v1.32").ok
    assert elf.check_version("kubectl", out, "1.32.3").ok
    v = elf.check_version("kubectl", out, "v1.3")
    assert not v.ok and "expected version v1.3, found 'Client Version: v1.32.3'" in v.message
    assert not elf.check_version("containerd", "containerd github.com/containerd/containerd 1.6.20~ds1", "1.6.2").ok
    assert elf.check_version("containerd", "containerd github.com/containerd/containerd 1.6.20~ds1", "1.6.20").ok


def test_linkage_verdicts(debian_binary, kubectl, tmp_path):
    with open(debian_binary("busybox-static", A("arm64"), "bin/busybox"), "rb") as f:
        static = elf.inspect(f)
    with open(kubectl["arm64"], "rb") as f:
        dynamic = elf.inspect(f)
    assert elf.check_linkage("busybox", static, True).ok
    v = elf.check_linkage("busybox", static, False)
    assert not v.ok and v.message == "busybox: expected dynamic, found static"
    v = elf.check_linkage("kubectl", dynamic, True)
    assert not v.ok and v.message == "kubectl: expected static, found dynamic (dynamic linker /lib/ld-linux-aarch64.so.1)"
    assert elf.check_linkage("kubectl", dynamic, False).ok
    cut = elf.inspect(io.BytesIO(kubectl["arm64"].read_bytes()[:300_000]))
    v = elf.check_linkage("kubectl", cut, True)
    assert not v.ok and "expected static, found its linkage unreadable (truncated:" in v.message


# ---- ARM: armel (soft-float) is not the arm row (armhf) ------------------------------------------

@pytest.mark.parametrize("package,member", [("busybox", "bin/busybox"), ("coreutils", "bin/ls"),
                                            ("busybox-static", "bin/busybox")])
def test_armel_binary_fails_an_arm_cell_armhf_passes(package, member):
    """The same program from Debian's armel and armhf: both EM_ARM 32-bit little-endian; only the
    e_flags float ABI and (dynamic ones) the dynamic linker tell them apart."""
    from harness.host import debian

    armel = elf.inspect(open(debian.fetch_file(package, "armel", member, "bookworm"), "rb"))
    armhf = elf.inspect(open(debian.fetch_file(package, "armhf", member, "bookworm"), "rb"))
    assert (armel.machine, armel.bits, armel.endian) == (armhf.machine, armhf.bits, armhf.endian)
    v = elf.check_arch(member, armhf, A("arm"))
    assert v.ok and armhf.platform is A("arm"), v.message
    v = elf.check_arch(member, armel, A("arm"))
    assert not v.ok and armel.platform is None
    assert "soft-float, " in v.message and "(not arm: EF_ARM_ABI_FLOAT_SOFT in e_flags (soft-float: armel's ABI))" in v.message
    if package != "busybox-static":
        assert armel.interp == "/lib/ld-linux.so.3" and armhf.interp == "/lib/ld-linux-armhf.so.3"
        assert "dynamic linker /lib/ld-linux.so.3" in v.message


def test_arm_dynamic_linker_decides_when_e_flags_say_nothing(debian_binary):
    """Go's linker writes no float ABI flag (0x5000002) for its own static binaries: those pass an
    arm cell; a dynamic one must ask for armhf's dynamic linker."""
    static_go = elf.inspect(open(debian_binary("kubernetes-client", A("arm"), "usr/bin/kubectl", "bookworm"), "rb"))
    assert static_go.flags == 0x5000002 and static_go.float_abi is None and static_go.static
    assert elf.check_arch("kubectl", static_go, A("arm")).ok
    cgo = elf.inspect(open(debian_binary("kubectl", A("arm"), "usr/bin/kubectl", "trixie"), "rb"))
    assert cgo.interp == "/lib/ld-linux-armhf.so.3" and elf.check_arch("kubectl", cgo, A("arm")).ok
    no_flag = elf.Exe("elf", "EM_ARM", 32, "little", False, 1, flags=0x5000002, interp="/lib/ld-linux.so.3")
    v = elf.check_arch("kubectl", no_flag, A("arm"))
    assert not v.ok and "its dynamic linker is /lib/ld-linux.so.3, not ld-linux-armhf.so.3" in v.message


def test_armel_is_no_alias_of_arm(run_cli):
    from harness.host import debian
    from harness.common.errors import UserError

    with pytest.raises(UserError, match="armel is ARMv5/v6 soft-float .* not the arm row"):
        A("armel")
    deb = debian.download("busybox", "armel", "bookworm")
    out = run_cli("check-artifacts", str(deb), "--arch", "arm")
    assert out.returncode == 1 and "(not arm: EF_ARM_ABI_FLOAT_SOFT" in out.stdout, out.stdout
    out = run_cli("check-artifacts", str(debian.download("busybox", "armhf", "bookworm")), "--arch", "arm")
    assert out.returncode == 0, out.stdout
