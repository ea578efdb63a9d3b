"""Scripted scenarios for membership changes, one server at a time (thesis §4.1).

A configuration takes effect as soon as its entry is in a server's log (committed or
not) and is undone if that entry is truncated; a leader appends one only after it has
committed an entry of its own term and while no other change is uncommitted (Ongaro's
raft-dev fix). ``[3@1cc]`` marks a CONF_CHANGE entry in an APPEND line.
"""

from __future__ import annotations

import pytest

from coord.server._raft import (
    ConfChange,
    ConfChangeError,
    ConfChangeType,
    EntryKind,
    LeaderTransferError,
    LogEntry,
    Membership,
    MemoryLog,
    Message,
    MessageType,
    NotLeaderError,
    Raft,
    RaftConfig,
    Role,
    decode_conf_entry,
    encode_conf_entry,
)
from coord.server._storage import HardState
from coord.testing._raft_sim import Cluster

T = ConfChangeType
ELECTION = 10


def to(*ids: int):  # type: ignore[no-untyped-def]
    return lambda m: m.to in ids


def three() -> Cluster:
    c = Cluster(3)
    c.campaign(1)
    c.stabilize()
    c.propose(1, b"a")
    c.stabilize()
    return c


def test_Raft_membership_add_learner_then_promote() -> None:
    """Thesis §4.2.1: a new server joins as a learner (no vote, catches up), then is
    promoted; from the promotion entry on, quorums are of four voters."""
    c = three()
    c.add_node(4)  # empty; knows only the bootstrap membership, cannot campaign
    entry = c.conf_change(1, T.ADD_LEARNER, 4)
    assert entry.kind is EntryKind.CONF_CHANGE and entry.index == 3
    assert decode_conf_entry(entry.data) == (
        ConfChange(T.ADD_LEARNER, 4),
        Membership(frozenset({1, 2, 3}), frozenset({4})),
    )
    assert (c[1].voters, c[1].learners) == ({1, 2, 3}, {4})  # on append, at once
    assert c.pending() == [
        "1->2 APPEND t1 prev=2@1 [3@1cc] commit=2",
        "1->3 APPEND t1 prev=2@1 [3@1cc] commit=2",
        "1->4 APPEND t1 prev=3@1 [] commit=2",  # a probe: 4's log is empty
    ]
    c.deliver(to(2, 3, 4))
    assert c[2].learners == {4} and c[2].commit == 2  # in effect before it commits
    assert c.deliver(to(1)) == [
        "2->1 APPEND_RESP t1 index=3",
        "3->1 APPEND_RESP t1 index=3",
        "4->1 APPEND_RESP t1 index=3 REJECT hint=0@0",
    ]
    assert c.pending()[-1] == "1->4 APPEND t1 prev=0@0 [1@1 2@1 3@1cc] commit=3"
    c.stabilize()
    assert c.applied(4) == [b"a"]
    assert c.nodes[4].membership == Membership(frozenset({1, 2, 3}), frozenset({4}))
    assert not c[4].promotable
    c.tick(4, 5 * ELECTION)
    assert c[4].role is Role.FOLLOWER  # a learner never campaigns

    c.conf_change(1, T.PROMOTE_LEARNER, 4)
    c.stabilize()
    assert all(c[i].voters == {1, 2, 3, 4} and not c[i].learners for i in (1, 2, 3, 4))
    assert c[4].promotable
    # Quorum is now 3 of 4: the leader and one follower no longer commit.
    c.propose(1, b"b")
    c.stabilize(cut=[3, 4])
    assert c[1].commit == 4
    c.tick(1)
    c.stabilize()
    assert c[1].commit == 5 and c.applied(4) == [b"a", b"b"]


