"""Dynamic reconfiguration: the reconfig opcode and ``/zookeeper/config`` (ZooKeeper's
"Dynamic Reconfiguration"), against real member processes.

coord changes the membership one member per request (Raft's single-server changes): add
a member, remove one, or switch one between participant and observer. The rules under
test: the committed configuration is on every member in ZooKeeper's format; a new member
gets the data and then counts toward the quorum; a removed member stops serving; removing
the leader hands leadership over first; the stored configuration survives restarts; stale
``fromConfig``, missing authority, two changes at once, an uncommitted change and a new
configuration without a connected majority are refused with ZooKeeper's errors.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ensemble_support import FAST
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NewConfigNoQuorumError,
    NoAuthError,
    ReconfigDisabledError,
    ReconfigInProcessError,
)
from kazoo.security import make_digest_acl

import coord
from coord.server import digest_id
from coord.server._members import (
    Member,
    MemberSpecError,
    format_config,
    parse_config,
    parse_server,
    plan_change,
)
from coord.server._raft import (
    ConfChange,
    ConfChangeType,
    Membership,
    conf_entry_context,
    decode_conf_entry,
    encode_conf_entry,
)
from coord.shell import run_shell
from coord.testing import four_letter_word
from coord.testing._ensemble import CoordEnsemble

SUPER = ("super", "secret")
RECONFIG = {**FAST, "reconfig_enabled": True, "super_digest": digest_id(*SUPER)}
#: A server line of /zookeeper/config, as ZooKeeper writes it (the client part optional).
SERVER_LINE = re.compile(r"^server\.\d+=[^:;]+:\d+:\d+:(participant|observer)(;[^;]+:\d+)?$")

Factory = Callable[..., KazooClient]


# --- the configuration format and the change planner (no server) --------------------------


THREE = {
    1: Member(1, ("10.0.0.1", 2888), ("10.0.0.1", 2181)),
    2: Member(2, ("10.0.0.2", 2888), ("10.0.0.2", 2181)),
    3: Member(3, ("10.0.0.3", 2888), ("10.0.0.3", 2181), "observer"),
}


def test_config_is_zookeepers_format_with_no_election_port() -> None:
    data = format_config(THREE, 0x100000004)
    assert data == (
        b"server.1=10.0.0.1:2888:0:participant;10.0.0.1:2181\n"
        b"server.2=10.0.0.2:2888:0:participant;10.0.0.2:2181\n"
        b"server.3=10.0.0.3:2888:0:observer;10.0.0.3:2181\n"
        b"version=100000004"
    )
    assert parse_config(data) == (THREE, 0x100000004)


@pytest.mark.parametrize(
    ("spec", "member"),
    [
        (
            "server.4=127.0.0.1:2890:3890:participant;127.0.0.1:2184",
            Member(4, ("127.0.0.1", 2890), ("127.0.0.1", 2184)),
        ),
        (
            "server.4=127.0.0.1:2890:3890:observer;2184",
            Member(4, ("127.0.0.1", 2890), ("0.0.0.0", 2184), "observer"),
        ),
        ("4=127.0.0.1:2890;127.0.0.1:2184", Member(4, ("127.0.0.1", 2890), ("127.0.0.1", 2184))),
        (
            "4=127.0.0.1:2890:observer;127.0.0.1:2184",
            Member(4, ("127.0.0.1", 2890), ("127.0.0.1", 2184), "observer"),
        ),
        ("server.5=[::1]:1234:1235;[::1]:1236", Member(5, ("::1", 1234), ("::1", 1236))),
    ],
)
def test_servers_parse_in_zookeepers_and_coords_forms(spec: str, member: Member) -> None:
    assert parse_server(spec) == member
    assert parse_server(member.zk_line()) == member


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("server.x=127.0.0.1:2890:3890;2184", "needs an id"),
        ("server.4=127.0.0.1:2890:3890", "client address"),
        ("server.4=127.0.0.1:2890:99999;2184", "election port"),
        ("server.4=127.0.0.1;2184", "bad peer address"),
    ],
)
def test_bad_servers_are_refused_with_the_expected_form(spec: str, message: str) -> None:
    with pytest.raises(MemberSpecError, match=message):
        parse_server(spec)


def test_a_request_plans_exactly_one_change() -> None:
    four = "server.4=10.0.0.4:2888:2888:participant;10.0.0.4:2181"
    target, change = plan_change(THREE, four, "", "")
    assert (change.kind, change.member, sorted(target)) == ("add", 4, [1, 2, 3, 4])
    assert plan_change(THREE, "", "2", "")[1].kind == "remove"
    assert plan_change(THREE, four.replace("participant", "observer"), "", "")[1].kind == (
        "add-observer"
    )
    assert plan_change(THREE, THREE[2].zk_line().replace("participant", "observer"), "", "")[
        1
    ].kind == ("demote")
    assert plan_change(THREE, THREE[3].zk_line().replace("observer", "participant"), "", "")[
        1
    ].kind == ("promote")
    # The non-incremental form: the whole new set (version lines are ignored).
    whole = format_config({**THREE, 4: parse_server(four)}, 7).decode()
    assert plan_change(THREE, "", "", whole)[1].kind == "add"
    for joining, leaving, new, message in [
        ("", "2,3", "", "one member at a time"),
        (four, "2", "", "one member at a time"),
        (THREE[1].zk_line(), "", "", "does not change"),
        ("server.2=10.0.0.9:2888:2888:participant;10.0.0.2:2181", "", "", "change address"),
        ("", "9", "", "not a member"),
        (four, "", four, "not both"),
        ("", "1,2", "", "one member at a time"),
    ]:
        with pytest.raises(MemberSpecError, match=message):
            plan_change(THREE, joining, leaving, new)


def test_conf_entries_carry_the_drivers_context_and_demotions() -> None:
    result = Membership(frozenset({1, 2}), frozenset({3})).apply(
        ConfChange(ConfChangeType.DEMOTE_VOTER, 2)
    )
    assert result == Membership(frozenset({1}), frozenset({2, 3}))
    cc = ConfChange(ConfChangeType.DEMOTE_VOTER, 2)
    data = encode_conf_entry(cc, result, b"context")
    assert decode_conf_entry(data) == (cc, result)
    assert conf_entry_context(data) == b"context"
    assert conf_entry_context(encode_conf_entry(cc, result)) == b""


# --- real ensembles ---------------------------------------------------------------------


@pytest.fixture
def grown() -> Iterator[CoordEnsemble]:
    with CoordEnsemble(3, config=RECONFIG, proxies=False) as ensemble:
        yield ensemble


def _admin(factory: Factory, hosts: str) -> KazooClient:
    client = factory(hosts)
    client.add_auth("digest", ":".join(SUPER))
    return client


def _mntr(ensemble: CoordEnsemble, ident: int) -> dict[str, str]:
    host, port = ensemble.members[ident].client_address
    text = four_letter_word(host, port, "mntr")
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def _check_shape(data: bytes, stat: Any) -> list[str]:
    """The reply's shape, as ZooKeeper's: server lines, then version = the Stat's mzxid."""
    lines = data.decode().splitlines()
    assert all(SERVER_LINE.match(line) for line in lines[:-1]), lines
    key, _, version = lines[-1].partition("=")
    assert key == "version" and int(version, 16) == stat.mzxid
    return lines


