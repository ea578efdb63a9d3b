"""The access log: one ``coord.access`` line per client request, when DEBUG is enabled for it.

Theory of operation
-------------------
A connection answers its requests strictly in the order it read them (the FIFO that
kazoo and the Java client rely on, coord/server/_server.py), and every reply is a frame
``length, xid, zxid, err, body``; watch notifications (xid -1) are the only other frames
after the handshake. So the access log needs no hook where replies are made: the
connection notes each request as it reads it (:meth:`AccessLog.received`), and the writer
hands every batch of output to :meth:`AccessLog.sending` just before it goes on the wire,
which pairs each reply frame with the oldest noted request and logs one line with the
session, client, op, path, xid, zxid, result code and latency (read to sent).

Whether a connection keeps an access log is decided when its session is established,
with ``isEnabledFor(DEBUG)`` (and logged as an ``op=connect`` line with the negotiated
timeout): with ``coord.access`` above DEBUG the connection holds
``None`` and the request path pays one ``is not None`` test per request and per write.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import time
from collections import deque
from typing import TYPE_CHECKING, Final

from coord.protocol import REQUEST_TYPES, ErrorCode, OpCode, Reader

if TYPE_CHECKING:
    from ._server import Connection

__all__ = ["ACCESS_LOGGER", "AccessLog", "access_log", "op_name"]

#: The access logger's name.
ACCESS_LOGGER: Final = "coord.access"
access_log = logging.getLogger(ACCESS_LOGGER)

_REPLY_HEADER = struct.Struct(">iiqi")  # length, xid, zxid, err
_NOTIFICATION_XID: Final = -1


def _camel(name: str) -> str:
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest).replace("Acl", "ACL")


#: Op names as ZooKeeper spells them (``getData``, ``create2``, ``getACL``, ``whoAmI``).
_OP_NAMES: Final[dict[int, str]] = {int(op): _camel(op.name) for op in OpCode}
#: Requests whose first field is the path (read without decoding the whole record).
_PATH_FIRST: Final[frozenset[int]] = frozenset(
    op
    for op, record in REQUEST_TYPES.items()
    if dataclasses.is_dataclass(record)
    and (fields := dataclasses.fields(record))
    and fields[0].name == "path"
)
_MULTI_OPS: Final = frozenset({int(OpCode.MULTI), int(OpCode.MULTI_READ)})


def op_name(op: int) -> str:
    """The ZooKeeper name of an opcode (``getData``), or ``op<N>`` for an unknown one."""
    return _OP_NAMES.get(op) or f"op{op}"


def _result_name(err: int) -> str:
    try:
        return ErrorCode(err).name
    except ValueError:
        return str(err)


def _path(op: int, frame: bytes) -> str:
    """The request's path ("" when it has none); ``a,b`` for a multi's ops."""
    try:
        if op in _PATH_FIRST:
            return Reader(frame, 8).read_string() or ""
        if op in _MULTI_OPS:
            request = REQUEST_TYPES[op].read(Reader(frame, 8))
            paths = (getattr(getattr(o, "request", o), "path", "") for o in request.ops)  # type: ignore[attr-defined]
            return ",".join(p for p in paths if p)
    except Exception:  # a malformed request: its reply says so; the log line has no path
        return ""
    return ""


class AccessLog:
    """The requests of one connection awaiting their reply, and the lines logged for them.

    Args:
        connection: the connection (its ``session_id`` and ``peer_name`` go in each line).
        skip: bytes already queued for output that are not replies (the connect response).
    """

    __slots__ = ("_connection", "_pending", "_skip")

    def __init__(self, connection: Connection, skip: int) -> None:
        self._connection = connection
        self._pending: deque[tuple[int, int, bytes, float]] = deque()
        self._skip = skip
        session = f"0x{connection.session_id:x}"
        client = connection.peer_name
        access_log.debug(
            "session=%s client=%s op=connect timeout_ms=%d read_only=%s",
            session, client, connection.timeout, connection.read_only,
            extra={
                "session": session, "client": client, "op": "connect",
                "timeout_ms": connection.timeout, "read_only": connection.read_only,
            },
        )  # fmt: skip

    @staticmethod
    def wanted() -> bool:
        """Whether new connections should keep an access log (``coord.access`` at DEBUG)."""
        return access_log.isEnabledFor(logging.DEBUG)

    def received(self, xid: int, op: int, frame: bytes) -> None:
        """A request was read (called in read order, before it is handled)."""
        self._pending.append((xid, op, frame, time.perf_counter()))

    def sending(self, data: bytes | bytearray) -> None:
        """``data`` (whole frames) is about to be sent: log a line per reply in it."""
        offset, self._skip = self._skip, 0
        pending = self._pending
        end = len(data)
        now = time.perf_counter()
        connection = self._connection
        while offset + _REPLY_HEADER.size <= end:
            length, xid, zxid, err = _REPLY_HEADER.unpack_from(data, offset)
            offset += 4 + length
            if xid == _NOTIFICATION_XID or not pending:
                continue
            request_xid, op, frame, started = pending.popleft()
            name = op_name(op)
            path = _path(op, frame)
            result = _result_name(err)
            millis = round((now - started) * 1000, 3)
            session = f"0x{connection.session_id:x}"
            client = connection.peer_name
            access_log.debug(
                "session=%s client=%s op=%s path=%s xid=%d zxid=0x%x result=%s latency_ms=%.3f",
                session, client, name, path or "-", request_xid, zxid, result, millis,
                extra={
                    "session": session, "client": client, "op": name, "path": path,
                    "xid": request_xid, "zxid": f"0x{zxid:x}", "err": err,
                    "result": result, "latency_ms": millis,
                },
            )  # fmt: skip
