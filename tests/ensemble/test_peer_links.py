"""Peer links: the consensus message codec and the authenticated handshake."""

from __future__ import annotations

import socket

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coord.protocol import ProtocolError
from coord.server._peer import (
    FRAME_RAFT,
    MAGIC,
    PeerNetwork,
    decode_raft,
    encode_raft,
    frame,
)
from coord.server._raft import EntryKind, LogEntry, Message, MessageType, SnapshotMeta

pytestmark = pytest.mark.anyio

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
entries = st.lists(
    st.builds(
        LogEntry,
        index=u64,
        term=u64,
        data=st.binary(max_size=64),
        kind=st.sampled_from(list(EntryKind)),
    ),
    max_size=5,
)
messages = st.builds(
    Message,
    type=st.sampled_from(list(MessageType)),
    sender=u32,
    to=u32,
    term=u64,
    log_term=u64,
    index=u64,
    entries=entries.map(tuple),
    commit=u64,
    reject=st.booleans(),
    reject_hint=u64,
    snapshot=st.none()
    | st.builds(
        SnapshotMeta,
        index=u64,
        term=u64,
        voters=st.frozensets(u64, max_size=5),
        learners=st.frozensets(u64, max_size=3),
    ),
    context=st.binary(max_size=16),
)


@given(messages)
def test_consensus_messages_round_trip(m: Message) -> None:
    assert decode_raft(encode_raft(m)) == m


@given(messages, st.data())
def test_truncated_or_padded_messages_are_protocol_errors(m: Message, data: st.DataObject) -> None:
    raw = encode_raft(m)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(ProtocolError):
        decode_raft(raw[:cut])
    with pytest.raises(ProtocolError):
        decode_raft(raw + b"\0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_links_carry_frames_between_members_that_share_the_secret() -> None:
    addresses = {1: ("127.0.0.1", _free_port()), 2: ("127.0.0.1", _free_port())}
    got: dict[int, list[tuple[int, int, bytes]]] = {1: [], 2: []}
    nets = {
        i: PeerNetwork(
            i, addresses, b"shared", lambda s, k, p, i=i: got[i].append((s, k, bytes(p)))
        )
        for i in (1, 2)
    }
    async with anyio.create_task_group() as tg:
        for net in nets.values():
            await tg.start(net.serve)
        with anyio.fail_after(5):
            while not (nets[1].connected(2) and nets[2].connected(1)):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        m = Message(MessageType.HEARTBEAT, 1, 2, 7, commit=3)
        nets[1].send(2, frame(FRAME_RAFT, encode_raft(m)))
        nets[2].send(1, frame(9, b"x" * 100_000))
        with anyio.fail_after(5):
            while not (got[1] and got[2]):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert got[2] == [(1, FRAME_RAFT, encode_raft(m))]
    assert got[1] == [(2, 9, b"x" * 100_000)]
    assert nets[1].generation[2] == 1


async def test_a_member_with_the_wrong_secret_cannot_link() -> None:
    addresses = {1: ("127.0.0.1", _free_port()), 2: ("127.0.0.1", _free_port())}
    got: list[object] = []
    good = PeerNetwork(1, addresses, b"right", lambda *a: got.append(a))
    bad = PeerNetwork(2, addresses, b"wrong", lambda *a: got.append(a))
    async with anyio.create_task_group() as tg:
        await tg.start(good.serve)
        await tg.start(bad.serve)
        await anyio.sleep(0.5)
        bad.send(1, frame(FRAME_RAFT, b"forged"))
        good.send(2, frame(FRAME_RAFT, b"leak"))
        await anyio.sleep(0.2)
        tg.cancel_scope.cancel()
    assert not good.connected(2) and not bad.connected(1)
    assert got == []


async def test_a_stranger_cannot_inject_frames() -> None:
    """Without the secret, a raw TCP client gets no further than the handshake."""
    port = _free_port()
    addresses = {1: ("127.0.0.1", port), 2: ("127.0.0.1", _free_port())}
    got: list[object] = []
    net = PeerNetwork(1, addresses, b"secret", lambda *a: got.append(a))
    async with anyio.create_task_group() as tg:
        await tg.start(net.serve)
        # Claims to be member 2, then skips the proof and sends a frame.
        for attempt in (
            MAGIC + (2).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(16) + bytes(32),
            b"GET / HTTP/1.1\r\n\r\n" + b"\0" * 64,
            MAGIC + (9).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(16),
        ):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(attempt + frame(FRAME_RAFT, b"forged"))
                with anyio.fail_after(6):
                    try:
                        while await stream.receive():
                            pass
                    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                        pass
        tg.cancel_scope.cancel()
    assert got == []


async def test_links_inside_mutual_tls_and_a_plain_or_unknown_peer_is_refused(
    tmp_path,
) -> None:
    from coord.server._tls import TlsSettings, client_context, server_context
    from coord.tools._certs import create_dev_pki

    good = create_dev_pki(tmp_path / "pki", hosts=("127.0.0.1",), clients=())
    other = create_dev_pki(tmp_path / "other", hosts=("127.0.0.1",), clients=())

    def contexts(pki) -> dict:
        settings = TlsSettings(cert=str(pki.server.cert), key=str(pki.server.key), ca=str(pki.ca))
        return {"server_ssl": server_context(settings), "client_ssl": client_context(settings)}

    addresses = {i: ("127.0.0.1", _free_port()) for i in (1, 2, 3)}
    got: dict[int, list[tuple[int, int, bytes]]] = {1: [], 2: [], 3: []}
    nets = {
        i: PeerNetwork(
            i,
            addresses,
            b"",
            lambda s, k, p, i=i: got[i].append((s, k, bytes(p))),
            **contexts(good if i != 3 else other),  # member 3's certificate: another CA
        )
        for i in (1, 2, 3)
    }
    async with anyio.create_task_group() as tg:
        for net in nets.values():
            await tg.start(net.serve)
        with anyio.fail_after(5):
            while not (nets[1].connected(2) and nets[2].connected(1)):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        nets[1].send(2, frame(FRAME_RAFT, b"inside tls"))
        # A plain TCP peer that knows the (empty) secret still cannot get in.
        stream = await anyio.connect_tcp("127.0.0.1", addresses[1][1])
        async with stream:
            await stream.send(MAGIC + (2).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(16))
            with anyio.fail_after(6):
                try:
                    while await stream.receive():
                        pass
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    pass
        nets[3].send(1, frame(FRAME_RAFT, b"from a stranger's CA"))
        with anyio.fail_after(5):
            while not got[2]:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    assert got[2] == [(1, FRAME_RAFT, b"inside tls")]
    assert not nets[3].connected(1) and not nets[1].connected(3)
    assert got[1] == [] and got[3] == []
