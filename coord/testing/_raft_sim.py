"""A harness and a seeded simulator for the consensus core (:mod:`coord.server._raft`).

:class:`Cluster` is the scripted harness: nodes with in-memory durable state, an outbox of
messages the test delivers (or drops) one by one, and :func:`describe` to print them.

:class:`Simulation` runs a whole ensemble under faults (message loss, delay, reordering,
duplication, partitions, crashes and restarts) from one seed, checking after every event:

* election safety -- at most one leader per term;
* log matching of committed prefixes -- every entry any node applies at index ``i`` is
  the same entry every other node applies at ``i`` (so applied sequences are identical);
* durability -- every entry ever committed is in the log of every later leader, and in
  the durable log of every node that committed it, across restarts;
* liveness after healing -- with the network repaired and every node up, a leader emerges
  and a fresh proposal is applied on every node within a bound.

A failure raises :class:`SimulationFailure` whose message carries the seed; replay one
seed with ``COORD_RAFT_SEED=<seed> pytest tests/server/test_raft_sim.py``.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from coord.server._raft import (
    NONE,
    EntryKind,
    LogEntry,
    MemoryLog,
    Message,
    MessageType,
    NotLeaderError,
    Raft,
    RaftConfig,
    Ready,
    Role,
)
from coord.server._storage import HardState

__all__ = ["Cluster", "SimNode", "Simulation", "SimulationFailure", "describe"]


def describe(m: Message) -> str:
    """One readable line for a message, e.g. ``1->2 APPEND t2 prev=3@1 [4@2] commit=3``."""
    s = f"{m.sender}->{m.to} {m.type.name} t{m.term}"
    if m.type is MessageType.APPEND:
        ents = " ".join(f"{e.index}@{e.term}" for e in m.entries)
        s += f" prev={m.index}@{m.log_term} [{ents}] commit={m.commit}"
    elif m.type is MessageType.APPEND_RESP:
        s += f" index={m.index}"
        if m.reject:
            s += f" REJECT hint={m.reject_hint}@{m.log_term}"
    elif m.type in (MessageType.VOTE, MessageType.PRE_VOTE):
        s += f" last={m.index}@{m.log_term}"
    elif m.type in (MessageType.VOTE_RESP, MessageType.PRE_VOTE_RESP):
        s += " REJECT" if m.reject else " GRANT"
    elif m.type is MessageType.HEARTBEAT:
        s += f" commit={m.commit}"
    return s


@dataclass
class SimNode:
    """One server: durable state (log, hard state, applied entries) and a volatile core."""

    config: RaftConfig
    log: MemoryLog = field(default_factory=MemoryLog)
    hard: HardState = field(default_factory=HardState)
    #: Applied entries, persisted together with the applied index (decision 4).
    applied: list[LogEntry] = field(default_factory=list)
    up: bool = True
    raft: Raft = field(init=False)

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """Rebuild the core from durable state only (volatile state is lost)."""
        self.up = True
        self.raft = Raft(self.config, self.log, self.hard, applied=len(self.applied))

    def handle_ready(self, on_apply: Callable[[SimNode, LogEntry], None] | None = None) -> Ready:
        """Persist, then (the caller) send, then apply; returns the Ready handled."""
        rd = self.raft.ready()
        if rd.truncate_from is not None:
            self.log.truncate(rd.truncate_from)
        self.log.append(rd.entries)
        if rd.hard_state is not None:
            self.hard = rd.hard_state
        for e in rd.committed_entries:
            self.applied.append(e)
            if on_apply is not None:
                on_apply(self, e)
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
    """Scripted harness: tests deliver the outbox message by message."""

    def __init__(self, voters: int = 3, learners: int = 0, seed: int = 0) -> None:
        vs = range(1, voters + 1)
        ls = range(voters + 1, voters + learners + 1)
        self.nodes = {i: SimNode(_config(i, vs, ls, seed)) for i in [*vs, *ls]}
        self.outbox: list[Message] = []

    def __getitem__(self, nid: int) -> Raft:
        return self.nodes[nid].raft

    def flush(self, nid: int) -> None:
        node = self.nodes[nid]
        if node.raft.has_ready():
            self.outbox.extend(node.handle_ready().messages)

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
            node = self.nodes[m.to]
            if node.up:
                node.raft.step(m)
                self.flush(m.to)
        return [describe(m) for m in msgs]

    def stabilize(self, cut: Iterable[int] = (), limit: int = 10_000) -> None:
        """Deliver until the outbox is empty; messages to or from ``cut`` are dropped."""
        down = set(cut)
        for _ in range(limit):
            if not self.outbox:
                return
            self.deliver(lambda m: m.sender not in down and m.to not in down)
            self.take(lambda m: m.sender in down or m.to in down)
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


class Simulation:
    """A seeded whole-ensemble run of the real core under faults (see module docs).

    Time is in units; every node ticks every ``TICK`` units (with its own phase), messages
    take 1..``max_delay`` units, so they overtake one another.
    """

    TICK = 10

    def __init__(self, seed: int, voters: int = 3, learners: int = 0) -> None:
        self.seed = seed
        self.rng = r = random.Random(seed)
        vs = range(1, voters + 1)
        ls = range(voters + 1, voters + learners + 1)
        # A quarter of the runs turn pre-vote and check-quorum off: more elections, more
        # terms, more divergent logs -- safety must not depend on them.
        guards = r.random() >= 0.25
        self.nodes = {i: SimNode(_config(i, vs, ls, seed, guards=guards)) for i in [*vs, *ls]}
        self.faults = _Faults(
            loss=r.choice([0.0, 0.05, 0.2]),
            dup=r.choice([0.0, 0.05]),
            max_delay=r.choice([2, 10, 30, 80]),
            crash=r.choice([0.0, 0.005, 0.02]),
            partition=r.choice([0.0, 0.005, 0.02]),
        )
        self.now = 0
        self._seq = 0
        self._queue: list[tuple[int, int, Message]] = []
        self._phase = {i: r.randrange(self.TICK) for i in self.nodes}
        #: Pairs of nodes that cannot talk (symmetric).
        self.cut: set[frozenset[int]] = set()
        self.committed: list[LogEntry] = []  # the one committed sequence, by index - 1
        self.leaders: dict[int, int] = {}  # term -> leader
        self.acked: set[bytes] = set()
        #: index -> term of the leader that first applied (so committed) it.
        self.commit_term: dict[int, int] = {}
        self._next_payload = 0
        self.steps = 0

    # ------------------------------------------------------------------ plumbing

    def fail(self, what: str) -> None:
        raise SimulationFailure(
            f"seed {self.seed}: {what} (t={self.now}); replay with COORD_RAFT_SEED={self.seed}"
        )

    def _on_apply(self, node: SimNode, e: LogEntry) -> None:
        i = e.index
        if i <= len(self.committed):
            if self.committed[i - 1] != e:
                self.fail(
                    f"node {node.config.id} applied {e} but {self.committed[i - 1]} "
                    "was committed at that index"
                )
        elif i == len(self.committed) + 1:
            self.committed.append(e)
        else:
            self.fail(f"node {node.config.id} applied {i} past committed {len(self.committed)}")
        if len(node.applied) != i:
            self.fail(f"node {node.config.id} applied index {i} out of order")
        if node.raft.role is Role.LEADER:
            self.commit_term.setdefault(i, node.raft.term)
        if e.kind is EntryKind.NORMAL:
            self.acked.add(e.data)  # the server holding the client would reply now

    def _flush(self, nid: int) -> None:
        node = self.nodes[nid]
        if not node.raft.has_ready():
            return
        rd = node.handle_ready(self._on_apply)
        for m in rd.messages:
            self._send(m)
        self._check(nid, elected=rd.soft_state is not None and rd.soft_state.role is Role.LEADER)

    def _send(self, m: Message) -> None:
        f = self.faults
        if frozenset((m.sender, m.to)) in self.cut or self.rng.random() < f.loss:
            return
        copies = 2 if self.rng.random() < f.dup else 1
        for _ in range(copies):
            self._seq += 1
            at = self.now + 1 + self.rng.randrange(f.max_delay)
            heapq.heappush(self._queue, (at, self._seq, m))

    def _check(self, nid: int, *, elected: bool) -> None:
        raft = self.nodes[nid].raft
        if raft.role is Role.LEADER:
            other = self.leaders.setdefault(raft.term, nid)
            if other != nid:
                self.fail(f"two leaders in term {raft.term}: {other} and {nid}")
        if elected:
            # Leader completeness (§5.4): an entry committed in term T is in the log of
            # every leader of a term > T.
            for e in self.committed:
                if self.commit_term.get(e.index, raft.term) >= raft.term:
                    continue
                if e.index > raft.last_index() or raft.term_at(e.index) != e.term:
                    self.fail(f"leader {nid} (term {raft.term}) lacks committed {e}")
        # This node's committed prefix agrees with the committed sequence.
        top = min(raft.commit, len(self.committed))
        for i in range(max(1, top - 3), top + 1):
            if raft.term_at(i) != self.committed[i - 1].term:
                self.fail(f"node {nid} commit {raft.commit} disagrees at {i}")

    # ------------------------------------------------------------------ events

    def _crash(self, nid: int) -> None:
        node = self.nodes[nid]
        node.up = False
        # Durable state must still hold everything it applied (no acknowledged loss).
        for e in node.applied:
            if e.index > node.log.last_index() or node.log.term(e.index) != e.term:
                self.fail(f"node {nid} durable log lost applied {e}")

    def _propose(self) -> None:
        leaders = [n for n in self.nodes.values() if n.up and n.raft.role is Role.LEADER]
        if not leaders:
            return
        node = self.rng.choice(leaders)
        self._next_payload += 1
        try:
            node.raft.propose(f"w{self._next_payload}".encode())
        except NotLeaderError:  # pragma: no cover - filtered above
            return
        self._flush(node.config.id)

    def _random_partition(self) -> None:
        ids = list(self.nodes)
        self.rng.shuffle(ids)
        k = self.rng.randrange(1, len(ids))
        a, b = ids[:k], ids[k:]
        self.cut = {frozenset((x, y)) for x in a for y in b}

    def advance_time(self, *, faults: bool) -> None:
        self.now += 1
        self.steps += 1
        r = self.rng
        if faults:
            f = self.faults
            if r.random() < f.partition:
                if self.cut:
                    self.cut = set()
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
                    node.restart()
                    self._flush(nid)
        if faults and r.random() < 0.1:
            self._propose()
        while self._queue and self._queue[0][0] <= self.now:
            _, _, m = heapq.heappop(self._queue)
            node = self.nodes[m.to]
            if node.up and frozenset((m.sender, m.to)) not in self.cut:
                node.raft.step(m)
                self._flush(m.to)
        for nid, node in self.nodes.items():
            if node.up and (self.now + self._phase[nid]) % self.TICK == 0:
                node.raft.tick()
                self._flush(nid)

    def heal(self) -> None:
        self.cut = set()
        self.faults = _Faults(loss=0.0, dup=0.0, max_delay=self.faults.max_delay,
                              crash=0.0, partition=0.0)  # fmt: skip
        for nid, node in self.nodes.items():
            if not node.up:
                node.restart()
                self._flush(nid)

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
            leaders = [n for n in self.nodes.values() if n.raft.role is Role.LEADER]
            held = holder is not None and any((n.config.id, n.raft.term) == holder for n in leaders)
            if leaders and not held:
                # (Re)propose: a probe taken by a deposed leader may have been overwritten.
                probe = f"liveness-probe-{len(probes)}".encode()
                probes.add(probe)
                leader = max(leaders, key=lambda n: n.raft.term)
                leader.raft.propose(probe)
                holder = (leader.config.id, leader.raft.term)
                self._flush(leader.config.id)
            if all(any(e.data in probes for e in n.applied) for n in self.nodes.values()):
                # Let everyone catch up with the last commit (no proposals meanwhile).
                target = max(n.raft.commit for n in self.nodes.values())
                if all(len(n.applied) >= target for n in self.nodes.values()):
                    break
        else:
            roles = {i: (n.raft.role.name, n.raft.term) for i, n in self.nodes.items()}
            self.fail(f"no progress within {liveness_bound} units after healing: {roles}")
        # Replicas identical once caught up; every acknowledged write is everywhere.
        seqs = {i: [e.data for e in n.applied] for i, n in self.nodes.items()}
        first = seqs[1]
        for i, s in seqs.items():
            if s[: len(first)] != first[: len(s)]:
                self.fail(f"applied sequences of 1 and {i} diverge")
        everywhere = set.intersection(*(set(s) for s in seqs.values()))
        lost = self.acked - everywhere
        if lost:
            self.fail(f"acknowledged writes lost: {sorted(lost)[:5]}")


__all__ += ["NONE"]