def _ids(data: bytes) -> list[int]:
    return sorted(parse_config(data)[0])


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_grow_to_four_the_new_member_has_the_data_and_counts_in_the_quorum(
    grown: CoordEnsemble, kazoo_factory: Factory
) -> None:
    ensemble = grown
    admin = _admin(kazoo_factory, ensemble.connect_string)
    admin.create("/before", b"written before")
    before, before_stat = admin.get("/zookeeper/config")
    assert _ids(before) == [1, 2, 3]
    leader = ensemble.wait_for_leader()
    term = _mntr(ensemble, leader)["coord_term"]
    ensemble.new_server(4)
    # Not a member yet: nobody gave it the data.
    time.sleep(0.3)
    data, stat = admin.reconfig(joining=ensemble.zk_spec(4), leaving=None, new_members=None)
    lines = _check_shape(data, stat)
    assert lines[3] == ensemble.zk_spec(4)  # server.4=<host>:<peer port>:0:participant;...
    assert _ids(data) == [1, 2, 3, 4] and stat.mzxid > before_stat.mzxid
    # The joiner disturbed nothing: same leader, same term.
    assert ensemble.leader() == leader and _mntr(ensemble, leader)["coord_term"] == term
    # Every member, the new one included, holds the new configuration and the old data.
    newcomer = kazoo_factory(ensemble.member_address(4))
    newcomer.sync("/")
    assert newcomer.get("/before")[0] == b"written before"
    for ident in ensemble.members:
        client = kazoo_factory(ensemble.member_address(ident))
        client.sync("/")
        assert client.get("/zookeeper/config")[0] == data
    metrics = _mntr(ensemble, leader)
    assert (metrics["coord_voters"], metrics["coord_quorum_size"]) == ("4", "3")
    assert metrics["zk_followers"] == "3"
    _wait(lambda: _mntr(ensemble, leader)["zk_synced_followers"] == "3")
    # It votes: with one old member down, three of four still make a majority.
    down = next(i for i in (1, 2, 3) if i != leader)
    ensemble.kill(down)
    writer = kazoo_factory(ensemble.member_address(leader))
    writer.create("/after", b"needs member 4")
    newcomer.sync("/")
    assert newcomer.get("/after")[0] == b"needs member 4"
    ensemble.start_member(down)
    # A restarted member uses the stored membership, not its stale members list.
    ensemble.restart(down)
    log = Path(ensemble.members[down].log).read_text()
    assert "differs from the configured members" in log
    _wait(lambda: _mntr(ensemble, down).get("coord_voters") == "4")
    # Shrink back: member 4 leaves and stops serving.
    data, stat = admin.reconfig(joining=None, leaving="4", new_members=None, from_config=stat.mzxid)
    assert _ids(data) == [1, 2, 3]
    _check_shape(data, stat)
    _wait(lambda: "was removed from the ensemble" in Path(ensemble.members[4].log).read_text())
    assert _mntr(ensemble, ensemble.wait_for_leader())["coord_voters"] == "3"
    with pytest.raises(Exception):  # noqa: B017 - kazoo's timeout type varies by handler
        KazooClient(hosts=ensemble.member_address(4), timeout=1.0).start(timeout=1.5)
    admin.create("/shrunk", b"")


