"""Scripted, message-by-message scenarios for the consensus core (coord.server._raft).

Each test states the Raft rule it checks; the expected message lines are written out so a
failure reads like a trace (``describe``: ``sender->to TYPE tTERM ...``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from coord.server import _raft
from coord.server._raft import (
    EntryKind,
    LogEntry,
    MemoryLog,
    Message,
    MessageType,
    NotLeaderError,
    Raft,
    RaftConfig,
    Role,
)
from coord.server._storage import HardState
from coord.testing._raft_sim import Cluster

ELECTION = 10  # RaftConfig's default election_tick


def to(*ids: int):  # type: ignore[no-untyped-def]
    return lambda m: m.to in ids


def between(*ids: int):  # type: ignore[no-untyped-def]
    return lambda m: m.to in ids and m.sender in ids


def elect(c: Cluster, nid: int) -> None:
    c.campaign(nid)
    c.stabilize()
    assert c[nid].role is Role.LEADER


def test_Raft_core_imports_no_io_clock_or_randomness() -> None:
    """The core is pure (CONVENTIONS.md 1): randomness comes in through the seed."""
    tree = ast.parse(Path(_raft.__file__).read_text())
    names = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    } | {
        n.module.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and n.level == 0
    }
    assert not names & {"anyio", "asyncio", "trio", "socket", "time", "random", "threading"}


def test_Raft_election_three_nodes_single_leader() -> None:
    """§5.2 + pre-vote: a pre-vote round, then a vote round, then one leader for term 1."""
    c = Cluster(3)
    c.campaign(1)
    assert c.pending() == ["1->2 PRE_VOTE t1 last=0@0", "1->3 PRE_VOTE t1 last=0@0"]
    assert c[1].term == 0  # a pre-vote does not touch the term
    assert c.deliver() == ["1->2 PRE_VOTE t1 last=0@0", "1->3 PRE_VOTE t1 last=0@0"]
    assert c.deliver() == ["2->1 PRE_VOTE_RESP t1 GRANT", "3->1 PRE_VOTE_RESP t1 GRANT"]
    # The first grant made a quorum: a real campaign in term 1 (the second is ignored).
    assert c.pending() == ["1->2 VOTE t1 last=0@0", "1->3 VOTE t1 last=0@0"]
    c.deliver()
    assert c.nodes[2].hard == HardState(term=1, vote=1)  # persisted before the grant left
    c.deliver(lambda m: m.sender == 2)
    assert c[1].role is Role.LEADER and c[1].term == 1
    assert c.pending()[:2] == [
        "3->1 VOTE_RESP t1 GRANT",
        "1->2 APPEND t1 prev=0@0 [1@1] commit=0",
    ]
    c.stabilize()
    assert [c[i].role for i in (1, 2, 3)] == [Role.LEADER, Role.FOLLOWER, Role.FOLLOWER]
    assert {c[i].leader for i in (1, 2, 3)} == {1}
    assert [c[i].commit for i in (1, 2, 3)] == [1, 1, 1]  # the leader's no-op


def test_Raft_election_single_voter_wins_at_once() -> None:
    """Standalone is a one-member ensemble (DESIGN.md 3): it elects and commits alone."""
    c = Cluster(1)
    c.tick(1, 2 * ELECTION)
    assert c[1].role is Role.LEADER
    c.propose(1, b"x")
    assert c.applied(1) == [b"x"]


def test_Raft_prevote_partitioned_node_does_not_disrupt_leader() -> None:
    """Thesis §9.6: an isolated node keeps its term; on rejoining it cannot depose a leader
    that a quorum still hears from (its pre-votes are ignored inside the lease)."""
    c = Cluster(3)
    elect(c, 1)
    for _ in range(5 * ELECTION):  # node 3 is cut off and times out again and again
        c.tick(3)
        c.take(lambda m: m.sender == 3 or m.to == 3)
    assert c[3].term == 1 and c[3].role is Role.PRE_CANDIDATE
    c.tick(3, 2 * ELECTION)
    assert any("PRE_VOTE t2" in line for line in c.pending())
    c.deliver(lambda m: m.sender == 3)  # the partition heals; 1 and 2 are in their lease
    assert c.pending() == []  # ignored: no grant, no term change
    c.tick(1)  # the leader's next heartbeat brings 3 back
    c.stabilize()
    assert (c[1].role, c[1].term, c[3].role, c[3].leader) == (
        Role.LEADER,
        1,
        Role.FOLLOWER,
        1,
    )


def test_Raft_without_prevote_a_rejoining_node_would_disrupt() -> None:
    """The counterfactual of the test above: without pre-vote or check-quorum the isolated
    node's inflated term deposes the leader (why pre-vote exists)."""
    c = Cluster(3)
    for n in c.nodes.values():
        n.config = RaftConfig(id=n.config.id, voters=n.config.voters, pre_vote=False,
                              check_quorum=False)  # fmt: skip
        n.restart()
    elect(c, 1)
    for _ in range(3 * ELECTION):
        c.tick(3)
        c.take(lambda m: m.sender == 3 or m.to == 3)
    assert c[3].term > 2
    c.tick(3, 2 * ELECTION)
    c.stabilize()
    assert c[1].term > 1  # the leader was deposed


