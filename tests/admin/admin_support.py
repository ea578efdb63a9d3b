"""Helpers for the admin endpoint tests: plain HTTP and a Prometheus text parser."""

from __future__ import annotations

import base64
import http.client
import json
import re
from typing import Any

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def get(
    address: str,
    path: str,
    *,
    method: str = "GET",
    auth: tuple[str, str] | None = None,
    host_header: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers in lower case, body)`` of one request to ``address``."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {}
    if host_header is not None:
        headers["Host"] = host_header
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


def get_json(address: str, path: str, **kw: Any) -> tuple[int, Any]:
    status, headers, body = get(address, path, **kw)
    assert headers["content-type"].startswith("application/json"), headers
    return status, json.loads(body)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus text exposition; checks that each has a TYPE line."""
    samples: Samples = {}
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in typed, f"two TYPE lines for {name}"
            typed[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match is not None, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, f"{name} has no TYPE line"
        key = (name, frozenset(_LABEL.findall(labels or "")))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels``."""
    return samples[(name, frozenset(labels.items()))]


def metric_names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def exported_names(text: str) -> set[str]:
    """Every sample name /metrics can show: each TYPE'd family (with a histogram's
    _bucket/_sum/_count), whether or not it has samples yet."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names