def test_removing_the_leader_hands_leadership_over_first(
    grown: CoordEnsemble, kazoo_factory: Factory
) -> None:
    ensemble = grown
    leader = ensemble.wait_for_leader()
    follower = next(i for i in ensemble.members if i != leader)
    admin = _admin(kazoo_factory, ensemble.member_address(follower))
    data, _ = admin.reconfig(joining=None, leaving=str(leader), new_members=None)
    assert _ids(data) == sorted(set(ensemble.members) - {leader})
    new_leader = ensemble.wait_for_leader(exclude=leader)
    assert new_leader != leader
    log = Path(ensemble.members[leader].log)
    assert "handing leadership to member" in log.read_text()
    # It learns of its removal from the new leader's next commit index.
    _wait(lambda: "was removed from the ensemble" in log.read_text())
    admin.create("/without-the-old-leader", b"")
    metrics = _mntr(ensemble, new_leader)
    assert (metrics["coord_voters"], metrics["coord_quorum_size"]) == ("2", "2")
    # A whole-ensemble restart keeps the new membership: the two members (whose files
    # still list three) elect a leader between themselves; the removed one stays out.
    ensemble.kill_all()
    ensemble.start_all()
    survivor = ensemble.wait_for_leader()
    assert survivor != leader
    assert _mntr(ensemble, survivor)["coord_voters"] == "2"
    admin.create("/after-restart", b"")
    assert _ids(admin.get("/zookeeper/config")[0]) == sorted(set(ensemble.members) - {leader})


