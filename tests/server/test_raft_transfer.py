"""Scripted scenarios for leadership transfer (thesis §3.10) in the consensus core.

The leader stops taking proposals, brings the target's log up to date, then sends it
TIMEOUT_NOW; the target campaigns at once without pre-vote, and its vote requests
(``transfer``) are granted even by voters inside their leader lease.
"""

from __future__ import annotations

import pytest

from coord.server._raft import LeaderTransferError, NotLeaderError, Role
from coord.testing._raft_sim import Cluster

ELECTION = 10


def to(*ids: int):  # type: ignore[no-untyped-def]
    return lambda m: m.to in ids


def three() -> Cluster:
    c = Cluster(3, learners=1)
    c.campaign(1)
    c.stabilize()
    c.propose(1, b"a")
    c.stabilize()
    return c


def test_Raft_transfer_to_up_to_date_follower() -> None:
    """An up-to-date target gets TIMEOUT_NOW at once and wins the next term; the old
    leader's lease does not stop the other voter from granting."""
    c = three()
    c.transfer(1, 2)
    assert c.pending() == ["1->2 TIMEOUT_NOW t1"]
    c.deliver(to(2))
    assert c.pending() == [
        "2->1 VOTE t2 last=2@1 transfer",
        "2->3 VOTE t2 last=2@1 transfer",
    ]
    assert c.deliver(to(3)) == ["2->3 VOTE t2 last=2@1 transfer"]  # 3 is in its lease
    assert c.pending()[-1:] == ["3->2 VOTE_RESP t2 GRANT"]
    c.stabilize()
    assert [(c[i].role, c[i].term, c[i].leader) for i in (1, 2, 3, 4)] == [
        (Role.FOLLOWER, 2, 2),
        (Role.LEADER, 2, 2),
        (Role.FOLLOWER, 2, 2),
        (Role.FOLLOWER, 2, 2),
    ]
    c.propose(2, b"b")
    c.stabilize()
    assert c.applied(1) == c.applied(4) == [b"a", b"b"]


def test_Raft_transfer_catches_the_target_up_first() -> None:
    """A lagging target is brought up to date first; proposals are refused meanwhile
    (LeaderTransferError, a NotLeaderError)."""
    c = three()
    c.propose(1, b"b")
    c.stabilize(cut=[3])
    c.transfer(1, 3)
    assert c.pending() == ["1->3 APPEND t1 prev=3@1 [] commit=3"]
    with pytest.raises(LeaderTransferError) as info:
        c[1].propose(b"refused")
    assert isinstance(info.value, NotLeaderError) and info.value.transferee == 3
    assert c.deliver(to(3)) == ["1->3 APPEND t1 prev=3@1 [] commit=3"]
    assert c.deliver(to(1)) == ["3->1 APPEND_RESP t1 index=3 REJECT hint=2@1"]
    assert c.deliver(to(3)) == ["1->3 APPEND t1 prev=2@1 [3@1] commit=3"]
    assert c.deliver(to(1)) == ["3->1 APPEND_RESP t1 index=3"]
    assert c.pending() == ["1->3 APPEND t1 prev=3@1 [] commit=3", "1->3 TIMEOUT_NOW t1"]
    c.stabilize()
    assert (c[3].role, c[3].term) == (Role.LEADER, 2)
    assert c.applied(3) == [b"a", b"b"]


def test_Raft_transfer_aborted_after_an_election_timeout() -> None:
    """If the target does not take over within an election timeout, the leader gives up
    and takes proposals again."""
    c = three()
    c.propose(1, b"b")
    c.stabilize(cut=[3])
    c.transfer(1, 3)
    for _ in range(ELECTION):
        assert c[1].transferee == 3
        c.tick(1)
        c.stabilize(cut=[3])
    assert c[1].role is Role.LEADER and c[1].transferee == 0
    c.propose(1, b"c")
    c.stabilize()
    assert c.applied(3) == [b"a", b"b", b"c"]


def test_Raft_transfer_errors() -> None:
    """Only a leader transfers, only to a voter; transferring to itself cancels."""
    c = three()
    with pytest.raises(NotLeaderError):
        c[2].transfer_leader(3)
    with pytest.raises(ValueError, match="cannot transfer leadership to 4: not a voter"):
        c[1].transfer_leader(4)  # a learner
    with pytest.raises(ValueError, match="to 9"):
        c[1].transfer_leader(9)
    c.take()
    c[1].transfer_leader(2)
    c[1].transfer_leader(1)
    assert c[1].transferee == 0
    c.propose(1, b"b")
