"""Replication: the driver that runs the consensus core under the server's request path.

Theory of operation
-------------------
A standalone server commits a write by making its entry durable and applying it
(``Server._commit_loop``). In an ensemble the same entries go through the consensus core
(:mod:`._raft`) instead; nothing above ``apply`` changes shape:

* A write arrives on any member and becomes a :class:`~._apply.Entry` carrying a *tag*
  (this member's id in the top byte, then a counter). The leader stamps it with its zxid
  ``(term << 32) | index`` and the time, and proposes it; a follower or observer forwards
  the unstamped entry to the leader (``FRAME_FORWARD``), which stamps and proposes it.
* The driver loop turns the core's :class:`~._raft.Ready` into actions, in the order the
  core requires: persist (one atomic store write holding the new log entries, the hard
  state, and the records changed by what was applied before -- group commit, as
  standalone), send, apply. Everything that arrived during one write is handled in the
  next turn, so batches grow with load.
* Every member applies every committed entry with the same deterministic ``apply``. The
  member whose tag an entry carries finds the pending request by it and replies, so the
  member that holds the client's connection answers it.
* Sessions are global: created and closed through the log. Every member keeps the expiry
  clock of every session, but only the leader acts on it; the others send the ids of
  sessions they heard from (``FRAME_LIVE``) every half tick. A new leader gives every
  session a fresh timeout (as ZooKeeper's new leader does).
* ``sync`` goes through the log as a marker entry: when the member that received it has
  applied it, it has everything committed before the leader ordered it.

Membership changes (the reconfig opcode, ZooKeeper's dynamic reconfiguration):

* The member holding the client's connection checks its authority (a superuser, or WRITE
  granted by ``/zookeeper/config``'s ACL) and passes the request, as an encoded entry
  with a tag, to the leader (``FRAME_RECONFIG``; relayed by any member that is not the
  leader). The leader plans it (:func:`._members.plan_change`: exactly one member added,
  removed, promoted or demoted), checks ``fromConfig`` and that the voters of the new
  configuration connected to it are a majority, and proposes one consensus membership
  change whose context carries the tag, the time and the new members with their
  addresses. A refusal goes back as ``FRAME_RECONFIG_RESULT`` (tag, error code).
* A change is in effect as soon as it is in a member's log (Raft's rule): members then
  open links to the members it adds. When it commits, every member applies it at its
  zxid: ``/zookeeper/config`` gets the new configuration (version: that zxid), stored
  with the applied state (so a restart uses it, not a stale ``members`` list, and a
  snapshot carries it); links to removed members close a little later (the news of
  their removal must reach them); a removed member stops serving clients. The member
  whose tag the change carries replies, like getData, with the new data and Stat.
* Removing or demoting the leader: the leader hands leadership over first and keeps the
  request; once another member leads, it passes the request on. A reconfig's requester
  does not give up when the leader changes (the request may be on its way to the next
  one), only after a few seconds without an outcome (the client sees ConnectionLoss).

Failures, and what the client sees (ZooKeeper's semantics):

* A forwarded write whose fate this member cannot learn -- the leader or its term changed,
  or the link it went out on broke -- closes the client's connection: the client gets
  ConnectionLoss and does not know whether the write happened (ZooKeeper's rule).
* A member that has no leader for two election timeouts closes its client connections and
  refuses new ones, so clients move to members in touch with a majority instead of reading
  stale data indefinitely.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import struct
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel

from coord.protocol import ErrorCode, ProtocolError

from ._apply import (
    ENTRY_CONF_CHANGE,
    ENTRY_CONFIG,
    ENTRY_NOOP,
    ApplyResult,
    Entry,
    Noop,
    Opaque,
    StateMachine,
)
from ._catchup import (
    FRAME_SNAP_BEGIN,
    FRAME_SNAP_CHUNK,
    FRAME_SNAP_END,
    SnapshotImage,
    SnapshotReceiver,
    send_snapshot,
)
from ._members import (
    Member,
    MemberSpecError,
    format_config,
    parse_config,
    parse_members,
    plan_change,
)
from ._peer import (
    FRAME_FORWARD,
    FRAME_LIVE,
    FRAME_RAFT,
    FRAME_RECONFIG,
    FRAME_RECONFIG_RESULT,
    PeerNetwork,
    decode_raft,
    encode_raft,
    frame,
)
from ._raft import (
    NONE,
    ConfChange,
    ConfChangeError,
    ConfChangeType,
    EntryKind,
    LogEntry,
    Membership,
    Message,
    MessageType,
    NotLeaderError,
    Raft,
    RaftConfig,
    Ready,
    Role,
    SnapshotMeta,
    conf_entry_context,
    decode_conf_entry,
)
from ._storage import LogStore, StoreBatch, StoreError

if TYPE_CHECKING:
    from coord.protocol import ReconfigRequest

    from ._config import ServerConfig
    from ._server import Connection, Server, _Proposal, _Slot

__all__ = ["CONFIG_PATH", "Replicator", "StoreLog", "entry_term", "fill_config"]

#: The node holding the ensemble's configuration, in ZooKeeper's format.
CONFIG_PATH = "/zookeeper/config"

log = logging.getLogger("coord.replication")

_TAG = struct.Struct(">Q")
_TAG_OFFSET = 28  # after zxid, time, session id (q q q) and type (i)
_TYPE = struct.Struct(">i")
_STAMP = struct.Struct(">qq")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_TAIL = 8192
#: Inbox pseudo-frame: the link to a peer was (re)established.
_LINK_UP = 0
#: Inbox pseudo-frame: a peer's link to us closed (it may have died).
_LINK_DOWN = -1
_VOTES = frozenset({MessageType.VOTE, MessageType.PRE_VOTE})
#: A reconfig's context in its CONF_CHANGE entry: requester's tag, time, then the new
#: configuration's server lines (ZooKeeper's format, without the version line).
_RECONFIG_CONTEXT = struct.Struct(">Qq")
_RESULT = struct.Struct(">Qi")
_CHANGE_TYPES = {
    "add": ConfChangeType.ADD_VOTER,
    "add-observer": ConfChangeType.ADD_LEARNER,
    "remove": ConfChangeType.REMOVE,
    "promote": ConfChangeType.PROMOTE_LEARNER,
    "demote": ConfChangeType.DEMOTE_VOTER,
}


def fill_config(state: StateMachine, data: bytes) -> None:
    """Give ``/zookeeper/config`` its start-up data if no reconfig ever set it (as
    ZooKeeper fills it from its configuration file at start-up; not logged, not stored)."""
    node = state.nodes.get(CONFIG_PATH)
    if node is not None and not node.data:
        node.data = data


def entry_term(raw: bytes) -> int:
    """The term of an encoded entry (the high half of its zxid)."""
    return int.from_bytes(raw[:4], "big")


def _kind(raw: bytes) -> EntryKind:
    kind = _TYPE.unpack_from(raw, 24)[0]
    if kind == ENTRY_NOOP:
        return EntryKind.NOOP
    if kind == ENTRY_CONF_CHANGE:
        return EntryKind.CONF_CHANGE
    return EntryKind.NORMAL


def log_entry(index: int, raw: bytes) -> LogEntry:
    """The core's view of a stored entry (a membership change: the core's own bytes)."""
    kind = _kind(raw)
    if kind is EntryKind.CONF_CHANGE:
        body = Entry.decode(raw).request
        assert isinstance(body, Opaque)
        return LogEntry(index, entry_term(raw), body.data, kind)
    return LogEntry(index, entry_term(raw), raw, kind)


def encode_noop(index: int, term: int) -> bytes:
    """The stored form of the no-op entry a new leader appends."""
    return Entry((term << 32) | index, 0, 0, ENTRY_NOOP, Noop()).encode()


def stored_form(e: LogEntry) -> bytes:
    """What the store holds for a log entry: every entry is an encoded :class:`Entry`
    (a no-op made by the core has no payload; a membership change wraps the core's)."""
    if e.kind is EntryKind.CONF_CHANGE:
        zxid = (e.term << 32) | e.index
        return Entry(zxid, 0, 0, ENTRY_CONF_CHANGE, Opaque(e.data)).encode()
    if e.data:
        return e.data
    return encode_noop(e.index, e.term)


class StoreLog:
    """The durable log as the consensus core reads it (:class:`~._raft.LogView`).

    The store's first kept entry is an *anchor*: the view starts after it, so the term of
    the entry before the view's first one is always known (compaction drops the entries
    below it, and their terms with them). Terms of every kept entry are held in memory
    (8 bytes each); the most recent entries are cached whole, as followers mostly ask for
    those.
    """

    def __init__(
        self, store: LogStore, terms: Sequence[int], membership: Callable[[], Membership]
    ) -> None:
        self.store = store
        #: The membership as of the store's applied state (the driver keeps it).
        self.membership = membership
        self._base = store.first_index
        self._terms = array("Q", terms)
        self._tail: deque[LogEntry] = deque(maxlen=_TAIL)

    def first_index(self) -> int:
        store = self.store
        if store.first_index > 1:
            return store.first_index + 1
        return 1

    def last_index(self) -> int:
        return self.store.last_index

    def term(self, index: int) -> int:
        if index == 0:
            return 0
        i = index - self._base
        if not 0 <= i < len(self._terms):
            raise IndexError(
                f"no term for entry {index} (log holds {self._base}..{self.last_index()})"
            )
        return self._terms[i]

    def entries(self, lo: int, hi: int) -> list[LogEntry]:
        if lo >= hi:
            return []
        tail = self._tail
        if tail and tail[0].index <= lo and hi - 1 <= tail[-1].index:
            start = lo - tail[0].index
            return [tail[start + k] for k in range(hi - lo)]
        raws = self.store.read_entries(lo, hi)
        return [log_entry(lo + k, raw) for k, raw in enumerate(raws)]

    def appended(self, truncate_from: int | None, entries: Sequence[LogEntry]) -> None:
        """Record what the driver just persisted."""
        if truncate_from is not None:
            del self._terms[max(0, truncate_from - self._base) :]
            while self._tail and self._tail[-1].index >= truncate_from:
                self._tail.pop()
        if not entries:
            return
        first = entries[0].index
        del self._terms[max(0, first - self._base) :]
        while self._tail and self._tail[-1].index >= first:
            self._tail.pop()
        if self._tail and self._tail[-1].index != first - 1:
            self._tail.clear()
        for e in entries:
            self._terms.append(e.term)
            self._tail.append(e if e.data else LogEntry(e.index, e.term, stored_form(e), e.kind))

    def installed(self, meta: SnapshotMeta) -> None:
        """The store's log was replaced by a snapshot's anchor entry."""
        self._base = meta.index
        self._terms = array("Q", [meta.term])
        self._tail.clear()

    def snapshot(self) -> SnapshotMeta:
        """The state this member can ship: the store's applied state."""
        index = self.store.applied_index
        membership = self.membership()
        return SnapshotMeta(index, self.term(index), membership.voters, membership.learners)

    def compacted(self) -> None:
        """Drop the terms of entries the store no longer keeps."""
        drop = self.store.first_index - self._base
        if drop > 4096:
            del self._terms[:drop]
            self._base += drop


def _peer_tls(config: ServerConfig) -> dict[str, Any]:
    """The TLS contexts of the peer links (none unless ``peer_tls``)."""
    if not config.peer_tls:
        return {}
    from ._tls import TlsSettings, client_context, server_context

    settings = dataclasses.replace(TlsSettings.from_config(config), client_auth="need")
    return {"server_ssl": server_context(settings), "client_ssl": client_context(settings)}


class Replicator:
    """Runs the consensus core for a :class:`~._server.Server` that is an ensemble member.

    Args:
        server: the server (its store, state and connections).
        terms: the term of every entry the store keeps, from its first to its last.
    """

    def __init__(self, server: Server, terms: Sequence[int]) -> None:
        config = server.config
        self.server = server
        self.id = config.server_id
        #: The members as configured (the config file's ``members``).
        self.configured: dict[int, Member] = parse_members(config.members)
        #: The members (addresses, roles) of the committed configuration, and its version
        #: (the zxid of the reconfig that made it; 0: the configured members).
        self.members: dict[int, Member] = self.configured
        self.config_version = 0
        self._load_config(startup=True)
        self.me = self.members.get(self.id) or self.configured[self.id]
        self.bootstrap = Membership(
            frozenset(m.id for m in self.configured.values() if m.voter),
            frozenset(m.id for m in self.configured.values() if not m.voter),
        )
        stored = server.store.membership
        #: The membership as of the applied state (stored with it).
        self.applied_membership = self.bootstrap if stored is None else Membership.decode(stored)
        #: Set once this member was removed from the ensemble: it serves no clients.
        self.removed = False
        self._membership_dirty = False
        self.tick_seconds = config.heartbeat_interval / 1000
        self.election_seconds = config.election_timeout / 1000
        self.log = StoreLog(server.store, terms, lambda: self.applied_membership)
        store = server.store
        self.raft = Raft(
            RaftConfig(
                id=self.id,
                voters=self.applied_membership.voters,
                learners=self.applied_membership.learners,
                election_tick=max(2, config.election_timeout // config.heartbeat_interval),
                heartbeat_tick=1,
                seed=random.getrandbits(32),
            ),
            self.log,
            store.hard_state,
            applied=min(store.applied_index, store.last_index),
        )
        self.network = PeerNetwork(
            self.id,
            {m.id: m.peer for m in self.members.values()} | {self.id: self.me.peer},
            config.read_peer_secret(),
            self._on_frame,
            bind_host=self.me.peer[0],
            on_link_up=self._on_link_up,
            on_incoming_down=self._on_incoming_down,
            **_peer_tls(config),
        )
        self.inbox: list[tuple[int, int, memoryview]] = []
        #: Writes of this member's clients not yet applied, by tag.
        self.pending: dict[int, _Proposal] = {}
        #: Writes waiting for a leader to forward them to (in arrival order).
        self.queue: deque[_Proposal] = deque()
        #: Forwarded batches not yet applied: (leader, link generation, tags).
        self.inflight: deque[tuple[int, int, list[int]]] = deque()
        #: Sessions this member heard from since it last told the leader.
        self.live: set[int] = set()
        self._tag = (self.id << 56) | random.getrandbits(48)
        self._seen = (NONE, 0)  # (leader, term) last acted on
        self._leader_contact = time.monotonic()
        self._next_live = 0.0
        #: Set while this member is cut off from any leader (clients are turned away).
        self.cut_off = False
        self.elections = 0
        self.receiver = SnapshotReceiver()
        #: Snapshot images received, by (index, term), until the core names one.
        self.images: dict[tuple[int, int], SnapshotImage] = {}
        self._shipping: set[int] = set()
        self._snapshot_ids = random.getrandbits(32) << 16
        self._tg: anyio.abc.TaskGroup | None = None
        # A member that starts with an empty store may have voted before it lost its data:
        # it casts no vote until two election timeouts have passed (by then any election
        # it took part in is over, and a live leader's heartbeats bind it).
        empty = store.last_index == 0 and store.hard_state.term == 0
        self._no_votes_until = time.monotonic() + 2 * self.election_seconds if empty else 0.0
        #: This member's reconfig requests awaiting their outcome: tag -> (connection,
        #: slot, deadline). A leader change does not fail them (the request may be on
        #: its way to the next leader); the deadline does.
        self.reconfigs: dict[int, tuple[Connection, _Slot, float]] = {}
        #: Encoded reconfig requests (entries) waiting for a leader to handle them, each
        #: with the time after which it is dropped.
        self.deferred: list[tuple[bytes, float]] = []
        #: Peers to unlink once the news of their removal had time to reach them.
        self._unlink_at: dict[int, float] = {}
        # Membership changes in the log beyond the applied state are in effect already
        # (the core replays them): keep links with the members they add.
        applied = min(store.applied_index, store.last_index)
        if applied < store.last_index:
            for e in self.log.entries(applied + 1, store.last_index + 1):
                if e.kind is EntryKind.CONF_CHANGE:
                    self._conf_appended(e)
        if self.id not in self.members:
            self._removed("it is not in the stored configuration")

    # --- state for reports ----------------------------------------------------------------

    @property
    def mode(self) -> str:
        """ZooKeeper's name for this member's role: leader, follower or observer."""
        if self.raft.role is Role.LEADER:
            return "leader"
        if self.id in self.raft.learners or (self.id not in self.raft.voters and not self.me.voter):
            return "observer"
        return "follower"

    # --- configuration ----------------------------------------------------------------------

    def _load_config(self, *, startup: bool = False) -> None:
        """Take the members from ``/zookeeper/config`` if a reconfig set it (it is stored
        with the applied state, so it wins over a stale ``members`` list), else fill the
        node from the configured members."""
        state = self.server.state
        node = state.nodes.get(CONFIG_PATH)
        data = node.data if node is not None else None
        if not data:
            self.members, self.config_version = self.configured, 0
            fill_config(state, format_config(self.configured, 0))
            return
        try:
            members, version = parse_config(data)
        except MemberSpecError as exc:
            log.error("ignoring the stored configuration, which cannot be parsed: %s", exc)
            return
        if not members:
            return
        self.members, self.config_version = members, version
        if startup and members != self.configured:
            log.warning(
                "the stored configuration (version 0x%x: %s) differs from the configured "
                "members (%s); using the stored one",
                version,
                ", ".join(m.spec() for m in sorted(members.values(), key=lambda m: m.id)),
                ", ".join(m.spec() for m in sorted(self.configured.values(), key=lambda m: m.id)),
            )

    def _removed(self, why: str) -> None:
        if self.removed:
            return
        self.removed = True
        self.cut_off = True
        log.warning(
            "member %d was removed from the ensemble (%s): no longer serving clients; "
            "stop this server",
            self.id,
            why,
        )
        for connection in list(getattr(self.server, "connections", ())):
            connection.closing = True
            connection.kick()
        self._fail(list(self.pending), "this member was removed")
        self._fail_queue()

    @property
    def is_leader(self) -> bool:
        return self.raft.role is Role.LEADER

    @property
    def leader(self) -> int:
        return self.raft.leader

    # --- input ----------------------------------------------------------------------------

    def _on_frame(self, sender: int, kind: int, payload: memoryview) -> None:
        self.inbox.append((sender, kind, payload))
        self.server._commit_wakeup.set()

    def _on_link_up(self, peer: int) -> None:
        self.inbox.append((peer, _LINK_UP, memoryview(b"")))
        self.server._commit_wakeup.set()

    def _on_incoming_down(self, peer: int) -> None:
        self.inbox.append((peer, _LINK_DOWN, memoryview(b"")))
        self.server._commit_wakeup.set()

    def touch(self, session_id: int) -> None:
        """A client of this member showed its session is alive."""
        if not self.is_leader:
            self.live.add(session_id)

    def _next_tag(self) -> int:
        self._tag += 1
        return self._tag

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Drive the core until cancelled (the server's commit task in an ensemble)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self._loop()

    async def _loop(self) -> None:
        server = self.server
        raft = self.raft
        tick = self.tick_seconds
        next_tick = time.monotonic() + tick
        while True:
            now = time.monotonic()
            if not (self.inbox or server._proposals or raft.has_ready()) and now < next_tick:
                wakeup = server._commit_wakeup = anyio.Event()
                with anyio.move_on_after(next_tick - now):
                    await wakeup.wait()
                now = time.monotonic()
            if self.inbox:
                inbox, self.inbox = self.inbox, []
                for sender, kind, payload in inbox:
                    self._receive(sender, kind, payload, now)
            if now >= next_tick:
                raft.tick()
                self._on_tick(now)
                next_tick += tick
                if next_tick < now:
                    next_tick = now + tick
            if server._proposals:
                self.queue.extend(server._proposals)
                server._proposals = []
            if self.queue:
                self._route()
            if self.deferred:
                self._route_reconfigs()
            while raft.has_ready():
                rd = raft.ready()
                if rd.snapshot is not None:
                    await self._install(rd.snapshot, rd.membership)
                await self._persist(rd)
                for e in rd.entries:
                    if e.kind is EntryKind.CONF_CHANGE:
                        self._conf_appended(e)
                self._send(rd.messages)
                if rd.committed_entries:
                    self._apply(rd.committed_entries)
                if rd.membership is not None and rd.membership != self.applied_membership:
                    self._log_membership(rd.membership)
                    self.applied_membership = rd.membership
                    self._membership_dirty = True
                raft.advance(rd)
                if rd.soft_state is not None or (raft.leader, raft.term) != self._seen:
                    self._on_leader_change()
            await anyio.lowlevel.checkpoint()

    def _receive(self, sender: int, kind: int, payload: memoryview, now: float) -> None:
        raft = self.raft
        try:
            if kind == FRAME_RAFT:
                m = decode_raft(payload)
                if m.sender != sender:
                    log.warning("dropping a message from %d claiming to be %d", sender, m.sender)
                    return
                if sender == raft.leader or m.term > raft.term:
                    self._leader_contact = now
                if m.type in _VOTES and now < self._no_votes_until:
                    return
                raft.step(m)
                if (raft.leader, raft.term) != self._seen:
                    self._on_leader_change()
            elif kind == _LINK_DOWN:
                if sender == raft.leader and self.network.incoming.get(sender, 0) == 0:
                    # The leader's process is gone (its sockets closed): campaign after a
                    # few ticks instead of a whole election timeout, staggered by id among
                    # the remaining voters so that they do not split the vote.
                    others = sorted(v for v in raft.voters if v != sender)
                    rank = others.index(self.id) if self.id in others else len(others)
                    log.info(
                        "the link from leader %d closed: campaigning soon",
                        sender,
                        extra={"member": self.id, "previous_leader": sender, "term": raft.term},
                    )
                    raft.forget_leader(1 + 3 * rank)
            elif kind == _LINK_UP:
                # The peer may have restarted, perhaps without its data.
                if self.is_leader:
                    raft.reset_progress(sender)
            elif kind == FRAME_FORWARD:
                self._forwarded(sender, payload)
            elif kind == FRAME_RECONFIG:
                self._defer(bytes(payload))
            elif kind == FRAME_RECONFIG_RESULT:
                tag, err = _RESULT.unpack_from(payload, 0)
                self._reconfig_done(tag, err)
            elif kind in (FRAME_SNAP_BEGIN, FRAME_SNAP_CHUNK, FRAME_SNAP_END):
                image = self.receiver.feed(sender, kind, payload)
                if image is not None:
                    log.info(
                        "received a snapshot at index %d from member %d: %d nodes",
                        image.index,
                        sender,
                        len(image.nodes),
                    )
                    self.images = {(image.index, image.term): image}
            elif kind == FRAME_LIVE:
                if self.is_leader:
                    touch = self.server.tracker.touch
                    now_ms = time.time_ns() // 1_000_000
                    (count,) = _U32.unpack_from(payload, 0)
                    for k in range(count):
                        (sid,) = _U64.unpack_from(payload, 4 + 8 * k)
                        touch(sid, now_ms)
            else:
                log.warning("unknown peer frame kind %d from %d", kind, sender)
        except (ProtocolError, struct.error) as exc:
            log.warning("bad frame from peer %d: %s", sender, exc)

    def _forwarded(self, sender: int, payload: memoryview) -> None:
        """Writes a member forwarded: stamp and propose them (leader only)."""
        if not self.is_leader:
            log.debug("dropping writes forwarded by %d: not the leader", sender)
            return
        raws: list[bytes] = []
        offset = 4
        (count,) = _U32.unpack_from(payload, 0)
        for _ in range(count):
            (size,) = _U32.unpack_from(payload, offset)
            offset += 4
            raws.append(bytes(payload[offset : offset + size]))
            offset += size
        self._propose_raw(raws)

    def _propose_raw(self, raws: list[bytes]) -> None:
        raft = self.raft
        high = raft.term << 32
        index = raft.last_index()
        now = time.time_ns() // 1_000_000
        stamped = []
        for raw in raws:
            index += 1
            stamped.append(_STAMP.pack(high | index, now) + raw[16:])
        try:
            raft.propose(stamped)
        except NotLeaderError:
            log.debug("dropping forwarded writes: leadership is being handed over")

    def _route(self) -> None:
        """Propose (leader) or forward (others) queued writes, in order."""
        raft = self.raft
        queue = self.queue
        pending = self.pending
        if self.is_leader:
            high = raft.term << 32
            index = raft.last_index()
            now = time.time_ns() // 1_000_000
            raws = []
            batch: list[_Proposal] = []
            while queue:
                p = queue.popleft()
                index += 1
                # The server's own proposals (expiry, reaping) carry no tag: no one waits
                # for them, and they act on any member's sessions.
                tag = self._next_tag() if p.connection is not None else 0
                entry = p.entry = Entry(
                    high | index, now, p.session_id, p.op, p.request, p.auth, p.body, tag
                )
                if tag:
                    pending[tag] = p
                raws.append(entry.encode())
                batch.append(p)
            try:
                raft.propose(raws)
            except NotLeaderError:  # handing leadership over: keep them for the next leader
                for p in reversed(batch):
                    e = p.entry
                    if e is not None:
                        pending.pop(e.tag, None)
                    queue.appendleft(p)
            return
        leader = raft.leader
        if leader == NONE or not self.network.connected(leader):
            return
        parts = []
        tags = []
        while queue:
            p = queue.popleft()
            tag = self._next_tag() if p.connection is not None else 0
            entry = p.entry = Entry(0, 0, p.session_id, p.op, p.request, p.auth, p.body, tag)
            raw = entry.encode()
            parts.append(_U32.pack(len(raw)))
            parts.append(raw)
            if tag:
                pending[tag] = p
                tags.append(tag)
        self.inflight.append((leader, self.network.generation[leader], tags))
        # Every entry is counted, tagged or not (a member's own close of a session whose
        # client left during the handshake carries no tag).
        count = _U32.pack(len(parts) // 2)
        self.network.send(leader, frame(FRAME_FORWARD, count + b"".join(parts)))

    async def _persist(self, rd: Ready) -> None:
        server = self.server
        batch = server._state_batch()
        if batch.applied_index is not None and self._membership_dirty:
            batch.membership = self.applied_membership.encode()
            self._membership_dirty = False
        if rd.truncate_from is not None:
            batch.truncate_from = rd.truncate_from
        if rd.entries:
            batch.entries = [(e.index, stored_form(e)) for e in rd.entries]
        if rd.hard_state is not None:
            batch.hard_state = rd.hard_state
        if batch:
            sync = bool(rd.entries or rd.hard_state is not None or rd.truncate_from is not None)
            await server._write(batch, sync=sync)
            if batch.compact_before is not None:
                self.log.compacted()
        if rd.entries or rd.truncate_from is not None:
            self.log.appended(rd.truncate_from, rd.entries)

    def _send(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        by_peer: dict[int, list[bytes]] = {}
        for m in messages:
            if m.type is MessageType.SNAPSHOT:
                self._start_shipping(m)
                continue
            by_peer.setdefault(m.to, []).append(frame(FRAME_RAFT, encode_raft(m)))
        send = self.network.send
        for peer, frames in by_peer.items():
            send(peer, b"".join(frames))

    def _apply(self, committed: Sequence[LogEntry]) -> None:
        server = self.server
        state = server.state
        pending = self.pending
        me = self.id
        for le in committed:
            raw = le.data
            if le.kind is EntryKind.CONF_CHANGE:
                self._conf_committed(le)
                continue
            if le.kind is not EntryKind.NORMAL or not raw or _kind(raw) is not EntryKind.NORMAL:
                zxid = le.zxid
                if zxid > state.last_zxid:
                    state.last_zxid = zxid
                continue
            (tag,) = _TAG.unpack_from(raw, _TAG_OFFSET)
            proposal = pending.pop(tag, None) if tag >> 56 == me else None
            entry = proposal.entry if proposal is not None else None
            if entry is None or entry.zxid != le.zxid:
                try:
                    entry = Entry.decode(raw)
                except ProtocolError as exc:
                    raise RuntimeError(
                        f"committed entry {le.index} cannot be decoded: {exc}"
                    ) from None
            if proposal is not None:
                server._apply_entry(entry, proposal.connection, proposal.slot)
                server.latency.add(max(0, time.time_ns() // 1_000_000 - entry.time))
            else:
                server._apply_entry(entry, None, None)
        server._applied_index = committed[-1].index

    # --- snapshots and hand-over -------------------------------------------------------------

    def _start_shipping(self, m: Message) -> None:
        """Stream a snapshot to ``m.to`` (once at a time per peer), then send ``m``."""
        if m.to in self._shipping or self._tg is None:
            return
        self._shipping.add(m.to)
        self._snapshot_ids += 1
        self._tg.start_soon(self._ship, m, self._snapshot_ids)

    async def _ship(self, m: Message, snapshot_id: int) -> None:
        ok = False
        try:
            index, term, stored = await send_snapshot(self.server, self.network, m.to, snapshot_id)
            membership = self.bootstrap if stored is None else Membership.decode(stored)
            meta = SnapshotMeta(index, term, membership.voters, membership.learners)
            self.network.send(
                m.to, frame(FRAME_RAFT, encode_raft(dataclasses.replace(m, snapshot=meta)))
            )
            ok = True
            self.server.metrics.snapshots_sent += 1
        except (StoreError, ConnectionError, OSError) as exc:
            log.warning("snapshot to member %d failed: %s", m.to, exc)
        finally:
            self._shipping.discard(m.to)
            self.raft.report_snapshot(m.to, ok)
            self.server._commit_wakeup.set()

    async def _install(self, meta: SnapshotMeta, membership: Membership | None) -> None:
        """Replace the applied state and the log by the snapshot the core accepted."""
        image = self.images.pop((meta.index, meta.term), None)
        if image is None:
            raise RuntimeError(
                f"the consensus core accepted a snapshot at {meta.index} that was not received"
            )
        self.images.clear()
        server = self.server
        membership = membership or meta.membership
        server.state.touched = set()
        server.state.touched_sessions = set()
        await server._write(
            StoreBatch(
                reset_to=(image.index, image.entry),
                nodes=dict[str, bytes | None](image.nodes),
                sessions=dict[int, bytes | None](image.sessions),
                applied_index=image.index,
                membership=membership.encode(),
            ),
            sync=True,
        )
        self._fail(list(self.pending), "the state was replaced by a snapshot")
        server.reload_state()
        server.metrics.snapshots_installed += 1
        self._load_config()
        self._adopt_config()
        self.log.installed(meta)
        self.applied_membership = membership
        self._membership_dirty = False

    async def hand_over(self) -> None:
        """If leading, hand leadership to the most up-to-date voter and wait (at most two
        election timeouts) until it leads: a graceful shutdown without an election gap."""
        raft = self.raft
        if raft.role is not Role.LEADER:
            return
        others = [v for v in raft.voters if v != self.id]
        if not others:
            return
        best = max(others, key=lambda v: (raft.progress(v) or (0, 0, None))[0])
        log.info(
            "handing leadership over to member %d",
            best,
            extra={"member": self.id, "to": best, "term": raft.term},
        )
        raft.transfer_leader(best)
        self.server._commit_wakeup.set()
        with anyio.move_on_after(2 * self.election_seconds):
            while raft.role is Role.LEADER:  # noqa: ASYNC110 - the core has no event to wait on
                await anyio.sleep(self.tick_seconds)

    # --- time and roles ---------------------------------------------------------------------

    def _on_tick(self, now: float) -> None:
        raft = self.raft
        server = self.server
        # Forwarded writes sent on a link that broke since: their fate is unknown.
        inflight = self.inflight
        while inflight:
            leader, generation, tags = inflight[0]
            if any(t in self.pending for t in tags):
                if self.network.generation.get(leader) != generation or leader != raft.leader:
                    inflight.popleft()
                    self._fail(tags, "the link to the leader broke")
                    continue
                break
            inflight.popleft()
        if raft.role is Role.LEADER:
            self._leader_contact = now
        elif (
            raft.leader == NONE
            and not self.cut_off
            and now - self._leader_contact > 2 * self.election_seconds
        ):
            self.cut_off = True
            log.warning(
                "no leader for %.1f s: closing client connections until one is elected",
                now - self._leader_contact,
                extra={"member": self.id, "term": raft.term},
            )
            for connection in list(server.connections):
                if connection.session_id:
                    connection.closing = True
                    connection.kick()
            self._fail(list(self.pending), "no leader")
            self._fail_queue()
        self._reconfig_tick(now)
        if raft.leader != NONE and self.cut_off and not self.removed:
            self.cut_off = False
            log.info(
                "member %d leads; serving clients again",
                raft.leader,
                extra={"member": self.id, "leader": raft.leader, "term": raft.term},
            )
            for connection in list(server.connections):
                if connection.read_only:  # as ZooKeeper: read-only clients move on
                    connection.closing = True
                    connection.kick()
        if not self.is_leader and self.live and raft.leader != NONE and now >= self._next_live:
            self._next_live = now + server.config.tick_time / 2000
            ids = self.live
            self.live = set()
            payload = _U32.pack(len(ids)) + b"".join(_U64.pack(s) for s in ids)
            self.network.send(raft.leader, frame(FRAME_LIVE, payload))

    def _log_membership(self, new: Membership) -> None:
        """Log a membership change: who joined, who left, the voters and learners."""
        old = self.applied_membership
        before = set(old.voters) | set(old.learners)
        after = set(new.voters) | set(new.learners)
        joined, left = sorted(after - before), sorted(before - after)
        fields = {
            "member": self.id,
            "voters": sorted(new.voters),
            "learners": sorted(new.learners),
            "joined": joined,
            "left": left,
        }
        log.info(
            "membership: voters %s, learners %s%s%s",
            fields["voters"],
            fields["learners"],
            f"; joined {joined}" if joined else "",
            f"; left {left}" if left else "",
            extra=fields,
        )

    def _on_leader_change(self) -> None:
        raft = self.raft
        old_leader, old_term = self._seen
        self._seen = (raft.leader, raft.term)
        server = self.server
        if raft.leader != NONE:
            self._leader_contact = time.monotonic()
        if raft.leader == old_leader and raft.term == old_term:
            return
        server.metrics.leader_changes += 1
        if raft.role is Role.LEADER:
            self.elections += 1
            log.info(
                "member %d leads in term %d",
                self.id,
                raft.term,
                extra={"member": self.id, "leader": self.id, "term": raft.term, "role": "leader"},
            )
            # As ZooKeeper's new leader: every session starts a fresh timeout.
            now_ms = time.time_ns() // 1_000_000
            tracker = server.tracker
            server._closing_sessions.clear()
            for session_id, session in server.state.sessions.items():
                tracker.add(session_id, session.timeout, now_ms)
        elif raft.leader != NONE:
            log.info(
                "member %d follows %d in term %d",
                self.id,
                raft.leader,
                raft.term,
                extra={
                    "member": self.id, "leader": raft.leader, "term": raft.term,
                    "role": "follower" if self.id in raft.voters else "observer",
                },
            )  # fmt: skip
        elif old_leader != NONE:
            log.info(
                "member %d lost leader %d in term %d: an election follows",
                self.id, old_leader, raft.term,
                extra={
                    "member": self.id, "leader": None, "previous_leader": old_leader,
                    "term": raft.term, "role": raft.role.name.lower(),
                },
            )  # fmt: skip
        elif raft.role is Role.CANDIDATE:
            log.info(
                "member %d campaigns in term %d",
                self.id, raft.term,
                extra={"member": self.id, "leader": None, "term": raft.term, "role": "candidate"},
            )  # fmt: skip
        # Writes this member proposed or forwarded under the old leader may be lost.
        keep: list[int] = []
        if raft.role is Role.LEADER:
            # Entries still in the new leader's own log will be committed by it.
            for tag, p in self.pending.items():
                e = p.entry
                if e is not None and e.zxid:
                    index = e.zxid & 0xFFFF_FFFF
                    try:
                        if index <= raft.last_index() and raft.term_at(index) == e.zxid >> 32:
                            keep.append(tag)
                    except IndexError:
                        pass
        lost = [t for t in self.pending if t not in set(keep)]
        if lost:
            self._fail(lost, "the leader changed")
        self.inflight.clear()

    # --- reconfig ---------------------------------------------------------------------------

    @property
    def _reconfig_timeout(self) -> float:
        """How long a member waits for the outcome of a reconfig it passed on."""
        return max(5.0, 8 * self.election_seconds)

    def reconfig(self, connection: Connection, slot: _Slot, request: ReconfigRequest) -> None:
        """A client's reconfig request: check its authority, then hand it to the leader.
        The reply (like getData's: the new configuration and its Stat, or an error) comes
        through ``connection.applied(slot, ...)``.

        As ZooKeeper: a superuser, or an identity that ``/zookeeper/config``'s ACL grants
        WRITE, may reconfigure (the node's default ACL grants everyone READ only)."""
        from coord.protocol import OpCode, Perm

        server = self.server
        node = server.state.nodes.get(CONFIG_PATH)
        acl = node.acl if node is not None else ()
        if not server.acl.allows(acl, Perm.WRITE, connection.auth):  # a superuser passes
            log.info("reconfig from %s refused: not authorized", connection.peer_name)
            connection.applied(slot, server.state.last_zxid, ApplyResult(int(ErrorCode.NO_AUTH)))
            return
        tag = self._next_tag()
        entry = Entry(
            0, 0, connection.session_id, OpCode.RECONFIG, request, connection.auth, None, tag
        )
        self.reconfigs[tag] = (connection, slot, time.monotonic() + self._reconfig_timeout)
        self._defer(entry.encode())
        server._commit_wakeup.set()

    def _defer(self, raw: bytes, until: float | None = None) -> None:
        """Keep a reconfig request until a leader handles it (dropped after the time its
        requester waits: then the requester has told its client the outcome is unknown)."""
        self.deferred.append((raw, until or time.monotonic() + self._reconfig_timeout))

    def _route_reconfigs(self) -> None:
        """Handle waiting reconfig requests (leader) or pass them on to the leader."""
        raft = self.raft
        now = time.monotonic()
        if any(until <= now for _, until in self.deferred):
            self.deferred = [(raw, until) for raw, until in self.deferred if until > now]
        if self.is_leader:
            if raft.transferee != NONE:
                return  # handing leadership over: the next leader handles them
            deferred, self.deferred = self.deferred, []
            for raw, until in deferred:
                self._lead_reconfig(raw, until)
            return
        leader = raft.leader
        if leader == NONE or self.removed or not self.network.connected(leader):
            return
        self.network.send(leader, b"".join(frame(FRAME_RECONFIG, raw) for raw, _ in self.deferred))
        self.deferred = []

    def _reconfig_refused(self, tag: int, err: ErrorCode, why: str) -> None:
        log.info("reconfig refused (%s): %s", err.name, why)
        member = tag >> 56
        if member == self.id:
            self._reconfig_done(tag, int(err))
        else:
            self.network.send(member, frame(FRAME_RECONFIG_RESULT, _RESULT.pack(tag, int(err))))

    def _reconfig_done(self, tag: int, err: int) -> None:
        item = self.reconfigs.pop(tag, None)
        if item is not None:
            connection, slot, _ = item
            connection.applied(slot, self.server.state.last_zxid, ApplyResult(err))

    def _lead_reconfig(self, raw: bytes, until: float) -> None:
        """On the leader: check a reconfig request and propose its membership change.

        The checks, in ZooKeeper's order where it has them: another change not yet
        committed (ReconfigInProgress); a stale ``fromConfig`` (BadVersion); a request
        that cannot be parsed, changes nothing, or changes more than one member
        (BadArguments: coord changes one member at a time, Raft's single-server changes);
        a new configuration whose voters connected to this leader are no majority
        (NewConfigNoQuorum). Removing or demoting the leader itself first hands
        leadership over; the next leader then makes the change."""
        from coord.protocol import ReconfigRequest

        try:
            entry = Entry.decode(raw)
        except ProtocolError as exc:
            log.warning("dropping an undecodable reconfig request: %s", exc)
            return
        request = entry.request
        tag = entry.tag
        if not isinstance(request, ReconfigRequest):
            log.warning("dropping a reconfig entry holding %r", type(request).__name__)
            return
        raft = self.raft
        if raft.pending_conf_index:
            self._reconfig_refused(
                tag,
                ErrorCode.RECONFIG_IN_PROGRESS,
                f"the change at index {raft.pending_conf_index} is not committed yet",
            )
            return
        if raft.term_at(raft.commit) != raft.term:
            self._defer(raw, until)  # just elected: wait for its first commit
            return
        if request.cur_config_id not in (-1, self.config_version):
            self._reconfig_refused(
                tag,
                ErrorCode.BAD_VERSION,
                f"fromConfig 0x{request.cur_config_id:x} is not the current configuration "
                f"0x{self.config_version:x}",
            )
            return
        try:
            target, change = plan_change(
                self.members,
                request.joining_servers or "",
                request.leaving_servers or "",
                request.new_members or "",
            )
        except MemberSpecError as exc:
            self._reconfig_refused(tag, ErrorCode.BAD_ARGUMENTS, str(exc))
            return
        voters = {m.id for m in target.values() if m.voter}
        network = self.network
        # Connected: linked both ways, or (a server to be added) dialling in to be let in.
        connected = {self.id} | {
            p
            for p in voters
            if (network.connected(p) and network.incoming.get(p, 0) > 0)
            or (p not in network.peers and network.knocking(p))
        }
        if len(connected & voters) < len(voters) // 2 + 1:
            self._reconfig_refused(
                tag,
                ErrorCode.NEW_CONFIG_NO_QUORUM,
                f"of the new voters {sorted(voters)} only {sorted(connected & voters)} are "
                "connected to the leader: no majority",
            )
            return
        if change.member == self.id and change.kind in ("remove", "demote"):
            others = [v for v in voters if v != self.id]
            best = max(others, key=lambda v: ((raft.progress(v) or (0, 0, None))[0], -v))
            log.info(
                "reconfig: %s the leader: handing leadership to member %d first",
                change.kind,
                best,
            )
            raft.transfer_leader(best)
            self._defer(raw, until)
            return
        context = (
            _RECONFIG_CONTEXT.pack(tag, time.time_ns() // 1_000_000)
            + format_config(target, 0).rpartition(b"\n")[0]
        )
        try:
            e = raft.propose_conf_change(
                ConfChange(_CHANGE_TYPES[change.kind], change.member), context
            )
        except NotLeaderError:
            self._defer(raw, until)
            return
        except ConfChangeError as exc:
            self._reconfig_refused(tag, ErrorCode.BAD_ARGUMENTS, str(exc))
            return
        log.info("reconfig: %s member %d proposed at index %d", change.kind, change.member, e.index)

    def _conf_appended(self, e: LogEntry) -> None:
        """A membership change reached this member's log (it is in effect): keep links
        with members it adds (those it removes keep theirs until it commits)."""
        members = self._context_members(e)
        if members is None:
            return
        for m in members.values():
            if m.id != self.id and m.id not in self.network.peers:
                self.network.add_peer(m.id, m.peer)
            self._unlink_at.pop(m.id, None)

    def _context_members(self, e: LogEntry) -> dict[int, Member] | None:
        try:
            context = conf_entry_context(e.data)
            if len(context) < _RECONFIG_CONTEXT.size:
                return None
            members, _ = parse_config(context[_RECONFIG_CONTEXT.size :])
        except (ValueError, MemberSpecError) as exc:
            log.error("membership change at index %d has a bad context: %s", e.index, exc)
            return None
        return members

    def _conf_committed(self, le: LogEntry) -> None:
        """A membership change committed: ``/zookeeper/config`` gets the new configuration
        (version: this entry's zxid); its requester, if a client of this member, gets it
        as the reply."""
        server = self.server
        members = self._context_members(le)
        if members is None:
            if le.zxid > server.state.last_zxid:
                server.state.last_zxid = le.zxid
            return
        tag, when = _RECONFIG_CONTEXT.unpack_from(conf_entry_context(le.data), 0)
        entry = Entry(le.zxid, when, 0, ENTRY_CONFIG, Opaque(format_config(members, le.zxid)))
        item = self.reconfigs.pop(tag, None) if tag >> 56 == self.id else None
        if item is not None:
            server._apply_entry(entry, item[0], item[1])
        else:
            server._apply_entry(entry, None, None)
        cc, _ = decode_conf_entry(le.data)
        log.info(
            "configuration 0x%x committed (%s member %d): %s",
            le.zxid,
            cc.type.name.lower(),
            cc.node,
            ", ".join(m.spec() for m in sorted(members.values(), key=lambda m: m.id)),
        )
        self.members, self.config_version = members, le.zxid
        self._adopt_config()

    def _adopt_config(self) -> None:
        """Links follow the committed members; a member that is not one stops serving."""
        members = self.members
        if self.id in members:
            self.me = members[self.id]
            if self.removed:
                # Added again (its links to the members were kept for that).
                self.removed = False
                log.info(
                    "member %d is a member again: serving clients once a leader leads", self.id
                )
        for m in members.values():
            if m.id != self.id and m.id not in self.network.peers:
                self.network.add_peer(m.id, m.peer)
        # Removed peers keep their links a little longer: the news of their removal (the
        # leader's next commit index) must reach them.
        later = time.monotonic() + self.election_seconds
        for peer in self.network.peers - set(members):
            self._unlink_at.setdefault(peer, later)
        if self.id not in members:
            self._removed(f"configuration version 0x{self.config_version:x}")

    def _reconfig_tick(self, now: float) -> None:
        for peer, when in list(self._unlink_at.items()):
            # A leader keeps the link while its core still tells the peer it is out (it
            # may lack the entry removing it); a dead peer is given up on eventually.
            telling = self.is_leader and self.raft.progress(peer) is not None
            if now >= when and (not telling or now >= when + 20 * self.election_seconds):
                del self._unlink_at[peer]
                self.network.remove_peer(peer)
        for tag, (connection, _slot, deadline) in list(self.reconfigs.items()):
            if now >= deadline:
                del self.reconfigs[tag]
                log.info("no outcome for a reconfig request in time: closing its connection")
                connection.closing = True
                connection.kick()

    def _fail(self, tags: list[int], why: str) -> None:
        """Close the connections of writes whose outcome this member cannot learn."""
        closed = 0
        for tag in tags:
            p = self.pending.pop(tag, None)
            if p is None:
                continue
            connection = p.connection
            if connection is not None and not connection.closing:
                connection.closing = True
                connection.kick()
                closed += 1
        if closed:
            log.info("closed %d client connection(s) with writes in flight: %s", closed, why)

    def _fail_queue(self) -> None:
        while self.queue:
            p = self.queue.popleft()
            connection = p.connection
            if connection is not None and not connection.closing:
                connection.closing = True
                connection.kick()

    async def serve_peers(
        self, *, task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen for and dial the other members until cancelled."""
        await self.network.serve(task_status=task_status)