def test_a_member_changes_role_and_back(grown: CoordEnsemble, kazoo_factory: Factory) -> None:
    ensemble = grown
    leader = ensemble.wait_for_leader()
    follower = next(i for i in ensemble.members if i != leader)
    admin = _admin(kazoo_factory, ensemble.member_address(leader))
    watcher = kazoo_factory(ensemble.member_address(follower))
    events: list[Any] = []
    watcher.get("/zookeeper/config", watch=events.append)
    data, _ = admin.reconfig(
        joining=ensemble.zk_spec(follower, role="observer"), leaving=None, new_members=None
    )
    # A data watch on /zookeeper/config fires, on every member.
    _wait(lambda: [e.type for e in events] == ["CHANGED"])
    assert f"server.{follower}=" in data.decode() and ":observer;" in data.decode()
    _wait(lambda: ensemble.mode(follower) == "observer")
    assert _mntr(ensemble, leader)["coord_voters"] == "2"
    # An observer still gets every write.
    admin.create("/observed", b"x")
    observer = kazoo_factory(ensemble.member_address(follower))
    observer.sync("/")
    assert observer.get("/observed")[0] == b"x"
    # Back to participant with `coord shell`'s reconfig (zkCli's syntax), in coord's member
    # form; then `config` shows it.
    out, err = io.StringIO(), io.StringIO()
    status = run_shell(
        ensemble.member_address(leader),
        commands=[f"reconfig -add {ensemble.member_spec(follower)}", "config"],
        auth=[("digest", ":".join(SUPER).encode())],
        stdout=out,
        stderr=err,
        timeout=10,
    )
    assert status == 0, err.getvalue()
    text = out.getvalue()
    assert text.startswith("Committed new configuration:\n")
    assert text.count(f"server.{follower}=") == 2 and ":observer;" not in text
    _wait(lambda: ensemble.mode(follower) == "follower")
    assert _mntr(ensemble, leader)["coord_voters"] == "3"


@pytest.fixture
def patient() -> Iterator[CoordEnsemble]:
    """Leaders that keep leading 1.5 s without a majority (room for the in-progress case)."""
    config = {**RECONFIG, "election_timeout": 1500}
    with CoordEnsemble(3, config=config, proxies=False) as ensemble:
        yield ensemble


def test_refusals_match_zookeepers_errors(patient: CoordEnsemble, kazoo_factory: Factory) -> None:
    ensemble = patient
    leader = ensemble.wait_for_leader()
    a, b = (i for i in ensemble.members if i != leader)
    plain = kazoo_factory(ensemble.member_address(a))
    with pytest.raises(NoAuthError):
        plain.reconfig(joining=None, leaving=str(b), new_members=None)
    admin = _admin(kazoo_factory, ensemble.member_address(leader))
    data, stat = admin.get("/zookeeper/config")
    with pytest.raises(BadVersionError):
        admin.reconfig(joining=None, leaving=str(b), new_members=None, from_config=stat.mzxid + 1)
    with pytest.raises(BadArgumentsError):
        admin.reconfig(joining=None, leaving=f"{a},{b}", new_members=None)
    with pytest.raises(BadArgumentsError):
        admin.reconfig(joining=None, leaving="9", new_members=None)
    # /zookeeper/config's ACL: everyone may READ; a superuser may grant WRITE to others.
    acl = admin.get_acls("/zookeeper/config")[0]
    assert [(e.perms, e.id.scheme, e.id.id) for e in acl] == [(1, "world", "anyone")]
    admin.set_acls("/zookeeper/config", [*acl, make_digest_acl("ops", "pw", write=True)])
    plain.add_auth("digest", "ops:pw")
    with pytest.raises(BadArgumentsError):  # authorized now: the request itself is wrong
        plain.reconfig(joining=None, leaving="9", new_members=None)
    assert admin.get("/zookeeper/config")[0] == data  # nothing changed
    # Member b down: removing a leaves {leader, b}, whose connected members are no majority.
    ensemble.kill(b)
    _wait(lambda: not ensemble.alive(b))
    time.sleep(0.3)
    with pytest.raises(NewConfigNoQuorumError):
        admin.reconfig(joining=None, leaving=str(a), new_members=None)
    ensemble.start_member(b)
    _wait(lambda: _mntr(ensemble, leader).get("zk_synced_followers") == "2")
    # A change not yet committed: a second request is ReconfigInProgress. Pausing both
    # followers keeps the first uncommitted (their links stay up, so it passes the quorum
    # check); the leader steps down after an election timeout, so be quick.
    other = _admin(kazoo_factory, ensemble.member_address(leader))  # replies are FIFO
    ensemble.pause(a)
    ensemble.pause(b)
    try:
        first = admin.reconfig_async(None, str(a), None, -1)
        leader_log = Path(ensemble.members[leader].log)
        _wait(lambda: f"remove member {a} proposed" in leader_log.read_text(), 1.0)
        with pytest.raises(ReconfigInProcessError):
            other.reconfig(joining=None, leaving=str(b), new_members=None)
    finally:
        ensemble.resume(a)
        ensemble.resume(b)
    first.wait(15)
    ensemble.wait_for_leader()


