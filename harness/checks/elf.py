"""Facts about an executable (ELF or PE) and verdicts against a platform row. Pure: the caller
hands in a seekable stream (a local file, or a node file read in ranges); nothing here runs
a command.
"""
from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from elftools.common.exceptions import ELFError
from elftools.common.utils import struct_parse
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
    go_problem: str | None = None  # build info found but unreadable ("truncated build info: ...")
    flags: int = 0  # ELF e_flags
    interp: str | None = None  # PT_INTERP: the dynamic linker a dynamic binary asks for

    @property
    def float_abi(self) -> str | None:
        """ARM EABI version 5 float ABI from e_flags: 'hard', 'soft', or None when the binary does
        not say (the Go linker writes 0x5000002 for its own static binaries: no float ABI,
        cmd/link/internal/ld/elf.go)."""
        if self.machine != "EM_ARM" or self.flags & EF_ARM_EABIMASK != EF_ARM_EABI_VER5:
            return None
        if self.flags & EF_ARM_ABI_FLOAT_HARD:
            return "hard"
        return "soft" if self.flags & EF_ARM_ABI_FLOAT_SOFT else None

    def abi_mismatch(self, row: platforms.Platform) -> str | None:
        """Why a binary with this row's ELF machine/class/endian still is not of this row's ABI
        (an armel soft-float binary is EM_ARM like arm's, but does not run on armhf), or None."""
        if row.elf_hard_float and self.float_abi == "soft":
            return "EF_ARM_ABI_FLOAT_SOFT in e_flags (soft-float: armel's ABI)"
        if row.elf_interp and self.interp and PurePosixPath(self.interp).name != row.elf_interp:
            return f"its dynamic linker is {self.interp}, not {row.elf_interp}"
        return None

    def _header_row(self) -> platforms.Platform | None:
        for p in platforms.PLATFORMS:
            if (p.elf_machine, p.elf_class, p.elf_endian) == (self.machine, self.bits, self.endian):
                return p
        return None

    @property
    def platform(self) -> platforms.Platform | None:
        if self.format == "pe":
            return platforms.by_pe_machine(int(self.machine, 16))
        row = self._header_row()
        return None if row is None or self.abi_mismatch(row) else row

    def describe(self) -> str:
        if self.format == "pe":
            arch = self.platform.name if self.platform else "no known arch"
            return f"PE machine {self.machine} ({arch})"
        row = self._header_row()
        abi = ""
        if row and (row.elf_hard_float or row.elf_interp):  # a row whose ABI the headers alone don't say
            abi = f", {self.float_abi}-float" if self.float_abi else ", no float-ABI flag"
            abi += f", dynamic linker {self.interp}" if self.interp else ", static"
        why = self.abi_mismatch(row) if row else None
        arch = f"not {row.name}: {why}" if why else (row.name if row else "no known arch")
        return f"ELF {self.machine} {self.bits}-bit {self.endian}-endian{abi} ({arch})"


# ARM ELF e_flags (ARM's AAELF, "e_flags"; glibc elf.h): valid with EABI version 5
EF_ARM_EABIMASK = 0xFF000000
EF_ARM_EABI_VER5 = 0x05000000
EF_ARM_ABI_FLOAT_SOFT = 0x200
EF_ARM_ABI_FLOAT_HARD = 0x400


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
        interp = _interp(elf, stream, size)
        static = interp is None if not problems else None
    except (ELFError, struct.error, ValueError) as e:
        raise NotExecutable(f"corrupt or truncated ELF ({size} bytes): {e}") from None
    go_version, settings, go_problem = _go_buildinfo(elf, stream, size)
    return Exe("elf", machine, bits, endian, static, size, go_version, settings, tuple(problems),
               go_problem, elf["e_flags"], interp)


def _interp(elf: ELFFile, stream, size: int) -> str | None:
    """The PT_INTERP path (read within the file even when the file is cut short), or None."""
    for seg in _segments(elf):
        if seg["p_type"] == "PT_INTERP":
            stream.seek(seg["p_offset"])
            raw = stream.read(max(0, min(seg["p_filesz"], size - seg["p_offset"])))
            return raw.split(b"\0", 1)[0].decode(errors="replace") or "(empty)"
    return None


def _segments(elf: ELFFile) -> list:
    """The program headers, parsed raw: pyelftools' segment objects read the section headers
    too (PT_DYNAMIC), which a cut file may not have."""
    return [struct_parse(elf.structs.Elf_Phdr, elf.stream, stream_pos=elf["e_phoff"] + i * elf["e_phentsize"])
            for i in range(elf["e_phnum"])]


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
        for seg in _segments(elf):
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