def test_Raft_membership_remove_follower_stops_it() -> None:
    """A removed follower still gets the log until it has its removal and knows that it
    committed (so it learns of it), then nothing more; not being a voter in its latest
    configuration, it never campaigns; quorums stop counting it as soon as the entry is
    appended."""
    c = three()
    c.conf_change(1, T.REMOVE, 3)
    assert c[1].voters == {1, 2}
    assert c.pending() == [
        "1->2 APPEND t1 prev=2@1 [3@1cc] commit=2",
        "1->3 APPEND t1 prev=2@1 [3@1cc] commit=2",
    ]
    c.deliver(to(2))
    assert c.deliver(to(1)) == ["2->1 APPEND_RESP t1 index=3"]
    assert c[1].commit == 3  # {1, 2} is the whole quorum now
    assert c[1].progress(3) is not None  # it has not acknowledged its removal yet
    c.deliver(to(3))
    assert set(c.deliver(to(1))) == {"3->1 APPEND_RESP t1 index=3"}
    assert "1->3 APPEND t1 prev=3@1 [] commit=3" in c.pending()  # the last word
    assert c[1].progress(3) is None
    c.stabilize()
    assert c[3].commit == 3
    assert c[3].voters == {1, 2} and not c[3].promotable
    c.propose(1, b"b")
    assert all(m.to != 3 for m in c.outbox)
    c.stabilize()
    assert c.applied(2) == [b"a", b"b"] and c.applied(3) == [b"a"]
    c.tick(3, 5 * ELECTION)
    assert c.pending() == [] and c[3].role is Role.FOLLOWER


def test_Raft_membership_a_single_voter_tells_a_removed_peer() -> None:
    """A single voter commits a removal as it appends it, before the removed peer has
    it: the peer still gets the entry and then the commit index."""
    c = three()
    c.conf_change(1, T.REMOVE, 3)
    c.stabilize()
    c.conf_change(1, T.REMOVE, 2)
    assert c[1].commit == c[1].last_index()  # committed at once: one voter
    c.stabilize()
    assert c[1].progress(2) is None
    assert c[2].commit == c[1].commit and c[2].voters == {1}
    c.tick(2, 5 * ELECTION)
    assert c.pending() == []


def test_Raft_membership_removing_the_leader() -> None:
    """Thesis §4.2.2: the leader manages its own removal without counting itself, steps
    down once it commits, and hands the election to the most up-to-date voter
    (TIMEOUT_NOW); it never campaigns again."""
    c = three()
    c.conf_change(1, T.REMOVE, 1)
    assert c[1].role is Role.LEADER and c[1].voters == {2, 3}
    c.deliver(to(2))
    assert c.deliver(to(1)) == ["2->1 APPEND_RESP t1 index=3"]
    assert c[1].commit == 2 and c[1].role is Role.LEADER  # 1 of {2, 3}: not a quorum
    c.deliver(to(3))
    assert c.deliver(to(1)) == ["3->1 APPEND_RESP t1 index=3"]
    assert c[1].commit == 3 and c[1].role is Role.FOLLOWER
    assert c.pending() == [
        "1->2 APPEND t1 prev=3@1 [] commit=3",
        "1->3 APPEND t1 prev=3@1 [] commit=3",
        "1->2 TIMEOUT_NOW t1",
    ]
    c.deliver(to(2))
    assert c.pending()[-1:] == ["2->3 VOTE t2 last=3@1 transfer"]  # no pre-vote
    c.stabilize()
    assert (c[2].role, c[2].term, c[3].leader) == (Role.LEADER, 2, 2)
    assert c[2].voters == {2, 3}
    c.tick(1, 5 * ELECTION)
    assert c.pending() == []  # the removed node stays quiet
    c.propose(2, b"b")
    c.stabilize()
    assert c.applied(3) == [b"a", b"b"]


def test_Raft_membership_demoting_the_leader_makes_it_a_quiet_learner() -> None:
    """DEMOTE_VOTER (ZooKeeper's participant -> observer) takes one voter out, like a
    removal: a demoted leader steps down once the change commits, a voter takes over, and
    the demoted node keeps receiving the log as a learner but never campaigns."""
    c = three()
    c.conf_change(1, T.DEMOTE_VOTER, 1)
    assert c[1].voters == {2, 3} and c[1].learners == {1}
    c.stabilize()
    assert c[1].role is Role.FOLLOWER and c[1].is_learner
    leader = next(i for i in (2, 3) if c[i].role is Role.LEADER)
    c.tick(1, 5 * ELECTION)
    c.propose(leader, b"b")
    c.stabilize()
    assert c.applied(1) == [b"a", b"b"] and c[1].role is Role.FOLLOWER
    with pytest.raises(ConfChangeError, match="not a voter"):
        Membership(frozenset({2}), frozenset({1})).apply(ConfChange(T.DEMOTE_VOTER, 1))
    with pytest.raises(ConfChangeError, match="last voter"):
        Membership(frozenset({2}), frozenset({1})).apply(ConfChange(T.DEMOTE_VOTER, 2))