def test_reconfig_is_disabled_unless_enabled(kazoo_factory: Factory) -> None:
    config = {**FAST, "super_digest": digest_id(*SUPER)}
    with CoordEnsemble(3, config=config, proxies=False) as ensemble:
        admin = _admin(kazoo_factory, ensemble.connect_string)
        with pytest.raises(ReconfigDisabledError):
            admin.reconfig(joining=None, leaving="1", new_members=None)
        # The configuration is there all the same, in ZooKeeper's format.
        data, stat = admin.get("/zookeeper/config")
        assert _ids(data) == [1, 2, 3]
        _check_shape(data, stat)


def test_sdk_reconfig_and_get_config(grown: CoordEnsemble) -> None:
    ensemble = grown
    leader = ensemble.wait_for_leader()
    follower = next(i for i in ensemble.members if i != leader)
    with coord.SyncClient(ensemble.connect_string, auth=[("digest", ":".join(SUPER))]) as client:
        data, stat = client.get_config()
        assert _ids(data) == [1, 2, 3]
        with pytest.raises(coord.BadVersionError):
            client.reconfig(leaving=[follower], from_config=stat.mzxid + 1)
        data, stat = client.reconfig(leaving=[follower], from_config=parse_config(data)[1])
        assert _ids(data) == sorted(set(ensemble.members) - {follower})
        assert client.get_config() == (data, stat)
        # The non-incremental form: the whole new set, here with the follower back.
        everyone = [ensemble.zk_spec(i) for i in sorted(ensemble.members)]
        data, stat = client.reconfig(new_members=everyone, from_config=stat.mzxid)
        assert _ids(data) == [1, 2, 3]


def _kazoo_remove_and_add_back(client: KazooClient, victim: int, client_port: int) -> list[Any]:
    """kazoo's reconfig calls; returns what a test compares between servers."""
    data, stat = client.get("/zookeeper/config")
    version = int(data.decode().splitlines()[-1].partition("=")[2], 16)
    line = next(x for x in data.decode().splitlines() if x.startswith(f"server.{victim}="))
    if ";" not in line:  # ZooKeeper's static config has no client address in its lines
        line += f";127.0.0.1:{client_port}"
    with pytest.raises(BadVersionError):
        client.reconfig(
            joining=None, leaving=str(victim), new_members=None, from_config=version + 1
        )
    removed, removed_stat = client.reconfig(
        joining=None, leaving=str(victim), new_members=None, from_config=version
    )
    _check_shape(removed, removed_stat)
    assert client.get("/zookeeper/config") == (removed, removed_stat)
    back, back_stat = client.reconfig(joining=line, leaving=None, new_members=None)
    lines = _check_shape(back, back_stat)
    assert line in lines and back_stat.mzxid > removed_stat.mzxid > stat.mzxid
    return [
        len(data.decode().splitlines()),
        len(removed.decode().splitlines()),
        len(lines),
        removed_stat.version,
        back_stat.version,
    ]


def test_kazoo_reconfig_replies_have_zookeepers_shape(kazoo_factory: Factory) -> None:
    """The same kazoo calls against coord and a real 3-node ZooKeeper (reconfigEnabled,
    skipACL): stale fromConfig is BadVersion, a removal and an incremental add reply with
    the new configuration (server lines, then version = the Stat's mzxid)."""
    from coord.testing import require_zookeeper, run_zkcli
    from coord.testing._zookeeper_ensemble import ZooKeeperEnsemble

    require_zookeeper()
    with CoordEnsemble(3, config=RECONFIG, proxies=False) as ensemble:
        leader = ensemble.wait_for_leader()
        a, b = (i for i in ensemble.members if i != leader)
        client = _admin(kazoo_factory, ensemble.member_address(a))
        port = ensemble.members[b].client_address[1]
        ours = _kazoo_remove_and_add_back(client, b, port)
        # The removed member, still running, was added back: it serves again.
        client.create("/while-back", b"")
        again = kazoo_factory(ensemble.member_address(b))
        again.sync("/")
        assert again.exists("/while-back") is not None
        assert "is a member again" in Path(ensemble.members[b].log).read_text()
        # zkCli reads it too: `config` prints the data, `config -c` the client addresses.
        result = run_zkcli(ensemble.member_address(a), "config", "config -c")
        data, _ = client.get("/zookeeper/config")
        assert result[0].stdout == data.decode()
        version = data.decode().splitlines()[-1].partition("=")[2]
        clients = ",".join(ensemble.member_address(i) for i in sorted(ensemble.members))
        got_version, _, got_clients = result[1].stdout.partition(" ")
        assert (got_version, sorted(got_clients.split(","))) == (
            version,
            sorted(clients.split(",")),
        )
    with ZooKeeperEnsemble(3, reconfig_enabled=True, proxied=False) as zk:
        leader = zk.wait_for_leader()
        a, b = (i for i in range(3) if i != leader)
        client = kazoo_factory(zk.member_address(a))
        port = int(zk.member_address(b).rpartition(":")[2])
        theirs = _kazoo_remove_and_add_back(client, b + 1, port)
    assert ours == theirs == [4, 3, 4, -1, -1]