# Go build info, read the way `go version` does (src/debug/buildinfo/buildinfo.go): from the
# .go.buildinfo section, or with no section headers (stripped) from the first writable,
# non-executable PT_LOAD segment, where the blob starts 16-byte aligned (see _go_blob).
# Since Go 1.18 the 32-byte header is "\xff Go buildinf:" + pointer size + flags, and with
# flag 0x2 the version and module info follow as uvarint-length-prefixed strings (the layout
# cmd/link/internal/ld/data.go buildinfo() writes).
_GO_MAGIC = b"\xff Go buildinf:"
_GO_ALIGN, _GO_HEADER, _GO_WINDOW = 16, 32, 64 * 1024


class _Truncated(Exception):
    pass


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Truncated(f"a length varint at byte {pos} of the blob runs past its end ({len(buf)} bytes)")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _string(buf: bytes, pos: int, what: str) -> tuple[bytes, int]:
    n, pos = _uvarint(buf, pos)
    if pos + n > len(buf):
        raise _Truncated(f"the {what} ({n} bytes from byte {pos} of the blob) runs past its end ({len(buf)} bytes)")
    return buf[pos:pos + n], pos + n


def _scan(stream, seg, start: int, end: int) -> int | None:
    """File offset of the first 16-byte aligned (in memory) magic in [start, end), read in chunks."""
    pos, chunk = start, 1 << 20
    while pos < end:
        stream.seek(pos)
        data = stream.read(min(chunk, end - pos) + len(_GO_MAGIC) - 1)
        i = data.find(_GO_MAGIC)
        while i >= 0:
            if (pos + i - seg["p_offset"] + seg["p_vaddr"]) % _GO_ALIGN == 0:
                return pos + i
            i = data.find(_GO_MAGIC, i + 1)
        pos += chunk
    return None


def _go_blob(elf: ELFFile, stream, size: int) -> tuple[bytes, int] | None:
    """The build info blob (up to 64 KiB from its magic) and its file offset, or None. With
    section headers: .go.buildinfo. Without: the first writable, non-executable PT_LOAD, where
    `go version` reads only the first 64 KiB (enough for Go's own linker, which puts the blob
    first); an externally linked (cgo, PIE) binary has it after .data.rel.ro, so the rest of the
    writable segments is searched too."""
    loads = [s for s in _segments(elf) if s["p_type"] == "PT_LOAD" and s["p_filesz"]]
    addr = None
    if elf["e_shoff"] and elf["e_shoff"] < size:
        try:
            sec = elf.get_section_by_name(".go.buildinfo")
            addr = sec["sh_addr"] if sec is not None else None
        except (ELFError, struct.error, ValueError):
            addr = None  # section headers unreadable: the segments still are
    pf_x, pf_w = 0x1, 0x2
    if addr is not None:
        regions = [(s, s["p_offset"] + addr - s["p_vaddr"], _GO_WINDOW) for s in loads
                   if s["p_vaddr"] <= addr < s["p_vaddr"] + s["p_filesz"]]
    else:
        regions = [(s, s["p_offset"], s["p_filesz"]) for s in loads if s["p_flags"] & (pf_x | pf_w) == pf_w]
    for seg, start, length in regions[:1] if addr is not None else regions:
        end = min(start + length, seg["p_offset"] + seg["p_filesz"], size)
        found = _scan(stream, seg, start, end)
        if found is not None:
            stream.seek(found)
            return stream.read(min(_GO_WINDOW, seg["p_offset"] + seg["p_filesz"] - found, size - found)), found
    return None


