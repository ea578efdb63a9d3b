"""Scripted scenarios for snapshots / InstallSnapshot (thesis ch. 5) in the consensus core.

A leader whose log no longer holds what a follower needs sends the meta of its snapshot;
the driver ships the data (the harness attaches it); the follower installs it before
anything else in that Ready, and the leader continues with the log. Lines read
``sender->to TYPE tTERM ...`` (:func:`coord.testing._raft_sim.describe`).
"""

from __future__ import annotations

import pytest

from coord.server._raft import (
    LogEntry,
    MemoryLog,
    Message,
    MessageType,
    ProgressState,
    Raft,
    RaftConfig,
    SnapshotMeta,
)
from coord.testing._raft_sim import Cluster


def to(*ids: int):  # type: ignore[no-untyped-def]
    return lambda m: m.to in ids


def lagging_cluster() -> Cluster:
    """Leader 1 applied a..c (index 2..4) with node 3 cut off, then compacted to 4."""
    c = Cluster(3)
    c.campaign(1)
    c.stabilize()
    c.propose(1, b"a", b"b", b"c")
    c.stabilize(cut=[3])
    assert c.applied(1) == [b"a", b"b", b"c"] and c.applied(3) == []
    meta = c.compact(1)
    assert meta == SnapshotMeta(4, 1, frozenset({1, 2, 3}), frozenset())
    assert c.nodes[1].log.first_index() == 5
    return c


def test_Raft_snapshot_sent_to_follower_behind_the_compacted_log() -> None:
    """Thesis §5.1: a follower needing entries below the leader's first index gets
    InstallSnapshot; it replaces its state and log, acks the snapshot's index, and the
    leader replicates the rest of the log from there."""
    c = lagging_cluster()
    c.tick(1)  # heartbeat: node 3 answers, the leader finds it behind
    assert c.deliver(to(3)) == ["1->3 HEARTBEAT t1 commit=1"]
    assert c.deliver(to(1)) == ["3->1 HEARTBEAT_RESP t1"]
    # (The pipelined next was optimistic; the probe at 4 is rejected, hinting 1@1.)
    assert c.deliver(to(3)) == ["1->3 APPEND t1 prev=4@1 [] commit=4"]
    assert c.deliver(to(1)) == ["3->1 APPEND_RESP t1 index=4 REJECT hint=1@1"]
    assert c.pending()[-1:] == ["1->3 SNAPSHOT t1 snap=4@1 voters=[1, 2, 3]"]
    assert c[1].progress(3) == (1, 2, ProgressState.SNAPSHOT)
    c.propose(1, b"d")  # nothing more goes to 3 while the snapshot is in flight
    assert [line for line in c.pending() if "->3 " in line] == [
        "1->3 SNAPSHOT t1 snap=4@1 voters=[1, 2, 3]"
    ]
    assert c.deliver(to(3)) == ["1->3 SNAPSHOT t1 snap=4@1 voters=[1, 2, 3]"]
    # Installed (data from the leader), then the ack left -- after the install.
    assert c.nodes[3].log.first_index() == 5 and c.nodes[3].log.last_index() == 4
    assert (c[3].commit, c[3].applied) == (4, 4)
    assert c.applied(3) == [b"a", b"b", b"c"]
    assert c.deliver(to(1)) == ["3->1 APPEND_RESP t1 index=4"]
    assert c.pending()[-1:] == ["1->3 APPEND t1 prev=4@1 [5@1] commit=4"]  # d: not yet
    assert c[1].progress(3) == (4, 6, ProgressState.REPLICATE)  # pipelined
    c.stabilize()
    assert c.applied(3) == c.applied(1) == [b"a", b"b", b"c", b"d"]


def test_Raft_snapshot_and_new_entries_in_one_ready_install_first() -> None:
    """An append that arrives after the snapshot but before the driver's next Ready lands
    in the same Ready: install the snapshot, then append the entries, then apply them."""
    c = lagging_cluster()
    meta = c.nodes[1].log.snapshot()
    c.nodes[3].incoming[(meta.index, meta.term)] = c.nodes[1].snapshot_data(meta)
    r3 = c[3]
    r3.step(Message(MessageType.SNAPSHOT, 1, 3, 1, snapshot=meta))
    r3.step(
        Message(
            MessageType.APPEND,
            1,
            3,
            1,
            log_term=1,
            index=4,
            entries=(LogEntry(5, 1, b"d"), LogEntry(6, 1, b"e")),
            commit=6,
        )
    )
    rd = c.nodes[3].handle_ready()  # the harness's driver: install, persist, apply
    assert rd.snapshot == meta and rd.truncate_from is None
    assert [e.index for e in rd.entries] == [5, 6]
    assert [e.data for e in rd.committed_entries] == [b"d", b"e"]
    assert [m.index for m in rd.messages] == [4, 6]  # ack of the snapshot, then of 6
    assert c.applied(3) == [b"a", b"b", b"c", b"d", b"e"]
    assert (c.nodes[3].log.first_index(), c.nodes[3].log.last_index()) == (5, 6)
    assert (r3.commit, r3.applied) == (6, 6)


