"""The HTTP API's watch history (coord/server/http_api/_events.py), driven directly.

Rules under test: events are kept up to the capacity and the horizon moves past the
dropped ones; a subscription resumes from any zxid at or above the horizon with exactly
the later events, and below it is refused; events go only to subscriptions that match the
path (recursive or not) and whose identities may READ; a subscription that does not keep
up is ended as overflowed; a replaced server state (a snapshot) ends every subscription.
"""

from __future__ import annotations

from collections.abc import Iterable

import anyio
import pytest

from coord.protocol import ACL, EventType, Id, Perm
from coord.server.http_api._events import STREAM_BUFFER, Compacted, EventHistory, TreeEvent

OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)
ALICE = (ACL(Perm.ALL, Id("digest", "alice:x")),)
ANYONE = (Id("world", "anyone"),)


def _allows(acl: tuple[ACL, ...], perm: int, ids: Iterable[Id]) -> bool:
    held = set(ids) | {Id("world", "anyone")}
    return any(entry.perms & perm and entry.id in held for entry in acl)


class State:
    def __init__(self) -> None:
        self.current = object()


def _history(capacity: int = 100, state: State | None = None) -> EventHistory:
    state = state or State()
    return EventHistory(capacity, 0, _allows, lambda path: None, lambda: state.current)


def _drain(events: anyio.abc.ObjectReceiveStream[TreeEvent]) -> list[tuple[int, str]]:
    out = []
    while True:
        try:
            event = events.receive_nowait()  # type: ignore[attr-defined]
        except (anyio.WouldBlock, anyio.EndOfStream):
            return out
        out.append((event.zxid, event.path))


def test_EventHistory_resume_gets_exactly_the_later_events() -> None:
    history = _history()
    for zxid in range(1, 6):
        history.observe(zxid, [(EventType.NODE_CREATED, f"/n{zxid}", OPEN)])
    subscription = history.subscribe("/", recursive=True, ids=ANYONE, since=3)
    history.observe(6, [(EventType.NODE_DATA_CHANGED, "/n1", OPEN)])
    assert _drain(subscription.events) == [(4, "/n4"), (5, "/n5"), (6, "/n1")]


def test_EventHistory_horizon_moves_past_dropped_events() -> None:
    history = _history(capacity=3)
    for zxid in range(1, 6):
        history.observe(zxid, [(EventType.NODE_CREATED, f"/n{zxid}", OPEN)])
    assert history.horizon == 2
    with pytest.raises(Compacted) as refused:
        history.subscribe("/", recursive=True, ids=ANYONE, since=1)
    assert refused.value.horizon == 2
    subscription = history.subscribe("/", recursive=True, ids=ANYONE, since=2)
    assert [z for z, _ in _drain(subscription.events)] == [3, 4, 5]


def test_EventHistory_matches_paths_and_acls() -> None:
    history = _history()
    recursive = history.subscribe("/a", recursive=True, ids=ANYONE, since=None)
    plain = history.subscribe("/a", recursive=False, ids=ANYONE, since=None)
    alice = history.subscribe("/a", recursive=True, ids=(Id("digest", "alice:x"),), since=None)
    history.observe(1, [(EventType.NODE_CREATED, "/a/b", OPEN),
                        (EventType.NODE_CHILDREN_CHANGED, "/a", OPEN)])  # fmt: skip
    history.observe(2, [(EventType.NODE_CREATED, "/ab", OPEN)])  # not below /a
    history.observe(3, [(EventType.NODE_CREATED, "/a/secret", ALICE)])
    assert _drain(recursive.events) == [(1, "/a/b")]
    assert _drain(plain.events) == [(1, "/a")]
    assert _drain(alice.events) == [(1, "/a/b"), (3, "/a/secret")]


def test_EventHistory_slow_subscription_is_ended_as_overflowed() -> None:
    history = _history(capacity=10)
    slow = history.subscribe("/", recursive=True, ids=ANYONE, since=None)
    for zxid in range(1, STREAM_BUFFER + 2):
        history.observe(zxid, [(EventType.NODE_DATA_CHANGED, "/x", OPEN)])
    assert slow.overflowed
    assert slow not in history.subscriptions
    assert len(_drain(slow.events)) == STREAM_BUFFER


def test_EventHistory_replaced_state_restarts_the_history() -> None:
    state = State()
    history = _history(state=state)
    history.observe(1, [(EventType.NODE_CREATED, "/a", OPEN)])
    live = history.subscribe("/", recursive=True, ids=ANYONE, since=None)
    state.current = object()  # the server loaded a snapshot: events were skipped
    history.observe(9, [(EventType.NODE_CREATED, "/b", OPEN)])
    assert live.overflowed
    assert _drain(live.events) == []
    assert history.horizon == 8
    with pytest.raises(Compacted):
        history.subscribe("/", recursive=True, ids=ANYONE, since=1)