def test_Raft_log_conflict_follower_divergent_suffix_overwritten() -> None:
    """§5.3: a follower's uncommitted entries that conflict with the leader's are replaced;
    fast backtracking finds the divergence point in one rejection, not one per entry."""
    c = Cluster(3)
    elect(c, 1)
    c.propose(1, b"a", b"b", b"c", b"d")  # term 1, indexes 2..5, reach nobody
    c.take()
    assert c[1].last_index() == 5
    for _ in range(3 * ELECTION):  # 1 is cut off; 2 and 3 elect one of them in term 2
        c.tick(2)
        c.tick(3)
        c.deliver(between(2, 3))
        c.take(lambda m: 1 in (m.sender, m.to))
        if Role.LEADER in (c[2].role, c[3].role):
            break
    lead = 2 if c[2].role is Role.LEADER else 3
    assert c[lead].role is Role.LEADER and c[lead].term == 2
    c.propose(lead, b"x")
    c.stabilize(cut=[1])
    assert c.applied(2) == c.applied(3) == [b"x"]
    # Heal: the deposed leader steps down on the first term-2 message, then is repaired.
    c.tick(lead)
    rejects: list[str] = []
    for _ in range(20):
        if not c.outbox:
            break
        rejects += [line for line in c.deliver() if "REJECT" in line]
    # Four divergent entries are repaired without one rejection per entry.
    assert len(rejects) <= 1, rejects
    assert c.nodes[1].log.entries(1, 4) == c.nodes[lead].log.entries(1, 4)
    assert [e.term for e in c.nodes[1].log.entries(1, 4)] == [1, 2, 2]
    assert c.applied(1) == [b"x"]  # a..d never committed, never applied


def test_Raft_old_term_entry_not_committed_by_count_alone() -> None:
    """§5.4.2 (Figure 8): a leader does not commit an entry of an earlier term just because
    a quorum stores it; only an entry of its own term commits (and with it the prefix)."""
    c = Cluster(3)
    old = [LogEntry(1, 1, b"", EntryKind.NOOP), LogEntry(2, 1, b"from-term-1")]
    for nid in (1, 2):
        c.nodes[nid].log = MemoryLog(old)
        c.nodes[nid].hard = HardState(term=2)
    c.nodes[3].log = MemoryLog(old[:1])
    c.nodes[3].hard = HardState(term=2)
    for n in c.nodes.values():
        n.applied = [old[0]]
        n.restart()
    c.campaign(1)
    c.deliver(to(2))  # pre-vote
    c.deliver(to(1))
    c.deliver(to(2))  # vote
    c.deliver(to(1))
    assert c[1].role is Role.LEADER and c[1].term == 3
    c.take()
    # Node 2 (which already stores index 2) acknowledges index 2 only: a quorum (1, 2)
    # now stores "from-term-1", but it is of term 1, so nothing commits.
    c[1].step(Message(MessageType.APPEND_RESP, 2, 1, 3, index=2))
    assert c[1].progress(2) is not None and c[1].progress(2)[0] == 2  # type: ignore[index]
    assert c[1].commit == 1
    # Acknowledging the leader's own no-op (index 3, term 3) commits 2 and 3 together.
    c[1].step(Message(MessageType.APPEND_RESP, 2, 1, 3, index=3))
    assert c[1].commit == 3
    c.flush(1)
    assert c.applied(1) == [b"from-term-1"]


