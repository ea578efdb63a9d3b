"""docs/grafana-dashboard.json uses only metrics a running coord server exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from admin_support import exported_names, get, parse_metrics
from kazoo.client import KazooClient

from coord.testing._server import CoordServerThread

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
             "or", "unless", "offset", "inf", "nan"}  # fmt: skip


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard["panels"]) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a label_values() query) reads."""
    found = re.findall(r"label_values\((\w+)", expr)
    if found:
        return set(found)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", expr)
    return {n for n in names if n.lower() not in _KEYWORDS}


def test_metric_name_extraction() -> None:
    expr = ('histogram_quantile(0.99, sum by (op, le) (rate(coord_x_bucket{a="b",c!~"d"}'
            '[$__rate_interval]))) / on (instance) coord_y')  # fmt: skip
    assert metric_names(expr) == {"coord_x_bucket", "coord_y"}
    assert metric_names("label_values(coord_info, instance)") == {"coord_info"}


def test_every_metric_of_the_dashboard_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = expressions(dashboard)
    assert len(exprs) >= 20
    used = set().union(*(metric_names(e) for e in exprs))
    with CoordServerThread(admin_port=0) as server:
        client = KazooClient(hosts=server.address, timeout=5)
        client.start(timeout=10)
        client.create("/d", b"x")
        client.set("/d", b"y")
        client.stop()
        client.close()
        status, _, body = get(server.admin_address, "/metrics")
    assert status == 200
    text = body.decode()
    parse_metrics(text)  # well-formed
    missing = used - exported_names(text)
    assert not missing, f"the dashboard uses metrics coord does not export: {sorted(missing)}"
    # The panels the issue asks for are there.
    for needed in ("coord_requests_total", "coord_request_duration_seconds_bucket",
                   "coord_log_fsync_seconds_bucket", "coord_sessions", "coord_znodes",
                   "coord_watches", "coord_leader_id", "coord_leader_changes_total",
                   "coord_follower_lag_entries"):  # fmt: skip
        assert needed in used, needed


def test_dashboard_panels_have_unique_ids_and_fit_the_grid() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