def test_Raft_snapshot_lost_is_reported_and_resent() -> None:
    """A snapshot whose stream failed (report_snapshot(peer, False)) sends the leader
    back to probing; the next heartbeat answer triggers a new snapshot."""
    c = lagging_cluster()
    c.tick(1)
    c.stabilize(cut=[3])  # nothing reaches 3
    c.tick(1)
    c.deliver(to(3))
    c.deliver(to(1))
    c.deliver(to(3))
    c.deliver(to(1))
    assert c[1].progress(3) == (1, 2, ProgressState.SNAPSHOT)
    assert c.drop(lambda m: m.type is MessageType.SNAPSHOT) == [
        "1->3 SNAPSHOT t1 snap=4@1 voters=[1, 2, 3]"
    ]
    assert c[1].progress(3) == (1, 2, ProgressState.PROBE)  # (paused until a heartbeat)
    c.tick(1)
    c.deliver(to(3))
    c.deliver(to(1))
    assert c.pending()[-1:] == ["1->3 SNAPSHOT t1 snap=4@1 voters=[1, 2, 3]"]
    c.stabilize()
    assert c.applied(3) == [b"a", b"b", b"c"]


def test_Raft_stale_snapshot_is_ignored_and_acked_with_commit() -> None:
    """A follower whose commit index is already at or past the snapshot keeps its log
    and answers with its commit index (a duplicate or overtaken snapshot)."""
    c = Cluster(3)
    c.campaign(1)
    c.stabilize()
    c.propose(1, b"a", b"b")
    c.stabilize()
    r2 = c[2]
    r2.step(Message(MessageType.SNAPSHOT, 1, 2, 1, snapshot=SnapshotMeta(2, 1)))
    rd = r2.ready()
    assert rd.snapshot is None
    assert [(m.type, m.index) for m in rd.messages] == [(MessageType.APPEND_RESP, 3)]


def test_Raft_snapshot_matching_the_log_only_commits() -> None:
    """A follower whose log already holds the snapshot's (index, term) keeps its log
    (log matching) and only advances its commit index."""
    log = MemoryLog([LogEntry(1, 1), LogEntry(2, 1, b"a"), LogEntry(3, 1, b"b")])
    r = Raft(RaftConfig(id=2, voters=frozenset({1, 2, 3})), log, applied=1)
    r.step(Message(MessageType.SNAPSHOT, 1, 2, 1, snapshot=SnapshotMeta(2, 1)))
    rd = r.ready()
    assert rd.snapshot is None and r.commit == 2
    assert [e.data for e in rd.committed_entries] == [b"a"]


def test_Raft_restart_after_snapshot_install_recovers_from_it() -> None:
    """After an install the durable state is the snapshot: a restart starts from it
    (first index after it, applied = its index) and continues by log."""
    c = lagging_cluster()
    c.tick(1)
    c.stabilize()
    assert c.applied(3) == [b"a", b"b", b"c"]
    c.nodes[3].restart()
    assert (c[3].commit, c[3].applied, c[3].first_index(), c[3].last_index()) == (4, 4, 5, 4)
    c.propose(1, b"d")
    c.stabilize()
    assert c.applied(3) == [b"a", b"b", b"c", b"d"]


def test_Raft_report_unreachable_makes_pipelining_leader_probe() -> None:
    """etcd's ReportUnreachable: a follower in replicate state goes back to probe."""
    c = Cluster(3)
    c.campaign(1)
    c.stabilize()
    assert c[1].progress(2) == (1, 2, ProgressState.REPLICATE)
    c[1].report_unreachable(2)
    assert c[1].progress(2) == (1, 2, ProgressState.PROBE)


def test_MemoryLog_compaction_and_install_bounds() -> None:
    """The reference LogView: term() of the compaction point, IndexError below it."""
    log = MemoryLog([LogEntry(1, 1), LogEntry(2, 1), LogEntry(3, 2)])
    log.compact(SnapshotMeta(2, 1))
    assert (log.first_index(), log.last_index(), log.term(2), log.term(3)) == (3, 3, 1, 2)
    with pytest.raises(IndexError):
        log.term(1)
    with pytest.raises(IndexError):
        log.entries(2, 3)
    with pytest.raises(ValueError, match="not in the log"):
        log.compact(SnapshotMeta(3, 1))
    log.install_snapshot(SnapshotMeta(10, 3))
    assert (log.first_index(), log.last_index(), log.term(10)) == (11, 10, 3)
    with pytest.raises(ValueError, match="applied index 5 below"):
        Raft(RaftConfig(id=1, voters=frozenset({1})), log, applied=5)


@pytest.mark.parametrize("report", [True, False])
def test_Raft_snapshot_overtaken_by_compaction_sends_a_newer_one(report: bool) -> None:
    """The leader compacts again while a snapshot is in flight: the follower's ack of the
    old snapshot still leaves it below the leader's first index, so it gets the newer
    snapshot at once (with or without the driver's report first)."""
    c = lagging_cluster()
    c.report_snapshots = report
    c.tick(1)
    for _ in range(2):
        c.deliver(to(3))
        c.deliver(to(1))
    snap = c.take(lambda m: m.type is MessageType.SNAPSHOT)
    c.propose(1, b"d", b"e")
    c.stabilize(cut=[3])
    assert c.compact(1) == SnapshotMeta(6, 1, frozenset({1, 2, 3}), frozenset())
    c.outbox.extend(snap)  # the old snapshot (of index 4) arrives now
    assert c.deliver(to(3)) == ["1->3 SNAPSHOT t1 snap=4@1 voters=[1, 2, 3]"]
    assert c.applied(3) == [b"a", b"b", b"c"]
    assert c.deliver(to(1)) == ["3->1 APPEND_RESP t1 index=4"]
    assert c.pending() == ["1->3 SNAPSHOT t1 snap=6@1 voters=[1, 2, 3]"]
    c.stabilize()
    assert c.applied(3) == [b"a", b"b", b"c", b"d", b"e"]
    assert c[1].progress(3) == (6, 7, ProgressState.REPLICATE)