def test_Raft_membership_change_undone_when_its_entry_is_truncated() -> None:
    """The configuration in effect is the latest in the log; a conflicting leader that
    overwrites the entry also overwrites the change."""
    c = three()
    c.conf_change(1, T.ADD_LEARNER, 4)
    c.take()  # reaches nobody; 1 is then cut off
    assert c[1].learners == {4}
    for _ in range(3 * ELECTION):
        c.tick(2)
        c.tick(3)
        c.deliver(lambda m: m.to in (2, 3) and m.sender in (2, 3))
        c.take(lambda m: 1 in (m.sender, m.to))
        if Role.LEADER in (c[2].role, c[3].role):
            break
    new = 2 if c[2].role is Role.LEADER else 3
    c.tick(new)
    c.stabilize()
    assert c[1].leader == new
    assert c[1].learners == frozenset() and c[1].voters == {1, 2, 3}
    assert c.nodes[1].log.entries(3, 4)[0].kind is EntryKind.NOOP  # overwritten


def test_Raft_membership_errors_change_nothing() -> None:
    """Bad or untimely changes raise ConfChangeError (or NotLeaderError) with a clear
    message, and the log is left as it was."""
    c = three()
    last = c[1].last_index()
    with pytest.raises(NotLeaderError):
        c[2].propose_conf_change(ConfChange(T.ADD_LEARNER, 4))
    cases = [
        (ConfChange(T.ADD_VOTER, 2), "node 2 is already a voter"),
        (ConfChange(T.ADD_LEARNER, 3), "node 3 is already a member"),
        (ConfChange(T.PROMOTE_LEARNER, 3), "node 3 is not a learner"),
        (ConfChange(T.REMOVE, 9), "node 9 is not a member"),
        (ConfChange(T.ADD_VOTER, 0), "node ids must be >= 1"),
    ]
    for cc, message in cases:
        with pytest.raises(ConfChangeError, match=message):
            c[1].propose_conf_change(cc)
    assert c[1].last_index() == last
    c.conf_change(1, T.ADD_LEARNER, 4)
    with pytest.raises(ConfChangeError, match="index 3 is not committed yet"):
        c[1].propose_conf_change(ConfChange(T.ADD_LEARNER, 5))
    c.stabilize()
    c.conf_change(1, T.ADD_LEARNER, 5)  # allowed once the first one committed
    c.stabilize()
    single = Cluster(1)
    single.campaign(1)
    with pytest.raises(ConfChangeError, match="node 1 is the last voter"):
        single[1].propose_conf_change(ConfChange(T.REMOVE, 1))


def test_Raft_membership_new_leader_must_commit_in_its_term_first() -> None:
    """The raft-dev fix: a leader whose no-op is not committed may not append a
    configuration entry (an uncommitted change of an earlier term could otherwise
    combine with it into two disjoint majorities)."""
    c = Cluster(3)
    c.campaign(1)
    c.deliver(to(2, 3))  # pre-votes
    c.deliver(to(1))
    c.deliver(to(2, 3))  # votes
    c.deliver(to(1))
    assert c[1].role is Role.LEADER and c[1].commit == 0
    with pytest.raises(ConfChangeError, match="has not committed an entry of its term 1"):
        c[1].propose_conf_change(ConfChange(T.ADD_LEARNER, 4))
    c.stabilize()
    c.conf_change(1, T.ADD_LEARNER, 4)


def test_Raft_membership_refused_during_leader_transfer() -> None:
    """Proposals of any kind wait while leadership is being handed over."""
    c = three()
    c.take()
    c[1].transfer_leader(2)
    with pytest.raises(LeaderTransferError, match="transfer from 1 to 2"):
        c[1].propose_conf_change(ConfChange(T.ADD_LEARNER, 4))


def test_Raft_membership_restart_recovers_persisted_and_unapplied_changes() -> None:
    """The driver stores Ready.membership with its applied state and passes it back in
    RaftConfig; configuration entries in the unapplied tail of the log take effect again
    on restart (they were in effect on append)."""
    c = three()
    c.conf_change(1, T.ADD_LEARNER, 4)
    c.stabilize()
    assert c.nodes[2].membership == Membership(frozenset({1, 2, 3}), frozenset({4}))
    c.conf_change(1, T.PROMOTE_LEARNER, 4)
    c.deliver(to(2))  # 2 appends the promotion but does not learn it committed
    assert c[2].voters == {1, 2, 3, 4} and c[2].commit == 3
    c.take()
    c.nodes[2].restart()
    assert c[2].voters == {1, 2, 3, 4} and c[2].learners == frozenset()
    assert c[2].applied == 3


