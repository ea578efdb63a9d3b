"""Snapshot transfer: a consistent copy of a store's applied state, streamed and installed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import anyio
import pytest

from coord.protocol import ProtocolError
from coord.server import Server, ServerConfig
from coord.server._catchup import (
    FRAME_SNAP_BEGIN,
    FRAME_SNAP_CHUNK,
    FRAME_SNAP_END,
    SnapshotImage,
    SnapshotReceiver,
    send_snapshot,
)
from coord.server._peer import PeerNetwork
from coord.server._storage import StoreBatch

pytestmark = pytest.mark.anyio


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_snapshot_streams_every_record_and_installs_in_a_fresh_store(
    tmp_path: Path,
) -> None:
    leader = Server(ServerConfig(data_dir=str(tmp_path / "leader"), storage="rocksdb"))
    big = b"v" * 3000  # several chunks of about 1 MiB
    nodes = {f"/n/{i:05d}": big + str(i).encode() for i in range(1200)}
    sessions = {i * 7: b"session-%d" % i for i in range(-20, 20)}
    entries = [(i, (5 << 32 | i).to_bytes(8, "big") + b"entry-%d" % i) for i in range(1, 41)]
    await leader.store.write(
        StoreBatch(entries=entries, nodes=nodes, sessions=sessions, applied_index=30)
    )
    addresses = {1: ("127.0.0.1", _free_port()), 2: ("127.0.0.1", _free_port())}
    receiver = SnapshotReceiver()
    images: list[SnapshotImage] = []

    def on_frame(sender: int, kind: int, payload: memoryview) -> None:
        image = receiver.feed(sender, kind, payload)
        if image is not None:
            images.append(image)

    sender_net = PeerNetwork(1, addresses, b"k", lambda *a: None)
    receiver_net = PeerNetwork(2, addresses, b"k", on_frame)
    async with anyio.create_task_group() as tg:
        await tg.start(sender_net.serve)
        await tg.start(receiver_net.serve)
        with anyio.fail_after(5):
            while not sender_net.connected(2):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        index, term, membership = await send_snapshot(leader, sender_net, 2, snapshot_id=77)
        with anyio.fail_after(10):
            while not images:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    await leader.store.close()
    assert (index, term, membership) == (30, 5, None)
    (image,) = images
    assert (image.index, image.term, image.entry) == (30, 5, entries[29][1])
    assert image.nodes == nodes and image.sessions == sessions
    # Installing it replaces whatever the follower had.
    follower = Server(ServerConfig(data_dir=str(tmp_path / "follower"), storage="rocksdb"))
    store = follower.store
    await store.write(StoreBatch(entries=entries[:3], nodes={"/stale": b"x"}, applied_index=2))
    await store.write(
        StoreBatch(
            reset_to=(image.index, image.entry),
            nodes=image.nodes,
            sessions=image.sessions,
            applied_index=image.index,
        )
    )
    assert dict(store.iter_nodes()) == nodes
    assert dict(store.iter_sessions()) == sessions
    assert (store.first_index, store.last_index, store.applied_index) == (30, 30, 30)
    await store.close()
    # No leftovers of the copy beside the data directory.
    assert sorted(os.listdir(tmp_path)) == ["follower", "leader"]


def test_malformed_or_inconsistent_snapshot_frames_are_refused() -> None:
    receiver = SnapshotReceiver()
    with pytest.raises(ProtocolError):
        receiver.feed(1, FRAME_SNAP_CHUNK, memoryview(bytes(12)))  # no transfer begun
    begin = (9).to_bytes(8, "big") + (5).to_bytes(8, "big") + (1).to_bytes(8, "big")
    begin += (3).to_bytes(4, "big") + b"abc"
    assert receiver.feed(1, FRAME_SNAP_BEGIN, memoryview(begin)) is None
    end = (9).to_bytes(8, "big") + (1).to_bytes(8, "big") + (0).to_bytes(8, "big")
    with pytest.raises(ProtocolError, match="counted"):
        receiver.feed(1, FRAME_SNAP_END, memoryview(end))  # claims a node never sent
    with pytest.raises(ProtocolError):
        receiver.feed(1, FRAME_SNAP_BEGIN, memoryview(begin[:10]))