def test_Raft_leader_change_mid_replication_keeps_committed_entries() -> None:
    """§5.4: an entry committed by a quorum survives the leader's crash; the node that
    lacks it cannot win (its log is not up to date), the one that has it can."""
    c = Cluster(3)
    elect(c, 1)
    c.propose(1, b"w1")
    c.deliver(to(2))  # the append reaches 2 only
    c.deliver(to(1))  # 2's ack: committed on (1, 2); leader applies and acks the client
    assert c.applied(1) == [b"w1"]
    c.take()  # leader 1 crashes; nothing more leaves it
    c.nodes[1].up = False
    assert c[3].last_index() == 1  # 3 lacks w1
    for _ in range(ELECTION):  # 2's lease on leader 1 runs out
        c.tick(2)
        c.take()
    c.campaign(3)
    c.deliver(to(2))
    assert c.pending() == ["3->1 PRE_VOTE t2 last=1@1", "2->3 PRE_VOTE_RESP t1 REJECT"]
    c.take()  # (not up to date, §5.4.1; the message to the dead 1 is lost)
    c.campaign(2)
    c.stabilize(cut=[1])
    assert c[2].role is Role.LEADER
    assert c.applied(2) == c.applied(3) == [b"w1"]
    c.nodes[1].restart()  # durable log and hard state only
    c.tick(2)
    c.stabilize()
    assert c.applied(1) == [b"w1"] and c[1].leader == 2


def test_Raft_check_quorum_leader_in_minority_steps_down() -> None:
    """Thesis §6.2: a leader that hears from no quorum for an election timeout steps down
    (so clients stop trusting a stale leader); the majority side elects a new one."""
    c = Cluster(3)
    elect(c, 1)
    for _ in range(ELECTION):
        c.tick(1)
        c.take()
    assert c[1].role is Role.LEADER  # the first check found 2 and 3 active
    for _ in range(ELECTION):
        c.tick(1)
        c.take()
    assert c[1].role is Role.FOLLOWER and c[1].leader == 0
    with pytest.raises(NotLeaderError):
        c[1].propose(b"late")
    for _ in range(3 * ELECTION):
        c.tick(2)
        c.tick(3)
        c.deliver(between(2, 3))
        c.take(lambda m: 1 in (m.sender, m.to))
    assert Role.LEADER in (c[2].role, c[3].role)


def test_Raft_learner_receives_entries_but_never_votes_or_counts() -> None:
    """Observers are learners: they get the log and apply it, but are asked for no vote,
    never campaign, and never make a quorum."""
    c = Cluster(3, learners=1)
    c.tick(4, 10 * ELECTION)
    assert c.outbox == [] and c[4].role is Role.FOLLOWER  # never campaigns
    c.campaign(1)
    assert all(m.to != 4 for m in c.outbox)  # not asked for a vote
    c.stabilize()
    c.propose(1, b"w")
    c.stabilize()
    assert c.applied(4) == [b"w"]
    # With 2 and 3 cut off, the learner's acknowledgement does not commit anything.
    c.propose(1, b"only-learner")
    c.stabilize(cut=[2, 3])
    assert c[4].last_index() == c[1].last_index()
    assert c.applied(1) == [b"w"]


