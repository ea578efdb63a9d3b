"""Helpers for the durability tests: real coord server processes and a lean client.

* :class:`ServerProcess` runs ``python -m coord server`` on a free loopback port with its
  own data directory and log file; :meth:`ServerProcess.wait_ready` polls ``ruok``.
* :class:`LeanClient` speaks :mod:`coord.protocol` over a blocking socket: requests are
  buffered by :meth:`~LeanClient.send` and leave together on :meth:`~LeanClient.flush`, so
  many can be in flight (pipelining); :class:`Pipeline` keeps a window of them in flight
  and remembers which were never answered when the server dies.
* :func:`rewrite_record` changes one value of a stopped server's RocksDB store with
  ``rocksdict`` directly (for the corruption tests), :func:`store_info` describes a store.

Every helper is bounded in time: sockets time out, waits take deadlines.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coord.protocol import (
    ACL,
    PROTOCOL_VERSION,
    CloseSessionRequest,
    ConnectRequest,
    ConnectResponse,
    CreateRequest,
    CreateResponse,
    ExistsRequest,
    ExistsResponse,
    FrameDecoder,
    GetChildren2Request,
    GetChildren2Response,
    GetDataRequest,
    GetDataResponse,
    Id,
    MultiOp,
    MultiRequest,
    OpCode,
    Perm,
    PingRequest,
    Record,
    ReplyHeader,
    RequestHeader,
    Stat,
    frame,
)
from coord.protocol import ErrorCode as Err

__all__ = [
    "OPEN_ACL",
    "LeanClient",
    "NumberedWrites",
    "Pipeline",
    "Reply",
    "ServerGone",
    "ServerProcess",
    "SessionRefused",
    "accepts_connections",
    "flip_byte",
    "free_port",
    "never_serves",
    "rewrite_record",
    "ruok",
    "seed_for",
    "store_info",
    "wait_until",
]

OPEN_ACL = (ACL(Perm.ALL, Id("world", "anyone")),)

#: Seconds any socket operation of the helpers may block.
IO_TIMEOUT = 15.0


def seed_for(name: str) -> int:
    """The seed of a randomized test: ``COORD_DURABILITY_SEED`` if set, else a fresh one.

    The test puts it into its assertion messages and prints it, so a failure can be
    replayed with ``COORD_DURABILITY_SEED=<seed> pytest ...``.
    """
    text = os.environ.get("COORD_DURABILITY_SEED")
    seed = int(text) if text else random.SystemRandom().randrange(1 << 32)
    print(f"{name}: seed={seed} (replay with COORD_DURABILITY_SEED={seed})")
    return seed


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ruok(port: int, timeout: float = 1.0) -> bool:
    """Whether a server on ``port`` answers the four-letter word ``ruok`` with ``imok``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"ruok")
            data = b""
            while len(data) < 4:
                chunk = sock.recv(4 - len(data))
                if not chunk:
                    break
                data += chunk
            return data == b"imok"
    except OSError:
        return False


