"""A harness and a seeded simulator for the consensus core (:mod:`coord.server._raft`).

:class:`Cluster` is the scripted harness: nodes with in-memory durable state, an outbox of
messages the test delivers (or drops) one by one, and :func:`describe` to print them.

:class:`Simulation` runs a whole ensemble under faults (message loss, delay, reordering,
duplication, partitions, crashes and restarts with durable state -- leaders re-probe a
restarted peer with ``reset_progress`` as the server does on a new link --, log
compaction and snapshot transfer, including lost snapshot streams, membership changes
with a spare server to add, removed servers stopped by the "operator" or left running,
leadership transfers, ReadIndex reads on any node) from one seed, with the real
replicated state machine (:class:`coord.server._apply.StateMachine`) applying entries
encoded as the server encodes them (:meth:`Simulation._payload`), and checks after every
event:

* election safety -- at most one leader per term;
* log matching of committed prefixes -- every entry any node applies at index ``i`` is
  the same entry every other node applies at ``i`` (so applied sequences are identical);
* membership -- the membership each node stores with its applied state
  (``Ready.membership``) is the configuration of the committed log at that index;
* identical replicas -- every node's tree digest after applying index ``i`` (by log or
  by installing a snapshot of ``i``) is the digest every other node had there;
* durability -- every entry ever committed is in the log of every later leader, and in
  the durable log (or the snapshot) of every node that committed it, across restarts;
* ReadIndex -- a read point is at least every index committed before the request, and
  is itself committed;
* liveness after healing -- with the network repaired and every node up, a leader emerges
  and a fresh proposal is applied on every member within a bound.

A failure raises :class:`SimulationFailure` whose message carries the seed and the last
events; replay one seed with ``COORD_RAFT_SEED=<seed> pytest tests/server/test_raft_sim.py``
or ``python -m coord.testing._raft_sim <seed> [voters]``.
"""

from __future__ import annotations

import copy
import heapq
import random
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from coord.protocol import ACL, CreateRequest, DeleteRequest, Id, OpCode, Perm, SetDataRequest
from coord.server._acl import AclPolicy, WorldScheme
from coord.server._apply import CreateSession, Entry, StateMachine
from coord.server._raft import (
    NONE,
    ConfChange,
    ConfChangeError,
    ConfChangeType,
    EntryKind,
    LogEntry,
    Membership,
    MemoryLog,
    Message,
    MessageType,
    NotLeaderError,
    Raft,
    RaftConfig,
    ReadState,
    Ready,
    Role,
    SnapshotMeta,
    decode_conf_entry,
)
from coord.server._storage import HardState

__all__ = ["Cluster", "SimNode", "Simulation", "SimulationFailure", "describe", "run_seed"]


def describe(m: Message) -> str:
    """One readable line for a message, e.g. ``1->2 APPEND t2 prev=3@1 [4@2] commit=3``."""
    s = f"{m.sender}->{m.to} {m.type.name} t{m.term}"
    if m.type is MessageType.APPEND:
        ents = " ".join(
            f"{e.index}@{e.term}" + ("cc" if e.kind is EntryKind.CONF_CHANGE else "")
            for e in m.entries
        )
        s += f" prev={m.index}@{m.log_term} [{ents}] commit={m.commit}"
    elif m.type is MessageType.APPEND_RESP:
        s += f" index={m.index}"
        if m.reject:
            s += f" REJECT hint={m.reject_hint}@{m.log_term}"
    elif m.type in (MessageType.VOTE, MessageType.PRE_VOTE):
        s += f" last={m.index}@{m.log_term}"
        if m.context:
            s += f" {m.context.decode()}"
    elif m.type in (MessageType.VOTE_RESP, MessageType.PRE_VOTE_RESP):
        s += " REJECT" if m.reject else " GRANT"
    elif m.type is MessageType.HEARTBEAT:
        s += f" commit={m.commit}"
        if m.context:
            s += f" read#{int.from_bytes(m.context, 'big')}"
    elif m.type is MessageType.HEARTBEAT_RESP:
        if m.context:
            s += f" read#{int.from_bytes(m.context, 'big')}"
    elif m.type is MessageType.SNAPSHOT and m.snapshot is not None:
        snap = m.snapshot
        s += f" snap={snap.index}@{snap.term} voters={sorted(snap.voters)}"
        if snap.learners:
            s += f" learners={sorted(snap.learners)}"
    elif m.type is MessageType.READ_INDEX:
        s += f" ctx={m.context.decode(errors='replace')}"
    elif m.type is MessageType.READ_INDEX_RESP:
        s += f" ctx={m.context.decode(errors='replace')} index={m.index}"
    return s


