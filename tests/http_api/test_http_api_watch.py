"""Watches over the HTTP API as Server-Sent Events (GET /v1/watch...).

Rules under test: a stream gets the node's changes in zxid order, each with ``id: <zxid>``
and the new Stat for data changes; recursive streams get every descendant's created /
deleted / changed events (as ZooKeeper's persistent recursive watches), plain ones the
node's own events including children; only events the caller may READ are sent; a client
that disconnects frees its subscription; resuming from an id (Last-Event-ID or since)
replays exactly the events missed, then continues live; an id older than the history
kept gets 410 Gone; idle streams carry heartbeat comments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from http_support import Api, EventStream, SseEvent, b64, http_address

from coord.plugins.builtin.http_api import HttpApiTransport
from coord.testing._server import CoordServerThread


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _history(server: CoordServerThread) -> object:
    (transport,) = [t for t in server.server.transports if isinstance(t, HttpApiTransport)]
    assert transport.api is not None and transport.api.history is not None
    return transport.api.history


def _events(stream: EventStream, count: int) -> list[SseEvent]:
    out = []
    while len(out) < count:
        event = stream.next()
        assert event is not None, f"the stream ended after {out}"
        out.append(event)
    return out


def _summary(events: list[SseEvent]) -> list[tuple[str, str]]:
    return [(e.event, e.data["path"]) for e in events]


def test_http_api_recursive_watch_streams_changes_in_order(api: Api, root: str) -> None:
    with EventStream(api, f"/v1/watch{root}?recursive=1") as stream:
        assert stream.status == 200
        assert stream.response.getheader("content-type") == "text/event-stream"
        ready = stream.next()
        assert ready is not None and ready.event == "ready"
        assert ready.id == str(ready.data["zxid"])
        api.post(f"/v1/node{root}/a")
        api.put(f"/v1/node{root}/a", {"data": b64(b"v1")})
        api.post(f"/v1/node{root}/a/b")
        api.delete(f"/v1/node{root}/a/b")
        api.delete(f"/v1/node{root}/a")
        assert api.post(f"/v1/nodes{root}").body["error"] == "not_found"  # not /s/...
        events = _events(stream, 5)
    assert _summary(events) == [
        ("created", f"{root}/a"),
        ("changed", f"{root}/a"),
        ("created", f"{root}/a/b"),
        ("deleted", f"{root}/a/b"),
        ("deleted", f"{root}/a"),
    ]
    zxids = [e.data["zxid"] for e in events]
    assert zxids == sorted(zxids) and len(set(zxids)) == 5
    assert [e.id for e in events] == [str(z) for z in zxids]
    assert events[1].data["stat"]["version"] == 1
    assert events[1].data["stat"]["dataLength"] == 2
    assert events[0].data["type"] == "created"
    assert "stat" not in events[3].data


def test_http_api_plain_watch_gets_the_node_own_events(api: Api, root: str) -> None:
    with EventStream(api, f"/v1/watch{root}") as stream:
        _events(stream, 1)
        api.post(f"/v1/node{root}/child")
        api.post(f"/v1/node{root}/child/grandchild")  # below: not for a plain watch
        api.put(f"/v1/node{root}", {"data": b64(b"x")})
        events = _events(stream, 2)
    assert _summary(events) == [("children", root), ("changed", root)]


def test_http_api_watch_sends_only_readable_events(api: Api, root: str) -> None:
    secret = [{"perms": "rwcda", "scheme": "digest", "id": "alice:nottheone"}]
    with EventStream(api, f"/v1/watch{root}?recursive=1") as stream:
        _events(stream, 1)
        api.post(f"/v1/node{root}/hidden", {"acl": secret})
        api.post(f"/v1/node{root}/visible")
        events = _events(stream, 1)
    assert _summary(events) == [("created", f"{root}/visible")]


def test_http_api_disconnect_frees_the_subscription(
    api: Api, root: str, coord_http: CoordServerThread
) -> None:
    history = _history(coord_http)

    def count() -> int:
        return int(coord_http.call(lambda: len(history.subscriptions)))  # type: ignore[attr-defined]

    before = count()
    assert api.request("HEAD", f"/v1/watch{root}").status == 200
    assert count() == before  # a body never sent never subscribes
    stream = EventStream(api, f"/v1/watch{root}?recursive=1")
    _events(stream, 1)
    assert count() == before + 1
    stream.close()
    _wait_for(lambda: count() == before)


def test_http_api_resume_replays_exactly_the_missed_events(api: Api, root: str) -> None:
    with EventStream(api, f"/v1/watch{root}?recursive=1") as stream:
        ready = _events(stream, 1)[0]
    for name in ("one", "two", "three"):
        api.post(f"/v1/node{root}/{name}")
    assert ready.id is not None
    with EventStream(
        api, f"/v1/watch{root}?recursive=1", headers={"Last-Event-ID": ready.id}
    ) as stream:
        events = _events(stream, 4)
        assert events[0].event == "ready" and events[0].id is None
        assert _summary(events[1:]) == [("created", f"{root}/{n}") for n in ("one", "two", "three")]
        api.post(f"/v1/node{root}/four")  # then live, without a repeat
        assert _summary(_events(stream, 1)) == [("created", f"{root}/four")]
    first = events[1].id
    with EventStream(api, f"/v1/watch{root}?recursive=1&since={first}") as stream:
        events = _events(stream, 4)
    assert _summary(events[1:]) == [("created", f"{root}/{n}") for n in ("two", "three", "four")]


def test_http_api_watch_rejects_bad_resume_points(api: Api, root: str) -> None:
    for url, headers in (
        (f"/v1/watch{root}?since=abc", {}),
        (f"/v1/watch{root}?since=-5", {}),
        (f"/v1/watch{root}", {"Last-Event-ID": "zz"}),
        ("/v1/watch/bad//path", {}),
    ):
        reply = api.get(url, headers=headers)
        assert reply.status == 400, url


@pytest.fixture
def short_history() -> Iterator[CoordServerThread]:
    with CoordServerThread(http_port=0, http_watch_history=4, http_heartbeat=0.2) as server:
        yield server


def test_http_api_resume_past_the_history_is_gone(short_history: CoordServerThread) -> None:
    api = Api(*http_address(short_history.server))
    zxids = [api.post(f"/v1/node/n{i}").body["stat"]["czxid"] for i in range(6)]
    gone = api.get(f"/v1/watch/?recursive=1&since={zxids[0]}")
    assert (gone.status, gone.body["error"]) == (410, "compacted")
    assert gone.body["oldest"] > zxids[0]
    with EventStream(api, f"/v1/watch/?recursive=1&since={gone.body['oldest']}") as stream:
        events = _events(stream, 2)
        assert events[1].event == "created"
        assert events[1].data["zxid"] > gone.body["oldest"]
        # Idle, the stream carries heartbeat comments (proxies keep it open).
        for _ in range(20):
            if stream.response.readline().startswith(b": heartbeat"):
                break
        else:
            raise AssertionError("no heartbeat")
