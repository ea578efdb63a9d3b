"""The consensus core: a sans-IO Raft state machine (pre-vote, check-quorum, learners,
snapshots, ReadIndex, membership changes, leadership transfer).

Theory of operation
-------------------
One :class:`Raft` per server. It never touches a socket, a clock, a disk or a random
source (DESIGN.md decision 7, CONVENTIONS.md 2). The driver feeds it inputs and drains one
kind of output, in the shape of etcd-io/raft's ``RawNode``:

* :meth:`Raft.tick` -- one logical clock tick (the driver decides how long a tick is);
* :meth:`Raft.step` -- one :class:`Message` received from a peer;
* :meth:`Raft.propose` -- client payloads, on the leader only; the core stamps each with
  its index and the current term, so ``zxid = (term << 32) | index``;
* :meth:`Raft.propose_conf_change`, :meth:`Raft.transfer_leader`, :meth:`Raft.read_index`
  -- membership changes, leadership transfer and linearizable reads (below);
* :meth:`Raft.report_snapshot`, :meth:`Raft.report_unreachable` -- the driver's news about
  its own transport (a snapshot stream finished or failed; a peer could not be reached);
* :meth:`Raft.ready` -> :class:`Ready`, then :meth:`Raft.advance` once the driver has, in
  this order: (0) if ``ready.snapshot`` is set, installed the snapshot data it received
  with the SNAPSHOT message of that meta (replacing its applied state *and* its whole
  stored log: afterwards ``first_index() == meta.index + 1``, ``last_index() ==
  meta.index``, ``term(meta.index) == meta.term`` and ``snapshot() == meta``), together
  with ``ready.membership``; (1) persisted ``ready.hard_state`` and ``ready.entries``
  (after dropping the stored log from ``ready.truncate_from`` on), atomically; (2) sent
  ``ready.messages``; (3) applied ``ready.committed_entries``, storing
  ``ready.membership`` (when not ``None``) atomically with the applied state it belongs to;
  (4) served the reads in ``ready.read_states`` once its applied index reaches each
  state's ``index``. Sending before persisting would let a peer count an acknowledgement
  or a vote that a crash could take back.

The core reads the durable log through :class:`LogView`, a narrow read-only Protocol
(first/last index, term of an index, a range of entries, the meta of the snapshot the
driver can ship); entries it has accepted but the driver has not yet persisted live in an
in-memory "unstable" tail that shadows the stored log from ``_offset`` on (etcd
``log_unstable.go``), and so does a snapshot accepted but not yet installed.

Invariants (Raft paper, Ongaro & Ousterhout 2014, Figure 3) and where they are kept:

* **Election safety** (§5.2): at most one leader per term. A voter persists ``(term,
  vote)`` before its grant leaves (the Ready order above) and grants at most one vote
  per term (:meth:`Raft._handle_vote_request`).
* **Leader append-only** (§5.3): a leader only appends (:meth:`Raft._append_local`).
* **Log matching** (§5.3): an AppendEntries carries the ``(index, term)`` of the entry
  preceding its entries; a follower accepts only if its own log has that entry, and
  truncates its log at the first conflicting entry -- never at or below its commit index
  (checked; a violation raises :class:`RaftInvariantError`).
* **Leader completeness** (§5.4): a vote (and a pre-vote) is granted only to a candidate
  whose log is at least as up to date as the voter's (§5.4.1); a leader advances its
  commit index only to an entry of its *own* term stored on a quorum of voters (§5.4.2,
  Figure 8), and appends an empty entry on election so that happens promptly.
* **State machine safety**: follows from the above; committed entries are handed out once,
  in order, in ``Ready.committed_entries`` (or, below a snapshot, as the snapshot).

Liveness and disruption:

* **Randomized election timeouts** (§5.2) in ``[election_tick, 2 * election_tick)``,
  drawn from a SplitMix64 stream seeded by ``RaftConfig.seed`` (the driver passes the
  randomness in; the core stays deterministic).
* **Pre-vote** (Ongaro's thesis §9.6; etcd ``MsgPreVote``): before incrementing its term a
  would-be candidate asks whether it *could* win; a partitioned node therefore does not
  inflate its term and depose a healthy leader when it rejoins.
* **Check-quorum / leader lease** (thesis §6.2, §9.6; etcd ``checkQuorum``): a leader that
  has not heard from a quorum within an election timeout steps down, and a node that heard
  from a leader within the election timeout ignores (pre-)vote requests for a higher term
  (except a vote caused by a leadership transfer).
* **Fast backtracking** (§5.3 optimisation; etcd ``findConflictByTerm``): a rejecting
  follower returns a hint ``(index, term)``: the last entry at or before the probe whose
  term is <= the leader's term at the probe; the leader then skips a whole term per round.
* **Flow control** (etcd ``tracker/progress.go``): per follower, *probe* (one append in
  flight until acknowledged or a heartbeat response arrives), *replicate* (pipelined,
  optimistic ``next``) or *snapshot* (nothing sent until the snapshot is acknowledged or
  the driver reports its outcome).

Learners (ZooKeeper's observers) receive the log like followers but never campaign and
are not counted in any quorum. Candidates only ask voters.

Snapshots (thesis ch. 5)
------------------------
The driver compacts its stored log below its applied state whenever it likes; the applied
state is the snapshot (DESIGN.md decision 4). :meth:`LogView.snapshot` gives the meta
(:class:`SnapshotMeta`: index, term and membership) of the state the driver can ship
now. When a follower needs an entry the leader no longer has (``next < first_index()``)
the leader sends ``Message(type=SNAPSHOT, snapshot=meta)`` and stops sending appends to
it; the *driver* attaches and streams the data out of band (a RocksDB checkpoint) and
then calls :meth:`Raft.report_snapshot` with the outcome: on failure the leader probes
again (and resends a snapshot), on success it waits for the follower's acknowledgement.
:meth:`Raft.report_unreachable` makes a pipelining leader fall back to probing.

A receiver accepts a snapshot only from the leader of its term and only if ``meta.index``
is beyond its commit index; if its log already holds ``(meta.index, meta.term)`` it just
commits up to there. An accepted snapshot appears once as ``Ready.snapshot``; from then on
the core's log starts after it, and its commit and (on :meth:`advance`) applied indexes
are ``meta.index``. The acknowledgement (an APPEND_RESP for ``meta.index``) leaves in the
same Ready, so after the install; the leader then replicates the log from there.

ReadIndex (thesis §6.4)
-----------------------
:meth:`Raft.read_index` asks for a linearizable read point. The leader records its commit
index, confirms it is still the leader by a heartbeat round acknowledged by a quorum of
voters (heartbeats carry a sequence number, echoed by followers; an acknowledgement of a
later round confirms every earlier request), and then hands out
``ReadState(context, index)`` -- on a follower through READ_INDEX / READ_INDEX_RESP. A
leader that has not yet committed an entry of its own term (its commit index may lag what
its predecessor committed) holds the request until it has; a single-voter leader answers
at once. The driver serves the read once its applied index reaches ``index``. A request
is dropped (no answer ever) when there is no known leader or leadership is lost
meanwhile: the driver retries after a timeout of its own.

Membership changes (thesis §4.1, one server at a time)
------------------------------------------------------
:meth:`Raft.propose_conf_change` appends a CONF_CHANGE entry whose data holds the
:class:`ConfChange` *and the whole resulting* :class:`Membership`
(:func:`encode_conf_entry`). As in the thesis, a configuration takes effect **as soon as
its entry is in a server's log (on append), committed or not**; each server uses the
latest configuration in its log, and reverts to the previous one if that entry is
truncated away. Safety comes from changing one server at a time (any two consecutive
majorities overlap) plus two rules on the leader: only one uncommitted configuration
entry at a time, and none before the leader has committed an entry of its own term (the
fix from Ongaro's raft-dev post of 2015-07-10; the leader's no-op does this promptly).
A leader removed from the voters keeps leading (without counting itself) until the entry
commits, then steps down, hands the election to the most up-to-date remaining voter with
TIMEOUT_NOW, and -- like any node not among the voters -- never campaigns.

What the driver persists so that a restart recovers the right membership:
``Ready.membership`` is the membership as of the last entry of that Ready's
``committed_entries`` (or of its snapshot), ``None`` when unchanged; the driver stores it
atomically with its applied state, and on restart passes it as ``RaftConfig.voters`` /
``RaftConfig.learners`` together with ``applied``. The core then replays the
configuration entries of the unapplied tail of the log (``applied < index <=
last_index()``) itself. (Before any change the membership is the bootstrap one; a node
joining later starts with the bootstrap membership or any membership without itself --
it cannot campaign until an entry or a snapshot makes it a voter.) Committed CONF_CHANGE
entries (like NOOP entries) carry no client payload: the driver decodes them with
:func:`decode_conf_entry` (e.g. to open or close peer links), it does not apply them;
the ``context`` it passed to :meth:`Raft.propose_conf_change` (say, the members'
addresses) rides along (:func:`conf_entry_context`). Besides adding (a voter or a
learner), promoting a learner and removing, a change may demote a voter to a learner
(``DEMOTE_VOTER``): like a removal it takes one voter out, so it is a single-server change
(a demoted leader steps down once it commits, as a removed one does).

Leadership transfer (thesis §3.10)
----------------------------------
:meth:`Raft.transfer_leader` makes the leader stop taking proposals, bring the target's
log up to date, and send it TIMEOUT_NOW; the target campaigns at once (no pre-vote) and
its vote requests carry ``context=b"transfer"`` so voters ignore their leader lease. If
the transfer has not happened within an election timeout the leader aborts it and takes
proposals again. The server uses it to shut a leader down gracefully.

Driver checklist
----------------
* Log store: implement :class:`LogView` including ``snapshot()``; ``term()`` must answer
  for ``first_index() - 1`` (the compaction point). Compact only at or below the applied
  index. :class:`MemoryLog` is the reference (``compact``, ``install_snapshot``).
* Outgoing ``SNAPSHOT``: attach the state of ``msg.snapshot`` (index, term) and stream
  it; when the stream ends call ``report_snapshot(msg.to, ok)`` on the sender (``ok``:
  the receiver's driver got all of it). The driver may ship a *newer* applied state
  instead (say, the checkpoint it takes when the stream starts) if it replaces
  ``msg.snapshot`` by that state's meta (higher index, its term, its membership): the
  receiver installs exactly what the meta it gets names. Also call
  ``report_unreachable(peer)`` when a send fails.
* Incoming ``SNAPSHOT``: keep the data by ``(meta.index, meta.term)`` and ``step()`` the
  message; if a Ready then carries ``snapshot == meta``, install that data first
  (replacing the applied state and the whole stored log) and store
  ``ready.membership`` with it. If installing fails, do not ``advance()``: stop the node
  and restart it from its durable state (the leader's next probe finds it behind and
  sends a snapshot again). Data never named by a Ready is discarded.
* Applying: CONF_CHANGE and NOOP entries hold no client payload (decode the former with
  :func:`decode_conf_entry`); every entry, whatever its kind, consumes its index (so
  client-visible zxids have gaps). Store ``ready.membership`` with the applied state.
* Restart: ``RaftConfig(voters=..., learners=...)`` from the stored membership (the
  bootstrap one if none yet), ``applied`` from the applied state.
* Reads: ``read_index(ctx)`` returns False (no leader) or, later, a ``ReadState`` with
  that ``ctx`` in ``ready.read_states`` -- or nothing, if leadership changed: retry on a
  timeout. Serve once ``applied >= state.index``.
* Membership: ``propose_conf_change`` raises :class:`ConfChangeError` (retry later or
  reject), ``voters``/``learners``/``membership`` give the configuration in effect;
  ``progress(peer)`` tells whether a learner caught up before promoting it. A removed
  peer still gets the log until it has the entry removing it and an append saying that
  entry committed (so it learns it is out); ``progress(peer)`` is ``None`` from then on
  (keep the link to it until then).
* Shutdown of a leader: ``transfer_leader(to)`` (pick the voter with the highest match),
  then wait until ``role`` is no longer LEADER or an election timeout passed;
  ``propose`` raises :class:`LeaderTransferError` (a :class:`NotLeaderError`) meanwhile.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from ._storage import HardState

__all__ = [
    "NONE",
    "ConfChange",
    "ConfChangeError",
    "ConfChangeType",
    "EntryKind",
    "LeaderTransferError",
    "LogEntry",
    "LogView",
    "MemoryLog",
    "Membership",
    "Message",
    "MessageType",
    "NotLeaderError",
    "ProgressState",
    "Raft",
    "RaftConfig",
    "RaftInvariantError",
    "ReadState",
    "Ready",
    "Role",
    "SnapshotMeta",
    "SoftState",
    "TRANSFER_CONTEXT",
    "conf_entry_context",
    "decode_conf_entry",
    "encode_conf_entry",
]

#: "No node": the vote before one is cast, the leader before one is known. Ids are >= 1.
NONE = 0

#: ``Message.context`` of a VOTE caused by a leadership transfer (voters skip the lease).
TRANSFER_CONTEXT = b"transfer"

_MASK64 = (1 << 64) - 1


class NotLeaderError(Exception):
    """Raised by :meth:`Raft.propose` (and the other leader-only calls) on a node that is
    not the leader.

    ``leader`` is the leader this node knows of, or :data:`NONE`.
    """

    def __init__(self, leader: int) -> None:
        super().__init__(f"not the leader (leader is {leader or 'unknown'})")
        self.leader = leader


class LeaderTransferError(NotLeaderError):
    """Raised by :meth:`Raft.propose` and :meth:`Raft.propose_conf_change` on a leader that
    is handing leadership over (:meth:`Raft.transfer_leader`); retry shortly, on the new
    leader. ``leader`` is this node (still the leader), ``transferee`` the target."""

    def __init__(self, leader: int, transferee: int) -> None:
        Exception.__init__(
            self, f"leadership transfer from {leader} to {transferee} in progress; retry"
        )
        self.leader = leader
        self.transferee = transferee


class ConfChangeError(Exception):
    """Raised by :meth:`Raft.propose_conf_change` (and :meth:`Membership.apply`) when a
    membership change is invalid or not allowed now; nothing was changed."""


class RaftInvariantError(AssertionError):
    """A safety invariant would be broken (a bug, or a corrupted log); the server must stop."""


class EntryKind(IntEnum):
    NORMAL = 0
    #: The empty entry a new leader appends to commit its predecessors' entries (§5.4.2).
    NOOP = 1
    #: A membership change; data from :func:`encode_conf_entry`. Not a client payload.
    CONF_CHANGE = 2


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log entry: an opaque payload stamped with its index and the term it was made in."""

    index: int
    term: int
    data: bytes = b""
    kind: EntryKind = EntryKind.NORMAL

    @property
    def zxid(self) -> int:
        """ZooKeeper's transaction id for this entry: ``(term << 32) | index``."""
        return (self.term << 32) | self.index


