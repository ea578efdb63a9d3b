"""The consensus core: a sans-IO Raft state machine (pre-vote, check-quorum, learners).

Theory of operation
-------------------
One :class:`Raft` per server. It never touches a socket, a clock, a disk or a random
source (DESIGN.md decision 7, CONVENTIONS.md 2). The driver feeds it three kinds of input
and drains one kind of output, in the shape of etcd-io/raft's ``RawNode``:

* :meth:`Raft.tick` -- one logical clock tick (the driver decides how long a tick is);
* :meth:`Raft.step` -- one :class:`Message` received from a peer;
* :meth:`Raft.propose` -- client payloads, on the leader only; the core stamps each with
  its index and the current term, so ``zxid = (term << 32) | index``;
* :meth:`Raft.ready` -> :class:`Ready`, then :meth:`Raft.advance` once the driver has, in
  this order: (1) persisted ``ready.hard_state`` and ``ready.entries`` (after dropping the
  stored log from ``ready.truncate_from`` on), atomically; (2) sent ``ready.messages``;
  (3) applied ``ready.committed_entries``. Sending before persisting would let a peer count
  an acknowledgement or a vote that a crash could take back.

The core reads the durable log through :class:`LogView`, a narrow read-only Protocol
(first/last index, term of an index, a range of entries); entries it has accepted but the
driver has not yet persisted live in an in-memory "unstable" tail that shadows the stored
log from ``_offset`` on (etcd ``log_unstable.go``).

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
  in order, in ``Ready.committed_entries``.

Liveness and disruption:

* **Randomized election timeouts** (§5.2) in ``[election_tick, 2 * election_tick)``,
  drawn from a SplitMix64 stream seeded by ``RaftConfig.seed`` (the driver passes the
  randomness in; the core stays deterministic).
* **Pre-vote** (Ongaro's thesis §9.6; etcd ``MsgPreVote``): before incrementing its term a
  would-be candidate asks whether it *could* win; a partitioned node therefore does not
  inflate its term and depose a healthy leader when it rejoins.
* **Check-quorum / leader lease** (thesis §6.2, §9.6; etcd ``checkQuorum``): a leader that
  has not heard from a quorum within an election timeout steps down, and a node that heard
  from a leader within the election timeout ignores (pre-)vote requests for a higher term.
* **Fast backtracking** (§5.3 optimisation; etcd ``findConflictByTerm``): a rejecting
  follower returns a hint ``(index, term)``: the last entry at or before the probe whose
  term is <= the leader's term at the probe; the leader then skips a whole term per round.
* **Flow control** (etcd ``tracker/progress.go``): per follower, *probe* (one append in
  flight until acknowledged or a heartbeat response arrives) or *replicate* (pipelined,
  optimistic ``next``).

Learners (ZooKeeper's observers) receive the log like followers but never campaign and
are not counted in any quorum. Candidates only ask voters.

Not here yet (TODO): snapshots (``InstallSnapshot``, thesis §5; needed once the log is
compacted -- ``MessageType.SNAPSHOT`` is reserved), membership changes (thesis §4,
joint consensus or one at a time), leader transfer, ReadIndex reads (thesis §6.4).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from ._storage import HardState

__all__ = [
    "NONE",
    "EntryKind",
    "LogEntry",
    "LogView",
    "MemoryLog",
    "Message",
    "MessageType",
    "NotLeaderError",
    "ProgressState",
    "Raft",
    "RaftConfig",
    "RaftInvariantError",
    "Ready",
    "Role",
    "SoftState",
]

#: "No node": the vote before one is cast, the leader before one is known. Ids are >= 1.
NONE = 0

_MASK64 = (1 << 64) - 1


class NotLeaderError(Exception):
    """Raised by :meth:`Raft.propose` on a node that is not the leader.

    ``leader`` is the leader this node knows of, or :data:`NONE`.
    """

    def __init__(self, leader: int) -> None:
        super().__init__(f"not the leader (leader is {leader or 'unknown'})")
        self.leader = leader


class RaftInvariantError(AssertionError):
    """A safety invariant would be broken (a bug, or a corrupted log); the server must stop."""


class EntryKind(IntEnum):
    NORMAL = 0
    #: The empty entry a new leader appends to commit its predecessors' entries (§5.4.2).
    NOOP = 1


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


class MessageType(IntEnum):
    APPEND = 1  # AppendEntries (§5.3)
    APPEND_RESP = 2
    HEARTBEAT = 3  # empty AppendEntries carrying only a safe commit index
    HEARTBEAT_RESP = 4
    VOTE = 5  # RequestVote (§5.2)
    VOTE_RESP = 6
    PRE_VOTE = 7  # thesis §9.6
    PRE_VOTE_RESP = 8
    #: Reserved for InstallSnapshot (TODO: not sent or handled yet).
    SNAPSHOT = 9


@dataclass(frozen=True, slots=True)
class Message:
    """A message between peers. Fields unused by a type keep their defaults.

    ``index``/``log_term``: for APPEND the entry preceding ``entries``; for (PRE_)VOTE the
    candidate's last entry; for APPEND_RESP the last index now matching (or, rejected, the
    probed index, with ``log_term``/``reject_hint`` the follower's conflict hint).
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
    """What the driver must do, in order: persist, send, apply (see module docs)."""

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

    def __bool__(self) -> bool:
        return bool(
            self.hard_state is not None
            or self.soft_state is not None
            or self.entries
            or self.messages
            or self.committed_entries
        )


