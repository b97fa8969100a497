"""A read-only, seekable file whose bytes come from a `read(offset, size)` callable in
blocks, so pyelftools can read the headers of an 80 MB kubelet on a node over a few
round trips instead of copying the whole file."""
from __future__ import annotations

import io
from typing import Callable

BLOCK = 256 * 1024


class RangeFile(io.RawIOBase):
    def __init__(self, read: Callable[[int, int], bytes], size: int):
        self._read, self._size, self._pos = read, size, 0
        self._blocks: dict[int, bytes] = {}
        self.round_trips = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _block(self, index: int) -> bytes:
        if index not in self._blocks:
            self.round_trips += 1
            self._blocks[index] = self._read(index * BLOCK, BLOCK)
        return self._blocks[index]

    def readinto(self, buf) -> int:
        want = min(len(buf), max(0, self._size - self._pos))
        got = 0
        while got < want:
            index, skip = divmod(self._pos, BLOCK)
            chunk = self._block(index)[skip:skip + want - got]
            if not chunk:
                break
            buf[got:got + len(chunk)] = chunk
            got += len(chunk)
            self._pos += len(chunk)
        return got

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self._size - self._pos)
        buf = bytearray(size)
        n = self.readinto(buf)
        return bytes(buf[:n])
