"""Differential tests of the four-letter words on the client port.

The answers' formats follow ZooKeeper's, so monitoring scripts and kazoo's
``server_version()`` work unchanged; values depend on the server, so the tests compare
keys, formats and changes (deltas) rather than numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from compat_support import RawClient
from kazoo.client import KazooClient

from coord.protocol import GetAllChildrenNumberRequest, GetAllChildrenNumberResponse, OpCode
from coord.testing._zookeeper import four_letter_word

SRVR_KEYS = {
    "Zookeeper version",
    "Latency min/avg/max",
    "Received",
    "Sent",
    "Connections",
    "Outstanding",
    "Zxid",
    "Mode",
    "Node count",
}
#: mntr keys every server must report (the ones monitoring relies on).
MNTR_KEYS = {
    "zk_version",
    "zk_server_state",
    "zk_avg_latency",
    "zk_max_latency",
    "zk_min_latency",
    "zk_packets_received",
    "zk_packets_sent",
    "zk_num_alive_connections",
    "zk_outstanding_requests",
    "zk_znode_count",
    "zk_watch_count",
    "zk_ephemerals_count",
    "zk_approximate_data_size",
    "zk_open_file_descriptor_count",
    "zk_max_file_descriptor_count",
    "zk_uptime",
}


def word(target: Any, command: str) -> str:
    return four_letter_word(target.host, target.port, command)


def srvr(target: Any) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in word(target, "srvr").splitlines() if line)


def mntr(target: Any) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in word(target, "mntr").splitlines() if line)


def test_fourlw_ruok_and_isro(target: Any) -> None:
    """ruok answers imok; isro answers rw (a read-write server)."""
    assert word(target, "ruok") == "imok"
    assert word(target, "isro") == "rw"


def test_fourlw_srvr_fields(target: Any, zk: KazooClient, root: str) -> None:
    """srvr has ZooKeeper's keys; Mode is standalone; Zxid is hex and includes our write."""
    zk.create(root)
    czxid = zk.exists(root).czxid
    fields = srvr(target)
    assert set(fields) == SRVR_KEYS
    assert fields["Mode"] == "standalone"
    assert re.fullmatch(r"\d+/\d+\.\d+/\d+", fields["Latency min/avg/max"])
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*, built on .+", fields["Zookeeper version"])
    assert int(fields["Zxid"], 16) >= czxid
    for key in ("Received", "Sent", "Connections", "Outstanding", "Node count"):
        assert int(fields[key]) >= 0


def test_fourlw_srvr_node_count_counts_root_twice(
    target: Any, request: pytest.FixtureRequest
) -> None:
    """ZooKeeper's "Node count" (and mntr's zk_znode_count) is its node map's size, where
    the root is stored twice (as "" and "/"): every node, plus one. getAllChildrenNumber
    of "/" counts every node but the root."""
    with RawClient(target.host, target.port) as raw:
        for _ in range(10):
            before = int(srvr(target)["Node count"])
            reply = raw.call(OpCode.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest("/"))
            znodes = int(mntr(target)["zk_znode_count"])
            if int(srvr(target)["Node count"]) == before == znodes:  # nothing reaped meanwhile
                break
    descendants = GetAllChildrenNumberResponse.from_bytes(reply.body).total_number
    assert before == znodes == descendants + 2


def test_fourlw_mntr_keys_and_deltas(
    target: Any, connect: Callable[..., KazooClient], root: str
) -> None:
    """mntr reports the common keys as tab-separated lines; znode, ephemeral, watch and
    connection counts move as ZooKeeper's do."""
    zk = connect()
    first = mntr(target)
    assert set(first) >= MNTR_KEYS
    assert first["zk_server_state"] == "standalone"
    assert first["zk_version"] == srvr(target)["Zookeeper version"]
    for key in MNTR_KEYS - {"zk_version", "zk_server_state"}:
        float(first[key])
    zk.create(root)
    zk.create(root + "/e", ephemeral=True)
    zk.get(root, watch=lambda event: None)
    zk.exists(root + "/missing", watch=lambda event: None)
    connect()
    second = mntr(target)

    def delta(key: str) -> int:
        return int(second[key]) - int(first[key])

    assert delta("zk_znode_count") == 2
    assert delta("zk_ephemerals_count") == 1
    assert delta("zk_watch_count") == 2
    assert delta("zk_num_alive_connections") == 1


def test_fourlw_envi_and_server_version(target: Any, zk: KazooClient) -> None:
    """envi has a ``zookeeper.version=`` line; kazoo's server_version() parses it."""
    lines = word(target, "envi").splitlines()
    assert lines[0] == "Environment:"
    assert any(line.startswith("zookeeper.version=") for line in lines)
    version = zk.server_version()
    assert isinstance(version, tuple)
    assert len(version) == 3 and all(isinstance(part, int) for part in version)
    assert version >= (3, 8, 0)


def test_fourlw_stat_lists_clients(target: Any, zk: KazooClient) -> None:
    """stat has srvr's fields plus a Clients section naming connections."""
    text = word(target, "stat")
    assert text.startswith("Zookeeper version: ")
    assert "\nClients:\n" in text
    assert re.search(r"^ /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+\)$", text, re.M)
    assert "\nMode: standalone\n" in text


def test_fourlw_kazoo_command(zk: KazooClient) -> None:
    """kazoo's command() sends a four-letter word to the connected server."""
    assert zk.command(b"ruok") == "imok"
    assert zk.command(b"isro") == "rw"
