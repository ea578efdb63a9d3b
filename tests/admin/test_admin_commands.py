"""The AdminServer commands as JSON on a standalone server, and the admin endpoint's rules."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from admin_support import get, get_json
from kazoo.client import KazooClient

from coord.server import ServerConfig
from coord.server._config import ConfigError
from coord.testing._server import CoordServerThread

#: Every command of the issue with a field ZooKeeper's AdminServer puts in its answer.
EXPECTED = {
    "ruok": ("ruok", []),
    "srvr": ("server_stats", ["version", "read_only", "server_stats", "node_count"]),
    "stat": ("stats", ["server_stats", "connections"]),
    "mntr": ("monitor", ["server_state", "znode_count", "watch_count", "packets_received"]),
    "conf": ("configuration", ["client_port", "data_dir", "tick_time", "server_id"]),
    "cons": ("connections", ["connections", "secure_connections"]),
    "envi": ("environment", ["zookeeper.version", "host.name"]),
    "wchs": ("watch_summary", ["num_connections", "num_paths", "num_total_watches"]),
    "wchc": ("watches", ["session_id_to_watched_paths"]),
    "wchp": ("watches_by_path", ["path_to_session_ids"]),
    "dump": ("dump", ["expiry_time_to_session_ids", "session_id_to_ephemeral_paths"]),
    "isro": ("is_read_only", ["read_only"]),
    "dirs": ("dirs", ["datadir_size", "logdir_size"]),
    "leader": ("leader", ["is_leader", "leader_id", "leader_ip"]),
    "voting_view": ("voting_view", ["current_config"]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_command_answers_ZooKeepers_json_shape(
    server: CoordServerThread, zk: KazooClient, name: str
) -> None:
    """/commands/<alias> answers the primary name, error null and ZooKeeper's fields."""
    primary, fields = EXPECTED[name]
    for asked in {name, primary}:
        status, body = get_json(server.admin_address, f"/commands/{asked}")
        assert status == 200
        assert body["command"] == primary
        assert body["error"] is None
        for field in fields:
            assert field in body, (asked, field, body)


def test_commands_report_the_servers_state(server: CoordServerThread, zk: KazooClient) -> None:
    """The JSON carries the same facts as the four-letter words: our session, its watch,
    its ephemeral node, the node count."""
    zk.create("/eph", b"x", ephemeral=True)
    zk.get("/eph", watch=lambda event: None)
    session = zk.client_id[0]
    admin = server.admin_address
    _, cons = get_json(admin, "/commands/cons")
    assert [c["session_id"] for c in cons["connections"]] == [session]
    assert cons["connections"][0]["remote_socket_address"].startswith("127.0.0.1:")
    _, wchc = get_json(admin, "/commands/watches")
    assert wchc["session_id_to_watched_paths"] == {str(session): ["/eph"]}
    _, wchp = get_json(admin, "/commands/wchp")
    assert wchp["path_to_session_ids"] == {"/eph": [session]}
    _, dump = get_json(admin, "/commands/dump")
    assert dump["session_id_to_ephemeral_paths"] == {str(session): ["/eph"]}
    assert any(session in ids for ids in dump["expiry_time_to_session_ids"].values())
    _, srvr = get_json(admin, "/commands/srvr")
    text = server.call(server.server.four_letter_word, "srvr")
    assert f"Node count: {srvr['node_count']}" in text
    assert srvr["server_stats"]["server_state"] == "standalone"
    assert f"Zxid: 0x{srvr['server_stats']['last_processed_zxid']:x}" in text
    _, mntr = get_json(admin, "/commands/monitor")
    assert mntr["ephemerals_count"] == 1 and mntr["watch_count"] == 1
    _, leader = get_json(admin, "/commands/leader")
    assert leader["is_leader"] is True and leader["leader_id"] == 1
    _, conf = get_json(admin, "/commands/configuration")
    assert conf["client_port"] == server.port


def test_command_list_and_unknown_command(server: CoordServerThread) -> None:
    """/commands lists the commands; an unknown one is 404 with ZooKeeper's error text."""
    status, listing = get_json(server.admin_address, "/commands")
    assert status == 200
    assert {"ruok", "monitor", "leader", "voting_view", "snapshot"} <= set(listing["commands"])
    status, body = get_json(server.admin_address, "/commands/nosuch")
    assert status == 404
    assert body == {"command": "nosuch", "error": "Unknown command: nosuch"}


def test_health_and_ready_on_a_standalone_server(server: CoordServerThread) -> None:
    status, body = get_json(server.admin_address, "/health")
    assert (status, body) == (200, {"status": "ok"})
    status, body = get_json(server.admin_address, "/ready")
    assert status == 200
    assert body["ready"] is True and body["mode"] == "standalone"


def test_ready_is_503_while_draining(server: CoordServerThread) -> None:
    """Once the client port closes (a drain), /ready answers 503 with the reason; the
    admin endpoint itself still answers (/health)."""
    server.call(lambda: server.server._listeners.cancel())
    status, body = get_json(server.admin_address, "/ready")
    assert status == 503
    assert body["ready"] is False and "draining" in body["reason"]
    assert get_json(server.admin_address, "/health")[0] == 200


def test_snapshot_is_refused_unless_snap_is_named(server: CoordServerThread) -> None:
    """As the snap word: "*" does not enable it, and nothing is streamed."""
    for name in ("snapshot", "snap"):
        status, body = get_json(server.admin_address, f"/commands/{name}")
        assert status == 403
        assert body["command"] == "snapshot"
        assert "not enabled" in body["error"]


def test_snapshot_streams_the_store_when_snap_is_enabled(tmp_path: object) -> None:
    """With snap named, /commands/snapshot streams the tar archive the snap word sends,
    ending with its manifest."""
    with CoordServerThread(
        admin_port=0, storage="rocksdb", data_dir=str(tmp_path), four_letter_words=("*", "snap")
    ) as server:
        client = KazooClient(hosts=server.address, timeout=5)
        client.start(timeout=10)
        client.create("/kept", b"data")
        client.stop()
        status, headers, body = get(server.admin_address, "/commands/snapshot")
    assert status == 200
    assert headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        names = archive.getnames()
        manifest = json.load(archive.extractfile("SNAPSHOT.json"))  # type: ignore[arg-type]
    assert names[-1] == "SNAPSHOT.json"
    assert manifest["store"]["nodes"] >= 2
    assert {f["name"] for f in manifest["files"]} == set(names[:-1])


def test_snapshot_of_a_store_that_cannot_copy_is_an_error(server: CoordServerThread) -> None:
    server.replace_config(four_letter_words=("snap",))
    status, body = get_json(server.admin_address, "/commands/snapshot")
    assert status == 500
    assert body["command"] == "snapshot" and "failed" in body["error"]


def test_unknown_paths_and_methods(server: CoordServerThread) -> None:
    status, body = get_json(server.admin_address, "/nosuch")
    assert status == 404 and body["error"] == "not_found"
    status, body = get_json(server.admin_address, "/metrics", method="POST")
    assert status == 405
    status, headers, _ = get(server.admin_address, "/")
    assert status == 302 and headers["location"] == "/ui/"


def test_admin_is_off_by_default() -> None:
    assert ServerConfig().admin_port is None
    with CoordServerThread() as server:
        assert server.admin_address is None
        assert server.server.admin_addresses == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"admin_port": 70000}, "admin_port must be between 0 and 65535"),
        ({"admin_port": 2181, "port": 2181}, "admin_port must differ"),
    ],
)
def test_bad_admin_settings_are_rejected(settings: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig(**settings)  # type: ignore[arg-type]
