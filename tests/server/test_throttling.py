"""Request throttling: one client flooding the server does not starve the others.

The server runs in its own process (``coord server``), so the measuring client and the
flooder (another process, pipelining setData as fast as it can) do not share its
interpreter. A victim client measures the latency of its own sequential setData requests,
first on an idle server, then during the flood. With per-connection fair scheduling
(``requests_per_turn``) and a cap on unanswered requests (``max_outstanding_requests``),
the victim's median latency during the flood stays within a bounded multiple of the
idle one; the test asserts that ratio (not a wall-clock time) and prints the numbers,
along with the flooder's throughput, which must stay high (throttling must not simply
stop the flooder).
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coord.protocol import (
    ConnectRequest,
    CreateRequest,
    OpCode,
    RequestHeader,
    SetDataRequest,
    frame,
)
from coord.server._acl import OPEN_ACL_UNSAFE

_FLOODER = r"""
import socket, struct, sys, threading, time
from coord.protocol import ConnectRequest, RequestHeader, SetDataRequest, OpCode, frame
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sock = socket.create_connection((host, port))
sock.sendall(frame(ConnectRequest(0, 0, 30000, 0, bytes(16)).to_bytes()))
def recv_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf
(length,) = struct.unpack(">i", recv_exact(4)); recv_exact(length)
body = SetDataRequest("/flood", b"x" * 64, -1).to_bytes()
one = b"".join(frame(RequestHeader(i, OpCode.SET_DATA).to_bytes() + body) for i in range(1, 201))
replies = 0
stop = time.monotonic() + seconds
def reader():
    global replies
    data = b""
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            data += chunk
            while len(data) >= 4:
                (length,) = struct.unpack_from(">i", data)
                if len(data) < 4 + length:
                    break
                data = data[4 + length:]
                replies += 1
    except OSError:
        return
threading.Thread(target=reader, daemon=True).start()
print("ready", flush=True)
sent = 0
while time.monotonic() < stop:
    sock.sendall(one)
    sent += 200
print(f"sent={sent} replies={replies}", flush=True)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _server_process(tmp_path: Path, *flags: str) -> Iterator[int]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "coord", "server", "--port", str(port), "--storage", "memory",
         "--data-dir", str(tmp_path), "--log-level", "WARNING", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"ruok")
                    if sock.recv(4) == b"imok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"coord server did not start: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _Victim:
    """A raw-socket session that times its own sequential setData requests."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(frame(ConnectRequest(0, 0, 30000, 0, bytes(16)).to_bytes()))
        self._frame()
        self.xid = 0

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("server closed the victim's connection")
            buf += chunk
        return buf

    def _frame(self) -> bytes:
        (length,) = struct.unpack(">i", self._exact(4))
        return self._exact(length)

    def call(self, op: int, body: bytes) -> int:
        self.xid += 1
        self.sock.sendall(frame(RequestHeader(self.xid, op).to_bytes() + body))
        reply = self._frame()
        xid, _, err = struct.unpack_from(">iqi", reply)
        assert xid == self.xid
        return int(err)

    def latencies(self, count: int) -> list[float]:
        body = SetDataRequest("/victim", b"v", -1).to_bytes()
        out = []
        for _ in range(count):
            started = time.perf_counter()
            assert self.call(OpCode.SET_DATA, body) == 0
            out.append(time.perf_counter() - started)
        return out

    def close(self) -> None:
        self.sock.close()


def measure(tmp_path: Path, *flags: str, seconds: float = 3.0) -> dict[str, float]:
    """Victim latency idle and under a flood, and the flooder's throughput."""
    with _server_process(tmp_path, *flags) as port:
        victim = _Victim(port)
        for path in ("/victim", "/flood"):
            request = CreateRequest(path, b"", OPEN_ACL_UNSAFE, 0)
            assert victim.call(OpCode.CREATE, request.to_bytes()) == 0
        victim.latencies(50)  # warm up
        idle = victim.latencies(200)
        flooder = subprocess.Popen(
            [sys.executable, "-c", _FLOODER, "127.0.0.1", str(port), str(seconds)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert flooder.stdout is not None
            assert flooder.stdout.readline().strip() == "ready"
            time.sleep(0.3)  # let the flood build up
            flooded: list[float] = []
            stop = time.monotonic() + seconds - 0.8
            while time.monotonic() < stop and len(flooded) < 2000:
                flooded += victim.latencies(10)
            summary = flooder.stdout.readline().strip()
        finally:
            flooder.kill()
            flooder.wait()
        victim.close()
    replies = int(summary.split("replies=")[1]) if "replies=" in summary else 0
    return {
        "idle_p50_ms": statistics.median(idle) * 1000,
        "flood_p50_ms": statistics.median(flooded) * 1000,
        "flood_p90_ms": statistics.quantiles(flooded, n=10)[-1] * 1000,
        "flood_ratio_p50": statistics.median(flooded) / statistics.median(idle),
        "victim_requests": len(flooded),
        "flooder_replies_per_s": replies / seconds,
    }


def test_Server_flooding_client_does_not_starve_others(tmp_path: Path) -> None:
    """With the default throttling, the victim's median latency under a write flood stays
    within 40x its idle median (measured: ~9x; without throttling ~570x), and the flooder
    still gets thousands of replies a second."""
    numbers = measure(tmp_path)
    print("throttled:", {k: round(v, 2) for k, v in numbers.items()})
    assert numbers["flood_ratio_p50"] < 40, numbers
    assert numbers["flooder_replies_per_s"] > 1000, numbers


@pytest.mark.skipif(not os.environ.get("COORD_MEASURE_UNTHROTTLED"), reason="measurement only")
def test_Server_flood_without_throttling_for_comparison(tmp_path: Path) -> None:
    """Set COORD_MEASURE_UNTHROTTLED=1 to print the same numbers with throttling off."""
    numbers = measure(tmp_path, "--requests-per-turn", "0", "--max-outstanding-requests", "0")
    print("unthrottled:", {k: round(v, 2) for k, v in numbers.items()})


def test_Server_throttled_connection_answers_every_request_in_order() -> None:
    """A pipelined burst far past max_outstanding_requests and requests_per_turn is
    answered completely, in request order, with every write applied."""
    from coord.protocol import GetDataRequest
    from coord.testing._server import CoordServerThread

    with CoordServerThread(max_outstanding_requests=4, requests_per_turn=2) as server:
        victim = _Victim(server.port)
        assert (
            victim.call(OpCode.CREATE, CreateRequest("/n", b"", OPEN_ACL_UNSAFE, 0).to_bytes()) == 0
        )
        burst = bytearray()
        for i in range(1, 601):
            if i % 3:
                body = SetDataRequest("/n", str(i).encode(), -1).to_bytes()
                burst += frame(RequestHeader(1000 + i, OpCode.SET_DATA).to_bytes() + body)
            else:
                body = GetDataRequest("/n", False).to_bytes()
                burst += frame(RequestHeader(1000 + i, OpCode.GET_DATA).to_bytes() + body)
        victim.sock.sendall(burst)
        xids = []
        for i in range(1, 601):
            reply = victim._frame()
            xid, _, err = struct.unpack_from(">iqi", reply)
            assert err == 0
            xids.append(xid)
            if i % 3 == 0:  # the read sees the write just before it
                (length,) = struct.unpack_from(">i", reply, 16)
                assert reply[20 : 20 + length] == str(i - 1).encode()
        assert xids == list(range(1001, 1601))
        assert server.server.state.nodes["/n"].version == 400
        victim.close()
