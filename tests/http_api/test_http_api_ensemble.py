"""The HTTP API on a 3-member ensemble (real member processes).

Rules under test: a write over HTTP to any member goes through the leader and is read on
every member (after sync) and by ZooKeeper clients; every member streams the same events
with the same ids (zxids), so an event stream resumes on another member without missing
or repeating an event.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_support import Api, EventStream, SseEvent
from kazoo.client import KazooClient

from coord.testing._ensemble import CoordEnsemble

#: Short ticks and a tight election timeout (as tests/ensemble/ensemble_support.FAST).
FAST = {"tick_time": 250, "heartbeat_interval": 50, "election_timeout": 500}


def _http_port(log: str, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"HTTP API on 127\.0\.0\.1:(\d+)", Path(log).read_text())
        if found:
            return int(found.group(1))
        time.sleep(0.05)
    raise AssertionError(f"no HTTP API address in {log}")


@pytest.fixture(scope="module")
def ensemble() -> Iterator[CoordEnsemble]:
    with CoordEnsemble(3, config={**FAST, "http_port": 0}, proxies=False) as running:
        yield running


@pytest.fixture(scope="module")
def apis(ensemble: CoordEnsemble) -> dict[int, Api]:
    return {
        ident: Api("127.0.0.1", _http_port(member.log))
        for ident, member in ensemble.members.items()
    }


def _events(stream: EventStream, count: int) -> list[SseEvent]:
    out = []
    while len(out) < count:
        event = stream.next()
        assert event is not None
        out.append(event)
    return out


def test_http_api_ensemble_writes_anywhere_read_everywhere(
    ensemble: CoordEnsemble, apis: dict[int, Api]
) -> None:
    follower = ensemble.followers()[0]
    assert apis[follower].post("/v1/node/cfg?encoding=utf8", {"data": "v1"}).status == 201
    assert apis[follower].put("/v1/node/cfg?encoding=utf8&version=0", {"data": "v2"}).status == 200
    stale = apis[ensemble.leader() or 1].put("/v1/node/cfg?version=0", {"data": ""})
    assert stale.body["error"] == "bad_version"
    for api in apis.values():
        assert api.post("/v1/sync/cfg").status == 200
        read = api.get("/v1/node/cfg?encoding=utf8").body
        assert (read["data"], read["stat"]["version"]) == ("v2", 1)
    kazoo = KazooClient(hosts=ensemble.connect_string, timeout=10)
    kazoo.start(timeout=15)
    try:
        kazoo.sync("/cfg")
        assert kazoo.get("/cfg")[0] == b"v2"
    finally:
        kazoo.stop()
        kazoo.close()


def test_http_api_ensemble_stream_resumes_on_another_member(apis: dict[int, Api]) -> None:
    first, second, third = (apis[i] for i in sorted(apis))
    first.post("/v1/node/svc")
    with EventStream(first, "/v1/watch/svc?recursive=1") as stream:
        ready = _events(stream, 1)[0]
        third.post("/v1/node/svc/a")
        seen = _events(stream, 1)
    third.post("/v1/node/svc/b")
    third.put("/v1/node/svc/a", {"data": ""})
    assert seen[0].id is not None and ready.id is not None
    second.post("/v1/sync/svc")
    with EventStream(
        second, "/v1/watch/svc?recursive=1", headers={"Last-Event-ID": seen[0].id}
    ) as stream:
        resumed = _events(stream, 3)[1:]
    assert [(e.event, e.data["path"]) for e in resumed] == [
        ("created", "/svc/b"),
        ("changed", "/svc/a"),
    ]
    with EventStream(second, f"/v1/watch/svc?recursive=1&since={ready.id}") as stream:
        replayed = _events(stream, 4)[1:]
    assert [(e.event, e.data["path"]) for e in replayed] == [
        ("created", "/svc/a"),
        ("created", "/svc/b"),
        ("changed", "/svc/a"),
    ]
    assert replayed[0].data["zxid"] == seen[0].data["zxid"]  # the same ids on every member
    assert replayed[1:] == resumed
