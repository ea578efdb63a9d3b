"""A lean, pipelined load generator for any server speaking ZooKeeper's client protocol.

Theory of operation
-------------------
A Python client built from general-purpose parts (kazoo: one decoded record, one callback
and a few locks per request) spends more CPU per request than a ZooKeeper server does, so
it measures itself. This generator keeps the per-request client cost to a few hundred
nanoseconds, so the server under test is what saturates:

* **Closed loop, pipelined.** ``sessions`` TCP sessions each keep ``outstanding`` requests
  in flight; every reply immediately sends the next request on the same session. The
  offered load adapts to the server's speed, and the server always has work queued.
* **Worker processes.** Sessions are spread round-robin over ``procs`` worker processes
  (``multiprocessing``, spawn), each a single-threaded asyncio loop on uvloop with plain
  :class:`asyncio.Protocol` objects: no streams, no tasks per request. One process drives
  over 250k requests/s while busy a fraction of its core, and on a 2-core machine shared
  with the server one process measures best (a second adds scheduling contention), so
  the default is 1; more help when the generator has cores of its own.
* **Pre-encoded requests.** Each request kind is encoded once with the records of
  :mod:`coord.protocol` into a framed template (``length | xid | type | body``); sending
  one patches the xid in place (``struct.pack_into``) and appends the template to the
  batch being built. All requests produced by one ``data_received`` call go out in one
  ``transport.write`` (one syscall). Only the delete of the create/delete scenario is
  built per request, because it carries the path the create returned.
* **Minimal reply parsing.** The hot path reads the 4-byte length and the 16-byte reply
  header (xid, zxid, err) in place with one ``struct.unpack_from`` and skips the body;
  a reply to a create additionally yields the created path. (The general
  :class:`~coord.protocol.FrameDecoder`, which copies each frame, serves the handshake.)
  Servers answer a session's requests in order, so the send time of the reply's request
  is the head of a per-session deque, and the xid is checked against the expected one.
* **Cheap latency.** One clock read when a batch of replies arrives and one when the
  batch of new requests is written; a reply's latency is ``arrival - send`` of its
  request, recorded in a 1-microsecond histogram (exact above its 100 ms range).
* **Phases on a shared clock.** ``time.monotonic`` is system-wide on Linux, so the parent
  gives every worker one start time; all of them run warm-up, then the measured window
  (replies arriving inside it are counted), then stop sending, drain what is in flight
  (bounded), close their sessions and report. Every phase has a deadline, so a stalled
  server ends the run with errors instead of hanging it.

Every non-zero ``err`` in a reply is an error and is reported by code, as are replies out
of order, replies of the wrong length, lost connections and requests never answered. The
parent creates the nodes the scenario needs under a fresh ``/coord-bench-<random>`` root
before the run, and afterwards checks that the server kept what it acknowledged (data
intact, node versions adding up to the acknowledged setData replies, created children
adding up to the acknowledged creates, no ephemeral node outliving its session) before
removing the root (pipelined: ``create`` leaves up to about a million nodes).

Scenarios (each session works on its own data node ``n<i>``): ``get`` (getData), ``set``
(setData), ``create`` (persistent-sequential children ``n<i>/c-<seq>``, which accumulate),
``create-delete`` (ephemeral-sequential create, then delete of the path returned),
``mix`` (90 % get / 10 % set), and with one session and one request in flight
``latency`` (getData) and ``set-latency`` (setData: one synced write at a time). When the
server's pid is given, its CPU use and (with ``perf``) its fsync/fdatasync calls during
the window are counted, so a write run reports how many requests shared each sync.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import math
import multiprocessing
import multiprocessing.connection
import os
import resource
import secrets
import shutil
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat
from typing import Any, TextIO, TypeVar, cast

from coord.protocol import (
    ACL,
    PROTOCOL_VERSION,
    ConnectRequest,
    ConnectResponse,
    CreateMode,
    CreateRequest,
    DeleteRequest,
    ErrorCode,
    FrameDecoder,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    Id,
    OpCode,
    Perm,
    ProtocolError,
    Record,
    ReplyHeader,
    RequestHeader,
    SetDataRequest,
    SyncRequest,
    frame,
)

__all__ = [
    "LATENCY_SCENARIOS",
    "SCENARIOS",
    "THROUGHPUT_SCENARIOS",
    "WRITE_SCENARIOS",
    "LoadSpec",
    "Result",
    "SimpleClient",
    "format_result",
    "main",
    "probe",
    "run",
]

#: Scenarios driven with many sessions and many outstanding requests.
THROUGHPUT_SCENARIOS = ("get", "set", "create", "create-delete", "mix")
#: One session with one request in flight: ``latency`` sends getData, ``set-latency``
#: setData (a synced write at the lowest load: its round trip is one durable write).
LATENCY_SCENARIOS = ("latency", "set-latency")
#: All scenarios.
SCENARIOS = (*THROUGHPUT_SCENARIOS, *LATENCY_SCENARIOS)
#: Scenarios whose requests are writes (or mostly writes).
WRITE_SCENARIOS = ("set", "create", "create-delete", "set-latency")

_OPEN_ACL = (ACL(int(Perm.ALL), Id("world", "anyone")),)
_SESSION_TIMEOUT_MS = 30_000
# length prefix + ReplyHeader(xid int, zxid long, err int), read in one go.
_FRAME_REPLY = struct.Struct(">iiqi")
_FRAME_REPLY_SIZE = _FRAME_REPLY.size
_INT = struct.Struct(">i")
_REPLY_HEAD = struct.Struct(">iqi")  # ReplyHeader: xid, zxid, err
# length prefix + RequestHeader(xid, type) + the path's length prefix of a delete.
_DELETE_HEAD = struct.Struct(">iiii")
_ANY_VERSION = _INT.pack(-1)
_XID_OFFSET = 4  # in a framed request: after the length prefix
_SEQ_MASK = 0x3FFF_FFFF  # xid = seq << 1 | is_delete stays a positive int32
_MAX_FRAME = 0xFFFFF + 1024
_HIST_US = 100_000  # 1 us buckets up to 100 ms; slower replies are kept exactly
_CLOSE_XID = 0x7FFF_FFFF
_DRAIN_TIMEOUT = 5.0
_CONNECT_TIMEOUT = 10.0
_CLEANUP_TIMEOUT = 600.0  # the create scenario leaves up to about a million nodes

_T = TypeVar("_T")


# --- what to run and what came out ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """One scenario run against one server.

    Attributes:
        host: Server address (IPv4/IPv6 literal or name).
        port: Server client port.
        scenario: One of :data:`SCENARIOS`.
        sessions: Concurrent sessions (forced to 1 for :data:`LATENCY_SCENARIOS`).
        outstanding: Requests in flight per session (forced to 1 for
            :data:`LATENCY_SCENARIOS`).
        duration: Seconds of measurement.
        warmup: Seconds of load before measuring.
        procs: Worker processes (capped at ``sessions``).
        data_size: Bytes of node data for getData/setData/create.
        mix_write_percent: Percentage of setData in ``mix`` (integer, 0..100).
        more_servers: More ``host:port`` addresses (members of the same ensemble);
            sessions are spread round-robin over ``host:port`` and these.
    """

    host: str = "127.0.0.1"
    port: int = 2181
    scenario: str = "get"
    sessions: int = 32
    outstanding: int = 100
    duration: float = 10.0
    warmup: float = 2.0
    procs: int = 1
    data_size: int = 100
    mix_write_percent: int = 10
    more_servers: tuple[str, ...] = ()

    def server_for(self, node: int) -> tuple[str, int]:
        """The address session ``node`` connects to (round-robin over all servers)."""
        servers = [(self.host, self.port)]
        for address in self.more_servers:
            host, _, port = address.rpartition(":")
            servers.append((host.strip("[]"), int(port)))
        return servers[node % len(servers)]

    def normalized(self) -> LoadSpec:
        """The spec as it will run: latency scenarios are 1x1 in one process; procs <=
        sessions."""
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; choose from {SCENARIOS}")
        if self.scenario in LATENCY_SCENARIOS:
            return replace(self, sessions=1, outstanding=1, procs=1)
        return replace(self, procs=max(1, min(self.procs, self.sessions)))


@dataclass(slots=True)
class Result:
    """What one run measured.

    Attributes:
        spec: The normalized spec that ran.
        requests: Replies received inside the measured window.
        seconds: Length of the measured window.
        errors: Error counts by name (``NO_NODE``, ``out-of-order``, ``unanswered``, ...),
            over the whole run including warm-up and drain.
        latency_ms: ``p50``, ``p99``, ``p999``, ``max``, ``mean`` of the measured replies.
        client_cpu: CPU seconds the worker processes used during the measured window.
        server_cpu: CPU seconds the server process used during the window, if its pid was
            given (``None`` otherwise).
        machine_cpu: CPU seconds the whole machine was busy during the window (all
            processes, from ``/proc/stat``); what neither the server nor the generator
            used is other load disturbing the measurement.
        server_syncs: fsync + fdatasync calls the server process made during the window
            (all its threads, counted with ``perf stat``), if its pid was given and perf
            works; ``None`` otherwise.
    """

    spec: LoadSpec
    requests: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    client_cpu: float = 0.0
    server_cpu: float | None = None
    machine_cpu: float | None = None
    server_syncs: int | None = None

    @property
    def rate(self) -> float:
        """Requests per second in the measured window."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_count(self) -> int:
        """All errors of the run."""
        return sum(self.errors.values())