class ConfChangeType(IntEnum):
    ADD_VOTER = 1
    ADD_LEARNER = 2
    PROMOTE_LEARNER = 3
    #: Remove a voter or a learner.
    REMOVE = 4
    #: Turn a voter into a learner (ZooKeeper: participant -> observer). Like a removal,
    #: it takes one voter out of the majority, so it is a single-server change.
    DEMOTE_VOTER = 5


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One membership change: ``type`` applied to ``node``."""

    type: ConfChangeType
    node: int

    def encode(self) -> bytes:
        return _CC.pack(self.type, self.node)

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        """Inverse of :meth:`encode`.

        Raises:
            ValueError: the bytes are not a ConfChange.
        """
        if len(data) != _CC.size:
            raise ValueError(f"a ConfChange is {_CC.size} bytes, not {len(data)}")
        kind, node = _CC.unpack(data)
        return cls(ConfChangeType(kind), node)


_CC = struct.Struct(">BQ")
_COUNT = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Membership:
    """Who votes and who only learns. Disjoint sets of node ids."""

    voters: frozenset[int]
    learners: frozenset[int] = frozenset()

    def apply(self, cc: ConfChange) -> Membership:
        """The membership after ``cc``.

        Raises:
            ConfChangeError: ``cc`` does not apply to this membership (adding a member
                twice, promoting a non-learner, removing a stranger or the last voter).
        """
        n = cc.node
        if n == NONE:
            raise ConfChangeError("node ids must be >= 1")
        v, learn = self.voters, self.learners
        if cc.type is ConfChangeType.ADD_VOTER:
            if n in v:
                raise ConfChangeError(f"node {n} is already a voter")
            if n in learn:
                raise ConfChangeError(f"node {n} is a learner: promote it instead")
            return Membership(v | {n}, learn)
        if cc.type is ConfChangeType.ADD_LEARNER:
            if n in v or n in learn:
                raise ConfChangeError(f"node {n} is already a member")
            return Membership(v, learn | {n})
        if cc.type is ConfChangeType.PROMOTE_LEARNER:
            if n not in learn:
                raise ConfChangeError(f"node {n} is not a learner")
            return Membership(v | {n}, learn - {n})
        if cc.type is ConfChangeType.DEMOTE_VOTER:
            if n not in v:
                raise ConfChangeError(f"node {n} is not a voter")
            if len(v) == 1:
                raise ConfChangeError(f"node {n} is the last voter")
            return Membership(v - {n}, learn | {n})
        if cc.type is ConfChangeType.REMOVE:
            if n in v:
                if len(v) == 1:
                    raise ConfChangeError(f"node {n} is the last voter")
                return Membership(v - {n}, learn)
            if n in learn:
                return Membership(v, learn - {n})
            raise ConfChangeError(f"node {n} is not a member")
        raise ConfChangeError(f"unknown change {cc.type!r}")  # pragma: no cover

    def encode(self) -> bytes:
        out = [_COUNT.pack(len(self.voters))]
        out += [struct.pack(">Q", n) for n in sorted(self.voters)]
        out.append(_COUNT.pack(len(self.learners)))
        out += [struct.pack(">Q", n) for n in sorted(self.learners)]
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> Membership:
        """Inverse of :meth:`encode`.

        Raises:
            ValueError: the bytes are not a Membership.
        """
        pos = 0
        sets: list[frozenset[int]] = []
        try:
            for _ in range(2):
                (count,) = _COUNT.unpack_from(data, pos)
                pos += 4
                if len(data) < pos + 8 * count:
                    raise ValueError("truncated membership")
                sets.append(frozenset(struct.unpack_from(f">{count}Q", data, pos)))
                pos += 8 * count
        except struct.error as exc:
            raise ValueError(f"bad membership encoding: {exc}") from None
        if pos != len(data):
            raise ValueError("trailing bytes after membership")
        return cls(sets[0], sets[1])


def encode_conf_entry(cc: ConfChange, result: Membership, context: bytes = b"") -> bytes:
    """The data of a CONF_CHANGE entry: the change, the whole resulting membership, and the
    driver's ``context`` (opaque to the core; e.g. addresses of the members)."""
    return cc.encode() + result.encode() + context


