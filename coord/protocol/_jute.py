"""Jute, ZooKeeper's binary record encoding: big-endian primitives, nothing implicit.

Theory of operation
-------------------
A jute record is the concatenation of its fields: ``int`` is 4 bytes and ``long`` 8, both
big-endian two's complement; ``boolean`` is one byte; ``buffer`` and ``ustring`` are an
``int`` length followed by that many bytes (length -1 means null); ``vector<T>`` is an
``int`` count (-1 means null) followed by the elements. There are no tags, so a reader
must know the record type in advance, and every length must be checked against what is
left: a length that points past the end, a negative count other than -1, or a string that
is not UTF-8 is a :class:`ProtocolError`, never an ``IndexError`` or ``struct.error``.

Null buffers decode to ``None`` (ZooKeeper keeps a node created with null data distinct
from one created with empty data); null strings and vectors decode as empty.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from ._errors import ProtocolError

INT = struct.Struct(">i")
LONG = struct.Struct(">q")
BOOL = struct.Struct(">?")
INT_INT = struct.Struct(">ii")
#: ReplyHeader: xid, zxid, err.
REPLY_HEADER = struct.Struct(">iqi")
#: Stat: czxid, mzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner,
#: dataLength, numChildren, pzxid.
STAT = struct.Struct(">qqqqiiiqiiq")

_unpack_int = INT.unpack_from
_unpack_long = LONG.unpack_from
_pack_int = INT.pack
_pack_long = LONG.pack


class Reader:
    """Reads jute primitives from a byte string, checking every bound."""

    __slots__ = ("_buf", "_end", "pos")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self._buf = data
        self._end = len(data)
        self.pos = pos

    @property
    def remaining(self) -> int:
        """Bytes not yet read."""
        return self._end - self.pos

    def _need(self, n: int, what: str) -> int:
        pos = self.pos
        if n > self._end - pos:
            raise ProtocolError(
                f"truncated record: {what} needs {n} bytes at offset {pos}, {self._end - pos} left"
            )
        self.pos = pos + n
        return pos

    def read_int(self) -> int:
        pos = self._need(4, "int")
        return int(_unpack_int(self._buf, pos)[0])

    def read_long(self) -> int:
        pos = self._need(8, "long")
        return int(_unpack_long(self._buf, pos)[0])

    def read_bool(self) -> bool:
        pos = self._need(1, "boolean")
        return self._buf[pos] != 0

    def read_buffer(self) -> bytes | None:
        n = self.read_int()
        if n < 0:
            if n != -1:
                raise ProtocolError(f"negative buffer length {n}")
            return None
        pos = self._need(n, "buffer")
        return bytes(self._buf[pos : pos + n])

    def read_bytes(self) -> bytes:
        """A buffer, with null read as empty."""
        data = self.read_buffer()
        return b"" if data is None else data

    def read_string(self) -> str:
        n = self.read_int()
        if n < 0:
            if n != -1:
                raise ProtocolError(f"negative string length {n}")
            return ""
        pos = self._need(n, "ustring")
        try:
            return str(self._buf[pos : pos + n], "utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"string is not valid UTF-8: {exc}") from None

    def read_count(self, min_size: int) -> int:
        """A vector's element count; ``min_size`` is the smallest encoded element."""
        n = self.read_int()
        if n < 0:
            if n != -1:
                raise ProtocolError(f"negative vector length {n}")
            return 0
        if n * min_size > self._end - self.pos:
            raise ProtocolError(f"vector of {n} elements cannot fit in {self.remaining} bytes")
        return n

    def read_strings(self) -> tuple[str, ...]:
        read = self.read_string
        return tuple([read() for _ in range(self.read_count(4))])

    def expect_end(self, what: str) -> None:
        """Raise if bytes are left over after a complete record."""
        if self.pos != self._end:
            raise ProtocolError(f"{self._end - self.pos} unexpected bytes after {what}")


def write_int(out: bytearray, value: int) -> None:
    out += _pack_int(value)


def write_long(out: bytearray, value: int) -> None:
    out += _pack_long(value)


def write_bool(out: bytearray, value: bool) -> None:
    out.append(1 if value else 0)


def write_buffer(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out += b"\xff\xff\xff\xff"
    else:
        out += _pack_int(len(value))
        out += value


def write_string(out: bytearray, value: str) -> None:
    data = value.encode("utf-8")
    out += _pack_int(len(data))
    out += data


def write_strings(out: bytearray, values: Iterable[str]) -> None:
    values = list(values)
    out += _pack_int(len(values))
    for value in values:
        data = value.encode("utf-8")
        out += _pack_int(len(data))
        out += data
