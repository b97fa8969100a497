"""Every row of the platform table against facts this machine can check."""
import subprocess

import pytest

from harness.matrix import platforms
from harness.checks import elf
from harness.common.errors import UserError
from conftest import need

ROWS = [pytest.param(p, id=p.name) for p in platforms.PLATFORMS]


@pytest.mark.parametrize("p", ROWS)
def test_every_alias_resolves_to_its_row(p):
    for name in (p.name, p.uname, p.debian, p.snap, *p.aliases, p.name.upper()):
        assert platforms.arch(name) is p


def test_aliases_are_unambiguous():
    seen = {}
    for p in platforms.PLATFORMS:
        for n in {p.name, p.uname, p.debian, p.snap, *p.aliases}:
            assert seen.setdefault(n, p) is p, f"{n} names both {seen[n].name} and {p.name}"


def test_typo_suggests_nearest():
    with pytest.raises(UserError, match=r"unknown arch 'ppc64e'.*did you mean 'ppc64(el|le)'"):
        platforms.arch("ppc64e")
    with pytest.raises(UserError, match=r"unknown distro 'debain12'.*did you mean 'debian12'"):
        platforms.distro("debain12")


@pytest.mark.parametrize("p", ROWS)
def test_dpkg_architecture_agrees(p):
    need("dpkg-architecture")
    q = lambda var: subprocess.run(["dpkg-architecture", "-a", p.debian, "-q", var],
                                   capture_output=True, text=True, check=True).stdout.strip()
    assert int(q("DEB_HOST_ARCH_BITS")) == p.elf_class
    assert q("DEB_HOST_ARCH_ENDIAN") == p.elf_endian


@pytest.mark.parametrize("p", ROWS)
def test_real_debian_binary_has_the_rows_elf_and_uname(p, debian_binary):
    """busybox-static from Debian for this arch: its ELF header is this row, and run under the
    row's qemu-user binary it reports the row's `uname -m`."""
    busybox = debian_binary("busybox-static", p, "bin/busybox")
    with open(busybox, "rb") as f:
        exe = elf.inspect(f)
    assert exe.platform is p, exe.describe()
    assert exe.static is True
    cmd = [str(busybox), "uname", "-m"]
    if p is not platforms.host():
        need(p.qemu_user)
        cmd.insert(0, p.qemu_user)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == p.uname, out.stderr


@pytest.mark.parametrize("p", ROWS)
def test_qemu_system_binary_package_and_machine(p):
    need(p.qemu.system)
    import shutil

    path = shutil.which(p.qemu.system)
    owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    if owner.returncode != 0:  # /usr/bin vs /bin on merged-usr systems
        owner = subprocess.run(["dpkg", "-S", "/usr/bin/" + p.qemu.system], capture_output=True, text=True)
    assert owner.stdout.split(":")[0] == p.qemu.package
    machines = subprocess.run([p.qemu.system, "-machine", "help"], capture_output=True, text=True).stdout
    assert p.qemu.machine.split(",")[0] in {line.split()[0] for line in machines.splitlines()[1:] if line.strip()}
    if p.qemu.cpu:
        cpus = subprocess.run([p.qemu.system, "-cpu", "help"], capture_output=True, text=True).stdout
        models = cpu_models(cpus)
        assert p.qemu.cpu.split(",")[0] in models, sorted(models)


def cpu_models(help_text: str) -> set[str]:
    """The model names `qemu-system-* -cpu help` lists: its first column, or the second where
    every line starts with the same target prefix (x86, s390, PowerPC); the list ends at the
    first blank line (x86 goes on with CPUID flags)."""
    rows = []
    for line in help_text.splitlines():
        if not line.strip():
            if rows:
                break
            continue
        if not line.rstrip().endswith(":"):  # "Available CPUs:"
            rows.append(line.split())
    prefixes = {r[0] for r in rows}
    return {r[1] for r in rows if len(r) > 1} if len(prefixes) == 1 else {r[0] for r in rows}


def test_cpu_models_parse_qemu_lists():
    need("qemu-system-x86_64")
    x86 = cpu_models(subprocess.run(["qemu-system-x86_64", "-cpu", "help"], capture_output=True, text=True).stdout)
    assert {"max", "qemu64", "host"} <= x86 and "x86" not in x86 and "ma" not in x86
    assert not {"3dnow", "sse4.2"} & x86  # CPUID flags are not models


def test_distro_rows_name_real_arches():
    for d in platforms.DISTROS:
        for a in d.arches:
            assert platforms.arch(a).name == a
    assert "riscv64" not in platforms.distro("bookworm").arches
    assert platforms.distro("windows2022").os == "windows"


def test_host_is_in_the_table():
    assert platforms.host().uname == __import__("platform").machine()


def test_host_distro_from_os_release():
    assert platforms.host_distro({"ID": "debian", "VERSION_ID": "13"}).name == "debian13"
    assert platforms.host_distro({"ID": "ubuntu", "VERSION_ID": "24.04"}).name == "ubuntu2404"
    assert platforms.host_distro({"ID": "gentoo"}) is None
    # this machine, as the standard library reads its os-release
    here = __import__("platform").freedesktop_os_release()
    assert platforms.host_distro() == platforms.host_distro(here)