def test_Raft_membership_restart_config_from_scan_of_unapplied_tail() -> None:
    """Recovery from a log alone: membership as of ``applied`` from the config, then the
    configuration entries after it."""
    result = Membership(frozenset({1, 2}), frozenset({3}))
    cc = ConfChange(T.ADD_LEARNER, 3)
    log = MemoryLog(
        [
            LogEntry(1, 1, b"", EntryKind.NOOP),
            LogEntry(2, 1, encode_conf_entry(cc, result), EntryKind.CONF_CHANGE),
        ]
    )
    r = Raft(RaftConfig(id=1, voters=frozenset({1, 2})), log, HardState(1, 1), applied=1)
    assert r.membership == result
    rd = r.ready()
    assert rd.membership is None  # nothing applied yet


def test_ConfChange_and_Membership_codecs_round_trip_and_reject_garbage() -> None:
    for cc in [ConfChange(t, n) for t in T for n in (1, 7, 2**63)]:
        assert ConfChange.decode(cc.encode()) == cc
    for m in [
        Membership(frozenset({1})),
        Membership(frozenset({1, 2, 3}), frozenset({4, 5})),
    ]:
        assert Membership.decode(m.encode()) == m
        data = encode_conf_entry(ConfChange(T.REMOVE, 1), m)
        assert decode_conf_entry(data) == (ConfChange(T.REMOVE, 1), m)
    for bad in [b"", b"\x01", b"\x09" + bytes(8), bytes(9) + b"\x00\x00\x00\x05"]:
        with pytest.raises(ValueError):
            decode_conf_entry(bad)
    with pytest.raises(ValueError, match="trailing"):
        Membership.decode(Membership(frozenset({1})).encode() + b"x")


def test_Raft_vote_below_our_term_is_rejected_with_our_term() -> None:
    """Figure 2: a stale vote request is answered with our term, so its candidate catches
    up. Without it (pre-vote off) a node with a stale configuration and a higher term
    livelocked an election: it only asked the removed node, and the other voter, whose
    configuration needed its vote, campaigned below its term forever (simulator seed
    3954)."""
    r = Raft(RaftConfig(id=4, voters=frozenset({3, 4}), pre_vote=False), MemoryLog(),
             HardState(6, 4))  # fmt: skip
    r.step(Message(MessageType.VOTE, 2, 4, 4, index=67, log_term=1))
    assert [(m.type, m.term, m.reject) for m in r.ready().messages] == [
        (MessageType.VOTE_RESP, 6, True)
    ]


def test_Raft_leader_removed_by_uncommitted_change_rejoins_when_deposed() -> None:
    """A leader that appended its own removal and was cut off before it committed is
    asked for no vote by the others; their answer (with their term) to its heartbeats
    deposes it, and the new leader's log overwrites the removal: it is a voter again.
    (Without pre-vote and check-quorum it stayed a leader of an old term forever:
    simulator seed 3542.)"""
    c = Cluster(3)
    for n in c.nodes.values():
        n.config = RaftConfig(id=n.config.id, voters=n.config.voters, pre_vote=False,
                              check_quorum=False)  # fmt: skip
        n.restart()
    c.campaign(1)
    c.stabilize()
    c.conf_change(1, T.REMOVE, 1)
    c.take()  # reaches nobody
    assert c[1].voters == {2, 3}
    for _ in range(3 * ELECTION):
        c.tick(2)
        c.tick(3)
        c.deliver(lambda m: m.to in (2, 3) and m.sender in (2, 3))
        c.take(lambda m: 1 in (m.sender, m.to))
        if Role.LEADER in (c[2].role, c[3].role):
            break
    new = 2 if c[2].role is Role.LEADER else 3
    c.tick(1)  # the old leader's heartbeat...
    assert c.deliver(to(new))[0] == f"1->{new} HEARTBEAT t1 commit=1"
    assert c.deliver(to(1)) == [f"{new}->1 APPEND_RESP t{c[new].term} index=0"]
    assert (c[1].role, c[1].term) == (Role.FOLLOWER, c[new].term)  # ...deposed it
    c.take()
    c.tick(new)
    c.stabilize()
    assert c[1].voters == {1, 2, 3} and c[1].leader == new