def test_a_new_member_behind_the_compacted_log_catches_up_by_snapshot(
    kazoo_factory: Factory,
) -> None:
    """The leader no longer has the entries a new member needs: it gets a snapshot, which
    carries the configuration (addresses included), then follows the log."""
    with CoordEnsemble(3, config={**RECONFIG, "log_retain": 5}, proxies=False) as ensemble:
        admin = _admin(kazoo_factory, ensemble.connect_string)
        for k in range(40):
            admin.create(f"/n{k}", b"x")
        ensemble.new_server(4, role="observer")
        data, _ = admin.reconfig(
            joining=ensemble.zk_spec(4, role="observer"), leaving=None, new_members=None
        )
        admin.create("/after", b"")
        newcomer = kazoo_factory(ensemble.member_address(4))
        newcomer.sync("/")
        assert newcomer.exists("/n0") is not None and newcomer.exists("/after") is not None
        assert newcomer.get("/zookeeper/config")[0] == data
        assert ensemble.mode(4) == "observer"
        assert "received a snapshot" in Path(ensemble.members[4].log).read_text()


def test_peer_frame_kinds_are_distinct() -> None:
    from coord.server import _catchup, _peer

    kinds = [
        getattr(module, name)
        for module in (_peer, _catchup)
        for name in dir(module)
        if name.startswith("FRAME_") and isinstance(getattr(module, name), int)
    ]
    assert len(kinds) == len(set(kinds)) >= 8


def test_shrink_to_one_voter_and_grow_back(grown: CoordEnsemble, kazoo_factory: Factory) -> None:
    """Down to a single voter and back. The leader removes a follower, then itself at the
    request of its own client (the reply comes before it stops serving). The server
    being added back is not linked yet, but it is up (dialling in to be let in), so the
    new two-voter configuration has a connected majority; it comes back with its data."""
    ensemble = grown
    leader = ensemble.wait_for_leader()
    a, b = (i for i in ensemble.members if i != leader)
    admin = kazoo_factory(ensemble.member_address(leader), retry=False)
    admin.add_auth("digest", ":".join(SUPER))
    admin.reconfig(joining=None, leaving=str(a), new_members=None)
    data, _ = admin.reconfig(joining=None, leaving=str(leader), new_members=None)
    assert _ids(data) == [b]
    assert ensemble.wait_for_leader(exclude=leader) == b
    assert _mntr(ensemble, b)["coord_quorum_size"] == "1"
    last = _admin(kazoo_factory, ensemble.member_address(b))
    last.create("/alone", b"")
    # b dropped its links with a long ago; a, still running, dials in (refused): b knows
    # it is up.
    _wait(lambda: f"peer link to member {a} removed" in Path(ensemble.members[b].log).read_text())
    time.sleep(0.3)
    data, _ = last.reconfig(joining=ensemble.zk_spec(a), leaving=None, new_members=None)
    assert _ids(data) == sorted([a, b])
    last.create("/two-again", b"")  # needs a's acknowledgement
    back = kazoo_factory(ensemble.member_address(a))
    back.sync("/")
    assert back.exists("/alone") is not None and back.exists("/two-again") is not None
    # The old leader was never added back: still out.
    with pytest.raises(Exception):  # noqa: B017 - kazoo's timeout type varies by handler
        KazooClient(hosts=ensemble.member_address(leader), timeout=1.0).start(timeout=1.5)
