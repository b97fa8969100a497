"""Facts about an executable (ELF or PE) and verdicts against a platform row. Pure: the caller
hands in a seekable stream (a local file, or a node file read in ranges); nothing here runs
a command.
"""
from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from ..matrix import kube_versions, platforms
from . import Verdict


@dataclass(frozen=True)
class Exe:
    """What the headers say. `format` is 'elf' or 'pe'."""

    format: str
    machine: str  # EM_* for ELF, hex IMAGE_FILE_MACHINE_* for PE
    bits: int
    endian: str
    static: bool | None = None  # ELF: no PT_INTERP
    size: int = 0
    go_version: str | None = None  # "go1.23.3"
    go_settings: dict = field(default_factory=dict, compare=False)  # module/version/ldflags
    problems: tuple[str, ...] = ()  # structural problems (truncation)

    @property
    def platform(self) -> platforms.Platform | None:
        if self.format == "pe":
            return platforms.by_pe_machine(int(self.machine, 16))
        for p in platforms.PLATFORMS:
            if (p.elf_machine, p.elf_class, p.elf_endian) == (self.machine, self.bits, self.endian):
                return p
        return None

    def describe(self) -> str:
        arch = self.platform.name if self.platform else "no known arch"
        if self.format == "pe":
            return f"PE machine {self.machine} ({arch})"
        return f"ELF {self.machine} {self.bits}-bit {self.endian}-endian ({arch})"


class NotExecutable(Exception):
    """The file is not an ELF or PE executable, or too short to be one. str() says which."""


def _size(stream) -> int:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def inspect(stream) -> Exe:
    """Read the headers (and Go build info) of an executable. Raises NotExecutable."""
    size = _size(stream)
    head = stream.read(64)
    stream.seek(0)
    if head[:2] == b"MZ":
        return _inspect_pe(stream, size)
    if head[:4] != b"\x7fELF":
        raise NotExecutable(f"not an ELF or PE executable (starts with {head[:8]!r}, {size} bytes)")
    need = 64 if head[4:5] == b"\x02" else 52
    if size < need:
        raise NotExecutable(f"truncated: {size} bytes, the ELF header alone needs {need}")
    try:
        elf = ELFFile(stream)
        machine, bits = elf["e_machine"], elf.elfclass
        endian = "little" if elf.little_endian else "big"
        problems = _truncation(elf, size)
        static = not any(seg["p_type"] == "PT_INTERP" for seg in elf.iter_segments()) if not problems else None
        go_version, settings = (None, {}) if problems else _go_buildinfo(elf)
    except (ELFError, struct.error, ValueError) as e:
        raise NotExecutable(f"corrupt or truncated ELF ({size} bytes): {e}") from None
    return Exe("elf", machine, bits, endian, static, size, go_version, settings, tuple(problems))


def _truncation(elf: ELFFile, size: int) -> list[str]:
    """Tables or segments that point past the end of the file."""
    problems = []
    sh_end = elf["e_shoff"] + elf["e_shnum"] * elf["e_shentsize"]
    if elf["e_shoff"] and sh_end > size:
        problems.append(f"truncated: section headers end at byte {sh_end}, file has {size}")
    ph_end = elf["e_phoff"] + elf["e_phnum"] * elf["e_phentsize"]
    if ph_end > size:
        problems.append(f"truncated: program headers end at byte {ph_end}, file has {size}")
    else:
        for seg in elf.iter_segments():
            end = seg["p_offset"] + seg["p_filesz"]
            if end > size:
                problems.append(f"truncated: a {seg['p_type']} segment ends at byte {end}, file has {size}")
                break
    return problems


def _inspect_pe(stream, size: int) -> Exe:
    import pefile

    try:
        pe = pefile.PE(data=stream.read(), fast_load=True)
    except pefile.PEFormatError as e:
        raise NotExecutable(f"corrupt PE file ({size} bytes): {e}") from None
    bits = 64 if pe.OPTIONAL_HEADER.Magic == 0x20B else 32
    return Exe("pe", f"0x{pe.FILE_HEADER.Machine:04x}", bits, "little", None, size)


