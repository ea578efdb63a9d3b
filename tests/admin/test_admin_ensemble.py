"""The admin endpoint of ensemble members: leader, voting_view, follower lag, readiness."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_support import get, get_json, parse_metrics, value
from kazoo.client import KazooClient

from coord.testing._ensemble import CoordEnsemble

#: Short ticks and a tight election timeout (as tests/ensemble/ensemble_support.py).
FAST = {"tick_time": 250, "heartbeat_interval": 50, "election_timeout": 500}


def admin_address(
    ensemble: CoordEnsemble, ident: int, timeout: float = 10.0, *, after: int = 0
) -> str:
    """The admin address member ``ident`` logged (it binds port 0) after byte ``after``
    of its log (a restarted member appends to it)."""
    log = Path(ensemble.members[ident].log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_bytes()[after:].decode(errors="replace")
        found = re.findall(r"admin on (127\.0\.0\.1:\d+)", text)
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"member {ident} did not log its admin address; see {log}")


@pytest.fixture(scope="module")
def ensemble() -> Iterator[CoordEnsemble]:
    with CoordEnsemble(3, config={**FAST, "admin_port": 0}) as running:
        yield running


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_leader_and_voting_view_agree_on_every_member(ensemble: CoordEnsemble) -> None:
    leader = ensemble.leader()
    assert leader is not None
    for ident in ensemble.members:
        admin = admin_address(ensemble, ident)
        status, body = get_json(admin, "/commands/leader")
        assert status == 200 and body["error"] is None
        assert body["leader_id"] == leader
        assert body["is_leader"] is (ident == leader)
        assert body["leader_ip"] == "127.0.0.1"
        _, view = get_json(admin, "/commands/voting_view")
        assert sorted(view["current_config"]) == ["1", "2", "3"]
        spec = view["current_config"][str(ident)]
        assert re.fullmatch(r"127\.0\.0\.1:\d+:participant;127\.0\.0\.1:\d+", spec), spec
        _, mntr = get_json(admin, "/commands/mntr")
        assert mntr["server_state"] == ("leader" if ident == leader else "follower")
        assert (get_json(admin, "/ready")[0]) == 200


def test_the_leader_reports_each_followers_lag(ensemble: CoordEnsemble) -> None:
    leader = ensemble.leader()
    assert leader is not None
    client = KazooClient(hosts=ensemble.connect_string, timeout=5)
    client.start(timeout=10)
    try:
        for i in range(20):
            client.create(f"/lag-{i}", b"x")
    finally:
        client.stop()
        client.close()
    admin = admin_address(ensemble, leader)

    def caught_up() -> bool:
        samples = parse_metrics(get(admin, "/metrics")[2].decode())
        lags = [
            value(samples, "coord_follower_lag_entries", member=str(i), role="participant")
            for i in ensemble.members
            if i != leader
        ]
        return lags == [0, 0]

    wait_for(caught_up)
    samples = parse_metrics(get(admin, "/metrics")[2].decode())
    last = value(samples, "coord_last_log_index")
    for ident in ensemble.members:
        if ident != leader:
            labels = {"member": str(ident), "role": "participant"}
            assert value(samples, "coord_follower_match_index", **labels) == last
    assert value(samples, "coord_is_leader") == 1
    assert value(samples, "coord_leader_id") == leader
    assert value(samples, "coord_server_state", state="leader") == 1
    assert value(samples, "coord_leader_elections_won_total") >= 1
    _, view = get_json(admin, "/api/ensemble")
    assert view["mode"] == "leader"
    states = {m["id"]: (m["state"], m["lag"]) for m in view["members"]}
    assert states == {i: ("leader" if i == leader else "follower", 0) for i in ensemble.members}
    follower = next(i for i in ensemble.members if i != leader)
    follower_samples = parse_metrics(get(admin_address(ensemble, follower), "/metrics")[2].decode())
    assert value(follower_samples, "coord_leader_id") == leader
    assert value(follower_samples, "coord_is_leader") == 0


def test_ready_goes_503_on_a_member_cut_off_from_the_leader(ensemble: CoordEnsemble) -> None:
    """A follower that loses the leader stops being ready (and says why) while /health
    stays 200; it is ready again once it rejoins."""
    leader = ensemble.leader()
    assert leader is not None
    follower = next(i for i in ensemble.members if i != leader)
    admin = admin_address(ensemble, follower)
    ensemble.partition(follower)
    try:
        wait_for(lambda: get_json(admin, "/ready")[0] == 503)
        status, body = get_json(admin, "/ready")
        assert status == 503 and body["ready"] is False
        assert "no leader" in body["reason"]
        assert get_json(admin, "/health")[0] == 200
    finally:
        ensemble.heal()
    wait_for(lambda: get_json(admin, "/ready")[0] == 200, timeout=20)


def test_snapshot_catch_ups_are_counted() -> None:
    """A member that slept through more writes than the leader's log keeps catches up by
    snapshot: the leader counts one sent, the member one installed."""
    with CoordEnsemble(3, config={**FAST, "admin_port": 0, "log_retain": 20}, proxies=False) as ens:
        leader = ens.leader()
        assert leader is not None
        sleeper = next(i for i in ens.members if i != leader)
        ens.kill(sleeper)
        client = KazooClient(hosts=ens.member_address(leader), timeout=5)
        client.start(timeout=10)
        try:
            for i in range(120):
                client.create(f"/snap-{i}", b"x")
        finally:
            client.stop()
            client.close()
        offset = Path(ens.members[sleeper].log).stat().st_size
        ens.start_member(sleeper)
        sleeper_admin = admin_address(ens, sleeper, after=offset)
        leader_admin = admin_address(ens, leader)

        def installed() -> bool:
            samples = parse_metrics(get(sleeper_admin, "/metrics")[2].decode())
            return value(samples, "coord_snapshots_installed_total") >= 1

        wait_for(installed, timeout=20)
        samples = parse_metrics(get(leader_admin, "/metrics")[2].decode())
        assert value(samples, "coord_snapshots_sent_total") >= 1
        wait_for(lambda: get_json(sleeper_admin, "/ready")[0] == 200)
