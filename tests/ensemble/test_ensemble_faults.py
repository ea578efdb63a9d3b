"""Faults on a 3-member ensemble of real processes: no acknowledged write is lost.

Each test runs a writer (kazoo, connected to every member, retrying through connection
loss) that creates ``/w/n-<k>`` for k = 0, 1, ... and records which creates were
acknowledged, injects one kind of fault, lets the ensemble recover, and checks that every
member has every acknowledged node (and that the members agree).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError
from kazoo.retry import KazooRetry

from coord.testing._ensemble import CoordEnsemble


class Writer:
    """Creates /w/n-<k> in order until stopped; ``acked`` are those confirmed."""

    def __init__(self, hosts: str) -> None:
        retry = KazooRetry(max_tries=-1, delay=0.02, max_delay=0.2)
        self.client = KazooClient(
            hosts=hosts, timeout=4.0, connection_retry=retry, command_retry=retry
        )
        self.client.start(timeout=15)
        self.client.ensure_path("/w")
        self.acked: list[int] = []
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        k = 0
        while not self._stop.is_set():
            try:
                # NodeExists: a retry of a create that had happened.
                with contextlib.suppress(NodeExistsError):
                    self.client.create(f"/w/n-{k:06d}", b"%d" % k)
            except KazooException:
                time.sleep(0.02)
                continue
            self.acked.append(k)
            self.times.append(time.monotonic())
            k += 1

    def start(self) -> Writer:
        self._thread.start()
        return self

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        target = len(self.acked) + count
        while len(self.acked) < target:
            assert time.monotonic() < deadline, f"writes stalled at {len(self.acked)}"
            time.sleep(0.01)

    def longest_gap_after(self, t0: float) -> float:
        """The longest time without an acknowledgement after ``t0``."""
        times = [t0] + [t for t in self.times if t >= t0]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.stop()
        self.client.close()


def _check_everywhere(ensemble: CoordEnsemble, acked: list[int]) -> None:
    """Every running member has every acknowledged node; they all agree."""
    views = {}
    for i in ensemble.members:
        if not ensemble.alive(i):
            continue
        client = KazooClient(hosts=ensemble.member_address(i), timeout=4.0)
        client.start(timeout=20)
        try:
            client.sync("/w")
            views[i] = set(client.get_children("/w"))
        finally:
            client.stop()
            client.close()
    expected = {f"n-{k:06d}" for k in acked}
    for i, names in views.items():
        missing = expected - names
        assert not missing, f"member {i} lost acknowledged writes: {sorted(missing)[:5]}"
    assert len({frozenset(v) for v in views.values()}) == 1, "members disagree"


def _wait_caught_up(ensemble: CoordEnsemble, timeout: float = 20.0, *, slack: int = 0) -> None:
    """Wait until every member's last zxid is within ``slack`` of the others' (0: equal;
    while writes go on, members are a few entries apart)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            zxids = {int(ensemble.srvr(i).get("Zxid", "0"), 16) for i in ensemble.members}
        except (OSError, ValueError):
            zxids = set()
        if zxids and max(zxids) - min(zxids) <= slack:
            return
        time.sleep(0.05)
    raise AssertionError(f"members did not converge on one zxid ({sorted(zxids)})")


def test_killing_the_leader_loses_nothing_and_a_new_one_takes_over(
    ensemble: CoordEnsemble,
) -> None:
    writer = Writer(ensemble.connect_string).start()
    try:
        writer.wait_for(50)
        old = ensemble.leader()
        assert old is not None
        t0 = time.monotonic()
        ensemble.kill(old)
        new = ensemble.wait_for_leader(exclude=old)
        writer.wait_for(50)
        outage = writer.longest_gap_after(t0)
        assert outage < 5.0, f"writes stopped for {outage:.2f} s"
        ensemble.start_member(old)
        writer.wait_for(50)
    finally:
        writer.stop()
    assert new != old
    _wait_caught_up(ensemble)
    _check_everywhere(ensemble, writer.acked)


def test_killing_a_follower_does_not_stop_writes(ensemble: CoordEnsemble) -> None:
    writer = Writer(ensemble.connect_string).start()
    try:
        writer.wait_for(30)
        follower = ensemble.followers()[0]
        ensemble.kill(follower)
        writer.wait_for(100)
        ensemble.start_member(follower)
        writer.wait_for(30)
    finally:
        writer.stop()
    _wait_caught_up(ensemble)
    _check_everywhere(ensemble, writer.acked)


def test_a_paused_leader_is_replaced_and_rejoins_as_follower(ensemble: CoordEnsemble) -> None:
    old = ensemble.leader()
    assert old is not None
    # A client with an ephemeral node, connected to the leader only.
    stranded = KazooClient(hosts=ensemble.member_address(old), timeout=1.0)
    stranded.start(timeout=10)
    stranded.ensure_path("/p")
    stranded.create("/p/eph", ephemeral=True)
    writer = Writer(
        ",".join(ensemble.member_address(i) for i in ensemble.members if i != old)
    ).start()
    try:
        writer.wait_for(20)
        ensemble.pause(old)
        new = ensemble.wait_for_leader(exclude=old)
        writer.wait_for(30)
        time.sleep(2.5)  # past the stranded session's timeout: the new leader expires it
        ensemble.resume(old)
        writer.wait_for(30)
    finally:
        writer.stop()
        stranded.stop()
        stranded.close()
    assert new != old
    deadline = time.monotonic() + 10
    while ensemble.mode(old) != "follower" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ensemble.mode(old) == "follower"
    _wait_caught_up(ensemble)
    _check_everywhere(ensemble, writer.acked)
    checker = KazooClient(hosts=ensemble.member_address(old))
    checker.start(timeout=10)
    try:
        checker.sync("/p")
        assert checker.exists("/p/eph") is None
    finally:
        checker.stop()
        checker.close()