@dataclass
class _SnapshotData:
    """What a snapshot ships (out of band): the applied state at an index."""

    index: int
    term: int
    applied: list[LogEntry]
    membership: Membership
    machine: StateMachine | None


def _copy_machine(sm: StateMachine | None) -> StateMachine | None:
    if sm is None:
        return None
    # The ACL policy is shared configuration, not state.
    return copy.deepcopy(sm, {id(sm.acl): sm.acl})


@dataclass
class SimNode:
    """One server: durable state (log, hard state, applied state, membership) and a
    volatile core. ``machine`` (when given) is the real state machine that NORMAL entries
    (``Entry`` encodings) are applied to."""

    config: RaftConfig
    log: MemoryLog = field(default_factory=MemoryLog)
    hard: HardState = field(default_factory=HardState)
    #: Applied entries, persisted together with the applied index (decision 4); after a
    #: snapshot install, the sender's (the history the snapshot stands for).
    applied: list[LogEntry] = field(default_factory=list)
    machine: StateMachine | None = None
    #: The membership as of the applied index (``Ready.membership``), persisted with it.
    membership: Membership | None = None
    up: bool = True
    #: The state at the log's compaction point (what this node ships as a snapshot).
    snap: _SnapshotData | None = None
    #: Snapshot data received with SNAPSHOT messages, by (index, term), until installed.
    incoming: dict[tuple[int, int], _SnapshotData] = field(default_factory=dict)
    raft: Raft = field(init=False)

    def __post_init__(self) -> None:
        if self.membership is None:
            self.membership = Membership(self.config.voters, self.config.learners)
        self.restart()

    def restart(self) -> None:
        """Rebuild the core from durable state only (volatile state is lost)."""
        self.up = True
        self.incoming = {}
        m = self.membership
        assert m is not None
        cfg = RaftConfig(
            id=self.config.id,
            voters=m.voters,
            learners=m.learners,
            election_tick=self.config.election_tick,
            heartbeat_tick=self.config.heartbeat_tick,
            seed=self.config.seed,
            pre_vote=self.config.pre_vote,
            check_quorum=self.config.check_quorum,
            max_append_entries=self.config.max_append_entries,
        )
        self.raft = Raft(cfg, self.log, self.hard, applied=len(self.applied))

    def compact(self) -> SnapshotMeta | None:
        """Compact the log up to the applied index, keeping the applied state as snapshot."""
        idx = len(self.applied)
        if idx < self.log.first_index() or idx > self.log.last_index():
            return None
        assert self.membership is not None
        meta = SnapshotMeta(
            idx, self.log.term(idx), self.membership.voters, self.membership.learners
        )
        self.snap = _SnapshotData(
            idx, meta.term, list(self.applied), self.membership, _copy_machine(self.machine)
        )
        self.log.compact(meta)
        return meta

    def current_state(self) -> _SnapshotData:
        """The applied state now, as snapshot data (what a fresh checkpoint ships)."""
        idx = len(self.applied)
        assert self.membership is not None
        return _SnapshotData(
            idx,
            self.log.term(idx),
            list(self.applied),
            self.membership,
            _copy_machine(self.machine),
        )

    def snapshot_data(self, meta: SnapshotMeta) -> _SnapshotData:
        """The data to attach to an outgoing SNAPSHOT of ``meta``."""
        snap = self.snap
        if snap is None or (snap.index, snap.term) != (meta.index, meta.term):
            raise AssertionError(f"node {self.config.id} has no snapshot {meta}")
        return snap

    def handle_ready(
        self,
        on_apply: Callable[[SimNode, LogEntry], None] | None = None,
        on_install: Callable[[SimNode, _SnapshotData], None] | None = None,
    ) -> Ready:
        """Install, persist, then (the caller) send, then apply; returns the Ready handled."""
        rd = self.raft.ready()
        if rd.snapshot is not None:
            data = self.incoming.pop((rd.snapshot.index, rd.snapshot.term))
            self.log.install_snapshot(rd.snapshot)
            self.applied = list(data.applied)
            self.machine = _copy_machine(data.machine)
            self.snap = data
            self.incoming = {}
            if on_install is not None:
                on_install(self, data)
        if rd.truncate_from is not None:
            self.log.truncate(rd.truncate_from)
        self.log.append(rd.entries)
        if rd.hard_state is not None:
            self.hard = rd.hard_state
        for e in rd.committed_entries:
            self.applied.append(e)
            if self.machine is not None and e.kind is EntryKind.NORMAL:
                self.machine.apply(Entry.decode(e.data))
            if on_apply is not None:
                on_apply(self, e)
        if rd.membership is not None:
            self.membership = rd.membership
        self.raft.advance(rd)
        return rd


