"""Length-prefixed framing: every message is a 4-byte big-endian length and that many bytes.

Theory of operation
-------------------
:class:`FrameDecoder` is sans-IO: feed it whatever the socket returned with
:meth:`~FrameDecoder.receive_data` and take complete frames out with
:meth:`~FrameDecoder.next_frame` (or all at once with :meth:`~FrameDecoder.frames`). A
length above the configured limit (``jute.maxbuffer``) or below zero is a
:class:`ProtocolError` as soon as the 4 length bytes arrive, before any payload is
buffered, so a hostile peer cannot make the decoder hold more than one limit's worth.
"""

from __future__ import annotations

from ._codes import DEFAULT_MAX_FRAME
from ._errors import ProtocolError
from ._jute import INT

_unpack_int = INT.unpack_from
_pack_int = INT.pack


class FrameTooLargeError(ProtocolError):
    """A frame's length prefix exceeds the configured limit, or is negative."""


class FrameDecoder:
    """Splits a byte stream into frames.

    Args:
        max_frame: the largest payload accepted, in bytes.
    """

    __slots__ = ("_buf", "_pos", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes read from the peer."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def peek(self, n: int) -> bytes:
        """The next ``n`` buffered bytes (fewer if fewer are buffered), without consuming."""
        return bytes(self._buf[self._pos : self._pos + n])

    def next_frame(self) -> bytes | None:
        """The next complete frame's payload, or ``None`` if it has not fully arrived.

        Raises:
            FrameTooLargeError: the next length prefix is negative or above the limit.
        """
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 4:
            return None
        (length,) = _unpack_int(buf, pos)
        if length < 0 or length > self.max_frame:
            raise FrameTooLargeError(
                f"frame length {length} outside 0..{self.max_frame} (jute.maxbuffer)"
            )
        end = pos + 4 + length
        if len(buf) < end:
            return None
        frame = bytes(buf[pos + 4 : end])
        self._pos = end
        return frame

    def frames(self) -> list[bytes]:
        """Every complete frame buffered so far, in order.

        Raises:
            FrameTooLargeError: a bad length follows; frames before it are lost with the
                exception (the connection is closed anyway). Use :meth:`next_frame` to
                take them one at a time.
        """
        out: list[bytes] = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out


def frame(payload: bytes | bytearray) -> bytes:
    """Prefix ``payload`` with its length."""
    return _pack_int(len(payload)) + payload