# Go build info: src/debug/buildinfo/buildinfo.go. Since Go 1.18 the header is
# "\xff Go buildinf:" + ptrsize + flags, and with flag 0x2 the version and module info
# follow at offset 32 as uvarint-length-prefixed strings.
_GO_MAGIC = b"\xff Go buildinf:"


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _go_buildinfo(elf: ELFFile) -> tuple[str | None, dict]:
    sec = elf.get_section_by_name(".go.buildinfo")
    if sec is None:
        return None, {}
    data = sec.data()
    if not data.startswith(_GO_MAGIC) or len(data) < 32:
        return None, {}
    if not data[15] & 0x2:
        return None, {"note": "build info from before Go 1.18 (pointer format) not read"}
    n, pos = _uvarint(data, 32)
    version = data[pos:pos + n].decode(errors="replace")
    n, pos = _uvarint(data, pos + n)
    mod = data[pos:pos + n]
    return version, parse_modinfo(mod[16:-16].decode(errors="replace") if len(mod) >= 32 else "")


def parse_modinfo(text: str) -> dict:
    """`go version -m` lines -> {'path': ..., 'mod': (path, version), 'ldflags': ..., 'gitVersion': ...}."""
    info: dict = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if parts[0] == "path" and len(parts) > 1:
            info["path"] = parts[1]
        elif parts[0] == "mod" and len(parts) > 2:
            info["mod"] = (parts[1], parts[2])
        elif parts[0] == "build" and len(parts) > 1 and "=" in parts[1]:
            key, value = parts[1].split("=", 1)
            info[key] = value
    m = re.search(r"version\.gitVersion=(v[0-9][^'\" ]*)", info.get("-ldflags", ""))
    if m:
        info["gitVersion"] = m.group(1)
    return info


# ---- verdicts ---------------------------------------------------------------------------------

def check_arch(name: str, exe: Exe, expected: platforms.Platform, os: str = "linux") -> Verdict:
    """Machine, class and byte order of `name` equal the platform row's."""
    if exe.problems:
        return Verdict(False, f"{name}: {'; '.join(exe.problems)}")
    want = (f"PE machine 0x{expected.pe_machine:04x} ({expected.name})" if os == "windows" and expected.pe_machine
            else f"ELF {expected.elf_machine} {expected.elf_class}-bit {expected.elf_endian}-endian ({expected.name})")
    if os == "windows":
        ok = exe.format == "pe" and expected.pe_machine is not None and int(exe.machine, 16) == expected.pe_machine
    else:
        ok = exe.format == "elf" and exe.platform == expected
    return Verdict(ok, f"{name}: expected {want}, found {exe.describe()}")


def check_linkage(name: str, exe: Exe, static: bool | None) -> Verdict:
    if static is None or exe.static is None:
        return Verdict(True, f"{name}: linkage not constrained")
    found = "static" if exe.static else "dynamic"
    return Verdict(exe.static == static, f"{name}: expected {'static' if static else 'dynamic'}, found {found}")


def check_go(name: str, exe: Exe, release: kube_versions.Release) -> Verdict:
    """Go toolchain in the build info vs. the release's: other minor = failure, other patch = warning."""
    if not exe.go_version:
        return Verdict(False, f"{name}: expected Go build info (go{release.go}), found none")
    found = exe.go_version.removeprefix("go").split()[0]
    if kube_versions.go_minor(found) != kube_versions.go_minor(release.go):
        return Verdict(False, f"{name}: expected Go {kube_versions.go_minor(release.go)}.x for Kubernetes "
                              f"{release.minor} (go{release.go}), found go{found}")
    if found != release.go:
        return Verdict(True, f"{name}: Go go{found} differs from v{release.minor}.0's go{release.go} "
                             f"(a patch release may bump Go)", warning=True)
    return Verdict(True, f"{name}: go{found} as expected")


def check_version(name: str, output: str, expected: str) -> Verdict:
    """`--version` output mentions the expected version (v1.32 matches v1.32.3, not v1.320)."""
    pattern = re.escape(expected.removeprefix("v")) + r"(?![0-9])"
    ok = re.search(r"(?<![0-9.])v?" + pattern, output) is not None
    first = output.strip().splitlines()[0] if output.strip() else "(no output)"
    return Verdict(ok, f"{name}: expected version {expected}, found {first!r}")