# --- request templates ------------------------------------------------------------------


def encode_request(xid: int, op: OpCode, record: Record) -> bytearray:
    """A framed request (length prefix, header, body) as a mutable template.

    Args:
        xid: The initial xid; patch it at offset 4 for each send.
        op: The opcode.
        record: The request body.

    Returns:
        The encoded frame.
    """
    out = bytearray()
    RequestHeader(xid, int(op)).write(out)
    record.write(out)
    return bytearray(frame(out))


def _data_path(root: str, index: int) -> str:
    return f"{root}/n{index}"


#: The ``create`` scenario's children of data node ``n<i>``: ``c-`` + the parent's
#: sequence number, 10 digits (sequential nodes are numbered by the parent's cversion).
_CHILD_PREFIX = "c-"


def _child_path(parent: str, seq: int) -> str:
    return f"{parent}/{_CHILD_PREFIX}{seq:010d}"


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one session sends, and what its good replies look like.

    Attributes:
        cycle: The requests to send in turn, as (template, write bit); the write bit is
            the low bit of the xid, so a reply tells whether its request was a write
            (setData, or the delete of create/delete).
        reply_length: The frame length of a successful reply to a read (index 0) and to a
            write (index 1); -1 where it varies (a create's reply holds the new path).
    """

    cycle: list[tuple[bytearray, int]]
    reply_length: tuple[int, int]


_STAT_SIZE = 68
_REPLY_HEADER_SIZE = 16


def _plan(spec: LoadSpec, root: str, node: int) -> _Plan:
    """The requests a session sends (``node`` picks its data node) and their replies."""
    data = b"x" * spec.data_size
    path = _data_path(root, node)
    get = encode_request(0, OpCode.GET_DATA, GetDataRequest(path, False))
    put = encode_request(0, OpCode.SET_DATA, SetDataRequest(path, data, -1))
    get_reply = _REPLY_HEADER_SIZE + 4 + spec.data_size + _STAT_SIZE  # data, Stat
    set_reply = _REPLY_HEADER_SIZE + _STAT_SIZE  # Stat
    if spec.scenario == "create-delete":
        create = CreateRequest(f"{root}/e-", data, _OPEN_ACL, int(CreateMode.EPHEMERAL_SEQUENTIAL))
        # Only creates come from the cycle; each create's reply triggers its delete.
        return _Plan([(encode_request(0, OpCode.CREATE, create), 0)], (-1, _REPLY_HEADER_SIZE))
    if spec.scenario == "create":
        # Persistent sequential children of the session's own data node; the reply holds
        # the created path, whose length is known: parent + "/c-" + 10 digits.
        prefix = f"{path}/{_CHILD_PREFIX}"
        create = CreateRequest(prefix, data, _OPEN_ACL, int(CreateMode.PERSISTENT_SEQUENTIAL))
        created_reply = _REPLY_HEADER_SIZE + 4 + len(prefix.encode()) + 10
        return _Plan([(encode_request(0, OpCode.CREATE, create), 1)], (-1, created_reply))
    if spec.scenario in ("set", "set-latency"):
        return _Plan([(put, 1)], (-1, set_reply))
    if spec.scenario == "mix":
        # An even spread, e.g. 10 %: one set every ten requests, per session.
        writes = spec.mix_write_percent
        period = 100 // math.gcd(writes, 100)
        cycle = [(put, 1) if (i * writes) % 100 < writes else (get, 0) for i in range(period)]
        return _Plan(cycle, (get_reply, set_reply))
    return _Plan([(get, 0)], (get_reply, -1))  # get, latency


# --- the hot path: one session ---------------------------------------------------------


class _Stats:
    """What the sessions of one worker process accumulate (single-threaded, no locks)."""

    __slots__ = ("count", "end", "errors", "hist", "over", "start", "warm_end", "writes")

    def __init__(self) -> None:
        self.count = 0  # replies inside the measured window
        self.writes = 0  # successful replies to writes over the whole run (for verification)
        self.errors: dict[str, int] = {}
        self.hist = [0] * _HIST_US
        self.over: list[int] = []
        self.start = math.inf
        self.warm_end = math.inf
        self.end = math.inf

    def error(self, name: str, n: int = 1) -> None:
        self.errors[name] = self.errors.get(name, 0) + n


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"err{code}"


class _Session(asyncio.Protocol):
    """One ZooKeeper session: handshake, then a closed loop of pipelined requests."""

    def __init__(
        self,
        stats: _Stats,
        plan: _Plan,
        outstanding: int,
        create_delete: bool,
    ) -> None:
        self.stats = stats
        self.cycle = plan.cycle
        self.reply_length = plan.reply_length
        self.outstanding = outstanding
        self.create_delete = create_delete
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[ConnectResponse] = asyncio.get_running_loop().create_future()
        self.drained: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent: deque[float] = deque()  # send times of the requests in flight
        self.seq = 0  # sequence number of the next request (xid >> 1)
        self.ack = 0  # sequence number of the next expected reply
        self.turn = 0  # position in ``cycle``
        self.rest = b""  # an incomplete frame carried to the next data_received
        self.decoder: FrameDecoder | None = FrameDecoder(_MAX_FRAME)
        self.running = False
        self.closing = False

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        request = ConnectRequest(PROTOCOL_VERSION, 0, _SESSION_TIMEOUT_MS, 0, bytes(16), False)
        self.transport.write(frame(request.to_bytes()))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.running and not self.closing:
            self.stats.error("connection-lost")
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"connection lost: {exc}"))
        for future in (self.drained, self.closed):
            if not future.done():
                future.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.decoder is None:
            self._replies(data)
        else:
            self._framed(data)

    # -- handshake: general framing ------------------------------------------------------

    def _framed(self, data: bytes) -> None:
        decoder = self.decoder
        assert decoder is not None
        decoder.receive_data(data)
        payload = decoder.next_frame()
        if payload is None:
            return
        response = ConnectResponse.from_bytes(payload)
        if response.time_out <= 0:
            self.handshake.set_exception(ConnectionError("session refused"))
        else:
            self.handshake.set_result(response)
        # From here on, replies take the hot path.
        self.decoder = None
        if decoder.buffered:
            self._replies(decoder.peek(decoder.buffered))

    # -- the closed loop -------------------------------------------------------------------

    def start(self) -> None:
        """Fill the pipeline: send ``outstanding`` requests in one write."""
        self.running = True
        out = bytearray()
        for _ in range(self.outstanding):
            self._next_request(out)
        self._write(out, self.outstanding)

    def _next_request(self, out: bytearray) -> None:
        """Append the next request of the cycle (a create, for create/delete)."""
        template, bit = self.cycle[self.turn]
        self.turn = (self.turn + 1) % len(self.cycle)
        _INT.pack_into(template, _XID_OFFSET, self.seq << 1 | bit)
        self.seq = (self.seq + 1) & _SEQ_MASK
        out += template

    def _write(self, out: bytearray, n: int) -> None:
        if n:
            sent_at = time.monotonic()
            assert self.transport is not None
            self.transport.write(out)
            self.sent.extend(repeat(sent_at, n))

    def _replies(self, data: bytes) -> None:
        now = time.monotonic()
        stats = self.stats
        if self.rest:
            data = self.rest + data
            self.rest = b""
        if self.closing:
            self._framed_after_close(data)
            return
        sending = now < stats.end
        measuring = stats.warm_end <= now and sending
        hist = stats.hist
        popleft = self.sent.popleft
        cycle = self.cycle
        ncycle = len(cycle)
        reply_length = self.reply_length
        writes = 0
        create_delete = self.create_delete
        unpack = _FRAME_REPLY.unpack_from
        out = bytearray()
        new = 0
        replies = 0
        size = len(data)
        pos = 0
        while size - pos >= _FRAME_REPLY_SIZE:
            length, xid, _zxid, err = unpack(data, pos)
            end = pos + 4 + length
            if length < 16 or length > _MAX_FRAME:
                stats.error("bad-frame")
                assert self.transport is not None
                self.transport.abort()
                return
            if end > size:
                break
            if xid < 0:  # a notification or a ping reply: not ours to count
                pos = end
                continue
            replies += 1
            sent_at = popleft()
            if measuring:
                us = int((now - sent_at) * 1e6)
                if us < _HIST_US:
                    hist[us] += 1
                else:
                    stats.over.append(us)
            if xid >> 1 != self.ack:
                stats.error("out-of-order")
            self.ack = (self.ack + 1) & _SEQ_MASK
            if err:
                stats.error(_error_name(err))
            else:
                bit = xid & 1
                writes += bit
                expected = reply_length[bit]
                if length != expected and expected >= 0:
                    stats.error("bad-reply-length")
            if sending:
                if create_delete and not xid & 1 and not err:
                    # A create succeeded: delete the node it made (path = reply body).
                    (plen,) = _INT.unpack_from(data, pos + _FRAME_REPLY_SIZE)
                    start = pos + _FRAME_REPLY_SIZE + 4
                    out += _DELETE_HEAD.pack(16 + plen, self.seq << 1 | 1, OpCode.DELETE, plen)
                    out += data[start : start + plen]
                    out += _ANY_VERSION
                    self.seq = (self.seq + 1) & _SEQ_MASK
                else:
                    template, bit = cycle[self.turn]
                    self.turn = (self.turn + 1) % ncycle
                    _INT.pack_into(template, _XID_OFFSET, self.seq << 1 | bit)
                    self.seq = (self.seq + 1) & _SEQ_MASK
                    out += template
                new += 1
            pos = end
        if pos < size:
            self.rest = data[pos:]
        if measuring:
            stats.count += replies
        stats.writes += writes
        self._write(out, new)
        if not sending and not self.sent and not self.drained.done():
            self.drained.set_result(None)

    # -- shutdown ---------------------------------------------------------------------------

    def stop_if_idle(self) -> None:
        """Mark the session drained if nothing is in flight (called after the window)."""
        if not self.sent and not self.drained.done():
            self.drained.set_result(None)

    def close_session(self) -> None:
        """Send closeSession; :attr:`closed` resolves on its reply or on disconnect."""
        self.closing = True
        if self.transport is None or self.transport.is_closing():
            if not self.closed.done():
                self.closed.set_result(None)
            return
        self.transport.write(encode_request(_CLOSE_XID, OpCode.CLOSE_SESSION, _EmptyRecord()))

    def _framed_after_close(self, data: bytes) -> None:
        # Only the closeSession reply matters now; late replies of the run are skipped.
        pos = 0
        size = len(data)
        while size - pos >= _FRAME_REPLY_SIZE:
            length, xid, _zxid, _err = _FRAME_REPLY.unpack_from(data, pos)
            if pos + 4 + length > size:
                break
            if xid == _CLOSE_XID and not self.closed.done():
                self.closed.set_result(None)
            pos += 4 + length
        self.rest = data[pos:]


class _EmptyRecord(Record):
    __slots__ = ()

    def write(self, out: bytearray) -> None:
        pass


# --- a worker process --------------------------------------------------------------------


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _worker_main(
    spec: LoadSpec, root: str, nodes: list[int], conn: multiprocessing.connection.Connection
) -> None:
    """Entry point of a worker process: run its sessions, report over ``conn``."""
    _install_uvloop()
    try:
        report = asyncio.run(_worker(spec, root, nodes, conn))
    except BaseException as exc:  # report anything, the parent decides
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("done", report))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _worker(
    spec: LoadSpec, root: str, nodes: list[int], conn: multiprocessing.connection.Connection
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stats = _Stats()
    sessions: list[_Session] = []
    create_delete = spec.scenario == "create-delete"

    async def connect(node: int) -> _Session:
        plan = _plan(spec, root, node)

        def factory() -> _Session:
            return _Session(stats, plan, spec.outstanding, create_delete)

        host, port = spec.server_for(node)
        _, session = await loop.create_connection(factory, host, port)
        await session.handshake
        return session

    async with asyncio.timeout(_CONNECT_TIMEOUT):
        sessions = list(await asyncio.gather(*(connect(node) for node in nodes)))
    conn.send(("ready", None))
    ready = await loop.run_in_executor(None, conn.poll, 60.0)
    if not ready:
        raise TimeoutError("no start signal from the parent")
    _, start = conn.recv()
    stats.start = start
    stats.warm_end = start + spec.warmup
    stats.end = stats.warm_end + spec.duration

    await _sleep_until(start)
    for session in sessions:
        session.start()
    await _sleep_until(stats.warm_end)
    cpu0 = _cpu_seconds()
    await _sleep_until(stats.end)
    cpu1 = _cpu_seconds()
    for session in sessions:
        session.stop_if_idle()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DRAIN_TIMEOUT):
            await asyncio.gather(*(s.drained for s in sessions))
    unanswered = sum(len(s.sent) for s in sessions)
    if unanswered:
        stats.error("unanswered", unanswered)
    for session in sessions:
        session.close_session()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DRAIN_TIMEOUT):
            await asyncio.gather(*(s.closed for s in sessions))
    for session in sessions:
        if session.transport is not None:
            session.transport.close()
    return {
        "count": stats.count,
        "writes": stats.writes,
        "errors": stats.errors,
        "hist": {us: n for us, n in enumerate(stats.hist) if n},
        "over": stats.over,
        "cpu": cpu1 - cpu0,
    }


# --- setup and teardown: a plain request/reply connection --------------------------------


class SimpleClient:
    """One session over asyncio streams, for setup, verification and cleanup: one request
    at a time (:meth:`request`) or many in flight (:meth:`pipeline`)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(_MAX_FRAME)
        self._xid = 0

    @classmethod
    async def connect(cls, host: str, port: int) -> SimpleClient:
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        request = ConnectRequest(PROTOCOL_VERSION, 0, _SESSION_TIMEOUT_MS, 0, bytes(16), False)
        writer.write(frame(request.to_bytes()))
        response = ConnectResponse.from_bytes(await client._frame())
        if response.time_out <= 0:
            raise ConnectionError("session refused")
        return client

    async def _frame(self) -> bytes:
        while (payload := self._decoder.next_frame()) is None:
            data = await self._reader.read(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self._decoder.receive_data(data)
        return payload

    async def request(self, op: OpCode, record: Record) -> tuple[int, bytes]:
        """Send one request; return its error code and the reply body."""
        self._xid += 1
        self._writer.write(encode_request(self._xid, op, record))
        while True:
            payload = await self._frame()
            header = ReplyHeader.from_bytes(payload[:16])
            if header.xid == self._xid:
                return header.err, payload[16:]

    async def pipeline(
        self,
        requests: Iterable[tuple[OpCode, Record]],
        window: int = 1000,
        on_reply: Callable[[int, int, bytes], None] | None = None,
    ) -> dict[int, int]:
        """Send ``requests`` keeping up to ``window`` of them in flight.

        Args:
            requests: (opcode, record) pairs, consumed lazily.
            window: Requests in flight at most.
            on_reply: Called as ``on_reply(index, err, body)`` for each reply, in request
                order (``index`` counts the requests from 0).

        Returns:
            How many replies had each error code (0: success).

        Raises:
            ProtocolError: A reply came out of order.
            ConnectionError: The server closed the connection.
        """
        counts: dict[int, int] = {}
        pending = iter(requests)
        in_flight: deque[int] = deque()  # xids
        first_xid = self._xid + 1
        exhausted = False

        def fill() -> None:
            nonlocal exhausted
            out = bytearray()
            while not exhausted and len(in_flight) < window:
                try:
                    op, record = next(pending)
                except StopIteration:
                    exhausted = True
                    break
                self._xid += 1
                in_flight.append(self._xid)
                out += encode_request(self._xid, op, record)
            if out:
                self._writer.write(bytes(out))

        fill()
        top_up = max(1, window // 8)
        while in_flight:
            payload = await self._frame()
            xid, _zxid, err = _REPLY_HEAD.unpack_from(payload)
            if xid < 0:  # a watch notification or a ping reply
                continue
            expected = in_flight.popleft()
            if xid != expected:
                raise ProtocolError(f"reply xid {xid}, expected {expected}")
            counts[err] = counts.get(err, 0) + 1
            if on_reply is not None:
                on_reply(xid - first_xid, err, payload[16:])
            if window - len(in_flight) >= top_up:
                fill()
                await self._writer.drain()
        return counts

    async def close(self) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            await self.request(OpCode.CLOSE_SESSION, _EmptyRecord())
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()


async def _setup(spec: LoadSpec, root: str) -> None:
    client = await SimpleClient.connect(spec.host, spec.port)
    try:
        err, _ = await client.request(OpCode.CREATE, CreateRequest(root, b"", _OPEN_ACL, 0))
        if err:
            raise RuntimeError(f"create {root}: {_error_name(err)}")
        if spec.scenario != "create-delete":
            data = b"x" * spec.data_size
            for node in range(spec.sessions):
                path = _data_path(root, node)
                err, _ = await client.request(
                    OpCode.CREATE, CreateRequest(path, data, _OPEN_ACL, 0)
                )
                if err:
                    raise RuntimeError(f"create {path}: {_error_name(err)}")
    finally:
        await client.close()
    for address in spec.more_servers:
        # Each member has applied the setup before its sessions start (sync, then a read).
        host, _, port = address.rpartition(":")
        member = await SimpleClient.connect(host.strip("[]"), int(port))
        try:
            err, _ = await member.request(OpCode.SYNC, SyncRequest(root))
            if err:
                raise RuntimeError(f"sync on {address}: {_error_name(err)}")
        finally:
            await member.close()


async def _verify(spec: LoadSpec, root: str, writes: int | None) -> list[str]:
    """Check that the server kept what it acknowledged; return the discrepancies.

    Every data node must hold the data written at setup; for ``set`` and ``mix`` the data
    nodes' versions must add up to the setData replies that reported success (``writes``,
    ``None`` when unknown because replies went missing); for ``create`` their children
    must add up to the creates that reported success, with no hole in the sequence
    numbers (``cversion == numChildren``); for ``create-delete`` no ephemeral node may
    outlive its session.
    """
    problems: list[str] = []
    client = await SimpleClient.connect(spec.host, spec.port)
    try:
        if spec.scenario == "create-delete":
            err, body = await client.request(OpCode.GET_CHILDREN, GetChildrenRequest(root, False))
            left = len(GetChildrenResponse.from_bytes(body).children) if not err else 0
            if err or left:
                problems.append(f"{left} ephemeral node(s) outlived their sessions")
            return problems
        versions = 0
        children = 0
        for node in range(spec.sessions):
            path = _data_path(root, node)
            err, body = await client.request(OpCode.GET_DATA, GetDataRequest(path, False))
            if err:
                problems.append(f"getData {path}: {_error_name(err)}")
                continue
            reply = GetDataResponse.from_bytes(body)
            if reply.data != b"x" * spec.data_size:
                problems.append(f"{path} holds other data than was written")
            versions += reply.stat.version
            children += reply.stat.num_children
            if reply.stat.cversion != reply.stat.num_children:
                problems.append(
                    f"{path}: {reply.stat.num_children} children but cversion "
                    f"{reply.stat.cversion} (sequence numbers with no node)"
                )
        if spec.scenario == "create":
            if versions:
                problems.append(f"data nodes were modified (versions add up to {versions})")
            if writes is not None and children != writes:
                problems.append(f"{writes} creates acknowledged, {children} nodes exist")
        elif writes is not None and versions != writes:
            problems.append(f"{writes} setData acknowledged, node versions add up to {versions}")
    finally:
        await client.close()
    return problems


async def _cleanup(spec: LoadSpec, root: str) -> list[str]:
    """Delete the scenario's root and children; return problems (best effort)."""
    problems: list[str] = []
    client = await SimpleClient.connect(spec.host, spec.port)
    try:
        err, body = await client.request(OpCode.GET_CHILDREN, GetChildrenRequest(root, False))
        if err:
            return [f"getChildren {root}: {_error_name(err)}"]
        for child in GetChildrenResponse.from_bytes(body).children:
            path = f"{root}/{child}"
            if spec.scenario == "create":
                problems += await _delete_sequential_children(client, path)
            err, _ = await client.request(OpCode.DELETE, DeleteRequest(path, -1))
            if err and err != ErrorCode.NO_NODE:
                problems.append(f"delete {root}/{child}: {_error_name(err)}")
        err, _ = await client.request(OpCode.DELETE, DeleteRequest(root, -1))
        if err:
            problems.append(f"delete {root}: {_error_name(err)}")
    finally:
        await client.close()
    return problems


async def _delete_sequential_children(client: SimpleClient, parent: str) -> list[str]:
    """Delete the ``create`` scenario's children of ``parent``, pipelined: their names are
    ``c-`` and every sequence number below the parent's cversion (a getChildren could
    exceed the 1 MiB frame limit)."""
    err, body = await client.request(OpCode.GET_DATA, GetDataRequest(parent, False))
    if err:
        return [f"getData {parent}: {_error_name(err)}"]
    stat = GetDataResponse.from_bytes(body).stat
    if not stat.num_children:
        return []
    counts = await client.pipeline(
        (OpCode.DELETE, DeleteRequest(_child_path(parent, seq), -1)) for seq in range(stat.cversion)
    )
    return [
        f"delete under {parent}: {n} x {_error_name(code)}"
        for code, n in counts.items()
        if code not in (0, ErrorCode.NO_NODE)
    ]


def probe(host: str, port: int, timeout: float = 5.0) -> None:
    """Open one session and close it: the server speaks the protocol and takes sessions.

    Raises:
        OSError: Cannot connect (``ConnectionError`` if the server refused the session).
        TimeoutError: No handshake within ``timeout`` seconds.
        coord.protocol.ProtocolError: The server's answer is not a ConnectResponse.
    """

    async def handshake() -> None:
        client = await SimpleClient.connect(host, port)
        await client.close()

    _run_bounded(handshake(), timeout)


# --- the parent: orchestrate one run ------------------------------------------------------


def _process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def _machine_busy() -> float | None:
    """CPU seconds all CPUs have been busy since boot (not idle, not iowait)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class _SyncCounter:
    """Counts the server's fsync/fdatasync calls during the window, with ``perf stat`` on
    the syscall tracepoints (counting mode: no sampling, negligible overhead). Without
    ``perf`` or the permission to trace, the count is ``None``."""

    _EVENTS = ("syscalls:sys_enter_fsync", "syscalls:sys_enter_fdatasync")

    def __init__(self, pid: int, seconds: float) -> None:
        self.process: subprocess.Popen[str] | None = None
        perf = shutil.which("perf")
        if perf is None:
            return
        command = [perf, "stat", "-x", ",", "-e", ",".join(self._EVENTS), "-p", str(pid)]
        with contextlib.suppress(OSError):
            self.process = subprocess.Popen(
                [*command, "--", "sleep", f"{seconds:.3f}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )

    def result(self) -> int | None:
        """The number of syncs (waits for perf to finish)."""
        if self.process is None:
            return None
        try:
            _, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            return None
        total = 0
        seen = 0
        for line in err.splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2] in self._EVENTS and fields[0].isdigit():
                total += int(fields[0])
                seen += 1
        return total if seen == len(self._EVENTS) else None


def _percentiles(hist: dict[int, int], over: list[int]) -> dict[str, float]:
    total = sum(hist.values()) + len(over)
    if not total:
        return {}
    items = sorted(hist.items()) + [(us, 1) for us in sorted(over)]
    wanted = {"p50": 0.50, "p99": 0.99, "p999": 0.999}
    out: dict[str, float] = {}
    seen = 0
    weighted = 0
    pending = sorted(wanted.items(), key=lambda kv: kv[1])
    for us, n in items:
        seen += n
        weighted += us * n
        while pending and seen >= math.ceil(pending[0][1] * total):
            out[pending.pop(0)[0]] = (us + 0.5) / 1000
    out["max"] = (items[-1][0] + 0.5) / 1000
    out["mean"] = (weighted / total + 0.5) / 1000
    return out


def run(
    spec: LoadSpec,
    *,
    server_pid: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Result:
    """Run one scenario against one server and return what was measured.

    Args:
        spec: What to run; it is normalized first (see :meth:`LoadSpec.normalized`).
        server_pid: The server's process id, to measure its CPU use in the window.
        progress: Called with one line per phase.

    Returns:
        The measurements.

    Raises:
        RuntimeError: Setup failed, or a worker failed before the run started.
    """
    spec = spec.normalized()
    say = progress or (lambda line: None)
    root = f"/coord-bench-{secrets.token_hex(4)}"
    label = f"{spec.scenario} @ {spec.host}:{spec.port}"
    say(f"{label}: setup under {root}")
    _install_uvloop()
    _run_bounded(_setup(spec, root))
    ctx = multiprocessing.get_context("spawn")
    nodes = [list(range(p, spec.sessions, spec.procs)) for p in range(spec.procs)]
    pipes: list[multiprocessing.connection.Connection] = []
    procs: list[multiprocessing.process.BaseProcess] = []
    result = Result(spec)
    try:
        say(
            f"{label}: connecting {spec.sessions} session(s) x {spec.outstanding} "
            f"outstanding in {spec.procs} process(es)"
        )
        for part in nodes:
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(spec, root, part, child_end), daemon=True)
            proc.start()
            child_end.close()
            pipes.append(parent_end)
            procs.append(proc)
        for pipe in pipes:
            kind, payload = _receive(pipe, _CONNECT_TIMEOUT + 30)
            if kind != "ready":
                raise RuntimeError(f"worker failed to connect: {payload}")
        start = time.monotonic() + 0.2
        for pipe in pipes:
            pipe.send(("go", start))
        warm_end = start + spec.warmup
        end = warm_end + spec.duration
        if spec.warmup:
            say(f"{label}: warm-up {spec.warmup:g} s")
        _sleep_blocking(warm_end)
        cpu0 = _process_cpu(server_pid) if server_pid else None
        busy0 = _machine_busy()
        syncs = _SyncCounter(server_pid, spec.duration) if server_pid else None
        say(f"{label}: measuring {spec.duration:g} s")
        _sleep_blocking(end)
        cpu1 = _process_cpu(server_pid) if server_pid else None
        busy1 = _machine_busy()
        say(f"{label}: draining and closing sessions")
        hist: dict[int, int] = {}
        over: list[int] = []
        writes: int | None = 0
        for pipe in pipes:
            kind, payload = _receive(pipe, 3 * _DRAIN_TIMEOUT + 10)
            if kind != "done":
                result.errors[f"worker: {payload}"] = 1
                writes = None
                continue
            if writes is not None:
                writes += payload["writes"]
            result.requests += payload["count"]
            result.client_cpu += payload["cpu"]
            for name, n in payload["errors"].items():
                result.errors[name] = result.errors.get(name, 0) + n
            for us, n in payload["hist"].items():
                hist[us] = hist.get(us, 0) + n
            over.extend(payload["over"])
        result.seconds = spec.duration
        result.latency_ms = _percentiles(hist, over)
        if result.errors.keys() & {"unanswered", "connection-lost"}:
            writes = None  # some writes may have been applied without a reply
        say(f"{label}: verifying what the server stored")
        try:
            problems = _run_bounded(_verify(spec, root, writes))
        except (OSError, ProtocolError, TimeoutError) as exc:
            problems = [f"could not verify: {type(exc).__name__}: {exc}"]
        for problem in problems:
            result.errors[f"verify: {problem}"] = 1
        if cpu0 is not None and cpu1 is not None:
            result.server_cpu = cpu1 - cpu0
        if busy0 is not None and busy1 is not None:
            result.machine_cpu = busy1 - busy0
        if syncs is not None:
            result.server_syncs = syncs.result()
    finally:
        for pipe in pipes:
            pipe.close()  # a worker still waiting for "go" sees EOF and exits
        for worker in procs:
            worker.join(5)
            if worker.is_alive():
                worker.kill()
                worker.join(5)
        try:
            warnings = _run_bounded(_cleanup(spec, root), _CLEANUP_TIMEOUT)
        except (OSError, ProtocolError, TimeoutError) as exc:
            warnings = [f"cleanup: {type(exc).__name__}: {exc}"]
        for warning in warnings:
            say(f"{label}: warning: {warning}")
    say(f"{label}: {format_result(result)}")
    return result


def _run_bounded(coro: Coroutine[Any, Any, _T], seconds: float = 60.0) -> _T:
    """Run a setup, verification or cleanup coroutine to completion, or time out."""

    async def bounded() -> _T:
        async with asyncio.timeout(seconds):
            return await coro

    return asyncio.run(bounded())


def _sleep_blocking(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _receive(pipe: multiprocessing.connection.Connection, timeout: float) -> tuple[str, Any]:
    if not pipe.poll(timeout):
        return "error", f"no answer within {timeout:g} s"
    try:
        message: tuple[str, Any] = pipe.recv()
    except EOFError:
        return "error", "worker exited"
    return message


# --- output and command line --------------------------------------------------------------


def format_result(result: Result) -> str:
    """One line: rate, latency percentiles, errors, CPU."""
    lat = result.latency_ms
    parts = [f"{result.rate:,.0f} req/s"]
    if lat:
        parts.append(
            f"latency ms p50 {lat['p50']:.3f} p99 {lat['p99']:.3f} "
            f"p999 {lat['p999']:.3f} max {lat['max']:.3f}"
        )
    parts.append(
        "errors " + (", ".join(f"{k}={v}" for k, v in sorted(result.errors.items())) or "0")
    )
    seconds = result.seconds or 1.0
    cpu = f"cores busy: generator {result.client_cpu / seconds:.2f}"
    if result.server_cpu is not None:
        cpu += f", server {result.server_cpu / seconds:.2f}"
    if result.machine_cpu is not None:
        other = result.machine_cpu - result.client_cpu - (result.server_cpu or 0.0)
        label = "other" if result.server_cpu is not None else "other+server"
        cpu += f", {label} {max(other, 0.0) / seconds:.2f} of {os.cpu_count()}"
    parts.append(cpu)
    if result.server_syncs is not None and result.spec.scenario in WRITE_SCENARIOS:
        syncs = result.server_syncs / seconds
        per = f", {result.rate / syncs:,.1f} requests per sync" if syncs else ""
        parts.append(f"server fsyncs {syncs:,.0f}/s{per}")
    return " | ".join(parts)


def parse_server(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) to a tuple."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 2181
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loadgen",
        description="Pipelined load generator for a ZooKeeper-protocol server.",
    )
    parser.add_argument(
        "--server",
        default="127.0.0.1:2181",
        help="host:port[,host:port...] (members of one ensemble: sessions are spread over them)",
    )
    parser.add_argument(
        "--scenario",
        nargs="+",
        default=["get"],
        choices=SCENARIOS,
        metavar="NAME",
        help=f"one or more of {', '.join(SCENARIOS)}",
    )
    defaults = LoadSpec()
    parser.add_argument("--sessions", type=int, default=defaults.sessions)
    parser.add_argument("--outstanding", type=int, default=defaults.outstanding)
    parser.add_argument("--duration", type=float, default=defaults.duration, help="seconds")
    parser.add_argument("--warmup", type=float, default=defaults.warmup, help="seconds")
    parser.add_argument("--procs", type=int, default=defaults.procs, help="worker processes")
    parser.add_argument("--data-size", type=int, default=defaults.data_size, help="bytes")
    parser.add_argument(
        "--mix-write-percent",
        type=int,
        default=defaults.mix_write_percent,
        help="setData share of the mix scenario",
    )
    parser.add_argument("--server-pid", type=int, help="measure this process's CPU use")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback server (this generates heavy load)",
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """The ``python -m benchmarks.loadgen`` command.

    Returns:
        The exit status: 0, or 1 if any run had errors.
    """
    args = _argument_parser().parse_args(argv)
    out = out or sys.stdout
    servers = [parse_server(a) for a in args.server.split(",")]
    for host, _ in servers:
        if not is_loopback(host) and not args.allow_remote:
            print(f"refusing non-loopback server {host} without --allow-remote", file=sys.stderr)
            return 2
    host, port = servers[0]
    status = 0
    for scenario in _unique(args.scenario):
        spec = LoadSpec(
            host=host,
            port=port,
            scenario=scenario,
            sessions=args.sessions,
            outstanding=args.outstanding,
            duration=args.duration,
            warmup=args.warmup,
            procs=args.procs,
            data_size=args.data_size,
            mix_write_percent=args.mix_write_percent,
            more_servers=tuple(f"{h}:{p}" for h, p in servers[1:]),
        )
        try:
            result = run(spec, server_pid=args.server_pid, progress=_stderr)
        except (OSError, RuntimeError, ProtocolError) as exc:  # TimeoutError is an OSError
            print(f"{scenario:<14} failed: {type(exc).__name__}: {exc}", file=out)
            status = 1
            continue
        s = result.spec
        print(
            f"{scenario:<14} {s.sessions}x{s.outstanding} procs={s.procs}  {format_result(result)}",
            file=out,
        )
        if result.error_count:
            status = 1
    return status


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _stderr(line: str) -> None:
    print(f"[loadgen {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