class LogView(Protocol):
    """The durable log as the core reads it. The driver writes it (after each Ready)."""

    def first_index(self) -> int:
        """Index of the oldest entry kept (1 until the log is compacted)."""
        ...

    def last_index(self) -> int:
        """Index of the newest entry (0 for an empty log)."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index``, for ``first_index() - 1 <= index <= last_index()``
        (0 for index 0)."""
        ...

    def entries(self, lo: int, hi: int) -> Sequence[LogEntry]:
        """Entries with ``lo <= index < hi``, within ``[first_index(), last_index() + 1)``."""
        ...


class MemoryLog:
    """An in-memory :class:`LogView` plus the writes a driver makes; for tests and the
    simulator. Never compacted."""

    def __init__(self, entries: Iterable[LogEntry] = ()) -> None:
        self._entries: list[LogEntry] = []
        self.append(list(entries))

    def first_index(self) -> int:
        return 1

    def last_index(self) -> int:
        return len(self._entries)

    def term(self, index: int) -> int:
        if index == 0:
            return 0
        if not 1 <= index <= len(self._entries):
            raise IndexError(f"no entry {index} (last is {len(self._entries)})")
        return self._entries[index - 1].term

    def entries(self, lo: int, hi: int) -> Sequence[LogEntry]:
        if not 1 <= lo <= hi <= len(self._entries) + 1:
            raise IndexError(f"range [{lo}, {hi}) outside [1, {len(self._entries) + 1})")
        return self._entries[lo - 1 : hi - 1]

    def truncate(self, from_index: int) -> None:
        """Drop entries with index >= ``from_index``."""
        del self._entries[from_index - 1 :]

    def append(self, entries: Sequence[LogEntry]) -> None:
        """Append contiguous entries, dropping any stored suffix they overwrite."""
        if not entries:
            return
        first = entries[0].index
        if not 1 <= first <= len(self._entries) + 1:
            raise ValueError(
                f"entry {first} does not continue a log ending at {len(self._entries)}"
            )
        self.truncate(first)
        for i, e in enumerate(entries):
            if e.index != first + i:
                raise ValueError("entries are not contiguous")
            self._entries.append(e)

    def copy(self) -> MemoryLog:
        return MemoryLog(self._entries)


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Static configuration of one node."""

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


@dataclass(slots=True)
class _Progress:
    """The leader's view of one peer (etcd ``tracker.Progress``)."""

    match: int = 0
    next: int = 1
    state: ProgressState = ProgressState.PROBE
    #: In PROBE, an append is in flight: send no more until a response or heartbeat ack.
    paused: bool = False
    recent_active: bool = False

    def maybe_update(self, n: int) -> bool:
        updated = self.match < n
        if updated:
            self.match = n
            self.paused = False
        self.next = max(self.next, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
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
        self.state = ProgressState.PROBE
        self.next = self.match + 1
        self.paused = False

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
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


class Raft:
    """One node's consensus state machine. See the module docs for the driver's contract.

    Args:
        config: this node's static configuration.
        log: the durable log (read only; the driver appends to it after each Ready).
        hard_state: the ``(term, vote)`` last persisted.
        applied: the index of the last entry already applied to the persisted state; it
            was committed, so it is also this node's starting commit index.
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
        self.config = config
        self.id = config.id
        self._log = log
        self._unstable: list[LogEntry] = []
        self._offset = log.last_index() + 1
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
        self._prev_hard = hard_state
        self._prev_soft = SoftState(NONE, Role.FOLLOWER)
        self._become_follower(self.term, NONE)

    # ----------------------------------------------------------------- introspection

    @property
    def is_learner(self) -> bool:
        return self.id in self.config.learners

    @property
    def promotable(self) -> bool:
        """Whether this node may campaign (it is a voter)."""
        return self.id in self.config.voters

    @property
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote)

    @property
    def soft_state(self) -> SoftState:
        return SoftState(self.leader, self.role)

    def last_index(self) -> int:
        return self._offset + len(self._unstable) - 1

    def last_term(self) -> int:
        return self.term_at(self.last_index())

    def term_at(self, index: int) -> int:
        """Term of the entry at ``index`` in this node's (stored + unstable) log."""
        if index >= self._offset:
            i = index - self._offset
            if i >= len(self._unstable):
                raise IndexError(f"no entry {index} (last is {self.last_index()})")
            return self._unstable[i].term
        if index == 0:
            return 0
        return self._log.term(index)

    def entries(self, lo: int, hi: int) -> list[LogEntry]:
        """Entries with ``lo <= index < hi`` of this node's (stored + unstable) log."""
        if not 1 <= lo <= hi <= self.last_index() + 1:
            raise IndexError(f"range [{lo}, {hi}) outside [1, {self.last_index() + 1})")
        out: list[LogEntry] = []
        if lo < self._offset:
            out.extend(self._log.entries(lo, min(hi, self._offset)))
        if hi > self._offset:
            out.extend(self._unstable[max(lo, self._offset) - self._offset : hi - self._offset])
        return out

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
        """
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.leader)
        payloads = [data] if isinstance(data, bytes) else list(data)
        li = self.last_index()
        ents = [LogEntry(li + 1 + i, self.term, p) for i, p in enumerate(payloads)]
        self._append_local(ents)
        self._bcast_append()
        return ents

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
                self._become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.config.check_quorum or self.config.pre_vote) and m.type in (
                MessageType.APPEND,
                MessageType.HEARTBEAT,
            ):
                # A deposed leader: our higher term makes it step down. Without this, a
                # node whose term rose during a partition could never rejoin (thesis §9.6).
                self._send(MessageType.APPEND_RESP, m.sender)
            elif m.type is MessageType.PRE_VOTE:
                self._send(MessageType.PRE_VOTE_RESP, m.sender, reject=True)
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
            or self.hard_state != self._prev_hard
            or self.soft_state != self._prev_soft
        )

    def ready(self) -> Ready:
        """What to persist, send and apply now. Messages are handed out once; call
        :meth:`advance` with this Ready after acting on it, before the next ``ready()``."""
        hs = self.hard_state
        ss = self.soft_state
        ents = tuple(self._unstable)
        truncate = ents[0].index if ents and ents[0].index <= self._log.last_index() else None
        msgs = tuple(self._msgs)
        self._msgs.clear()
        committed = tuple(self.entries(self.applied + 1, self.commit + 1))
        return Ready(
            hard_state=hs if hs != self._prev_hard else None,
            soft_state=ss if ss != self._prev_soft else None,
            truncate_from=truncate,
            entries=ents,
            messages=msgs,
            committed_entries=committed,
        )

    def advance(self, rd: Ready) -> None:
        """Acknowledge that ``rd`` was persisted, sent and applied."""
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
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
        for peer in self.config.voters | self.config.learners:
            self._progress[peer] = _Progress(match=0, next=li + 1)
        me = self._progress.get(self.id)
        if me is None:  # pragma: no cover - voters always include a leader
            raise RaftInvariantError("leader is not a voter")
        me.match = li
        me.become_replicate()
        me.recent_active = True
        # §5.4.2 / §8: commit predecessors' entries through an entry of our own term.
        self._append_local([LogEntry(li + 1, self.term, b"", EntryKind.NOOP)])

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
        if self._heartbeat_elapsed >= self.config.heartbeat_tick:
            self._heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def _quorum_active(self) -> bool:
        """Whether a quorum of voters was heard from since the last check; resets marks."""
        active = 0
        for peer, pr in self._progress.items():
            if peer == self.id:
                pr.recent_active = True
            if pr.recent_active and peer in self.config.voters:
                active += 1
            if peer != self.id:
                pr.recent_active = False
        return active >= self._quorum()

    def _quorum(self) -> int:
        return len(self.config.voters) // 2 + 1

    # ----------------------------------------------------------------- elections

    def _campaign(self, *, pre: bool) -> None:
        if pre:
            self._become_pre_candidate()
            kind, term = MessageType.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            kind, term = MessageType.VOTE, self.term
        if self._poll(self.id, granted=True, pre=pre):
            return  # a single voter wins at once
        li, lt = self.last_index(), self.last_term()
        for peer in sorted(self.config.voters):
            if peer != self.id:
                self._msgs.append(Message(kind, self.id, peer, term, log_term=lt, index=li))

    def _poll(self, voter: int, *, granted: bool, pre: bool) -> bool:
        """Record a (pre-)vote; act on a decided election. Returns True if it was won."""
        if voter in self.config.voters:
            (self._votes.granted if granted else self._votes.rejected).add(voter)
        if len(self._votes.granted) >= self._quorum():
            if pre:
                self._campaign(pre=False)
            else:
                self._become_leader()
                self._bcast_append()
            return True
        if len(self._votes.rejected) >= self._quorum():
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
        if pr is None:
            return
        if m.type is MessageType.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.paused = False
            if pr.match < self.last_index():
                self._send_append(m.sender)
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
            elif pr.maybe_update(m.index):
                if pr.state is ProgressState.PROBE:
                    pr.become_replicate()
                if self._maybe_commit():
                    self._bcast_append()
                elif pr.next <= self.last_index() or m.index <= self.commit:
                    # More to send, or the follower may not know its entries committed
                    # (an empty append carries the commit index; its ack updates nothing).
                    self._send_append(m.sender)

    def _step_candidate(self, m: Message) -> None:
        if m.type is MessageType.APPEND:
            self._become_follower(m.term, m.sender)
            self._handle_append(m)
        elif m.type is MessageType.HEARTBEAT:
            self._become_follower(m.term, m.sender)
            self._handle_heartbeat(m)
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
        self._send(MessageType.HEARTBEAT_RESP, m.sender)

    def _commit_to(self, commit: int) -> None:
        if commit > self.commit:
            if commit > self.last_index():
                raise RaftInvariantError(
                    f"commit {commit} beyond the log's end {self.last_index()}"
                )
            self.commit = commit

    def _maybe_commit(self) -> bool:
        """§5.3-5.4.2: the highest index on a quorum of voters, if of the current term."""
        matches = sorted(
            (pr.match for peer, pr in self._progress.items() if peer in self.config.voters),
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
        if pr.state is ProgressState.PROBE and pr.paused:
            return
        prev = pr.next - 1
        # TODO(snapshots): once the log is compacted, prev < first_index - 1 means the
        # follower needs an InstallSnapshot (MessageType.SNAPSHOT) instead.
        if prev < self._log.first_index() - 1:
            raise NotImplementedError("follower needs a snapshot (not implemented)")
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

    def _bcast_append(self) -> None:
        for peer in sorted(self._progress):
            if peer != self.id:
                self._send_append(peer)

    def _bcast_heartbeat(self) -> None:
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
                    )
                )

    def _append_local(self, ents: list[LogEntry]) -> None:
        self._append(ents)
        me = self._progress[self.id]
        me.maybe_update(self.last_index())
        self._maybe_commit()

    # ----------------------------------------------------------------- log helpers

    def _match_term(self, index: int, term: int) -> bool:
        if index > self.last_index():
            return False
        try:
            return self.term_at(index) == term
        except IndexError:  # pragma: no cover - compacted (no snapshots yet)
            return False

    def _find_conflict(self, ents: Sequence[LogEntry]) -> int:
        """Index of the first entry not already in our log (new or conflicting), or 0."""
        for e in ents:
            if not self._match_term(e.index, e.term):
                return e.index
        return 0

    def _find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest ``i <= index`` whose term is ``<= term``, with that term."""
        i = index
        while i > 0:
            t = self.term_at(i)
            if t <= term:
                return i, t
            i -= 1
        return 0, 0

    def _append(self, ents: list[LogEntry]) -> None:
        """Append to the unstable tail, truncating any overwritten suffix."""
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