def _config(
    nid: int, voters: Iterable[int], learners: Iterable[int], seed: int, *, guards: bool = True
) -> RaftConfig:
    return RaftConfig(
        id=nid,
        voters=frozenset(voters),
        learners=frozenset(learners),
        seed=seed,
        pre_vote=guards,
        check_quorum=guards,
    )


class Cluster:
    """Scripted harness: tests deliver the outbox message by message.

    SNAPSHOT messages carry the sender's snapshot data (attached when they enter the
    outbox); delivering one to a live node reports success to the sender, dropping one in
    :meth:`stabilize` reports failure (what a real driver's stream would tell it).
    """

    def __init__(self, voters: int = 3, learners: int = 0, seed: int = 0) -> None:
        vs = range(1, voters + 1)
        ls = range(voters + 1, voters + learners + 1)
        self.seed = seed
        self.bootstrap = Membership(frozenset(vs), frozenset(ls))
        self.nodes = {i: SimNode(_config(i, vs, ls, seed)) for i in [*vs, *ls]}
        self.outbox: list[Message] = []
        self.reads: dict[int, list[ReadState]] = {}
        self._attached: dict[int, _SnapshotData] = {}
        #: Whether delivering a snapshot reports success to its sender (as a driver
        #: whose stream completed would); dropping one always reports failure.
        self.report_snapshots = True

    def __getitem__(self, nid: int) -> Raft:
        return self.nodes[nid].raft

    def add_node(self, nid: int) -> SimNode:
        """A new, empty server that knows only the bootstrap membership (it joins when a
        membership change adds it)."""
        b = self.bootstrap
        node = self.nodes[nid] = SimNode(_config(nid, b.voters, b.learners, self.seed))
        return node

    def flush(self, nid: int) -> None:
        node = self.nodes[nid]
        if node.raft.has_ready():
            rd = node.handle_ready()
            for m in rd.messages:
                if m.type is MessageType.SNAPSHOT and m.snapshot is not None:
                    self._attached[id(m)] = node.snapshot_data(m.snapshot)
            self.outbox.extend(rd.messages)
            self.reads.setdefault(nid, []).extend(rd.read_states)

    def tick(self, nid: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[nid].raft.tick()
            self.flush(nid)

    def campaign(self, nid: int) -> None:
        self.nodes[nid].raft.campaign()
        self.flush(nid)

    def propose(self, nid: int, *payloads: bytes) -> list[LogEntry]:
        ents = self.nodes[nid].raft.propose(list(payloads))
        self.flush(nid)
        return ents

    def conf_change(self, nid: int, kind: ConfChangeType, node: int) -> LogEntry:
        entry = self.nodes[nid].raft.propose_conf_change(ConfChange(kind, node))
        self.flush(nid)
        return entry

    def transfer(self, nid: int, to: int) -> None:
        self.nodes[nid].raft.transfer_leader(to)
        self.flush(nid)

    def read_index(self, nid: int, context: bytes) -> bool:
        accepted = self.nodes[nid].raft.read_index(context)
        self.flush(nid)
        return accepted

    def take_reads(self, nid: int) -> list[tuple[str, int]]:
        """The read states ``nid`` received so far, as ``(context, index)``; forgets them."""
        got = self.reads.pop(nid, [])
        return [(r.context.decode(), r.index) for r in got]

    def compact(self, nid: int) -> SnapshotMeta | None:
        return self.nodes[nid].compact()

    def take(self, pred: Callable[[Message], bool] = lambda m: True) -> list[Message]:
        """Remove and return the outbox messages matching ``pred``."""
        taken = [m for m in self.outbox if pred(m)]
        self.outbox = [m for m in self.outbox if not pred(m)]
        return taken

    def pending(self) -> list[str]:
        return [describe(m) for m in self.outbox]

    def deliver(self, pred: Callable[[Message], bool] = lambda m: True) -> list[str]:
        """Deliver (once) the outbox messages matching ``pred``; returns what was delivered."""
        msgs = self.take(pred)
        for m in msgs:
            node = self.nodes.get(m.to)
            data = self._attached.pop(id(m), None)
            if node is None or not node.up:
                continue
            if data is not None:
                node.incoming[(data.index, data.term)] = data
            node.raft.step(m)
            self.flush(m.to)
            if data is not None and self.nodes[m.sender].up and self.report_snapshots:
                self.nodes[m.sender].raft.report_snapshot(m.to, True)
                self.flush(m.sender)
        return [describe(m) for m in msgs]

    def drop(self, pred: Callable[[Message], bool] = lambda m: True) -> list[str]:
        """Drop the matching messages; a dropped snapshot is reported failed to its sender."""
        msgs = self.take(pred)
        for m in msgs:
            if self._attached.pop(id(m), None) is not None and self.nodes[m.sender].up:
                self.nodes[m.sender].raft.report_snapshot(m.to, False)
                self.flush(m.sender)
        return [describe(m) for m in msgs]

    def stabilize(self, cut: Iterable[int] = (), limit: int = 10_000) -> None:
        """Deliver until the outbox is empty; messages to or from ``cut`` are dropped."""
        down = set(cut)
        for _ in range(limit):
            if not self.outbox:
                return
            self.deliver(lambda m: m.sender not in down and m.to not in down)
            self.drop(lambda m: m.sender in down or m.to in down)
        raise AssertionError("cluster did not stabilize")

    def applied(self, nid: int) -> list[bytes]:
        return [e.data for e in self.nodes[nid].applied if e.kind is EntryKind.NORMAL]


class SimulationFailure(AssertionError):
    pass


@dataclass
class _Faults:
    loss: float
    dup: float
    max_delay: int
    crash: float
    partition: float


_OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)
_SESSION = 0x5EED
_PATHS = [f"/k{i}" for i in range(6)]


