"""THE platform table: one row per CPU architecture, one per distro.

Every other module asks this one for a name or number about an arch: no other
module spells `aarch64`, `ppc64el` or `EM_S390`. Aliases resolve through
`arch()`; a typo gets the nearest name as a suggestion.
"""
from __future__ import annotations

import platform as _host_platform
from dataclasses import dataclass, field

from ..common.errors import UserError
from ..common.names import unknown


@dataclass(frozen=True)
class Qemu:
    """Everything QEMU needs to boot this arch (lima keeps this in one function; we keep it in one row)."""

    system: str  # qemu-system-* binary
    package: str  # Debian package that ships `system`
    machine: str
    cpu: str | None
    console: str  # kernel console= for the serial port
    disk: str  # -device for the root disk
    net: str  # -device for the NIC
    kernel_glob: str  # name of the kernel in /boot of the guest
    bios: str | None = None


@dataclass(frozen=True)
class Platform:
    name: str  # the kube arch == GOARCH == OCI architecture
    uname: str  # `uname -m` on Linux
    debian: str  # dpkg architecture
    snap: str
    oci_variant: str | None  # OCI platform variant (arm v7; arm64 v8 is the default)
    elf_machine: str  # pyelftools e_machine name
    elf_class: int  # 32 or 64
    elf_endian: str  # "little" or "big"
    kernel_package: str  # Debian kernel metapackage for a VM
    qemu_user: str  # binfmt interpreter, from qemu-user-static
    qemu: Qemu
    pe_machine: int | None = None  # IMAGE_FILE_MACHINE_* for Windows binaries, where Windows exists
    aliases: tuple[str, ...] = ()
    # What an index entry or config with no variant stands for: containerd normalizes an absent
    # arm variant to v7 and arm64's v8 to none (containerd/platforms database.go normalizeArch).
    default_variant: str | None = None
    # ABI facts the ELF machine/class/endian do not carry (armel is EM_ARM 32-bit little too):
    # hard-float binaries say EF_ARM_ABI_FLOAT_HARD in e_flags (ARM AAELF; glibc elf.h), and
    # dynamic ones name this dynamic linker (the ARM hard-float linker path agreed across
    # distros, lists.linaro.org cross-distro 2012-April/000261: /lib/ld-linux-armhf.so.3).
    elf_hard_float: bool = False
    elf_interp: str | None = None

    def oci_platform(self, os: str = "linux") -> dict:
        p = {"os": os, "architecture": self.name}
        if self.oci_variant:
            p["variant"] = self.oci_variant
        return p

    def __str__(self) -> str:
        return self.name


PLATFORMS: tuple[Platform, ...] = (
    Platform(
        name="amd64", uname="x86_64", debian="amd64", snap="amd64", oci_variant=None,
        elf_machine="EM_X86_64", elf_class=64, elf_endian="little",
        kernel_package="linux-image-amd64", qemu_user="qemu-x86_64-static",
        qemu=Qemu("qemu-system-x86_64", "qemu-system-x86", "q35", "max", "ttyS0",
                  "virtio-blk-pci", "virtio-net-pci", "vmlinuz-*"),
        pe_machine=0x8664, aliases=("x86_64", "x86-64", "x64"),
    ),
    Platform(
        name="arm64", uname="aarch64", debian="arm64", snap="arm64", oci_variant=None,
        elf_machine="EM_AARCH64", elf_class=64, elf_endian="little",
        kernel_package="linux-image-arm64", qemu_user="qemu-aarch64-static",
        # plain `max` emulates pointer authentication slowly (59 s boot); impdef: 20 s
        qemu=Qemu("qemu-system-aarch64", "qemu-system-arm", "virt", "max,pauth-impdef=on", "ttyAMA0",
                  "virtio-blk-pci", "virtio-net-pci", "vmlinuz-*"),
        pe_machine=0xAA64, aliases=("aarch64", "arm64v8", "armv8"), default_variant="v8",
    ),
    Platform(
        name="arm", uname="armv7l", debian="armhf", snap="armhf", oci_variant="v7",
        elf_machine="EM_ARM", elf_class=32, elf_endian="little",
        kernel_package="linux-image-armmp-lpae", qemu_user="qemu-arm-static",
        qemu=Qemu("qemu-system-arm", "qemu-system-arm", "virt", "max", "ttyAMA0",
                  "virtio-blk-pci", "virtio-net-pci", "vmlinuz-*"),
        pe_machine=0x01C4, aliases=("armhf", "armv7l", "armv7", "arm32v7"), default_variant="v7",
        elf_hard_float=True, elf_interp="ld-linux-armhf.so.3",
    ),
    Platform(
        name="ppc64le", uname="ppc64le", debian="ppc64el", snap="ppc64el", oci_variant=None,
        elf_machine="EM_PPC64", elf_class=64, elf_endian="little",
        kernel_package="linux-image-powerpc64le", qemu_user="qemu-ppc64le-static",
        # the cap-* settings silence TCG's "not supported" warnings for Spectre mitigations
        qemu=Qemu("qemu-system-ppc64", "qemu-system-ppc",
                  "pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off",
                  None, "hvc0", "virtio-blk-pci", "virtio-net-pci", "vmlinux-*"),
        aliases=("ppc64el", "powerpc64le"),
    ),
    Platform(
        name="s390x", uname="s390x", debian="s390x", snap="s390x", oci_variant=None,
        elf_machine="EM_S390", elf_class=64, elf_endian="big",
        kernel_package="linux-image-s390x", qemu_user="qemu-s390x-static",
        qemu=Qemu("qemu-system-s390x", "qemu-system-misc", "s390-ccw-virtio", "qemu", "ttysclp0",
                  "virtio-blk-ccw", "virtio-net-ccw", "vmlinuz-*"),
        aliases=("s390", "systemz", "ibmz"),
    ),
    Platform(
        name="riscv64", uname="riscv64", debian="riscv64", snap="riscv64", oci_variant=None,
        elf_machine="EM_RISCV", elf_class=64, elf_endian="little",
        kernel_package="linux-image-riscv64", qemu_user="qemu-riscv64-static",
        qemu=Qemu("qemu-system-riscv64", "qemu-system-misc", "virt", None, "ttyS0",
                  "virtio-blk-pci", "virtio-net-pci", "vmlinux-*", bios="default"),
        aliases=("riscv", "rv64"),
    ),
)