def test_Raft_restart_keeps_term_vote_and_log_not_commit() -> None:
    """Persisted (term, vote) and log survive a restart; volatile state starts over, and a
    restarted voter does not vote twice in the same term."""
    r = Raft(RaftConfig(id=2, voters=frozenset({1, 2, 3})), MemoryLog(), HardState(5, 3))
    r.step(Message(MessageType.VOTE, 1, 2, 5, index=0, log_term=0))
    rd = r.ready()
    assert [m.reject for m in rd.messages] == [True]
    assert (r.term, r.vote, r.role) == (5, 3, Role.FOLLOWER)


def test_Raft_election_timeouts_are_seeded_and_randomized() -> None:
    """Timeouts lie in [election_tick, 2*election_tick) and depend only on (seed, id)."""

    def first_campaign(seed: int, nid: int) -> int:
        r = Raft(RaftConfig(id=nid, voters=frozenset({1, 2, 3}), seed=seed), MemoryLog())
        for t in range(1, 3 * ELECTION):
            r.tick()
            if r.role is Role.PRE_CANDIDATE:
                return t
        raise AssertionError("never campaigned")

    ticks = [first_campaign(s, n) for s in range(10) for n in (1, 2, 3)]
    assert all(ELECTION <= t < 2 * ELECTION for t in ticks)
    assert len(set(ticks)) > 1
    assert ticks == [first_campaign(s, n) for s in range(10) for n in (1, 2, 3)]


def test_Raft_rejected_stale_candidate_does_not_restart_the_election_timer() -> None:
    """Figure 2: the timer restarts on a message from the current leader or on granting a
    vote -- not on a higher term from a candidate we reject. Otherwise a candidate that
    cannot win (log behind) keeps the one that could from ever campaigning (without
    pre-vote, under long delays: simulator seed 1397)."""
    log = MemoryLog([LogEntry(1, 1), LogEntry(2, 1)])
    r = Raft(RaftConfig(id=2, voters=frozenset({2, 3}), pre_vote=False), log, HardState(1, 0))
    for _ in range(ELECTION - 1):
        r.tick()
    r.step(Message(MessageType.VOTE, 3, 2, 5, index=1, log_term=1))  # behind us
    assert (r.term, r.role, r.vote) == (5, Role.FOLLOWER, 0)
    assert r._election_elapsed == ELECTION - 1  # still running
    r.step(Message(MessageType.VOTE, 3, 2, 6, index=2, log_term=1))  # up to date: granted
    assert r.vote == 3 and r._election_elapsed == 0


def test_Raft_forget_leader_campaigns_within_a_few_ticks_and_peers_grant() -> None:
    """A driver that saw the leader's connections close (its process died) calls
    forget_leader: the follower stops honouring the dead leader's lease and campaigns
    after the given ticks instead of a whole election timeout; the other follower, which
    forgot it too, grants the pre-vote and the vote; the new term has one leader."""
    c = Cluster(3)
    elect(c, 1)
    c.drop(to(1))
    for nid in (2, 3):
        c[nid].forget_leader(2 if nid == 2 else 3)
        assert c[nid].leader == 0
    c.tick(2, 1)
    assert c.pending() == []  # one tick is not enough for node 2
    c.tick(2, 1)
    assert c.pending() == ["2->1 PRE_VOTE t2 last=1@1", "2->3 PRE_VOTE t2 last=1@1"]
    c.drop(to(1))  # node 1 is dead
    c.stabilize(cut=[1])
    assert c[2].role is Role.LEADER and c[2].term == 2
    assert c[3].leader == 2


def test_Raft_forget_leader_is_ignored_by_leaders_and_without_a_leader() -> None:
    c = Cluster(3)
    elect(c, 1)
    c[1].forget_leader(1)
    assert c[1].role is Role.LEADER and c[1].leader == 1
    c2 = Cluster(3)
    c2[2].forget_leader(1)  # no leader known: nothing changes
    c2.tick(2, 1)
    assert c2.pending() == []
