"""A damaged store is refused at start-up, never served.

The rule under test (``coord/server/_storage.py``, ``rocksdb_store.py``): every record
read back is checked (a CRC-32 over family, key and payload, then decoding), and a server
whose store is damaged refuses to start with a message saying what is damaged, instead of
serving a tree that is not the one its clients were acknowledged.

A pristine store is made once: a server writes nodes and leaves a session, is stopped
gracefully, then one more log entry (a create of ``/replayed``) is appended after the
applied index with the store API -- what a crash between the log write and the apply
leaves (``after-log-write``). Each test copies it, overwrites one value with ``rocksdict``
directly (same key, same column family), starts a server, and checks it never serves.
"""

from __future__ import annotations

import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from durability_support import (
    OPEN_ACL,
    LeanClient,
    ServerProcess,
    flip_byte,
    never_serves,
    rewrite_record,
    store_info,
)

from coord.protocol import CreateMode, CreateRequest, Id, OpCode

_U64 = struct.Struct(">Q")


async def _append_unapplied_entry(data_dir: Path, session_id: int) -> None:
    from coord.plugins.builtin.rocksdb_store import RocksDBStore
    from coord.server._apply import Entry
    from coord.server._storage import StoreBatch

    store = RocksDBStore.open(data_dir, threaded_writes=False)
    try:
        index = store.last_index + 1
        zxid = (store.hard_state.term << 32) | index
        request = CreateRequest("/replayed", b"from the log", OPEN_ACL, 0)
        now = time.time_ns() // 1_000_000
        entry = Entry(zxid, now, session_id, OpCode.CREATE, request, (Id("ip", "127.0.0.1"),))
        await store.write(StoreBatch(entries=[(index, entry.encode())]))
    finally:
        await store.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A stopped server's store with nodes, a session, and one entry after the applied
    index; returns its directory, metadata and the session's id."""
    base = tmp_path_factory.mktemp("pristine")
    data_dir = base / "data"
    with ServerProcess(data_dir, base / "server.log") as server:
        server.wait_ready()
        with LeanClient.connect(server.port) as client:
            client.create("/a", b"hello")
            client.create("/a/b", b"child")
            for _ in range(30):
                client.create("/a/s-", b"", CreateMode.PERSISTENT_SEQUENTIAL)
            owner = LeanClient.connect(server.port, timeout_ms=20_000)
            owner.create("/eph", b"", CreateMode.EPHEMERAL)
            owner.close()  # the session stays (until it expires): a session record
        assert server.terminate() == 0, server.output()
    anyio.run(_append_unapplied_entry, data_dir, owner.session_id)
    info = store_info(data_dir)
    assert info["last_index"] == info["applied_index"] + 1, info
    assert info["first_index"] < info["applied_index"], info
    return {"dir": data_dir, "info": info, "session": owner.session_id}


def _copy(pristine: dict[str, Any], tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    shutil.copytree(pristine["dir"], data_dir)
    return data_dir


def test_pristine_store_starts_and_replays_the_unapplied_entry(
    pristine: dict[str, Any], tmp_path: Path
) -> None:
    """The control: undamaged, the copy starts and the appended entry is replayed."""
    data_dir = _copy(pristine, tmp_path)
    with ServerProcess(data_dir, tmp_path / "server.log") as server:
        server.wait_ready()
        with LeanClient.connect(server.port) as client:
            got = client.get_data("/replayed")
            assert got is not None and got[0] == b"from the log", got
            assert client.get_data("/a") is not None
            stat = client.exists("/eph")
            assert stat is not None and stat.ephemeral_owner == pristine["session"]
        assert server.terminate() == 0, server.output()


def _log_key(which: str) -> Callable[[dict[str, Any]], bytes]:
    def key(p: dict[str, Any]) -> bytes:
        info = p["info"]
        index = {
            "after": info["last_index"],
            "at": info["applied_index"],
            "first": info["first_index"],
        }[which]
        return _U64.pack(index)

    return key


def _log_name(which: str) -> Callable[[dict[str, Any]], str]:
    def name(p: dict[str, Any]) -> str:
        return f"log entry {_U64.unpack(_log_key(which)(p))[0]}"

    return name


def _wreck_entry_type(payload: bytes) -> bytes:
    data = bytearray(payload)
    data[24:28] = (12345).to_bytes(4, "big")  # the entry's op type: no such opcode
    return bytes(data)


def _wreck_node_version(payload: bytes) -> bytes:
    return b"\x09" + payload[1:]  # the record format byte: no such version


# (id, family, key(pristine), change, reseal, what the message must name)
CASES = [
    ("node-checksum", "nodes", lambda p: b"/a", flip_byte(-3), False, lambda p: "node record /a"),
    (
        "node-undecodable",
        "nodes",
        lambda p: b"/a/b",
        _wreck_node_version,
        True,
        lambda p: "node record /a/b",
    ),
    (
        "session-checksum",
        "sessions",
        lambda p: struct.pack(">q", p["session"]),
        flip_byte(5),
        False,
        lambda p: f"session record {p['session']:#x}",
    ),
    (
        "meta-applied-index",
        "meta",
        lambda p: b"applied_index",
        flip_byte(-1),
        False,
        lambda p: "applied_index",
    ),
    (
        "log-after-applied-checksum",
        "log",
        _log_key("after"),
        flip_byte(-2),
        False,
        _log_name("after"),
    ),
    (
        "log-after-applied-undecodable",
        "log",
        _log_key("after"),
        _wreck_entry_type,
        True,
        _log_name("after"),
    ),
    ("log-at-applied-checksum", "log", _log_key("at"), flip_byte(10), False, _log_name("at")),
    (
        "log-retained-before-applied-checksum",
        "log",
        _log_key("first"),
        flip_byte(-1),
        False,
        _log_name("first"),
    ),
]


@pytest.mark.parametrize(
    ("family", "key", "change", "reseal", "names"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_Server_refuses_to_start_on_a_damaged_record(
    pristine: dict[str, Any],
    tmp_path: Path,
    family: str,
    key: Any,
    change: Any,
    reseal: bool,
    names: Any,
) -> None:
    data_dir = _copy(pristine, tmp_path)
    rewrite_record(data_dir, family, key(pristine), change, reseal=reseal)
    server = ServerProcess(data_dir, tmp_path / "server.log").start()
    try:
        status = never_serves(server)
    finally:
        server.kill()
    output = server.output()
    what = names(pristine)
    assert status not in (0, -9), f"exit status {status}:\n{output}"
    assert what in output, f"the message does not say that {what} is damaged:\n{output}"
    assert "corrupted" in output or "damaged" in output, output
    assert "Traceback" not in output, output
