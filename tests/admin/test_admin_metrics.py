"""/metrics: the Prometheus text format, and counters that move with the work done."""

from __future__ import annotations

import contextlib

import pytest
from admin_support import get, metric_names, parse_metrics, value
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from coord.server._metrics import Metrics, op_name
from coord.testing._server import CoordServerThread


def scrape(server: CoordServerThread) -> dict:
    status, headers, body = get(server.admin_address, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse_metrics(body.decode())


def test_metrics_are_valid_prometheus_text(server: CoordServerThread, zk: KazooClient) -> None:
    """Every sample has a TYPE; the families the dashboard and docs name are there."""
    zk.create("/m", b"x")
    samples = scrape(server)
    names = metric_names(samples)
    for name in (
        "coord_request_duration_seconds_bucket",
        "coord_requests_total",
        "coord_sessions",
        "coord_connections",
        "coord_watches",
        "coord_znodes",
        "coord_data_size_bytes",
        "coord_log_fsync_seconds_count",
        "coord_log_batch_entries_bucket",
        "coord_term",
        "coord_leader_id",
        "coord_commit_index",
        "coord_applied_index",
        "coord_snapshots_installed_total",
        "coord_ready",
        "process_cpu_seconds_total",
    ):
        assert name in names, name
    assert value(samples, "coord_sessions") == 1
    assert value(samples, "coord_server_state", state="standalone") == 1
    assert value(samples, "coord_is_leader") == 1


def test_a_setData_moves_its_histogram_and_the_fsync_histogram(
    server: CoordServerThread, zk: KazooClient
) -> None:
    zk.create("/counted", b"0")
    zk.set("/counted", b"0")
    before = scrape(server)
    zk.set("/counted", b"1")
    zk.set("/counted", b"2")
    after = scrape(server)
    count = "coord_request_duration_seconds_count"
    assert value(after, count, op="setData") - value(before, count, op="setData") == 2
    assert value(after, "coord_requests_total", op="setData", result="ok") >= 2
    inf = value(after, "coord_request_duration_seconds_bucket", op="setData", le="+Inf")
    assert inf == value(after, count, op="setData")
    assert value(after, "coord_request_duration_seconds_sum", op="setData") > 0
    fsyncs = "coord_log_fsync_seconds_count"
    assert value(after, fsyncs) >= value(before, fsyncs) + 2
    assert value(after, "coord_log_entries_total") >= value(before, "coord_log_entries_total") + 2


def test_errors_are_counted_by_operation_and_result(
    server: CoordServerThread, zk: KazooClient
) -> None:
    with contextlib.suppress(NoNodeError):
        zk.get("/absent")
    samples = scrape(server)
    assert value(samples, "coord_requests_total", op="getData", result="noNode") == 1


def test_requests_refused_before_the_log_are_counted(
    server: CoordServerThread, zk: KazooClient
) -> None:
    """A request answered with an error without reaching apply (deleteContainer is the
    server's own opcode: clients get BadArguments) is counted like any other."""
    from kazoo.exceptions import BadArgumentsError
    from kazoo.protocol.serialization import Delete

    class DeleteContainer(Delete):
        type = 20

    answer = zk.handler.async_result()
    zk._call(DeleteContainer("/x", -1), answer)
    with pytest.raises(BadArgumentsError):
        answer.get(timeout=5)
    samples = scrape(server)
    assert value(samples, "coord_requests_total", op="deleteContainer", result="badArguments") == 1


def test_gauges_follow_the_tree(server: CoordServerThread, zk: KazooClient) -> None:
    before = scrape(server)
    zk.create("/g", b"12345")
    zk.exists("/g", watch=lambda event: None)
    after = scrape(server)
    assert value(after, "coord_znodes") == value(before, "coord_znodes") + 1
    assert value(after, "coord_watches") == value(before, "coord_watches") + 1
    grown = value(after, "coord_data_size_bytes") - value(before, "coord_data_size_bytes")
    assert grown == len("/g") + 5


def test_latency_buckets_are_cumulative_and_bounded() -> None:
    """A request's latency lands in the first bucket whose bound is at least it."""
    metrics = Metrics()
    from coord.server._metrics import clock

    metrics.request(5, clock() - 3_000_000, 0)  # 3 ms ago
    counts = metrics.ops[5]
    (index,) = [i for i, n in enumerate(counts[:-1]) if n]
    assert (1024 << (index - 1)) <= 3_000_000 < (1024 << index)
    assert op_name(5) == "setData" and op_name(6) == "getACL" and op_name(12) == "getChildren2"
