"""Catching a member up by snapshot: a consistent copy of the leader's applied state.

Theory of operation
-------------------
A member too far behind for the log (the leader compacted the entries it needs, or its
data directory is empty) receives the leader's *applied state* instead, as the store holds
it: every znode record and session record, the applied index, and the log entry at that
index (which the store always keeps, so the term there is known).

Sender (leader): :func:`send_snapshot` takes a point-in-time copy of the store
(``LogStore.copy_to``: a RocksDB checkpoint, hard links, so cheap and consistent while
writes go on), opens the copy with the same backend in a worker thread, and streams its
records over the peer link in frames of about 1 MiB, waiting for the link to drain between
frames (flow control), so neither side holds the whole image twice and the event loop
never stalls on it::

    SNAP_BEGIN  id (u64) | index (u64) | term (u64) | len (u32) | entry at index
    SNAP_CHUNK  id | count (u32) | count x [kind (u8) | len (u32) key | len (u32) value]
    SNAP_END    id | nodes (u64) | sessions (u64)

Receiver: :class:`SnapshotReceiver` reassembles one image per sender and checks the
counts; the driver installs it (``StoreBatch.reset_to``: log and records replaced in one
atomic write) and reloads its state from the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from coord.protocol import ProtocolError

from ._peer import PeerNetwork, frame
from ._storage import LogStore, StoreError

if TYPE_CHECKING:
    from ._server import Server

__all__ = [
    "FRAME_SNAP_BEGIN",
    "FRAME_SNAP_CHUNK",
    "FRAME_SNAP_END",
    "SnapshotImage",
    "SnapshotReceiver",
    "send_snapshot",
]

log = logging.getLogger("coord.replication")

FRAME_SNAP_BEGIN = 4
FRAME_SNAP_CHUNK = 5
FRAME_SNAP_END = 6

_BEGIN = struct.Struct(">QQQI")
_CHUNK = struct.Struct(">QI")
_END = struct.Struct(">QQQ")
_ITEM = struct.Struct(">BI")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_NODE, _SESSION = 1, 2
_CHUNK_BYTES = 1 << 20
_LINK_HIGH_WATER = 8 << 20


@dataclass
class SnapshotImage:
    """A member's applied state as received: enough to replace a store's contents."""

    index: int
    term: int
    entry: bytes
    nodes: dict[str, bytes] = field(default_factory=dict)
    sessions: dict[int, bytes] = field(default_factory=dict)


def _records(store: LogStore) -> Iterator[tuple[int, bytes, bytes]]:
    for path, record in store.iter_nodes():
        yield _NODE, path.encode("utf-8"), record
    for session_id, record in store.iter_sessions():
        yield _SESSION, _I64.pack(session_id), record


def _chunks(store: LogStore) -> Iterator[tuple[int, bytes, int, int]]:
    """``(count, encoded items, nodes, sessions)`` per chunk of about 1 MiB."""
    parts: list[bytes] = []
    size = count = nodes = sessions = 0
    for kind, key, value in _records(store):
        parts.append(_ITEM.pack(kind, len(key)) + key + _U32.pack(len(value)) + value)
        size += len(key) + len(value) + 9
        count += 1
        if kind == _NODE:
            nodes += 1
        else:
            sessions += 1
        if size >= _CHUNK_BYTES:
            yield count, b"".join(parts), nodes, sessions
            parts, size, count, nodes, sessions = [], 0, 0, 0, 0
    if parts:
        yield count, b"".join(parts), nodes, sessions


def _workdir(data_dir: str) -> Path:
    parent = Path(data_dir).resolve().parent
    return Path(tempfile.mkdtemp(prefix="coord-snapshot-", dir=parent))


async def send_snapshot(
    server: Server, network: PeerNetwork, peer: int, snapshot_id: int
) -> tuple[int, int, bytes | None]:
    """Stream a consistent copy of this member's applied state to ``peer``.

    Returns:
        ``(index, term, membership)``: the index the image is applied up to, its term,
        and the membership stored with it (``None``: never changed).

    Raises:
        StoreError: the backend cannot copy itself (the ``memory`` store) or the copy
            failed.
        ConnectionError: the link to ``peer`` broke during the transfer.
    """
    from coord.plugins import storage_backend

    config = server.config
    # Beside the data directory: the checkpoint hard-links its files (same file system).
    workdir = await anyio.to_thread.run_sync(_workdir, config.data_dir)
    copy_dir = workdir / "copy"
    copy: LogStore | None = None
    try:
        await server.store.copy_to(copy_dir)
        backend = storage_backend(server.plugins, config.storage)
        copy_config = dataclasses.replace(config, data_dir=str(copy_dir), members=())
        copy = await anyio.to_thread.run_sync(backend.open, copy_config)
        index = copy.applied_index
        if index < 1 or index < copy.first_index:
            raise StoreError(f"the copy has no applied entry to anchor a snapshot (at {index})")
        entry = copy.read_entries(index, index + 1)[0]
        term = int.from_bytes(entry[:4], "big")
        log.info("sending a snapshot at index %d (term %d) to member %d", index, term, peer)
        generation = network.generation.get(peer)
        header = _BEGIN.pack(snapshot_id, index, term, len(entry)) + entry
        network.send(peer, frame(FRAME_SNAP_BEGIN, header))
        chunks = _chunks(copy)
        nodes = sessions = 0
        while True:
            item: Any = await anyio.to_thread.run_sync(next, chunks, None)
            if item is None:
                break
            count, body, n, s = item
            nodes += n
            sessions += s
            await _when_drained(network, peer, generation)
            network.send(peer, frame(FRAME_SNAP_CHUNK, _CHUNK.pack(snapshot_id, count) + body))
        await _when_drained(network, peer, generation)
        network.send(peer, frame(FRAME_SNAP_END, _END.pack(snapshot_id, nodes, sessions)))
        log.info("snapshot to member %d sent: %d nodes, %d sessions", peer, nodes, sessions)
        return index, term, copy.membership
    finally:
        if copy is not None:
            with contextlib.suppress(StoreError):
                await copy.close()
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(workdir, ignore_errors=True))


async def _when_drained(network: PeerNetwork, peer: int, generation: int | None) -> None:
    while network.queued(peer) > _LINK_HIGH_WATER:  # noqa: ASYNC110 - polls a byte count
        await anyio.sleep(0.005)
    if not network.connected(peer) or network.generation.get(peer) != generation:
        raise ConnectionError(f"the link to member {peer} broke during a snapshot transfer")


class SnapshotReceiver:
    """Reassembles the snapshot a member is being sent (one at a time per sender)."""

    def __init__(self) -> None:
        self._images: dict[int, tuple[int, SnapshotImage]] = {}

    def feed(self, sender: int, kind: int, payload: memoryview) -> SnapshotImage | None:
        """Take one snapshot frame; returns the image when its last frame arrived.

        Raises:
            ProtocolError: a frame is malformed, out of place, or the counts disagree
                (the partial image is dropped).
        """
        try:
            if kind == FRAME_SNAP_BEGIN:
                snapshot_id, index, term, size = _BEGIN.unpack_from(payload, 0)
                entry = bytes(payload[_BEGIN.size : _BEGIN.size + size])
                if len(entry) != size:
                    raise ProtocolError("truncated snapshot header")
                self._images[sender] = (snapshot_id, SnapshotImage(index, term, entry))
                return None
            current = self._images.get(sender)
            if kind == FRAME_SNAP_CHUNK:
                snapshot_id, count = _CHUNK.unpack_from(payload, 0)
                if current is None or current[0] != snapshot_id:
                    raise ProtocolError(f"snapshot chunk of an unknown transfer {snapshot_id}")
                image = current[1]
                offset = _CHUNK.size
                for _ in range(count):
                    item_kind, key_size = _ITEM.unpack_from(payload, offset)
                    offset += _ITEM.size
                    key = bytes(payload[offset : offset + key_size])
                    offset += key_size
                    (value_size,) = _U32.unpack_from(payload, offset)
                    offset += 4
                    value = bytes(payload[offset : offset + value_size])
                    offset += value_size
                    if item_kind == _NODE:
                        image.nodes[key.decode("utf-8")] = value
                    elif item_kind == _SESSION:
                        image.sessions[_I64.unpack(key)[0]] = value
                    else:
                        raise ProtocolError(f"unknown snapshot record kind {item_kind}")
                if offset != len(payload):
                    raise ProtocolError("bytes after the records of a snapshot chunk")
                return None
            if kind == FRAME_SNAP_END:
                snapshot_id, nodes, sessions = _END.unpack_from(payload, 0)
                if current is None or current[0] != snapshot_id:
                    raise ProtocolError(f"end of an unknown snapshot transfer {snapshot_id}")
                del self._images[sender]
                image = current[1]
                if (len(image.nodes), len(image.sessions)) != (nodes, sessions):
                    raise ProtocolError(
                        f"snapshot has {len(image.nodes)} nodes and {len(image.sessions)} "
                        f"sessions, the sender counted {nodes} and {sessions}"
                    )
                return image
            raise ProtocolError(f"not a snapshot frame: {kind}")
        except (struct.error, UnicodeDecodeError) as exc:
            self._images.pop(sender, None)
            raise ProtocolError(f"bad snapshot frame from member {sender}: {exc}") from None
        except ProtocolError:
            self._images.pop(sender, None)
            raise
