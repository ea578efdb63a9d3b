"""Graceful shutdown: the first SIGTERM drains, answering every accepted request."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from coord.protocol import (
    ACL,
    ConnectRequest,
    ConnectResponse,
    CreateRequest,
    Id,
    OpCode,
    Perm,
    ReplyHeader,
    RequestHeader,
    frame,
)

OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def _recv_frame(sock: socket.socket) -> bytes:
    length = int.from_bytes(_recv_exact(sock, 4), "big", signed=True)
    return _recv_exact(sock, length)


def _received(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"srvr")
        text = b""
        while chunk := sock.recv(4096):
            text += chunk
    for line in text.decode().splitlines():
        if line.startswith("Received: "):
            return int(line.split()[1])
    raise AssertionError(f"no Received line in {text!r}")


def test_Server_sigterm_answers_accepted_writes_then_exits(tmp_path):
    """Writes accepted before SIGTERM are all answered, in order; the process exits 0."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "coord", "server", "--port", str(port), "--storage", "memory"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        with sock:
            sock.sendall(frame(ConnectRequest(0, 0, 4000, 0, bytes(16)).to_bytes()))
            ConnectResponse.from_bytes(_recv_frame(sock))
            burst = b"".join(
                frame(
                    RequestHeader(xid, OpCode.CREATE).to_bytes()
                    + CreateRequest(f"/n{xid}", b"x", OPEN, 0).to_bytes()
                )
                for xid in range(1, 201)
            )
            sock.sendall(burst)
            # Once srvr counts 200 requests received, the server has read (accepted) the
            # burst -- not necessarily answered it (requests_per_turn spreads the work).
            deadline = time.monotonic() + 20
            while _received(port) < 200:
                assert time.monotonic() < deadline, "the server never read the burst"
                time.sleep(0.01)
            os.kill(process.pid, signal.SIGTERM)
            xids = []
            while True:
                try:
                    header = ReplyHeader.from_bytes(_recv_frame(sock)[:16])
                except EOFError:
                    break
                assert header.err == 0
                xids.append(header.xid)
            # Every accepted request was answered, in order, before the server closed.
            assert xids == list(range(1, 201))
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