def _membership_size(data: bytes, pos: int) -> int:
    """Bytes of the encoded :class:`Membership` starting at ``pos``."""
    try:
        (voters,) = _COUNT.unpack_from(data, pos)
        (learners,) = _COUNT.unpack_from(data, pos + 4 + 8 * voters)
    except struct.error as exc:
        raise ValueError(f"bad membership encoding: {exc}") from None
    return 8 + 8 * (int(voters) + int(learners))


def decode_conf_entry(data: bytes) -> tuple[ConfChange, Membership]:
    """Inverse of :func:`encode_conf_entry` (without the context: see
    :func:`conf_entry_context`).

    Raises:
        ValueError: the bytes are not a CONF_CHANGE entry's data.
    """
    end = _CC.size + _membership_size(data, _CC.size)
    return ConfChange.decode(data[: _CC.size]), Membership.decode(data[_CC.size : end])


def conf_entry_context(data: bytes) -> bytes:
    """The driver's context of a CONF_CHANGE entry's data (``b""`` if none).

    Raises:
        ValueError: the bytes are not a CONF_CHANGE entry's data.
    """
    return data[_CC.size + _membership_size(data, _CC.size) :]


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot is: the state after applying the log up to ``index`` (of ``term``),
    with the membership as of that index. The data travels out of band (the driver's)."""

    index: int
    term: int
    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()

    @property
    def membership(self) -> Membership:
        return Membership(self.voters, self.learners)


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read point: serve the read tagged ``context`` once applied >= index."""

    context: bytes
    index: int


class MessageType(IntEnum):
    APPEND = 1  # AppendEntries (§5.3)
    APPEND_RESP = 2
    HEARTBEAT = 3  # empty AppendEntries carrying only a safe commit index
    HEARTBEAT_RESP = 4
    VOTE = 5  # RequestVote (§5.2)
    VOTE_RESP = 6
    PRE_VOTE = 7  # thesis §9.6
    PRE_VOTE_RESP = 8
    #: InstallSnapshot (thesis ch. 5): ``snapshot`` is the meta; the driver ships the data.
    SNAPSHOT = 9
    #: A follower's ReadIndex request to the leader (``context``); thesis §6.4.
    READ_INDEX = 10
    #: The leader's answer: ``index`` is the read point for ``context``.
    READ_INDEX_RESP = 11
    #: Leadership transfer: campaign now, skipping pre-vote (thesis §3.10).
    TIMEOUT_NOW = 12


@dataclass(frozen=True, slots=True)
class Message:
    """A message between peers. Fields unused by a type keep their defaults.

    ``index``/``log_term``: for APPEND the entry preceding ``entries``; for (PRE_)VOTE the
    candidate's last entry; for APPEND_RESP the last index now matching (or, rejected, the
    probed index, with ``log_term``/``reject_hint`` the follower's conflict hint); for
    READ_INDEX_RESP the read point. ``snapshot``: the meta of a SNAPSHOT. ``context``: the
    read's tag on READ_INDEX(_RESP); the read round on HEARTBEAT(_RESP) (echoed);
    :data:`TRANSFER_CONTEXT` on a VOTE caused by a leadership transfer.
    """

    type: MessageType
    sender: int
    to: int
    term: int
    log_term: int = 0
    index: int = 0
    entries: tuple[LogEntry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: SnapshotMeta | None = None
    context: bytes = b""


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the driver may want to report (not persisted)."""

    leader: int
    role: Role


@dataclass(frozen=True, slots=True)
class Ready:
    """What the driver must do, in order: install, persist, send, apply (see module docs)."""

    #: New ``(term, vote)`` to persist, or ``None`` if unchanged.
    hard_state: HardState | None
    #: New leader/role, or ``None`` if unchanged.
    soft_state: SoftState | None
    #: Drop stored entries with index >= this before appending ``entries``.
    truncate_from: int | None
    #: Entries to append to the stored log (contiguous).
    entries: tuple[LogEntry, ...]
    #: Messages to send once the above is durable.
    messages: tuple[Message, ...]
    #: Committed entries to apply, in order.
    committed_entries: tuple[LogEntry, ...]
    #: A snapshot to install *first* (the data received with the SNAPSHOT of this meta):
    #: it replaces the applied state and the whole stored log.
    snapshot: SnapshotMeta | None = None
    #: Read points confirmed (ReadIndex): serve each once applied >= its index.
    read_states: tuple[ReadState, ...] = ()
    #: The membership as of the last committed entry handed out here (or the snapshot),
    #: when it changed: store it with the applied state; pass it to RaftConfig on restart.
    membership: Membership | None = None

    def __bool__(self) -> bool:
        return bool(
            self.hard_state is not None
            or self.soft_state is not None
            or self.entries
            or self.messages
            or self.committed_entries
            or self.snapshot is not None
            or self.read_states
        )


class LogView(Protocol):
    """The durable log as the core reads it. The driver writes it (after each Ready)."""

    def first_index(self) -> int:
        """Index of the oldest entry kept (1 until the log is compacted)."""
        ...

    def last_index(self) -> int:
        """Index of the newest entry (0 for an empty log; the snapshot's index for a log
        emptied by a snapshot)."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index``, for ``first_index() - 1 <= index <= last_index()``
        (0 for index 0). Raises IndexError outside that range."""
        ...

    def entries(self, lo: int, hi: int) -> Sequence[LogEntry]:
        """Entries with ``lo <= index < hi``, within ``[first_index(), last_index() + 1)``."""
        ...

    def snapshot(self) -> SnapshotMeta:
        """Meta of the latest state the driver can ship (its applied state or its last
        compaction point); ``index >= first_index() - 1``. Called only when a follower
        needs entries below ``first_index()``."""
        ...


class MemoryLog:
    """An in-memory :class:`LogView` plus the writes a driver makes; for tests and the
    simulator. :meth:`compact` drops a prefix; :meth:`install_snapshot` replaces it all."""

    def __init__(
        self, entries: Iterable[LogEntry] = (), snapshot: SnapshotMeta | None = None
    ) -> None:
        #: The compaction point: the log holds entries after ``_snap.index``.
        self._snap = snapshot if snapshot is not None else SnapshotMeta(0, 0)
        self._entries: list[LogEntry] = []
        self.append(list(entries))

    def first_index(self) -> int:
        return self._snap.index + 1

    def last_index(self) -> int:
        return self._snap.index + len(self._entries)

    def snapshot(self) -> SnapshotMeta:
        return self._snap

    def term(self, index: int) -> int:
        base = self._snap.index
        if index == base:
            return self._snap.term
        if not base < index <= self.last_index():
            raise IndexError(f"no entry {index} (log holds ({base}, {self.last_index()}])")
        return self._entries[index - base - 1].term

    def entries(self, lo: int, hi: int) -> Sequence[LogEntry]:
        base = self._snap.index
        if not base < lo <= hi <= self.last_index() + 1:
            raise IndexError(f"range [{lo}, {hi}) outside [{base + 1}, {self.last_index() + 1})")
        return self._entries[lo - base - 1 : hi - base - 1]

    def truncate(self, from_index: int) -> None:
        """Drop entries with index >= ``from_index``."""
        if from_index <= self._snap.index:
            raise ValueError(f"cannot truncate at {from_index}: compacted up to {self._snap.index}")
        del self._entries[from_index - self._snap.index - 1 :]

    def append(self, entries: Sequence[LogEntry]) -> None:
        """Append contiguous entries, dropping any stored suffix they overwrite."""
        if not entries:
            return
        first = entries[0].index
        if not self._snap.index < first <= self.last_index() + 1:
            raise ValueError(f"entry {first} does not continue a log ending at {self.last_index()}")
        self.truncate(first)
        for i, e in enumerate(entries):
            if e.index != first + i:
                raise ValueError("entries are not contiguous")
            self._entries.append(e)

    def compact(self, meta: SnapshotMeta) -> None:
        """Drop the entries up to ``meta.index`` (a state the driver keeps as snapshot)."""
        if meta.index <= self._snap.index:
            return
        if meta.index > self.last_index() or self.term(meta.index) != meta.term:
            raise ValueError(f"snapshot {meta.index}@{meta.term} is not in the log")
        del self._entries[: meta.index - self._snap.index]
        self._snap = meta

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        """Replace the whole log by ``meta`` (``Ready.snapshot``)."""
        self._entries = []
        self._snap = meta

    def copy(self) -> MemoryLog:
        return MemoryLog(self._entries, self._snap)


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Static configuration of one node.

    ``voters``/``learners``: the membership as of the ``applied`` index given to
    :class:`Raft` (the bootstrap membership on a fresh node; afterwards the last
    ``Ready.membership`` stored with the applied state).
    """

    id: int
    voters: frozenset[int]
    learners: frozenset[int] = frozenset()
    #: Ticks without hearing from a leader before campaigning (randomized up to 2x).
    election_tick: int = 10
    #: Ticks between a leader's heartbeats.
    heartbeat_tick: int = 1
    #: Seed of this node's election-timeout stream (the driver supplies randomness).
    seed: int = 0
    pre_vote: bool = True
    check_quorum: bool = True
    #: Most entries in one APPEND.
    max_append_entries: int = 64

    def __post_init__(self) -> None:
        if self.id == NONE:
            raise ValueError("node ids must be >= 1")
        if self.voters & self.learners:
            raise ValueError("a node cannot be both voter and learner")
        if not self.voters:
            raise ValueError("at least one voter is needed")
        if self.heartbeat_tick < 1 or self.election_tick <= self.heartbeat_tick:
            raise ValueError("need 1 <= heartbeat_tick < election_tick")


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    #: A snapshot is on its way; nothing else is sent until it is acknowledged or reported.
    SNAPSHOT = 2


@dataclass(slots=True)
class _Progress:
    """The leader's view of one peer (etcd ``tracker.Progress``)."""

    match: int = 0
    next: int = 1
    state: ProgressState = ProgressState.PROBE
    #: In PROBE, an append is in flight: send no more until a response or heartbeat ack.
    paused: bool = False
    recent_active: bool = False
    #: In SNAPSHOT, the index of the snapshot sent.
    pending_snapshot: int = 0

    def maybe_update(self, n: int) -> bool:
        updated = self.match < n
        if updated:
            self.match = n
            self.paused = False
        self.next = max(self.next, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        if self.state is ProgressState.SNAPSHOT:
            return False  # a rejection of an append sent before the snapshot
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # stale rejection
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # stale rejection of an earlier probe
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.paused = False
        return True

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            # Resume after the snapshot if it was sent; else from what is known to match.
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        self.paused = False

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.pending_snapshot = 0
        self.paused = False

    def become_snapshot(self, index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = index
        self.paused = False


@dataclass(slots=True)
class _SplitMix64:
    state: int

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)


@dataclass(slots=True)
class _Votes:
    granted: set[int] = field(default_factory=set)
    rejected: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _ReadRequest:
    """A ReadIndex request on the leader, waiting for a quorum to confirm round ``seq``."""

    seq: int
    context: bytes
    index: int
    origin: int
    acks: set[int] = field(default_factory=set)


_SEQ = struct.Struct(">Q")


class Raft:
    """One node's consensus state machine. See the module docs for the driver's contract.

    Args:
        config: this node's static configuration; its ``voters``/``learners`` are the
            membership as of ``applied``.
        log: the durable log (read only; the driver appends to it after each Ready).
        hard_state: the ``(term, vote)`` last persisted.
        applied: the index of the last entry already applied to the persisted state; it
            was committed, so it is also this node's starting commit index.

    Raises:
        ValueError: ``applied`` is outside the stored log (beyond its end, or below its
            compaction point).
    """

    def __init__(
        self,
        config: RaftConfig,
        log: LogView,
        hard_state: HardState = HardState(),  # noqa: B008 - frozen, safe as default
        applied: int = 0,
    ) -> None:
        if applied > log.last_index():
            raise ValueError(f"applied index {applied} beyond the log's end {log.last_index()}")
        if applied < log.first_index() - 1:
            raise ValueError(
                f"applied index {applied} below the log's compaction point "
                f"{log.first_index() - 1}: the applied state is older than the log"
            )
        self.config = config
        self.id = config.id
        self._log = log
        self._unstable: list[LogEntry] = []
        self._offset = log.last_index() + 1
        #: A snapshot accepted but not yet installed (shadows the whole stored log).
        self._snapshot: SnapshotMeta | None = None
        self.term = hard_state.term
        self.vote = hard_state.vote
        self.commit = applied
        self.applied = applied
        self.role = Role.FOLLOWER
        self.leader = NONE
        self._rng = _SplitMix64((config.seed * 0x100000001B3 + config.id) & _MASK64)
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = config.election_tick
        self._votes = _Votes()
        self._progress: dict[int, _Progress] = {}
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._reads: list[_ReadRequest] = []
        self._reads_waiting: list[tuple[bytes, int]] = []
        self._read_seq = 0
        self._transferee = NONE
        # Membership: ``_conf_base`` as of ``_conf_base_index`` (<= applied), then the
        # configuration entries after it, in log order; the latest one is in effect.
        self._conf_base = Membership(config.voters, config.learners)
        self._conf_base_index = applied
        self._conf_log: list[tuple[int, Membership]] = []
        self._membership = self._conf_base
        if applied < log.last_index():
            for e in log.entries(applied + 1, log.last_index() + 1):
                if e.kind is EntryKind.CONF_CHANGE:
                    self._conf_log.append((e.index, decode_conf_entry(e.data)[1]))
            if self._conf_log:
                self._membership = self._conf_log[-1][1]
        self._prev_hard = hard_state
        self._prev_soft = SoftState(NONE, Role.FOLLOWER)
        self._become_follower(self.term, NONE)

    # ----------------------------------------------------------------- introspection

    @property
    def is_learner(self) -> bool:
        return self.id in self._membership.learners

    @property
    def promotable(self) -> bool:
        """Whether this node may campaign (it is a voter in its current membership)."""
        return self.id in self._membership.voters

    @property
    def voters(self) -> frozenset[int]:
        """The voters of the membership in effect (the latest in this node's log)."""
        return self._membership.voters

    @property
    def learners(self) -> frozenset[int]:
        """The learners of the membership in effect."""
        return self._membership.learners

    @property
    def membership(self) -> Membership:
        """The membership in effect: the latest configuration in this node's log."""
        return self._membership

    @property
    def pending_conf_index(self) -> int:
        """The index of the latest configuration entry not yet committed, or 0 if none."""
        pending = [i for i, _ in self._conf_log if i > self.commit]
        return pending[-1] if pending else 0

    @property
    def transferee(self) -> int:
        """On a leader, the target of a leadership transfer in progress, else :data:`NONE`."""
        return self._transferee

    @property
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote)

    @property
    def soft_state(self) -> SoftState:
        return SoftState(self.leader, self.role)

    def first_index(self) -> int:
        """Index of the oldest entry this node still has (after its snapshot)."""
        if self._snapshot is not None:
            return self._snapshot.index + 1
        return self._log.first_index()

    def last_index(self) -> int:
        return self._offset + len(self._unstable) - 1

    def last_term(self) -> int:
        return self.term_at(self.last_index())

    def term_at(self, index: int) -> int:
        """Term of the entry at ``index`` in this node's (stored + unstable) log, for
        ``first_index() - 1 <= index <= last_index()``.

        Raises:
            IndexError: ``index`` is beyond the log or compacted away.
        """
        if index >= self._offset:
            i = index - self._offset
            if i >= len(self._unstable):
                raise IndexError(f"no entry {index} (last is {self.last_index()})")
            return self._unstable[i].term
        snap = self._snapshot
        if snap is not None:
            if index == snap.index:
                return snap.term
            raise IndexError(f"entry {index} is compacted (snapshot at {snap.index})")
        if index == 0:
            return 0
        return self._log.term(index)

    def entries(self, lo: int, hi: int) -> list[LogEntry]:
        """Entries with ``lo <= index < hi`` of this node's (stored + unstable) log."""
        first = self.first_index()
        if not first <= lo <= hi <= self.last_index() + 1:
            raise IndexError(f"range [{lo}, {hi}) outside [{first}, {self.last_index() + 1})")
        out: list[LogEntry] = []
        if lo < self._offset:
            out.extend(self._log.entries(lo, min(hi, self._offset)))
        if hi > self._offset:
            out.extend(self._unstable[max(lo, self._offset) - self._offset : hi - self._offset])
        return out

    def forget_leader(self, ticks_left: int) -> None:
        """The driver knows the leader is gone (its connection closed when its process
        died): stop honouring its lease and campaign after ``ticks_left`` more ticks
        (randomize it across nodes to avoid split votes). Only liveness depends on this:
        a vote still needs an up-to-date log, and pre-vote still asks first."""
        if self.role is not Role.FOLLOWER or self.leader == NONE:
            return
        self.leader = NONE
        self._election_elapsed = max(
            self._election_elapsed, self._randomized_timeout - max(1, ticks_left)
        )

    def reset_progress(self, peer: int) -> None:
        """Forget what this leader believes of ``peer``'s log and probe it afresh (the
        driver calls this when a link to ``peer`` is re-established: the peer may have
        restarted without its data). Lowering a match only delays commits."""
        pr = self._progress.get(peer)
        if pr is not None and peer != self.id:
            pr.match = 0
            pr.state = ProgressState.PROBE
            pr.next = self.last_index() + 1
            pr.paused = False
            pr.pending_snapshot = 0

    def progress(self, peer: int) -> tuple[int, int, ProgressState] | None:
        """On a leader, ``(match, next, state)`` of ``peer``; otherwise ``None``."""
        pr = self._progress.get(peer)
        return None if pr is None else (pr.match, pr.next, pr.state)

    # ----------------------------------------------------------------- driver API

    def tick(self) -> None:
        """Advance the logical clock by one tick."""
        if self.role is Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def campaign(self) -> None:
        """Start an election now (as an expired election timeout would)."""
        if self.role is Role.LEADER or not self.promotable:
            return
        self._campaign(pre=self.config.pre_vote)

    def propose(self, data: bytes | Sequence[bytes]) -> list[LogEntry]:
        """Append client payloads to the log (leader only); returns the stamped entries.

        They are committed when they appear in a later ``Ready.committed_entries`` with
        the same index and term; a leader change may instead overwrite them.

        Raises:
            NotLeaderError: this node is not the leader.
            LeaderTransferError: a leadership transfer is in progress (a NotLeaderError).
        """
        self._check_can_propose()
        payloads = [data] if isinstance(data, bytes) else list(data)
        li = self.last_index()
        ents = [LogEntry(li + 1 + i, self.term, p) for i, p in enumerate(payloads)]
        self._append_local(ents)
        self._bcast_append()
        return ents

    def propose_conf_change(self, cc: ConfChange, context: bytes = b"") -> LogEntry:
        """Append a membership change (leader only); it takes effect at once, on this node
        and on each follower as the entry reaches its log (see the module docs).
        ``context`` travels in the entry for the driver (:func:`conf_entry_context`).

        Returns:
            The CONF_CHANGE entry; the change is committed when it appears in
            ``Ready.committed_entries``.

        Raises:
            NotLeaderError: this node is not the leader.
            LeaderTransferError: a leadership transfer is in progress.
            ConfChangeError: another change is not yet committed; the leader has not yet
                committed an entry of its term; or ``cc`` does not apply to the current
                membership. Nothing is changed.
        """
        self._check_can_propose()
        pending = self.pending_conf_index
        if pending:
            raise ConfChangeError(
                f"configuration change at index {pending} is not committed yet; "
                "one change at a time"
            )
        if not self._committed_in_term():
            raise ConfChangeError(
                f"leader has not committed an entry of its term {self.term} yet; retry"
            )
        result = self._membership.apply(cc)
        entry = LogEntry(
            self.last_index() + 1,
            self.term,
            encode_conf_entry(cc, result, context),
            EntryKind.CONF_CHANGE,
        )
        self._append_local([entry])
        self._bcast_append()
        return entry

    def transfer_leader(self, to: int) -> None:
        """Hand leadership to voter ``to``: stop taking proposals, bring its log up to
        date, then tell it to campaign at once (TIMEOUT_NOW). Aborted if not done within
        an election timeout. Transferring to this node itself cancels a transfer.

        Raises:
            NotLeaderError: this node is not the leader.
            ValueError: ``to`` is not a voter.
        """
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.leader)
        if to == self.id:
            self._transferee = NONE
            return
        if to not in self._membership.voters or to not in self._progress:
            raise ValueError(f"cannot transfer leadership to {to}: not a voter")
        if self._transferee == to:
            return
        self._transferee = to
        self._election_elapsed = 0
        if self._progress[to].match == self.last_index():
            self._send(MessageType.TIMEOUT_NOW, to)
        else:
            self._send_append(to)

    def read_index(self, context: bytes) -> bool:
        """Ask for a linearizable read point tagged ``context`` (thesis §6.4); it comes
        back in a later ``Ready.read_states`` as ``ReadState(context, index)``.

        Returns:
            ``False`` if the request was dropped at once (no leader known); it may also
            be dropped later (leadership lost): the driver retries after a timeout.
        """
        if self.role is Role.LEADER:
            self._leader_read(context, self.id)
            if self._reads:
                self._bcast_heartbeat()
            return True
        if self.leader == NONE:
            return False
        self._msgs.append(
            Message(MessageType.READ_INDEX, self.id, self.leader, self.term, context=context)
        )
        return True

    def report_snapshot(self, peer: int, ok: bool) -> None:
        """The driver finished streaming the snapshot to ``peer`` (``ok``) or gave up.

        On success the leader waits for ``peer``'s acknowledgement; on failure it probes
        again (and sends a new snapshot if still needed) after the next heartbeat.
        """
        pr = self._progress.get(peer)
        if self.role is not Role.LEADER or pr is None or pr.state is not ProgressState.SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.paused = True

    def report_unreachable(self, peer: int) -> None:
        """The driver could not deliver a message to ``peer``: stop pipelining to it."""
        pr = self._progress.get(peer)
        if self.role is Role.LEADER and pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    def step(self, m: Message) -> None:
        """Handle one message from a peer."""
        if m.to != self.id:
            return
        if m.term > self.term:
            if m.type in (MessageType.VOTE, MessageType.PRE_VOTE):
                in_lease = (
                    self.config.check_quorum
                    and self.leader != NONE
                    and self._election_elapsed < self.config.election_tick
                    and m.context != TRANSFER_CONTEXT
                )
                if in_lease:
                    return  # heard from a live leader recently: do not be disrupted
            if m.type is MessageType.PRE_VOTE:
                pass  # a pre-vote never changes our term
            elif m.type is MessageType.PRE_VOTE_RESP and not m.reject:
                pass  # granted with the term we would campaign in
            elif m.type in (MessageType.APPEND, MessageType.HEARTBEAT, MessageType.SNAPSHOT):
                self._become_follower(m.term, m.sender)
            else:
                # Figure 2: only a leader's message or a granted vote restarts the election
                # timer -- not a higher term seen elsewhere. Otherwise a candidate whose
                # log is behind keeps resetting the timer of the one that could win.
                elapsed = self._election_elapsed
                self._become_follower(m.term, NONE)
                self._election_elapsed = elapsed
        elif m.term < self.term:
            if m.type in (MessageType.APPEND, MessageType.HEARTBEAT):
                # A deposed leader: our higher term makes it step down (Figure 2). With
                # pre-vote, a node whose term rose during a partition could not rejoin
                # otherwise (thesis §9.6); and a leader removed by a change that did not
                # commit is asked for no vote, so nothing else would ever tell it.
                self._send(MessageType.APPEND_RESP, m.sender)
            elif m.type in (MessageType.PRE_VOTE, MessageType.VOTE):
                # Reject with our term (Figure 2): a candidate that never hears of it may
                # campaign below it forever -- e.g. when our stale configuration does not
                # make us ask it for votes, but its configuration needs ours.
                resp = (
                    MessageType.PRE_VOTE_RESP
                    if m.type is MessageType.PRE_VOTE
                    else MessageType.VOTE_RESP
                )
                self._send(resp, m.sender, reject=True)
            return

        if m.type in (MessageType.VOTE, MessageType.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(m)
        else:
            self._step_follower(m)

    def has_ready(self) -> bool:
        return bool(
            self._msgs
            or self._unstable
            or self.commit > self.applied
            or self._snapshot is not None
            or self._read_states
            or self.hard_state != self._prev_hard
            or self.soft_state != self._prev_soft
        )

    def ready(self) -> Ready:
        """What to install, persist, send and apply now. Messages and read states are
        handed out once; call :meth:`advance` with this Ready after acting on it, before
        the next ``ready()``."""
        hs = self.hard_state
        ss = self.soft_state
        snap = self._snapshot
        ents = tuple(self._unstable)
        truncate = (
            ents[0].index
            if ents and snap is None and ents[0].index <= self._log.last_index()
            else None
        )
        msgs = tuple(self._msgs)
        self._msgs.clear()
        reads: tuple[ReadState, ...] = ()
        if self._read_states:
            reads = tuple(self._read_states)
            self._read_states.clear()
        commit = self.commit
        lo = self.applied + 1 if snap is None else max(self.applied, snap.index) + 1
        committed = tuple(self.entries(lo, commit + 1)) if commit >= lo else ()
        membership = None
        if snap is not None or (
            self._conf_log and any(lo <= i <= commit for i, _ in self._conf_log)
        ):
            membership = self._membership_at(max(commit, lo - 1))
        return Ready(
            hs if hs != self._prev_hard else None,
            ss if ss != self._prev_soft else None,
            truncate,
            ents,
            msgs,
            committed,
            snap,
            reads,
            membership,
        )

    def advance(self, rd: Ready) -> None:
        """Acknowledge that ``rd`` was installed, persisted, sent and applied."""
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.snapshot is not None:
            if self._snapshot is rd.snapshot:
                self._snapshot = None
            self.applied = max(self.applied, rd.snapshot.index)
        if rd.entries:
            last = rd.entries[-1]
            # Entries may have been replaced meanwhile; only a still-matching tail is stable.
            if (
                self._offset <= last.index <= self.last_index()
                and self.term_at(last.index) == last.term
            ):
                del self._unstable[: last.index - self._offset + 1]
                self._offset = last.index + 1
        if rd.committed_entries:
            self.applied = max(self.applied, rd.committed_entries[-1].index)
        # Configurations now applied fold into the base.
        while self._conf_log and self._conf_log[0][0] <= self.applied:
            self._conf_base_index, self._conf_base = self._conf_log.pop(0)

    # ----------------------------------------------------------------- roles

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NONE
        self.leader = NONE
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        et = self.config.election_tick
        self._randomized_timeout = et + self._rng.next() % et
        self._votes = _Votes()
        self._progress = {}
        self._transferee = NONE
        # Reads held by a leader are dropped with its leadership (drivers retry).
        self._reads = []
        self._reads_waiting = []

    def _become_follower(self, term: int, leader: int) -> None:
        self._reset(term)
        self.leader = leader
        self.role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        if self.role is Role.LEADER:
            raise RaftInvariantError("leader cannot become pre-candidate")
        # Term and vote unchanged (thesis §9.6): a failed pre-vote costs nothing.
        self._votes = _Votes()
        self.leader = NONE
        self.role = Role.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        if self.role is Role.LEADER:
            raise RaftInvariantError("leader cannot become candidate")
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        if self.role is not Role.CANDIDATE:
            raise RaftInvariantError("only a candidate can become leader")
        self._reset(self.term)
        self.leader = self.id
        self.role = Role.LEADER
        li = self.last_index()
        # Also the peers an uncommitted change removes: they get the log until they
        # know their removal committed (see _forget_removed).
        before = self._membership_at(self.commit)
        members = self._membership.voters | self._membership.learners
        for peer in members | before.voters | before.learners | {self.id}:
            self._progress[peer] = _Progress(match=0, next=li + 1)
        me = self._progress[self.id]
        me.match = li
        me.become_replicate()
        me.recent_active = True
        # §5.4.2 / §8: commit predecessors' entries through an entry of our own term.
        self._append_local([LogEntry(li + 1, self.term, b"", EntryKind.NOOP)])

    # ----------------------------------------------------------------- membership

    def _membership_at(self, index: int) -> Membership:
        """The configuration in effect at ``index`` (>= the base index)."""
        m = self._conf_base
        for i, c in self._conf_log:
            if i > index:
                break
            m = c
        return m

    def _set_membership(self, m: Membership) -> None:
        if m == self._membership:
            return
        self._membership = m
        if self.role is not Role.LEADER:
            return
        members = m.voters | m.learners
        li = self.last_index()
        for peer in members:
            if peer not in self._progress:
                pr = self._progress[peer] = _Progress(match=0, next=li + 1)
                pr.recent_active = True  # a grace period before check-quorum counts it
        # A removed peer keeps its progress (and gets the log, not counted) until the
        # removal commits, so that it learns of it and stops campaigning.
        if self._transferee != NONE and self._transferee not in m.voters:
            self._transferee = NONE

    def _forget_removed(self) -> None:
        """On a leader whose removals committed: forget each removed peer that has the
        entry removing it, after one last (empty) append carrying the commit index, so
        that it learns it is out. One that lacks the entry keeps getting the log (a
        single voter commits a removal before anyone else has it)."""
        ms = self._membership
        members = ms.voters | ms.learners
        if len(self._progress) <= len(members | {self.id}) or not all(
            i <= self.commit for i, _ in self._conf_log
        ):
            return
        last_conf = self._conf_log[-1][0] if self._conf_log else self._conf_base_index
        for peer in [p for p in self._progress if p not in members and p != self.id]:
            pr = self._progress[peer]
            if pr.match < last_conf:
                continue
            try:
                log_term = self.term_at(pr.match)
            except IndexError:  # pragma: no cover - match is at least the committed change
                log_term = 0
            if log_term:
                self._msgs.append(
                    Message(
                        MessageType.APPEND,
                        self.id,
                        peer,
                        self.term,
                        log_term=log_term,
                        index=pr.match,
                        commit=self.commit,
                    )
                )
            del self._progress[peer]

    def _committed_in_term(self) -> bool:
        try:
            return self.term_at(self.commit) == self.term
        except IndexError:  # pragma: no cover - commit is always >= first_index - 1
            return False

    def _check_can_propose(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.leader)
        if self._transferee != NONE:
            raise LeaderTransferError(self.id, self._transferee)

    def _leader_committed(self) -> None:
        """On a leader, after its commit index moved (and the news was broadcast)."""
        self._forget_removed()
        if self._reads_waiting and self._committed_in_term():
            waiting, self._reads_waiting = self._reads_waiting, []
            for context, origin in waiting:
                self._leader_read(context, origin)
            self._bcast_heartbeat()
        if self.id not in self._membership.voters and all(
            i <= self.commit for i, _ in self._conf_log
        ):
            # Removed, and the removal is committed: step down (thesis §4.2.2), handing
            # the election to the most up-to-date remaining voter.
            best = max(
                (p for p in self._membership.voters if p in self._progress),
                key=lambda p: (self._progress[p].match, -p),
                default=NONE,
            )
            if best != NONE and self._progress[best].match == self.last_index():
                self._send(MessageType.TIMEOUT_NOW, best)
            self._become_follower(self.term, NONE)

    # ----------------------------------------------------------------- ticks

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self.promotable and self._election_elapsed >= self._randomized_timeout:
            self._election_elapsed = 0
            self.campaign()

    def _tick_heartbeat(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.config.election_tick:
            self._election_elapsed = 0
            if self.config.check_quorum and not self._quorum_active():
                self._become_follower(self.term, NONE)
                return
            self._transferee = NONE  # not done within an election timeout: abort
        if self._heartbeat_elapsed >= self.config.heartbeat_tick:
            self._heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def _quorum_active(self) -> bool:
        """Whether a quorum of voters was heard from since the last check; resets marks."""
        active = 0
        voters = self._membership.voters
        for peer, pr in self._progress.items():
            if peer == self.id:
                pr.recent_active = True
            if pr.recent_active and peer in voters:
                active += 1
            if peer != self.id:
                pr.recent_active = False
        return active >= self._quorum()

    def _quorum(self) -> int:
        return len(self._membership.voters) // 2 + 1

    # ----------------------------------------------------------------- elections

    def _campaign(self, *, pre: bool, transfer: bool = False) -> None:
        if pre:
            self._become_pre_candidate()
            kind, term = MessageType.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            kind, term = MessageType.VOTE, self.term
        if self._poll(self.id, granted=True, pre=pre):
            return  # a single voter wins at once
        li, lt = self.last_index(), self.last_term()
        ctx = TRANSFER_CONTEXT if transfer else b""
        for peer in sorted(self._membership.voters):
            if peer != self.id:
                self._msgs.append(
                    Message(kind, self.id, peer, term, log_term=lt, index=li, context=ctx)
                )

    def _poll(self, voter: int, *, granted: bool, pre: bool) -> bool:
        """Record a (pre-)vote; act on a decided election. Returns True if it was won."""
        voters = self._membership.voters
        if voter in voters:
            (self._votes.granted if granted else self._votes.rejected).add(voter)
        if len(self._votes.granted & voters) >= self._quorum():
            if pre:
                self._campaign(pre=False)
            else:
                self._become_leader()
                self._bcast_append()
            return True
        if len(self._votes.rejected & voters) >= self._quorum():
            self._become_follower(self.term, NONE)
        return False

    def _is_up_to_date(self, index: int, term: int) -> bool:
        """§5.4.1: is a log ending at ``(index, term)`` at least as up to date as ours?"""
        lt = self.last_term()
        return term > lt or (term == lt and index >= self.last_index())

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type is MessageType.PRE_VOTE
        resp = MessageType.PRE_VOTE_RESP if pre else MessageType.VOTE_RESP
        can_vote = (
            self.vote == m.sender
            or (self.vote == NONE and self.leader == NONE)
            or (pre and m.term > self.term)
        )
        if can_vote and self._is_up_to_date(m.index, m.log_term):
            # Answer with the candidate's term so it counts the grant (etcd raft.go).
            self._msgs.append(Message(resp, self.id, m.sender, m.term))
            if not pre:
                self._election_elapsed = 0
                self.vote = m.sender
        else:
            self._send(resp, m.sender, reject=True)

    # ----------------------------------------------------------------- per-role steps

    def _step_leader(self, m: Message) -> None:
        pr = self._progress.get(m.sender)
        if pr is None or m.type is MessageType.READ_INDEX:
            if m.type is MessageType.READ_INDEX:  # (learners and strangers may ask too)
                self._leader_read(m.context, m.sender)
                if self._reads:
                    self._bcast_heartbeat()
            return
        if m.type is MessageType.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.paused = False
            if pr.match < self.last_index():
                self._send_append(m.sender)
            if len(m.context) == _SEQ.size:
                self._ack_reads(m.sender, _SEQ.unpack(m.context)[0])
        elif m.type is MessageType.APPEND_RESP:
            pr.recent_active = True
            if m.reject:
                hint = m.reject_hint
                if m.log_term > 0:
                    hint, _ = self._find_conflict_by_term(m.reject_hint, m.log_term)
                if pr.maybe_decr_to(m.index, hint):
                    if pr.state is ProgressState.REPLICATE:
                        pr.become_probe()
                    self._send_append(m.sender)
            else:
                updated = pr.maybe_update(m.index)
                if pr.state is ProgressState.SNAPSHOT and pr.match + 1 >= self.first_index():
                    # The snapshot (or the log) caught it up: replicate from its match.
                    pr.become_replicate()
                    self._send_append(m.sender)
                elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                    # Installed, but we compacted past it meanwhile: another snapshot.
                    pr.pending_snapshot = 0
                    pr.become_probe()
                    self._send_append(m.sender)
                elif pr.state is ProgressState.PROBE and updated:
                    pr.become_replicate()
                if not updated:
                    return
                if m.sender not in self._membership.voters | self._membership.learners:
                    self._forget_removed()  # a removed peer caught up: tell it, forget it
                    if m.sender not in self._progress:
                        return
                if self._maybe_commit():
                    self._bcast_append()
                    self._leader_committed()
                    if self.role is not Role.LEADER:
                        return
                elif pr.next <= self.last_index() or m.index <= self.commit:
                    # More to send, or the follower may not know its entries committed
                    # (an empty append carries the commit index; its ack updates nothing).
                    self._send_append(m.sender)
                if m.sender == self._transferee and pr.match == self.last_index():
                    self._send(MessageType.TIMEOUT_NOW, m.sender)

    def _step_candidate(self, m: Message) -> None:
        if m.type is MessageType.APPEND:
            self._become_follower(m.term, m.sender)
            self._handle_append(m)
        elif m.type is MessageType.HEARTBEAT:
            self._become_follower(m.term, m.sender)
            self._handle_heartbeat(m)
        elif m.type is MessageType.SNAPSHOT:
            self._become_follower(m.term, m.sender)
            self._handle_snapshot(m)
        elif m.type is MessageType.READ_INDEX_RESP:
            self._read_states.append(ReadState(m.context, m.index))
        elif (m.type is MessageType.PRE_VOTE_RESP and self.role is Role.PRE_CANDIDATE) or (
            m.type is MessageType.VOTE_RESP and self.role is Role.CANDIDATE
        ):
            self._poll(m.sender, granted=not m.reject, pre=self.role is Role.PRE_CANDIDATE)

    def _step_follower(self, m: Message) -> None:
        if m.type is MessageType.APPEND:
            self._election_elapsed = 0
            self.leader = m.sender
            self._handle_append(m)
        elif m.type is MessageType.HEARTBEAT:
            self._election_elapsed = 0
            self.leader = m.sender
            self._handle_heartbeat(m)
        elif m.type is MessageType.SNAPSHOT:
            self._election_elapsed = 0
            self.leader = m.sender
            self._handle_snapshot(m)
        elif m.type is MessageType.READ_INDEX_RESP:
            self._read_states.append(ReadState(m.context, m.index))
        elif m.type is MessageType.TIMEOUT_NOW and self.promotable:
            # Leadership transfer (thesis §3.10): a real election now, no pre-vote.
            self._campaign(pre=False, transfer=True)

    # ----------------------------------------------------------------- replication

    def _handle_append(self, m: Message) -> None:
        if m.index < self.commit:
            self._send(MessageType.APPEND_RESP, m.sender, index=self.commit)
            return
        if self._match_term(m.index, m.log_term):
            last_new = m.index + len(m.entries)
            conflict = self._find_conflict(m.entries)
            if conflict:
                if conflict <= self.commit:
                    raise RaftInvariantError(
                        f"entry {conflict} conflicts with committed prefix (commit {self.commit})"
                    )
                self._append(list(m.entries[conflict - m.index - 1 :]))
            self._commit_to(min(m.commit, last_new))
            self._send(MessageType.APPEND_RESP, m.sender, index=last_new)
            return
        # Fast backtracking: the last entry at or before the probe with term <= the
        # leader's term there; everything after it in our log is certainly divergent.
        hint_index, hint_term = self._find_conflict_by_term(
            min(m.index, self.last_index()), m.log_term
        )
        self._send(
            MessageType.APPEND_RESP,
            m.sender,
            index=m.index,
            reject=True,
            reject_hint=hint_index,
            log_term=hint_term,
        )

    def _handle_heartbeat(self, m: Message) -> None:
        # A heartbeat's commit is min(leader commit, what the leader thinks we match). That
        # belief is stale if we restarted without our data; so advance only to an entry of
        # the leader's own term, which (log matching) proves our prefix is its prefix.
        commit = min(m.commit, self.last_index())
        if commit > self.commit and self.term_at(commit) == m.term:
            self._commit_to(commit)
        self._msgs.append(
            Message(MessageType.HEARTBEAT_RESP, self.id, m.sender, self.term, context=m.context)
        )

    def _handle_snapshot(self, m: Message) -> None:
        meta = m.snapshot
        if meta is None:
            return
        if meta.index <= self.commit:
            # Old news (a duplicate, or we caught up by log meanwhile).
            self._send(MessageType.APPEND_RESP, m.sender, index=self.commit)
            return
        if self._match_term(meta.index, meta.term):
            # Our log already holds it (log matching): it is committed; keep our entries.
            self._commit_to(meta.index)
            self._send(MessageType.APPEND_RESP, m.sender, index=self.commit)
            return
        # Accept: the snapshot replaces our whole log (thesis §5.1, InstallSnapshot 6-8).
        self._snapshot = meta
        self._unstable = []
        self._offset = meta.index + 1
        self.commit = meta.index
        self._conf_base = meta.membership
        self._conf_base_index = meta.index
        self._conf_log = []
        self._set_membership(meta.membership)
        self._send(MessageType.APPEND_RESP, m.sender, index=meta.index)

    def _commit_to(self, commit: int) -> None:
        if commit > self.commit:
            if commit > self.last_index():
                raise RaftInvariantError(
                    f"commit {commit} beyond the log's end {self.last_index()}"
                )
            self.commit = commit

    def _maybe_commit(self) -> bool:
        """§5.3-5.4.2: the highest index on a quorum of voters, if of the current term."""
        voters = self._membership.voters
        matches = sorted(
            (pr.match for peer, pr in self._progress.items() if peer in voters),
            reverse=True,
        )
        if len(matches) < self._quorum():
            return False
        mci = matches[self._quorum() - 1]
        if mci > self.commit and self.term_at(mci) == self.term:
            self.commit = mci
            return True
        return False

    def _send_append(self, to: int) -> None:
        pr = self._progress[to]
        if pr.state is ProgressState.SNAPSHOT or (pr.state is ProgressState.PROBE and pr.paused):
            return
        if pr.next < self.first_index():
            self._send_snapshot(to, pr)
            return
        prev = pr.next - 1
        li = self.last_index()
        ents = tuple(self.entries(pr.next, min(li + 1, pr.next + self.config.max_append_entries)))
        self._msgs.append(
            Message(
                MessageType.APPEND,
                self.id,
                to,
                self.term,
                log_term=self.term_at(prev),
                index=prev,
                entries=ents,
                commit=self.commit,
            )
        )
        if pr.state is ProgressState.REPLICATE:
            if ents:
                pr.next = ents[-1].index + 1
        else:
            pr.paused = True

    def _send_snapshot(self, to: int, pr: _Progress) -> None:
        if self._snapshot is not None:
            return  # ours is not installed yet: nothing to ship; retried later
        snapshot = getattr(self._log, "snapshot", None)
        if snapshot is None:
            raise NotImplementedError(
                f"follower {to} needs entries below {self._log.first_index()}: the LogView "
                "must implement snapshot() so that the leader can send one"
            )
        meta: SnapshotMeta = snapshot()
        if meta.index < self._log.first_index() - 1:
            raise RaftInvariantError(
                f"snapshot at {meta.index} does not cover the log's start {self._log.first_index()}"
            )
        self._msgs.append(Message(MessageType.SNAPSHOT, self.id, to, self.term, snapshot=meta))
        pr.become_snapshot(meta.index)

    def _bcast_append(self) -> None:
        for peer in sorted(self._progress):
            if peer != self.id:
                self._send_append(peer)

    def _bcast_heartbeat(self) -> None:
        ctx = _SEQ.pack(self._read_seq) if self._reads else b""
        for peer in sorted(self._progress):
            if peer != self.id:
                pr = self._progress[peer]
                # Never tell a follower to commit past what it is known to hold.
                self._msgs.append(
                    Message(
                        MessageType.HEARTBEAT,
                        self.id,
                        peer,
                        self.term,
                        commit=min(pr.match, self.commit),
                        context=ctx,
                    )
                )

    def _append_local(self, ents: list[LogEntry]) -> None:
        self._append(ents)
        me = self._progress[self.id]
        me.maybe_update(self.last_index())
        if self._maybe_commit():
            self._leader_committed()

    # ----------------------------------------------------------------- reads

    def _leader_read(self, context: bytes, origin: int) -> None:
        """Register a ReadIndex request on the leader (confirmed by the next heartbeat
        round a quorum acknowledges; the caller broadcasts it)."""
        if not self._committed_in_term():
            self._reads_waiting.append((context, origin))
            return
        self._read_seq += 1
        req = _ReadRequest(self._read_seq, context, self.commit, origin)
        self._reads.append(req)
        self._ack_reads(self.id, req.seq)

    def _ack_reads(self, voter: int, seq: int) -> None:
        """``voter`` acknowledged read round ``seq`` (and so every earlier one)."""
        voters = self._membership.voters
        if voter not in voters:
            return
        for req in self._reads:
            if req.seq > seq:
                break
            req.acks.add(voter)
        quorum = self._quorum()
        while self._reads and len(self._reads[0].acks & voters) >= quorum:
            req = self._reads.pop(0)
            if req.origin == self.id:
                self._read_states.append(ReadState(req.context, req.index))
            else:
                self._msgs.append(
                    Message(
                        MessageType.READ_INDEX_RESP,
                        self.id,
                        req.origin,
                        self.term,
                        index=req.index,
                        context=req.context,
                    )
                )

    # ----------------------------------------------------------------- log helpers

    def _match_term(self, index: int, term: int) -> bool:
        if index > self.last_index():
            return False
        try:
            return self.term_at(index) == term
        except IndexError:  # compacted: below our snapshot, so committed and matching
            return False

    def _find_conflict(self, ents: Sequence[LogEntry]) -> int:
        """Index of the first entry not already in our log (new or conflicting), or 0."""
        for e in ents:
            if not self._match_term(e.index, e.term):
                return e.index
        return 0

    def _find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest ``i <= index`` whose term is ``<= term``, with that term (term 0
        if the search reaches the compacted prefix)."""
        i = index
        while i > 0:
            try:
                t = self.term_at(i)
            except IndexError:
                return i, 0
            if t <= term:
                return i, t
            i -= 1
        return 0, 0

    def _append(self, ents: list[LogEntry]) -> None:
        """Append to the unstable tail, truncating any overwritten suffix; configuration
        entries take effect here (and truncated ones are undone)."""
        if not ents:
            return
        after = ents[0].index
        if after == self._offset + len(self._unstable):
            self._unstable.extend(ents)
        elif after <= self._offset:
            # Replaces stored entries too: Ready.truncate_from tells the driver.
            self._offset = after
            self._unstable = list(ents)
        elif after < self._offset + len(self._unstable):
            del self._unstable[after - self._offset :]
            self._unstable.extend(ents)
        else:
            raise RaftInvariantError(f"entry {after} leaves a gap after {self.last_index()}")
        changed = False
        if self._conf_log and self._conf_log[-1][0] >= after:
            self._conf_log = [c for c in self._conf_log if c[0] < after]
            changed = True
        for e in ents:
            if e.kind is EntryKind.CONF_CHANGE:
                self._conf_log.append((e.index, decode_conf_entry(e.data)[1]))
                changed = True
        if changed:
            self._set_membership(self._conf_log[-1][1] if self._conf_log else self._conf_base)

    def _send(
        self,
        kind: MessageType,
        to: int,
        *,
        index: int = 0,
        reject: bool = False,
        reject_hint: int = 0,
        log_term: int = 0,
    ) -> None:
        self._msgs.append(
            Message(
                kind,
                self.id,
                to,
                self.term,
                log_term=log_term,
                index=index,
                reject=reject,
                reject_hint=reject_hint,
            )
        )
