"""Edits of real binaries for the ELF and Go build info tests: what strip tools and the Go
linker really write, applied to a copy (never a made-up file)."""
from __future__ import annotations

import struct

from harness.checks.elf import _uvarint as _read_uvarint  # the reader's decoding; the writer below is ours

MAGIC = b"\xff Go buildinf:"


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def strip_section_headers(data: bytes) -> bytes:
    """What `sstrip` / `llvm-objcopy --strip-sections` leave: no section header table
    (e_shoff = e_shnum = e_shstrndx = 0) and nothing after the last byte a segment loads."""
    elf64, order = data[4] == 2, "<" if data[5] == 1 else ">"
    if elf64:
        phoff, phentsize, phnum = (struct.unpack_from(order + "Q", data, 0x20)[0],
                                   *struct.unpack_from(order + "HH", data, 0x36))
    else:
        phoff, phentsize, phnum = (struct.unpack_from(order + "I", data, 0x1C)[0],
                                   *struct.unpack_from(order + "HH", data, 0x2A))
    end = 0
    for i in range(phnum):  # p_offset and p_filesz of every program header
        at = phoff + i * phentsize
        off, filesz = (struct.unpack_from(order + "QQ", data, at + 8)[0], struct.unpack_from(order + "Q", data, at + 32)[0]) \
            if elf64 else struct.unpack_from(order + "I", data, at + 4) + struct.unpack_from(order + "I", data, at + 16)
        end = max(end, off + filesz)
    out = bytearray(data[:end])
    if elf64:
        struct.pack_into(order + "Q", out, 0x28, 0)
        struct.pack_into(order + "HH", out, 0x3C, 0, 0)
    else:
        struct.pack_into(order + "I", out, 0x20, 0)
        struct.pack_into(order + "HH", out, 0x30, 0, 0)
    return bytes(out)


def blob_offset(data: bytes) -> int:
    """File offset of the build info blob (16-byte aligned magic; Go 1.18+ pointer-free format)."""
    i = data.find(MAGIC)
    while i % 16:
        i = data.find(MAGIC, i + 1)
    assert i > 0 and data[i + 15] & 0x2, "no Go 1.18+ build info in this binary"
    return i


def with_go_version(data: bytes, version: str) -> bytes:
    """A copy whose build info says `version`, laid out as cmd/link/internal/ld/data.go
    buildinfo() writes it: the 32-byte header, uvarint-prefixed version and module info,
    zero padding to a multiple of 16. The new blob must fit where the old one was."""
    i = blob_offset(data)
    n, pos = _read_uvarint(data, i + 32)
    m, mpos = _read_uvarint(data, pos + n)
    old_end = mpos + m
    old_len = (old_end - i + 15) // 16 * 16
    blob = data[i:i + 32] + _uvarint(len(version)) + version.encode() + _uvarint(m) + data[mpos:old_end]
    assert len(blob) <= old_len, f"{version} does not fit in the {old_len}-byte blob"
    blob += b"\0" * (old_len - len(blob))
    return data[:i] + blob + data[i + old_len:]