def _go_buildinfo(elf: ELFFile, stream, size: int) -> tuple[str | None, dict, str | None]:
    """(version, settings, problem): problem names what is wrong when a blob is there but unreadable."""
    try:
        found = _go_blob(elf, stream, size)
    except (ELFError, struct.error, ValueError):
        found = None
    if found is None:
        return None, {}, None
    blob, offset = found
    try:
        if len(blob) < _GO_HEADER:
            raise _Truncated(f"its {_GO_HEADER}-byte header is cut after {len(blob)} bytes")
        if not blob[15] & 0x2:
            return None, {}, "build info from before Go 1.18 (pointer format), not read"
        version, pos = _string(blob, _GO_HEADER, "version string")
        mod, _ = _string(blob, pos, "module info")
    except _Truncated as e:
        return None, {}, f"truncated build info at byte {offset}: {e}"
    settings = parse_modinfo(mod[16:-16].decode(errors="replace") if len(mod) >= 33 and mod[-17:-16] == b"\n"
                             else "")
    return version.decode(errors="replace"), settings, None


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
    """Machine, class and byte order of `name` equal the platform row's (and, where the row
    says, its float ABI and dynamic linker: armel is EM_ARM too)."""
    if exe.problems:
        return Verdict(False, f"{name}: {'; '.join(exe.problems)}")
    abi = ""
    if expected.elf_hard_float:
        abi += ", not soft-float"
    if expected.elf_interp:
        abi += f", static or dynamic linker {expected.elf_interp}"
    want = (f"PE machine 0x{expected.pe_machine:04x} ({expected.name})" if os == "windows" and expected.pe_machine
            else f"ELF {expected.elf_machine} {expected.elf_class}-bit {expected.elf_endian}-endian{abi} "
                 f"({expected.name})")
    if os == "windows":
        ok = exe.format == "pe" and expected.pe_machine is not None and int(exe.machine, 16) == expected.pe_machine
    else:
        ok = exe.format == "elf" and exe.platform == expected
    return Verdict(ok, f"{name}: expected {want}, found {exe.describe()}")


def check_linkage(name: str, exe: Exe, static: bool) -> Verdict:
    """Static (no PT_INTERP) or dynamic, as the bootstrapper or Kubernetes' build rules promise."""
    want = "static" if static else "dynamic"
    if exe.static is None:
        return Verdict(False, f"{name}: expected {want}, found its linkage unreadable ({'; '.join(exe.problems)})")
    found = "static" if exe.static else f"dynamic (dynamic linker {exe.interp})"
    return Verdict(exe.static == static, f"{name}: expected {want}, found {found}")


def check_go(name: str, exe: Exe, release: kube_versions.Release) -> Verdict:
    """Go toolchain in the build info vs. what the release line can be built with
    (kube_versions.GO): older than vX.Y.0's Go, or newer than any Go the line can have, is a
    failure; another Go the line may have (a patch release moved it) is a warning naming both."""
    minor, dot0 = release.minor, release.go
    if exe.go_problem:
        return Verdict(False, f"{name}: expected Go build info (go{dot0} or a newer Go of the v{minor} line), "
                              f"found {exe.go_problem}")
    if not exe.go_version:
        return Verdict(False, f"{name}: expected Go build info (go{dot0}), found none")
    found = exe.go_version.removeprefix("go").split()[0]
    key, key0 = kube_versions.go_version_key(found), kube_versions.go_version_key(dot0)
    if key is None:
        return Verdict(False, f"{name}: expected a Go release toolchain (go{dot0} for v{minor}.0), "
                              f"found {exe.go_version!r}")
    if key < key0:
        return Verdict(False, f"{name}: expected go{dot0} (v{minor}.0's) or newer, found go{found}: "
                              f"older than any Kubernetes {minor} release is built with")
    line = kube_versions.go_line(release)
    if line.final:
        patch, last = line.final
        if key > kube_versions.go_version_key(last):
            return Verdict(False, f"{name}: expected go{dot0} to go{last} for Kubernetes {minor} (the line "
                                  f"ended with {patch}, built with go{last}), found go{found}")
    else:
        newest = kube_versions.newest_go_minor()
        if key[:2] > kube_versions.go_version_key(newest)[:2]:
            return Verdict(False, f"{name}: expected go{dot0} up to Go {newest}.x for Kubernetes {minor} (no "
                                  f"Kubernetes release is built with a newer Go minor, KEP-3744), found go{found}")
    if key == key0:
        return Verdict(True, f"{name}: go{found} as v{minor}.0")
    found_minor = kube_versions.go_minor(found)
    pr = dict(line.moved).get(found_minor)
    why = (f"a newer Go {found_minor} patch" if found_minor == kube_versions.go_minor(dot0)
           else f"the v{minor} line moved to Go {found_minor} in kubernetes/kubernetes{pr}" if pr
           else f"a Go minor the v{minor} line may move to (KEP-3744)")
    return Verdict(True, f"{name}: go{found} differs from v{minor}.0's go{dot0}: {why}", warning=True)


def check_version(name: str, output: str, expected: str) -> Verdict:
    """`--version` output mentions the expected version (v1.32 matches v1.32.3, not v1.320)."""
    pattern = re.escape(expected.removeprefix("v")) + r"(?![0-9])"
    ok = re.search(r"(?<![0-9.])v?" + pattern, output) is not None
    first = output.strip().splitlines()[0] if output.strip() else "(no output)"
    return Verdict(ok, f"{name}: expected version {expected}, found {first!r}")