class Simulation:
    """A seeded whole-ensemble run of the real core under faults (see module docs).

    Time is in units; every node ticks every ``TICK`` units (with its own phase), messages
    take 1..``max_delay`` units, so they overtake one another. Node ``voters + learners +
    1`` starts outside the membership (a spare that membership changes may add).
    """

    TICK = 10

    def __init__(self, seed: int, voters: int = 3, learners: int = 0) -> None:
        self.seed = seed
        self.rng = r = random.Random(seed)
        vs = range(1, voters + 1)
        ls = range(voters + 1, voters + learners + 1)
        spare = voters + learners + 1
        # A quarter of the runs turn pre-vote and check-quorum off: more elections, more
        # terms, more divergent logs -- safety must not depend on them.
        guards = r.random() >= 0.25
        #: Whether the operator stops a server once its removal commits (and starts it
        #: again if it is added back). Without the guards a removed server that missed
        #: its removal disrupts the others forever (thesis §4.2.3), so it must be stopped;
        #: with them, half the runs leave it running to show that it cannot disrupt.
        self.decommission = not guards or seed % 2 == 0
        self.decommissioned: set[int] = set()
        self._stop_later: list[int] = []
        self.acl = AclPolicy({"world": WorldScheme()})
        self.nodes = {
            i: SimNode(_config(i, vs, ls, seed, guards=guards), machine=StateMachine(self.acl))
            for i in [*vs, *ls, spare]
        }
        self.faults = _Faults(
            loss=r.choice([0.0, 0.05, 0.2]),
            dup=r.choice([0.0, 0.05]),
            max_delay=r.choice([2, 10, 30, 80]),
            crash=r.choice([0.0, 0.005, 0.02]),
            partition=r.choice([0.0, 0.005, 0.02]),
        )
        #: Per-unit probabilities of the driver-side events.
        self.compact_rate = r.choice([0.0, 0.01, 0.05])
        self.conf_rate = r.choice([0.0, 0.002, 0.01])
        self.read_rate = r.choice([0.0, 0.02, 0.1])
        self.transfer_rate = r.choice([0.0, 0.001, 0.005])
        self.now = 0
        self._seq = 0
        self._queue: list[tuple[int, int, Message, _SnapshotData | None, bool]] = []
        self._phase = {i: r.randrange(self.TICK) for i in self.nodes}
        #: Pairs of nodes that cannot talk (symmetric).
        self.cut: set[frozenset[int]] = set()
        self.committed: list[LogEntry] = []  # the one committed sequence, by index - 1
        self.bootstrap = Membership(frozenset(vs), frozenset(ls))
        #: The committed configuration entries: (index, resulting membership).
        self.confs: list[tuple[int, Membership]] = []
        self.digests: list[int] = []  # tree digest after applying each committed index
        self.leaders: dict[int, int] = {}  # term -> leader
        self.acked: set[bytes] = set()
        #: index -> term of the leader that first applied (so committed) it.
        self.commit_term: dict[int, int] = {}
        #: The highest commit index any node has had (a committed index).
        self.max_commit = 0
        #: Outstanding reads: context -> (node, lower bound on the read point).
        self.reads: dict[bytes, tuple[int, int]] = {}
        self.reads_done = 0
        self.reads_answered: set[bytes] = set()
        self.snapshots_installed = 0
        self.conf_changes = 0
        self.transfers = 0
        self._next_payload = 0
        self.steps = 0
        self.trace: deque[str] = deque(maxlen=40)

    # ------------------------------------------------------------------ plumbing

    def fail(self, what: str) -> None:
        tail = "\n  ".join(self.trace)
        raise SimulationFailure(
            f"seed {self.seed}: {what} (t={self.now}); replay with COORD_RAFT_SEED={self.seed}"
            f"\nlast events:\n  {tail}"
        )

    def _state_digest(self, node: SimNode) -> int:
        sm = node.machine
        assert sm is not None
        return hash((sm.digest(), sm.last_zxid, tuple(sorted(sm.sessions))))

    def _on_apply(self, node: SimNode, e: LogEntry) -> None:
        i = e.index
        nid = node.config.id
        if i <= len(self.committed):
            if self.committed[i - 1] != e:
                self.fail(f"node {nid} applied {e} but {self.committed[i - 1]} was committed")
            if self._state_digest(node) != self.digests[i - 1]:
                self.fail(f"node {nid}'s tree after applying {i} differs from the others'")
        elif i == len(self.committed) + 1:
            self.committed.append(e)
            self.digests.append(self._state_digest(node))
        else:
            self.fail(f"node {nid} applied {i} past committed {len(self.committed)}")
        if len(node.applied) != i:
            self.fail(f"node {nid} applied index {i} out of order")
        if node.raft.role is Role.LEADER:
            self.commit_term.setdefault(i, node.raft.term)
        if e.kind is EntryKind.NORMAL:
            self.acked.add(e.data)  # the server holding the client would reply now
        elif e.kind is EntryKind.CONF_CHANGE and (not self.confs or self.confs[-1][0] < i):
            cc, conf = decode_conf_entry(e.data)
            self.confs.append((i, conf))
            gone = cc.node not in conf.voters | conf.learners
            if gone and self.decommission and cc.node not in self.decommissioned:
                self.decommissioned.add(cc.node)
                self.trace.append(f"{self.now} {cc.node} decommissioned")
                if self.nodes[cc.node].up:
                    self._stop_later.append(cc.node)

    def _on_install(self, node: SimNode, data: _SnapshotData) -> None:
        self.snapshots_installed += 1
        i = data.index
        self.trace.append(f"{self.now} {node.config.id} installs snapshot {i}@{data.term}")
        if i > len(self.committed):
            self.fail(f"node {node.config.id} installed snapshot {i} past committed")
        if data.applied != self.committed[:i]:
            self.fail(f"snapshot {i} installed on {node.config.id} is not the committed prefix")
        if self._state_digest(node) != self.digests[i - 1]:
            self.fail(f"node {node.config.id}'s tree from snapshot {i} differs")

    def _flush(self, nid: int) -> None:
        node = self.nodes[nid]
        if not node.raft.has_ready():
            return
        rd = node.handle_ready(self._on_apply, self._on_install)
        applied = len(node.applied)
        want = self.bootstrap
        for i, conf in self.confs:
            if i > applied:
                break
            want = conf
        if node.membership != want:
            self.fail(f"node {nid} stores membership {node.membership}, not {want} at {applied}")
        if node.raft.commit > self.max_commit:
            self.max_commit = node.raft.commit
        for m in rd.messages:
            self._send(m)
        for rs in rd.read_states:
            self._on_read(nid, rs)
        if rd.soft_state is not None:
            self.trace.append(
                f"{self.now} {nid} {rd.soft_state.role.name} t{node.raft.term} "
                f"leader={rd.soft_state.leader}"
            )
        self._check(nid, elected=rd.soft_state is not None and rd.soft_state.role is Role.LEADER)
        while self._stop_later:
            gone = self._stop_later.pop()
            if self.nodes[gone].up and gone in self.decommissioned:
                self._crash(gone)

    def _send(self, m: Message) -> None:
        f = self.faults
        data = None
        snap = m.snapshot
        if m.type is MessageType.SNAPSHOT and snap is not None:
            sender = self.nodes[m.sender]
            if self.rng.random() < 0.5 and len(sender.applied) > snap.index:
                # Ship the current applied state instead, under its own meta (allowed).
                data = sender.current_state()
                meta = SnapshotMeta(
                    data.index, data.term, data.membership.voters, data.membership.learners
                )
                m = replace(m, snapshot=meta)
            else:
                data = sender.snapshot_data(snap)
        lost = frozenset((m.sender, m.to)) in self.cut or self.rng.random() < f.loss
        if lost and data is None:
            return
        # A lost snapshot stream still ends (in failure) -- the driver reports it then.
        copies = 2 if self.rng.random() < f.dup and not lost else 1
        for _ in range(copies):
            self._seq += 1
            at = self.now + 1 + self.rng.randrange(f.max_delay)
            heapq.heappush(self._queue, (at, self._seq, m, data, lost))

    def _deliver(self, m: Message, data: _SnapshotData | None, lost: bool) -> None:
        node = self.nodes[m.to]
        ok = not lost and node.up and frozenset((m.sender, m.to)) not in self.cut
        if ok:
            if data is not None:
                node.incoming[(data.index, data.term)] = data
            node.raft.step(m)
            self._flush(m.to)
        if data is not None:
            sender = self.nodes[m.sender]
            if sender.up:
                sender.raft.report_snapshot(m.to, ok)
                self._flush(m.sender)

    def _on_read(self, nid: int, rs: ReadState) -> None:
        # Kept after an answer: a duplicated request is answered twice, the bound holds.
        want = self.reads.get(rs.context)
        if want is None:
            self.fail(f"node {nid} got a read state for unknown {rs.context!r}")
            return
        origin, lower = want
        if origin != nid:
            self.fail(f"read {rs.context!r} of node {origin} answered on {nid}")
        if rs.index < lower:
            self.fail(
                f"read {rs.context!r} on {nid}: index {rs.index} < {lower} committed "
                "before it started"
            )
        if rs.index > self.max_commit:
            self.fail(f"read {rs.context!r} on {nid}: index {rs.index} not committed")
        if rs.context not in self.reads_answered:
            self.reads_answered.add(rs.context)
            self.reads_done += 1

    def _check(self, nid: int, *, elected: bool) -> None:
        raft = self.nodes[nid].raft
        if raft.commit > self.max_commit:
            self.max_commit = raft.commit
        if raft.role is Role.LEADER:
            other = self.leaders.setdefault(raft.term, nid)
            if other != nid:
                self.fail(f"two leaders in term {raft.term}: {other} and {nid}")
        first = raft.first_index()
        if elected:
            # Leader completeness (§5.4): an entry committed in term T is in the log of
            # every leader of a term > T (below its snapshot, it is in the snapshot).
            for e in self.committed:
                if self.commit_term.get(e.index, raft.term) >= raft.term or e.index < first:
                    continue
                if e.index > raft.last_index() or raft.term_at(e.index) != e.term:
                    self.fail(f"leader {nid} (term {raft.term}) lacks committed {e}")
        # This node's committed prefix agrees with the committed sequence.
        top = min(raft.commit, len(self.committed))
        for i in range(max(1, top - 3, first - 1), top + 1):
            if raft.term_at(i) != self.committed[i - 1].term:
                self.fail(f"node {nid} commit {raft.commit} disagrees at {i}")

    # ------------------------------------------------------------------ events

    def _crash(self, nid: int) -> None:
        node = self.nodes[nid]
        node.up = False
        self.trace.append(f"{self.now} {nid} crashes")
        # Durable state must still hold everything it applied (no acknowledged loss).
        first = node.log.first_index()
        for e in node.applied[first - 1 :]:
            if e.index > node.log.last_index() or node.log.term(e.index) != e.term:
                self.fail(f"node {nid} durable log lost applied {e}")
        if node.snap is not None and node.snap.index != first - 1:
            self.fail(f"node {nid} snapshot {node.snap.index} does not match its log")

    def _restart(self, nid: int) -> None:
        """Restart from durable state; leaders re-probe it (the driver's
        ``reset_progress`` when the peer link comes back)."""
        self.nodes[nid].restart()
        self.trace.append(f"{self.now} {nid} restarts")
        self._flush(nid)
        for leader in self._leaders():
            leader.raft.reset_progress(nid)
            self._flush(leader.config.id)

    def _leaders(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.up and n.raft.role is Role.LEADER]

    def _payload(self, leader: Raft, *, probe: bool = False) -> bytes:
        """The next client write, encoded as the server encodes log entries (``_stamp``):
        zxid ``(term << 32) | index`` of the entry it will be, time, session, request."""
        self._next_payload += 1
        n = self._next_payload
        zxid = (leader.term << 32) | (leader.last_index() + 1)
        r = self.rng
        path = r.choice(_PATHS)
        request: Any
        if probe:
            op, request = OpCode.SET_DATA, SetDataRequest("/probe", b"p%d" % n, -1)
        elif n == 1 or r.random() < 0.02:
            op, request = OpCode.CREATE_SESSION, CreateSession(30_000, b"p" * 16)
        else:
            kind = r.random()
            if kind < 0.4:
                op, request = OpCode.CREATE, CreateRequest(path, b"c%d" % n, _OPEN, 0)
            elif kind < 0.8:
                op, request = OpCode.SET_DATA, SetDataRequest(path, b"s%d" % n, -1)
            else:
                op, request = OpCode.DELETE, DeleteRequest(path, -1)
        return Entry(zxid, self.now, _SESSION, op, request).encode()

    def _propose(self) -> None:
        leaders = self._leaders()
        if not leaders:
            return
        node = self.rng.choice(leaders)
        try:
            node.raft.propose(self._payload(node.raft))
        except NotLeaderError:  # a leadership transfer in progress
            return
        self._flush(node.config.id)

    def _conf_change(self) -> None:
        leaders = self._leaders()
        if not leaders:
            return
        node = self.rng.choice(leaders)
        m = node.raft.membership
        everyone = set(self.nodes)
        outsiders = sorted(everyone - m.voters - m.learners)
        choices: list[ConfChange] = []
        for n in outsiders:
            choices += [ConfChange(ConfChangeType.ADD_LEARNER, n)]
            choices += [ConfChange(ConfChangeType.ADD_VOTER, n)]
        for n in sorted(m.learners):
            choices += [ConfChange(ConfChangeType.PROMOTE_LEARNER, n)] * 2
            choices += [ConfChange(ConfChangeType.REMOVE, n)]
        if len(m.voters) > 2:
            choices += [ConfChange(ConfChangeType.REMOVE, n) for n in sorted(m.voters)]
        if not choices:
            return
        cc = self.rng.choice(choices)
        try:
            node.raft.propose_conf_change(cc)
        except (ConfChangeError, NotLeaderError):
            return
        self.conf_changes += 1
        if cc.node in self.decommissioned and cc.type is not ConfChangeType.REMOVE:
            self.decommissioned.discard(cc.node)  # the operator starts it again
            if not self.nodes[cc.node].up:
                self._restart(cc.node)
        self.trace.append(f"{self.now} {node.config.id} proposes {cc.type.name} {cc.node}")
        self._flush(node.config.id)

    def _transfer(self) -> None:
        leaders = self._leaders()
        if not leaders:
            return
        node = self.rng.choice(leaders)
        others = sorted(node.raft.voters - {node.config.id})
        if not others:
            return
        to = self.rng.choice(others)
        node.raft.transfer_leader(to)
        self.transfers += 1
        self.trace.append(f"{self.now} {node.config.id} transfers to {to}")
        self._flush(node.config.id)

    def _read(self) -> None:
        ups = [n for n in self.nodes.values() if n.up]
        if not ups:
            return
        node = self.rng.choice(ups)
        self._seq += 1
        ctx = b"r%d" % self._seq
        lower = self.max_commit
        nid = node.config.id
        if node.raft.read_index(ctx):
            self.reads[ctx] = (nid, lower)
            self._flush(nid)

    def _compact(self) -> None:
        node = self.nodes[self.rng.choice(list(self.nodes))]
        if node.up and node.compact() is not None:
            self.trace.append(f"{self.now} {node.config.id} compacts to {len(node.applied)}")

    def _random_partition(self) -> None:
        ids = list(self.nodes)
        self.rng.shuffle(ids)
        k = self.rng.randrange(1, len(ids))
        a, b = ids[:k], ids[k:]
        self.cut = {frozenset((x, y)) for x in a for y in b}
        self.trace.append(f"{self.now} partition {sorted(a)} | {sorted(b)}")

    def advance_time(self, *, faults: bool) -> None:
        self.now += 1
        self.steps += 1
        r = self.rng
        if faults:
            f = self.faults
            if r.random() < f.partition:
                if self.cut:
                    self.cut = set()
                    self.trace.append(f"{self.now} partition heals")
                else:
                    self._random_partition()
            if r.random() < f.crash:
                leaders = [i for i, n in self.nodes.items() if n.up and n.raft.role is Role.LEADER]
                # Half the crashes hit a leader: that is where entries are at risk.
                nid = r.choice(leaders if leaders and r.random() < 0.5 else list(self.nodes))
                node = self.nodes[nid]
                if node.up:
                    self._crash(nid)
                else:
                    if nid in self.decommissioned:
                        return
                    self._restart(nid)
            if r.random() < 0.1:
                self._propose()
            if r.random() < self.conf_rate:
                self._conf_change()
            if r.random() < self.transfer_rate:
                self._transfer()
        if r.random() < self.read_rate:
            self._read()
        if r.random() < self.compact_rate:
            self._compact()
        while self._queue and self._queue[0][0] <= self.now:
            _, _, m, data, lost = heapq.heappop(self._queue)
            self._deliver(m, data, lost)
        for nid, node in self.nodes.items():
            if node.up and (self.now + self._phase[nid]) % self.TICK == 0:
                node.raft.tick()
                self._flush(nid)

    def heal(self) -> None:
        self.cut = set()
        self.faults = _Faults(loss=0.0, dup=0.0, max_delay=self.faults.max_delay,
                              crash=0.0, partition=0.0)  # fmt: skip
        self.trace.append(f"{self.now} heal")
        for nid, node in self.nodes.items():
            if not node.up and nid not in self.decommissioned:
                self._restart(nid)

    def _members(self) -> set[int]:
        """The members (voters and learners) per the latest committed configuration."""
        best = max(self.nodes.values(), key=lambda n: len(n.applied))
        m = best.membership
        assert m is not None
        return set(m.voters | m.learners)

    def run(self, fault_steps: int = 3000, liveness_bound: int = 3000) -> None:
        """Faults for ``fault_steps`` units, then heal and require progress within
        ``liveness_bound`` units."""
        for _ in range(fault_steps):
            self.advance_time(faults=True)
        self.heal()
        start = self.now
        probes: set[bytes] = set()
        holder: tuple[int, int] | None = None  # (node, term) that took the latest probe
        while self.now - start < liveness_bound:
            self.advance_time(faults=False)
            leaders = self._leaders()
            held = holder is not None and any((n.config.id, n.raft.term) == holder for n in leaders)
            if leaders and not held:
                # (Re)propose: a probe taken by a deposed leader may have been overwritten.
                leader = max(leaders, key=lambda n: n.raft.term)
                probe = self._payload(leader.raft, probe=True)
                try:
                    leader.raft.propose(probe)
                except NotLeaderError:  # a leadership transfer still in progress
                    continue
                probes.add(probe)
                holder = (leader.config.id, leader.raft.term)
                self._flush(leader.config.id)
            members = self._members()
            if probes and all(
                any(e.data in probes for e in self.nodes[i].applied) for i in members
            ):
                # Let everyone catch up with the last commit (no proposals meanwhile).
                target = max(n.raft.commit for n in self.nodes.values())
                if all(len(self.nodes[i].applied) >= target for i in members):
                    break
        else:
            roles = {i: (n.raft.role.name, n.raft.term) for i, n in self.nodes.items()}
            self.fail(f"no progress within {liveness_bound} units after healing: {roles}")
        # Replicas identical once caught up; every acknowledged write is on every member.
        seqs = {i: [e.data for e in n.applied] for i, n in self.nodes.items()}
        first = max(seqs.values(), key=len)
        for i, s in seqs.items():
            if s != first[: len(s)]:
                self.fail(f"applied sequence of {i} diverges")
        everywhere = set.intersection(*(set(seqs[i]) for i in members))
        lost = self.acked - everywhere
        if lost:
            self.fail(f"acknowledged writes lost: {sorted(lost)[:5]}")


#: What the test suite runs per seed (tests/server/test_raft_sim.py).
FAULT_STEPS = 1000
LIVENESS_BOUND = 3000


def run_seed(seed: int, voters: int) -> Simulation:
    """One seed as the test suite runs it (1 learner on every 4th seed)."""
    sim = Simulation(seed, voters=voters, learners=1 if seed % 4 == 0 else 0)
    sim.run(fault_steps=FAULT_STEPS, liveness_bound=LIVENESS_BOUND)
    return sim


def main(argv: list[str]) -> None:
    """``python -m coord.testing._raft_sim SEED [VOTERS]``: replay one seed."""
    seed = int(argv[1])
    voters = int(argv[2]) if len(argv) > 2 else 3
    sim = run_seed(seed, voters)
    print(
        f"seed {seed}: ok; committed {len(sim.committed)}, reads {sim.reads_done}, "
        f"snapshots {sim.snapshots_installed}, conf changes {sim.conf_changes}, "
        f"transfers {sim.transfers}"
    )


if __name__ == "__main__":
    main(sys.argv)


__all__ += ["NONE"]