def accepts_connections(port: int) -> bool:
    """Whether anything accepts a TCP connection on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until it is true; returns the time it took. Fails after
    ``timeout`` seconds with an AssertionError naming ``what``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


# --- server processes ---------------------------------------------------------------------


class ServerExited(AssertionError):
    """The server process exited while the test expected it to serve."""


class ServerProcess:
    """One ``coord server`` process on 127.0.0.1; use as a context manager (kills on exit).

    Args:
        data_dir: the server's ``--data-dir``.
        log_path: where its stdout and stderr go (a file, so it never blocks on a pipe).
        port: the client port (a free one when None).
        env: extra environment variables (e.g. ``COORD_FAILPOINTS``, ``LD_PRELOAD``).
        args: extra command-line arguments.
        tick_time: ``--tick-time`` in ms (sessions: 2x to 20x it).
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: Iterable[str] = (),
        tick_time: int = 100,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.port = port if port is not None else free_port()
        self.env = dict(env or {})
        self.args = list(args)
        self.tick_time = tick_time
        self.process: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0
        self.ready_at = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "coord",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--storage",
            "rocksdb",
            "--tick-time",
            str(self.tick_time),
            "--four-letter-words",
            "*",
            "--max-client-connections",
            "0",
            *self.args,
        ]

    def start(self) -> ServerProcess:
        """Spawn the process (does not wait for it to serve)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
        env.update(self.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.log_path.parent,
            )
        self.spawned_at = time.monotonic()
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> ServerProcess:
        """Wait until the server answers ``ruok`` and has logged that it serves on its
        port (so a foreign process that took the port is never mistaken for it).

        Raises:
            ServerExited: the process exited first (the message holds its output).
            AssertionError: it did not answer within ``timeout`` seconds.
        """
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServerExited(
                    f"server exited with status {self.process.returncode} before serving; "
                    f"output:\n{self.output()}"
                )
            if ruok(self.port, timeout=0.5) and self.serving_line in self.output():
                self.ready_at = time.monotonic()
                return self
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"server did not answer ruok within {timeout} s; output:\n{self.output()}"
                )
            time.sleep(0.01)

    @property
    def serving_line(self) -> str:
        return f"coord serving on 127.0.0.1:{self.port}"

    def kill(self) -> int:
        """SIGKILL the process (if running) and reap it; returns its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=30)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful drain) and wait; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit by itself; returns its exit status."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"server still running after {timeout} s; output:\n{self.output()}"
            ) from None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


def never_serves(server: ServerProcess, timeout: float = 30.0) -> int:
    """Wait for a server that must refuse to start; fail if it ever accepts a connection.

    Returns:
        Its exit status.
    """
    assert server.process is not None
    deadline = time.monotonic() + timeout
    accepted = False
    while server.process.poll() is None:
        accepted = accepted or accepts_connections(server.port)
        if "coord serving on" in server.output():
            server.kill()
            raise AssertionError(f"the server serves; it must refuse:\n{server.output()}")
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError(f"server still running after {timeout} s:\n{server.output()}")
        time.sleep(0.01)
    output = server.output()
    assert "coord serving on" not in output, f"the server served; it must refuse:\n{output}"
    # A connection accepted while it ran was its own unless the port is still taken.
    assert not accepted or accepts_connections(server.port), (
        f"the server accepted a connection on port {server.port}; it must refuse to start. "
        f"Output:\n{output}"
    )
    return server.process.returncode


# --- the lean client ----------------------------------------------------------------------


class ServerGone(Exception):
    """The connection was closed or reset: the server died (or closed it)."""


class SessionRefused(Exception):
    """The server answered the handshake with timeout 0 (unknown or expired session)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply: header fields and the raw body."""

    xid: int
    zxid: int
    err: int
    body: bytes


_RESPONSES = {
    OpCode.CREATE: CreateResponse,
    OpCode.GET_DATA: GetDataResponse,
    OpCode.EXISTS: ExistsResponse,
    OpCode.GET_CHILDREN2: GetChildren2Response,
}