def test_a_partitioned_leader_steps_down_and_the_majority_goes_on(
    ensemble: CoordEnsemble,
) -> None:
    old = ensemble.leader()
    assert old is not None
    majority = [i for i in ensemble.members if i != old]
    writer = Writer(",".join(ensemble.member_address(i) for i in majority)).start()
    try:
        writer.wait_for(20)
        ensemble.partition(old)
        new = ensemble.wait_for_leader(exclude=old)
        # The cut-off leader stops leading (check-quorum) within about an election timeout.
        deadline = time.monotonic() + 5
        while ensemble.mode(old) == "leader" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ensemble.mode(old) != "leader"
        writer.wait_for(50)
        ensemble.heal()
        writer.wait_for(30)
    finally:
        writer.stop()
    assert new in majority
    _wait_caught_up(ensemble)
    _check_everywhere(ensemble, writer.acked)


def test_writes_through_a_partitioned_member_fail_rather_than_diverge(
    ensemble: CoordEnsemble,
) -> None:
    follower = ensemble.followers()[0]
    client = KazooClient(hosts=ensemble.member_address(follower), timeout=4.0)
    client.start(timeout=10)
    try:
        client.ensure_path("/cut")
        ensemble.partition(follower)
        outcome = []

        def write() -> None:
            try:
                client.create("/cut/x", b"lost?")
                outcome.append("acknowledged")
            except KazooException as exc:
                outcome.append(type(exc).__name__)

        thread = threading.Thread(target=write)
        thread.start()
        thread.join(10)
        ensemble.heal()
    finally:
        client.stop()
        client.close()
    assert outcome and outcome[0] != "acknowledged"
    _wait_caught_up(ensemble)


def test_killing_every_member_and_restarting_keeps_every_acknowledged_write(
    ensemble: CoordEnsemble,
) -> None:
    writer = Writer(ensemble.connect_string).start()
    try:
        writer.wait_for(100)
    finally:
        ensemble.kill_all()
        writer.stop()
    ensemble.start_all()
    ensemble.wait_for_leader()
    _wait_caught_up(ensemble)
    _check_everywhere(ensemble, writer.acked)


def test_a_member_that_lost_its_data_catches_up(ensemble: CoordEnsemble) -> None:
    writer = Writer(ensemble.connect_string).start()
    try:
        writer.wait_for(50)
        follower = ensemble.followers()[0]
        ensemble.kill(follower)
        ensemble.wipe(follower)
        writer.wait_for(30)
        ensemble.start_member(follower)
        writer.wait_for(30)
    finally:
        writer.stop()
    _wait_caught_up(ensemble)
    _check_everywhere(ensemble, writer.acked)


def test_a_member_behind_the_compacted_log_catches_up_by_snapshot() -> None:
    """With a short log, a wiped member (and one that slept through many writes) can only
    catch up from a copy of the leader's state."""
    from ensemble_support import FAST

    with CoordEnsemble(3, config={**FAST, "log_retain": 20}) as ensemble:
        wiped, sleeper = ensemble.followers()
        ensemble.kill(wiped)
        ensemble.wipe(wiped)
        writer = Writer(ensemble.connect_string).start()
        try:
            writer.wait_for(200)  # the leader compacts its log meanwhile
            ensemble.start_member(wiped)
            _wait_caught_up(ensemble, slack=500)
            ensemble.kill(sleeper)
            writer.wait_for(200)  # committed by the leader and the member it just caught up
            ensemble.start_member(sleeper)
            writer.wait_for(30)
        finally:
            writer.stop()
        _wait_caught_up(ensemble)
        _check_everywhere(ensemble, writer.acked)
        for ident in (wiped, sleeper):
            log = Path(ensemble.members[ident].log).read_text()
            assert "state replaced by a snapshot" in log, f"member {ident} did not get one"


def test_a_leader_shut_down_gracefully_hands_over_first(ensemble: CoordEnsemble) -> None:
    writer = Writer(ensemble.connect_string).start()
    try:
        writer.wait_for(30)
        old = ensemble.leader()
        assert old is not None
        t0 = time.monotonic()
        ensemble.terminate(old)  # SIGTERM: drain
        new = ensemble.wait_for_leader(exclude=old)
        writer.wait_for(30)
        outage = writer.longest_gap_after(t0)
    finally:
        writer.stop()
    assert new != old
    log = Path(ensemble.members[old].log).read_text()
    assert f"handing leadership over to member {new}" in log
    # No election timeout to wait out: the successor campaigns at once.
    assert outage < 2.0, f"writes stopped for {outage:.2f} s"
    ensemble.start_member(old)
    _wait_caught_up(ensemble)
    _check_everywhere(ensemble, writer.acked)
