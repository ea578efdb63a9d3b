"""Scripted scenarios for ReadIndex (thesis §6.4) in the consensus core.

A read point is the leader's commit index, handed out only after a heartbeat round
acknowledged by a quorum shows the leader was still the leader when the request arrived;
followers forward the request. Lines read ``sender->to TYPE tTERM ...``; ``read#n`` is
the leader's read round carried by a heartbeat and echoed in its response.
"""

from __future__ import annotations

from coord.server._raft import Role
from coord.testing._raft_sim import Cluster

ELECTION = 10


def to(*ids: int):  # type: ignore[no-untyped-def]
    return lambda m: m.to in ids


def frm(*ids: int):  # type: ignore[no-untyped-def]
    return lambda m: m.sender in ids


def three_with_a_write() -> Cluster:
    c = Cluster(3)
    c.campaign(1)
    c.stabilize()
    c.propose(1, b"a")
    c.stabilize()
    assert c[1].commit == 2
    return c


def test_Raft_read_index_on_leader_after_quorum_heartbeat() -> None:
    """The leader records its commit index and answers once a quorum (itself and one
    follower) acknowledged the heartbeat round sent after the request."""
    c = three_with_a_write()
    assert c.read_index(1, b"q1")
    assert c.pending() == [
        "1->2 HEARTBEAT t1 commit=2 read#1",
        "1->3 HEARTBEAT t1 commit=2 read#1",
    ]
    assert c.take_reads(1) == []  # not before a quorum confirms
    c.deliver(to(2))
    assert c.deliver(frm(2)) == ["2->1 HEARTBEAT_RESP t1 read#1"]
    assert c.take_reads(1) == [("q1", 2)]
    c.stabilize()
    assert c.take_reads(1) == []  # handed out once


def test_Raft_read_index_later_round_confirms_earlier_reads() -> None:
    """An acknowledgement of round n confirms every request registered before it, in
    order (the follower still recognised the leader after all of them)."""
    c = three_with_a_write()
    c.read_index(1, b"q1")
    c.read_index(1, b"q2")
    c.take(lambda m: m.context == (1).to_bytes(8, "big"))  # round 1 is lost
    assert c.pending() == [
        "1->2 HEARTBEAT t1 commit=2 read#2",
        "1->3 HEARTBEAT t1 commit=2 read#2",
    ]
    c.deliver(to(3))
    c.deliver(frm(3))
    assert c.take_reads(1) == [("q1", 2), ("q2", 2)]


def test_Raft_read_index_on_follower_is_forwarded() -> None:
    """A follower forwards the request; the leader confirms its leadership and returns
    the read point, which becomes the follower's ReadState."""
    c = three_with_a_write()
    assert c.read_index(3, b"q2")
    assert c.pending() == ["3->1 READ_INDEX t1 ctx=q2"]
    c.deliver(to(1))
    assert c.pending() == [
        "1->2 HEARTBEAT t1 commit=2 read#1",
        "1->3 HEARTBEAT t1 commit=2 read#1",
    ]
    c.deliver(to(2, 3))
    assert c.deliver(to(1)) == [
        "2->1 HEARTBEAT_RESP t1 read#1",
        "3->1 HEARTBEAT_RESP t1 read#1",
    ]
    assert c.pending() == ["1->3 READ_INDEX_RESP t1 ctx=q2 index=2"]
    c.deliver(to(3))
    assert c.take_reads(3) == [("q2", 2)]
    assert c.take_reads(1) == []


def test_Raft_read_index_single_voter_answers_at_once() -> None:
    """A one-voter ensemble is its own quorum: no round trip."""
    c = Cluster(1)
    c.campaign(1)
    c.propose(1, b"x")
    assert c.read_index(1, b"q")
    assert c.pending() == []
    assert c.take_reads(1) == [("q", 2)]


def test_Raft_read_index_new_leader_waits_for_commit_in_its_term() -> None:
    """A new leader's commit index may lag what its predecessor committed; it holds reads
    until its own no-op commits, and answers with an index covering that."""
    c = three_with_a_write()
    c.propose(1, b"b")
    c.deliver(to(2))  # b reaches 2 only; 2 acks, the leader commits 3...
    c.deliver(to(1))
    assert c[1].commit == 3
    c.take()  # ...and crashes before telling anyone
    c.nodes[1].up = False
    for _ in range(ELECTION):
        c.tick(2)
        c.tick(3)
        c.take()
    c.campaign(2)
    c.deliver(to(3))  # pre-vote
    c.deliver(to(2))
    c.take(to(1))
    c.deliver(to(3))  # vote
    c.deliver(to(2))
    assert c[2].role is Role.LEADER and c[2].commit == 2  # index 3 is committed, unknown
    c.take(to(1))
    assert c.read_index(2, b"q")
    assert [line for line in c.pending() if "read#" in line] == []  # held
    assert c.deliver(to(3)) == ["2->3 APPEND t2 prev=3@1 [4@2] commit=2"]
    assert c.deliver(to(2)) == ["3->2 APPEND_RESP t2 index=3 REJECT hint=2@1"]
    assert c.deliver(to(3)) == ["2->3 APPEND t2 prev=2@1 [3@1 4@2] commit=2"]
    assert c[2].commit == 2 and c.take_reads(2) == []
    assert c.deliver(to(2)) == ["3->2 APPEND_RESP t2 index=4"]
    assert c[2].commit == 4
    assert [line for line in c.pending() if "->3" in line] == [
        "2->3 APPEND t2 prev=4@2 [] commit=4",
        "2->3 HEARTBEAT t2 commit=4 read#1",
    ]
    c.stabilize(cut=[1])
    assert c.take_reads(2) == [("q", 4)]  # >= 3, which 1 committed before the request


def test_Raft_read_index_dropped_when_leadership_is_lost() -> None:
    """A leader cut off from the quorum never confirms the read: it steps down (check
    quorum) and the request is dropped -- it must not answer with its stale commit
    index while the majority commits newer writes. Without a leader a request is refused
    at once; the driver retries."""
    c = three_with_a_write()
    assert c.read_index(1, b"stale")
    c.take()  # the heartbeats are lost: 1 is partitioned
    for _ in range(3 * ELECTION):
        c.tick(2)
        c.tick(3)
        c.tick(1)
        c.deliver(lambda m: m.sender in (2, 3) and m.to in (2, 3))
        c.take(lambda m: 1 in (m.sender, m.to))
        if c[1].role is not Role.LEADER and Role.LEADER in (c[2].role, c[3].role):
            break
    new = 2 if c[2].role is Role.LEADER else 3
    c.propose(new, b"newer")
    c.stabilize(cut=[1])
    assert c[1].role is Role.FOLLOWER and c[1].leader == 0
    assert c.take_reads(1) == []
    assert not c.read_index(1, b"no-leader")  # refused: nobody to ask
    assert c.pending() == []
    c.tick(new)  # heal: 1 hears from the new leader
    c.stabilize()
    assert c[1].leader == new
    assert c.read_index(1, b"again")
    c.stabilize()
    assert c.take_reads(1) == [("again", c[new].commit)]
    assert c[new].commit >= 4  # covers "newer"