class LeanClient:
    """A minimal ZooKeeper-protocol client over a blocking socket (see module docs).

    Watch notifications (xid -1) are skipped; the helpers never set watches.
    """

    def __init__(self, sock: socket.socket, response: ConnectResponse) -> None:
        self.sock = sock
        self.session_id = response.session_id
        self.passwd = response.passwd
        self.timeout_ms = response.time_out
        self.last_zxid = 0
        self._decoder = FrameDecoder(64 << 20)
        self._out = bytearray()
        self._xid = 0

    @classmethod
    def connect(
        cls,
        port: int,
        *,
        timeout_ms: int = 10_000,
        session_id: int = 0,
        passwd: bytes = bytes(16),
        last_zxid: int = 0,
    ) -> LeanClient:
        """Connect and complete the handshake (a new session unless ``session_id``).

        Raises:
            ServerGone: the connection failed or was closed during the handshake.
            SessionRefused: the server refused to (re)attach the session.
        """
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        except OSError as exc:
            raise ServerGone(f"cannot connect to port {port}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            request = ConnectRequest(PROTOCOL_VERSION, last_zxid, timeout_ms, session_id, passwd)
            sock.sendall(frame(request.to_bytes()))
            decoder = FrameDecoder()
            payload = None
            while payload is None:
                data = sock.recv(65536)
                if not data:
                    raise ServerGone("connection closed during the handshake")
                decoder.receive_data(data)
                payload = decoder.next_frame()
        except (ConnectionError, OSError) as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise
            raise ServerGone(f"handshake failed: {exc}") from None
        except ServerGone:
            sock.close()
            raise
        response = ConnectResponse.from_bytes(payload)
        if response.time_out <= 0:
            sock.close()
            raise SessionRefused(f"session 0x{session_id:x} refused")
        client = cls(sock, response)
        client._decoder.receive_data(decoder.peek(decoder.buffered))
        client.last_zxid = last_zxid
        return client

    # --- raw requests ---------------------------------------------------------------

    def send(self, op: int, record: Record) -> int:
        """Buffer a request; returns its xid. Nothing leaves until :meth:`flush`."""
        self._xid += 1
        xid = self._xid
        self._out += frame(RequestHeader(xid, op).to_bytes() + record.to_bytes())
        return xid

    def flush(self) -> None:
        """Send every buffered request.

        Raises:
            ServerGone: the connection is broken.
        """
        if not self._out:
            return
        data, self._out = bytes(self._out), bytearray()
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            raise ServerGone(str(exc)) from None

    def recv(self) -> Reply:
        """The next reply (notifications are skipped).

        Raises:
            ServerGone: the connection was closed or reset before a whole reply arrived.
        """
        while True:
            payload = self._decoder.next_frame()
            if payload is None:
                try:
                    data = self.sock.recv(1 << 20)
                except (ConnectionResetError, ConnectionAbortedError) as exc:
                    raise ServerGone(str(exc)) from None
                if not data:
                    raise ServerGone("connection closed")
                self._decoder.receive_data(data)
                continue
            header = ReplyHeader.from_bytes(payload[:16])
            if header.xid == -1:
                continue
            if header.zxid > 0:
                self.last_zxid = max(self.last_zxid, header.zxid)
            return Reply(header.xid, header.zxid, header.err, payload[16:])

    def call(self, op: int, record: Record) -> Reply:
        """Send one request and wait for its reply (nothing else may be in flight)."""
        xid = self.send(op, record)
        self.flush()
        reply = self.recv()
        assert reply.xid == xid, f"reply xid {reply.xid}, expected {xid}"
        return reply

    # --- conveniences ---------------------------------------------------------------

    def create(self, path: str, data: bytes = b"", flags: int = 0) -> str:
        """Create a node; returns its path. Raises AssertionError on an error reply."""
        reply = self.call(OpCode.CREATE, CreateRequest(path, data, OPEN_ACL, flags))
        assert reply.err == 0, f"create {path}: error {Err(reply.err).name}"
        return CreateResponse.from_bytes(reply.body).path

    def get_data(self, path: str) -> tuple[bytes | None, Stat] | None:
        """``(data, stat)``, or None if the node does not exist."""
        reply = self.call(OpCode.GET_DATA, GetDataRequest(path, False))
        if reply.err == Err.NO_NODE:
            return None
        assert reply.err == 0, f"getData {path}: error {Err(reply.err).name}"
        response = GetDataResponse.from_bytes(reply.body)
        return response.data, response.stat

    def exists(self, path: str) -> Stat | None:
        reply = self.call(OpCode.EXISTS, ExistsRequest(path, False))
        if reply.err == Err.NO_NODE:
            return None
        assert reply.err == 0, f"exists {path}: error {Err(reply.err).name}"
        return ExistsResponse.from_bytes(reply.body).stat

    def children(self, path: str) -> tuple[list[str], Stat]:
        """The children's names and the node's Stat."""
        reply = self.call(OpCode.GET_CHILDREN2, GetChildren2Request(path, False))
        assert reply.err == 0, f"getChildren2 {path}: error {Err(reply.err).name}"
        response = GetChildren2Response.from_bytes(reply.body)
        return list(response.children), response.stat

    def get_many(self, paths: Iterable[str]) -> dict[str, tuple[bytes | None, Stat] | None]:
        """getData of many paths, pipelined."""
        xids = {self.send(OpCode.GET_DATA, GetDataRequest(path, False)): path for path in paths}
        self.flush()
        out: dict[str, tuple[bytes | None, Stat] | None] = {}
        for _ in range(len(xids)):
            reply = self.recv()
            path = xids[reply.xid]
            if reply.err == Err.NO_NODE:
                out[path] = None
            else:
                assert reply.err == 0, f"getData {path}: error {Err(reply.err).name}"
                response = GetDataResponse.from_bytes(reply.body)
                out[path] = (response.data, response.stat)
        return out

    def ping(self) -> None:
        self._out += frame(RequestHeader(-2, OpCode.PING).to_bytes() + PingRequest().to_bytes())
        self.flush()
        reply = self.recv()
        assert reply.xid == -2, f"expected a ping reply, got xid {reply.xid}"

    def close_session(self) -> None:
        """Close the session (its ephemerals go) and the socket."""
        try:
            reply = self.call(OpCode.CLOSE_SESSION, CloseSessionRequest())
            assert reply.err == 0
        finally:
            self.close()

    def close(self) -> None:
        """Close the socket only: the session lives on until it expires."""
        self.sock.close()

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Pipeline:
    """Keeps up to ``window`` requests of one client in flight.

    ``in_flight`` holds ``(xid, tag)`` of the requests sent but not answered; after a
    :class:`ServerGone` those are exactly the writes whose fate the client does not know.
    """

    def __init__(self, client: LeanClient, window: int) -> None:
        self.client = client
        self.window = window
        self.in_flight: deque[tuple[int, Any]] = deque()

    def run(
        self,
        requests: Iterable[tuple[int, Record, Any]],
        on_reply: Callable[[Any, Reply], None],
        on_send: Callable[[Any], None] | None = None,
    ) -> None:
        """Send ``(op, record, tag)`` requests, calling ``on_reply(tag, reply)`` in order.

        Returns once every request is answered.

        Raises:
            ServerGone: the connection ended; ``in_flight`` holds the unanswered ones.
        """
        client = self.client
        in_flight = self.in_flight
        it: Iterator[tuple[int, Record, Any]] = iter(requests)
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < self.window:
                try:
                    op, record, tag = next(it)
                except StopIteration:
                    exhausted = True
                    break
                xid = client.send(op, record)
                if on_send is not None:
                    on_send(tag)
                in_flight.append((xid, tag))
            client.flush()
            if not in_flight:
                return
            reply = client.recv()
            xid, tag = in_flight[0]
            assert reply.xid == xid, f"reply to xid {reply.xid} while {xid} is the oldest"
            in_flight.popleft()
            on_reply(tag, reply)


# --- the store on disk ------------------------------------------------------------------


def store_info(data_dir: Path) -> dict[str, Any]:
    """The store's indexes and counts (read-only open; the server must not run)."""
    from coord.plugins.builtin.rocksdb_store import inspect

    return inspect(data_dir)


def rewrite_record(
    data_dir: Path,
    family: str,
    key: bytes,
    change: Callable[[bytes], bytes],
    *,
    reseal: bool = False,
) -> tuple[bytes, bytes]:
    """Overwrite one value of a stopped server's store, keeping its key.

    Opens ``DATA_DIR/rocksdb`` with ``rocksdict`` directly (raw mode, every column family)
    and replaces the value of ``key`` in ``family`` by ``change(value)``. With ``reseal``
    the change applies to the payload and the 4-byte CRC-32 in front of it is recomputed
    as the store computes it (family name, key, payload), so only a decoder can notice.

    Returns:
        The old and the new value.
    """
    from rocksdict import Options, Rdict

    db_path = str(Path(data_dir) / "rocksdb")
    raw = Options(raw_mode=True)
    families = {
        name: Options(raw_mode=True) for name in Rdict.list_cf(db_path, raw) if name != "default"
    }
    db = Rdict(db_path, Options(raw_mode=True), column_families=families)
    cf = db.get_column_family(family)
    try:
        old = cf[key]
        assert isinstance(old, bytes), f"no {family} record {key!r}"
        if reseal:
            payload = change(old[4:])
            crc = zlib.crc32(payload, zlib.crc32(key, zlib.crc32(family.encode())))
            new = crc.to_bytes(4, "big") + payload
        else:
            new = change(old)
        assert new != old, "the change must alter the value"
        cf[key] = new
        db.flush()
    finally:
        cf.close()
        del cf
        db.close()
        del db
    return old, new


def flip_byte(offset: int) -> Callable[[bytes], bytes]:
    """A change for :func:`rewrite_record`: invert every bit of the byte at ``offset``
    (negative offsets count from the end)."""

    def change(value: bytes) -> bytes:
        data = bytearray(value)
        data[offset] ^= 0xFF
        return bytes(data)

    return change


# --- a numbered write workload ------------------------------------------------------------


class NumberedWrites:
    """Writes numbered 0, 1, 2, ... by one session, and the check of what survived.

    Write ``j`` creates ``/w/a<j>`` holding ``data(j)``; every fifth is a multi that also
    creates ``/w/b<j>``. After a crash the writes present must be a prefix of those sent
    (one session's writes are applied in order), contain every acknowledged one, carry
    their data intact, and no multi may be there in part.

    Args:
        value_size: a function of ``j`` giving the data's size in bytes.
    """

    def __init__(self, value_size: Callable[[int], int] = lambda j: 16) -> None:
        self.value_size = value_size
        self.sent = 0
        self.acked: list[int] = []
        self.max_zxid = 0

    def data(self, j: int) -> bytes:
        head = f"{j}:".encode()
        return head + bytes([65 + j % 26]) * max(0, self.value_size(j) - len(head))

    @staticmethod
    def is_multi(j: int) -> bool:
        return j % 5 == 4

    def request(self, j: int) -> tuple[int, Record]:
        create = CreateRequest(f"/w/a{j:06d}", self.data(j), OPEN_ACL, 0)
        if not self.is_multi(j):
            return OpCode.CREATE, create
        other = CreateRequest(f"/w/b{j:06d}", b"b", OPEN_ACL, 0)
        return OpCode.MULTI, MultiRequest(
            (MultiOp(OpCode.CREATE, create), MultiOp(OpCode.CREATE, other))
        )

    def requests(self, count: int) -> Iterator[tuple[int, Record, int]]:
        """The next ``count`` writes, for :meth:`Pipeline.run` (tag: ``j``)."""
        for _ in range(count):
            j = self.sent
            self.sent += 1
            op, record = self.request(j)
            yield op, record, j

    def on_reply(self, j: int, reply: Reply) -> None:
        assert reply.err == 0, f"write {j} failed: {Err(reply.err).name}"
        assert reply.zxid > self.max_zxid, f"write {j}: zxid 0x{reply.zxid:x} not increasing"
        self.max_zxid = reply.zxid
        self.acked.append(j)

    def setup(self, client: LeanClient) -> None:
        client.create("/w")

    def check(self, client: LeanClient, context: str) -> int:
        """Check what survived (see class docs); returns how many writes are there."""
        paths = [f"/w/a{j:06d}" for j in range(self.sent)]
        paths += [f"/w/b{j:06d}" for j in range(self.sent) if self.is_multi(j)]
        got = client.get_many(paths)
        present = []
        for j in range(self.sent):
            node = got[f"/w/a{j:06d}"]
            if self.is_multi(j):
                other = got[f"/w/b{j:06d}"] is not None
                assert (node is not None) == other, (
                    f"{context} multi {j} is there in part: a={node is not None} b={other}"
                )
            if node is not None:
                assert node[0] == self.data(j), f"{context} write {j} has wrong data"
            present.append(node is not None)
        count = sum(present)
        assert present == [True] * count + [False] * (self.sent - count), (
            f"{context} the writes there are not a prefix of those sent: missing "
            f"{[j for j in range(count) if not present[j]][:10]}, present "
            f"{[j for j in range(count, self.sent) if present[j]][:10]}"
        )
        lost = [j for j in self.acked if j >= count]
        assert not lost, f"{context} acknowledged writes lost: {lost[:10]} (there: 0..{count - 1})"
        return count