@dataclass(frozen=True)
class Distro:
    """An operating system release a node runs. `arches` is where the distro really exists."""

    name: str  # the matrix's spelling: debian12
    os: str  # OCI/GOOS: linux, windows
    family: str  # debian, ubuntu, windows: picks package tooling and repo layout
    release: str  # codename or build
    arches: tuple[str, ...]
    os_version: str | None = None  # Windows: the OCI platform os.version prefix
    aliases: tuple[str, ...] = field(default=())


DISTROS: tuple[Distro, ...] = (
    # Debian release architectures: https://www.debian.org/releases/bookworm/ (no riscv64 before trixie)
    Distro("debian12", "linux", "debian", "bookworm", ("amd64", "arm64", "arm", "ppc64le", "s390x"),
           aliases=("bookworm", "debian-12")),
    Distro("debian13", "linux", "debian", "trixie", ("amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64"),
           aliases=("trixie", "debian-13")),
    Distro("ubuntu2204", "linux", "ubuntu", "jammy", ("amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64"),
           aliases=("jammy", "ubuntu-22.04")),
    # Ubuntu 24.04 ports: amd64 arm64 armhf ppc64el s390x riscv64
    Distro("ubuntu2404", "linux", "ubuntu", "noble", ("amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64"),
           aliases=("noble", "ubuntu-24.04")),
    # Windows Server LTSC 2022 = build 10.0.20348; Kubernetes supports Windows nodes on amd64 only
    Distro("windows2022", "windows", "windows", "ltsc2022", ("amd64",), os_version="10.0.20348",
           aliases=("ltsc2022", "windows-2022")),
)

# Names that look like a row's but are another ABI: asking for one says why it is not that row.
# containerd normalizes armel to arm/v6 (containerd/platforms normalizeArch); Debian's armel is
# ARMv5TE+ soft-float, while the arm row is ARMv7 hard-float (Debian armhf, OCI arm/v7).
NOT_ROWS = {
    "armel": "armel is ARMv5/v6 soft-float (Debian armel, OCI arm/v5 or arm/v6), not the arm row "
             "(ARMv7 hard-float: armhf, arm/v7); archmatrix has no armel row",
}

_ARCH_INDEX: dict[str, Platform] = {}
for _p in PLATFORMS:
    for _n in (_p.name, _p.uname, _p.debian, _p.snap, *_p.aliases):
        _ARCH_INDEX.setdefault(_n.lower(), _p)
_DISTRO_INDEX: dict[str, Distro] = {}
for _d in DISTROS:
    for _n in (_d.name, *_d.aliases):
        _DISTRO_INDEX[_n.lower()] = _d


def arch(name: str) -> Platform:
    """The row for an arch name or alias; UserError with the nearest name otherwise."""
    row = _ARCH_INDEX.get(str(name).strip().lower())
    if row is None and str(name).strip().lower() in NOT_ROWS:
        raise UserError(f"arch '{name}': {NOT_ROWS[str(name).strip().lower()]}")
    if row is None:
        raise unknown("arch", name, [p.name for p in PLATFORMS], spellings=_ARCH_INDEX)
    return row


def distro(name: str) -> Distro:
    row = _DISTRO_INDEX.get(str(name).strip().lower())
    if row is None:
        raise unknown("distro", name, [d.name for d in DISTROS], spellings=_DISTRO_INDEX)
    return row


def arch_order(name: str) -> int:
    return PLATFORMS.index(arch(name))


def by_elf_machine(machine: str) -> Platform | None:
    """The row whose ELF e_machine this is (EM_ARM is only `arm`: 64-bit arm is EM_AARCH64)."""
    for p in PLATFORMS:
        if p.elf_machine == machine:
            return p
    return None


def by_pe_machine(machine: int) -> Platform | None:
    for p in PLATFORMS:
        if p.pe_machine == machine:
            return p
    return None


def host() -> Platform:
    """This machine's row (the `local` provider's only arch)."""
    return arch(_host_platform.machine())


def host_distro(os_release: dict | None = None) -> Distro | None:
    """This machine's distro row from os-release (ID + VERSION_ID -> debian12), None if not in the
    table. `os_release`: fields as platform.freedesktop_os_release() returns them (the default)."""
    if os_release is None:
        try:
            os_release = _host_platform.freedesktop_os_release()
        except OSError:
            return None
    ident = os_release.get("ID", "") + os_release.get("VERSION_ID", "").replace(".", "")
    return _DISTRO_INDEX.get(ident.lower())
