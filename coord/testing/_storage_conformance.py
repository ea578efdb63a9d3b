"""The contract every storage backend must keep, as a reusable pytest suite.

A backend's tests subclass :class:`StorageConformance` (the class name must start with
``Test`` for pytest to collect it) and provide a ``store_factory`` fixture::

    from coord.testing import StorageConformance

    class TestMyStore(StorageConformance):
        persistent = True

        @pytest.fixture
        def store_factory(self):
            return lambda data_dir: MyStore.open(data_dir)

        def corrupt(self, data_dir, kind, key):   # optional
            ...                                   # damage one record on disk

        def break_writes(self, store):            # optional
            ...                                   # make the engine fail the next write

The suite is async (anyio; ``anyio_backend`` defaults to ``"asyncio"`` and may be
overridden). It checks the :class:`~coord.server._storage.LogStore` contract: the log
stays contiguous and truncates and compacts as Raft needs (never an applied entry; only
applied ones, keeping the entry at the applied index), the applied index and the term never
go back, a batch is atomic (all of it or, when rejected with ``ValueError``, none of it --
also after a reopen), node records iterate parents first, ``None`` deletes, the hard
state round-trips, and for persistent backends: everything survives a reopen, the data
directory is locked while open, damaged records are reported with
:class:`~coord.server._storage.StoreCorruptedError` naming them, ``copy_to`` makes a store
another server can open, and a failed write stops the store (fail-stop). A seeded random
test compares the store with a small model over hundreds of batches, valid and not.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from coord.server._storage import (
    HardState,
    LogStore,
    StoreBatch,
    StoreCorruptedError,
    StoreError,
    StoreLockedError,
)

__all__ = ["StorageConformance"]

#: Node paths whose byte order is easy to get wrong: "-" and "." sort before "/", so
#: "/a-b" and "/a.b" fall between "/a" and "/a/b"; non-ASCII and astral characters.
TRICKY_PATHS = (
    "/",
    "/a",
    "/a-b",
    "/a/b",
    "/a.b",
    "/ab",
    "/a/b/c",
    "/a/b-c",
    "/a/b/c/d",
    "/a b",
    "/A",
    "/z",
    "/é",
    "/é/x",
    "/日本",
    "/日本/語",
    "/\U0001f600",
    "/\U0001f600/a",
    "/\uffef",
    "/zookeeper",
    "/zookeeper/quota",
)

StoreFactory = Callable[[Path], LogStore]


def _entries(start: int, stop: int, tag: bytes = b"e") -> list[tuple[int, bytes]]:
    return [(i, tag + str(i).encode()) for i in range(start, stop)]


def _parent(path: str) -> str | None:
    if path == "/":
        return None
    head = path.rsplit("/", 1)[0]
    return head or "/"


class _Model:
    """What a store must contain: the contract restated as plainly as possible."""

    def __init__(self) -> None:
        self.log: dict[int, bytes] = {}
        self.first = 1
        self.last = 0
        self.applied = 0
        self.hard = HardState()
        self.nodes: dict[str, bytes] = {}
        self.sessions: dict[int, bytes] = {}

    def apply(self, batch: StoreBatch) -> bool:
        """Apply ``batch`` if valid; False (and no change) when a store must reject it."""
        log = dict(self.log)
        first, last, applied, hard = self.first, self.last, self.applied, self.hard
        if batch.truncate_from is not None:
            cut = batch.truncate_from
            if not (first <= cut <= last + 1) or cut <= applied:
                return False
            for i in range(cut, last + 1):
                del log[i]
            last = cut - 1
        for index, data in batch.entries:
            if index != last + 1:
                return False
            log[index] = data
            last = index
        if batch.hard_state is not None:
            if batch.hard_state.term < hard.term:
                return False
            hard = batch.hard_state
        if batch.applied_index is not None:
            if batch.applied_index < applied:
                return False
            applied = batch.applied_index
        if batch.compact_before is not None and batch.compact_before > first:
            if batch.compact_before > applied:
                return False
            for i in range(first, min(batch.compact_before, last + 1)):
                del log[i]
            first = batch.compact_before
            last = max(last, first - 1)
        self.log, self.first, self.last, self.applied, self.hard = (
            log,
            first,
            last,
            applied,
            hard,
        )
        for path, record in batch.nodes.items():
            if record is None:
                self.nodes.pop(path, None)
            else:
                self.nodes[path] = record
        for session_id, record in batch.sessions.items():
            if record is None:
                self.sessions.pop(session_id, None)
            else:
                self.sessions[session_id] = record
        return True


def _snapshot(store: LogStore) -> dict[str, Any]:
    return {
        "first": store.first_index,
        "last": store.last_index,
        "applied": store.applied_index,
        "hard": store.hard_state,
        "membership": store.membership,
        "log": store.read_entries(store.first_index, store.last_index + 1),
        "nodes": list(store.iter_nodes()),
        "sessions": sorted(store.iter_sessions()),
    }


def _model_snapshot(model: _Model) -> dict[str, Any]:
    return {
        "first": model.first,
        "last": model.last,
        "applied": model.applied,
        "hard": model.hard,
        "membership": None,
        "log": [model.log[i] for i in range(model.first, model.last + 1)],
        "nodes": sorted(model.nodes.items()),
        "sessions": sorted(model.sessions.items()),
    }


class StorageConformance:
    """The storage contract; subclass it with a ``store_factory`` fixture (module docs).

    Attributes:
        persistent: whether a store reopened on the same directory keeps its contents
            and locks the directory (False skips the reopen, lock and copy tests).
    """

    persistent: ClassVar[bool] = True

    # --- what a backend's subclass provides ----------------------------------------

    @pytest.fixture
    def anyio_backend(self) -> str:
        """The async backend the suite runs on; override to parametrise."""
        return "asyncio"

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        """A callable ``open(data_dir) -> LogStore``; subclasses must override this."""
        raise NotImplementedError("subclass StorageConformance with a store_factory fixture")

    def corrupt(self, data_dir: Path, kind: str, key: int | str) -> None:
        """Damage one record of the closed store in ``data_dir`` (flip a byte of it).

        ``kind`` is ``"entry"`` (``key`` an index), ``"node"`` (a path) or ``"session"``
        (an id). Not overridden: the corruption tests are skipped.
        """
        raise NotImplementedError

    def break_writes(self, store: LogStore) -> None:
        """Make the store's next write fail in its storage engine (as on a full or
        failing disk). Not overridden: the fail-stop test is skipped."""
        raise NotImplementedError

    # --- helpers -------------------------------------------------------------------

    @pytest.fixture
    async def open_store(
        self, store_factory: StoreFactory, tmp_path: Path, anyio_backend: str
    ) -> AsyncIterator[Callable[..., LogStore]]:
        """``open(data_dir=tmp_path / "data")``: a store closed after the test."""
        opened: list[LogStore] = []

        def open_(data_dir: Path | None = None) -> LogStore:
            store = store_factory(data_dir if data_dir is not None else tmp_path / "data")
            opened.append(store)
            return store

        yield open_
        for store in opened:
            await store.close()

    async def _reopen(self, store: LogStore, open_store: Callable[..., LogStore]) -> LogStore:
        """The same store after a close and an open (itself when not persistent)."""
        if not self.persistent:
            return store
        await store.close()
        return open_store()

    def _skip_unless_persistent(self) -> None:
        if not self.persistent:
            pytest.skip("the backend keeps nothing across opens")

    def _corrupt_or_skip(self, data_dir: Path, kind: str, key: int | str) -> None:
        self._skip_unless_persistent()
        try:
            self.corrupt(data_dir, kind, key)
        except NotImplementedError:
            pytest.skip("the backend's tests provide no corrupt() hook")

    # --- the log -------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_new_store_is_empty(self, open_store: Callable[..., LogStore]) -> None:
        store = open_store()
        assert isinstance(store, LogStore)
        assert (store.first_index, store.last_index, store.applied_index) == (1, 0, 0)
        assert store.hard_state == HardState()
        assert store.read_entries(1, 1) == []
        assert list(store.iter_nodes()) == []
        assert list(store.iter_sessions()) == []

    @pytest.mark.anyio
    async def test_entries_append_and_read_back(self, open_store: Callable[..., LogStore]) -> None:
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 4)))
        await store.write(StoreBatch(entries=_entries(4, 6)))
        await store.write(StoreBatch(entries=[(6, b"")]))
        assert (store.first_index, store.last_index) == (1, 6)
        assert store.read_entries(1, 7) == [b"e1", b"e2", b"e3", b"e4", b"e5", b""]
        assert store.read_entries(2, 4) == [b"e2", b"e3"]
        assert store.read_entries(7, 7) == []
        for start, stop in [(0, 2), (1, 8), (5, 4), (8, 8)]:
            with pytest.raises(ValueError):
                store.read_entries(start, stop)

    @pytest.mark.anyio
    async def test_entries_must_be_contiguous_and_nothing_is_written_otherwise(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 3)))
        for bad in (
            [(4, b"gap")],
            [(2, b"overlap")],
            [(3, b"ok"), (5, b"gap inside")],
            [(3, b"ok"), (3, b"duplicate")],
            [(0, b"zero")],
        ):
            with pytest.raises(ValueError):
                await store.write(StoreBatch(entries=bad, nodes={"/x": b"x"}, sessions={1: b"s"}))
        assert store.last_index == 2
        assert store.read_entries(1, 3) == [b"e1", b"e2"]
        assert list(store.iter_nodes()) == []
        assert list(store.iter_sessions()) == []

    @pytest.mark.anyio
    async def test_truncate_from_then_append_replaces_a_conflicting_suffix(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        """A follower drops its conflicting suffix and takes the leader's (Raft 5.3)."""
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 6)))
        await store.write(StoreBatch(truncate_from=3, entries=_entries(3, 5, b"new")))
        assert store.last_index == 4
        assert store.read_entries(1, 5) == [b"e1", b"e2", b"new3", b"new4"]
        with pytest.raises(ValueError):
            store.read_entries(1, 6)
        with pytest.raises(ValueError):  # entries must start at truncate_from
            await store.write(StoreBatch(truncate_from=2, entries=[(3, b"x")]))
        await store.write(StoreBatch(truncate_from=1))
        assert (store.first_index, store.last_index) == (1, 0)
        store = await self._reopen(store, open_store)
        assert (store.first_index, store.last_index) == (1, 0)
        await store.write(StoreBatch(entries=[(1, b"again")]))
        assert store.read_entries(1, 2) == [b"again"]

    @pytest.mark.anyio
    async def test_truncate_from_refuses_applied_or_missing_entries(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 6), applied_index=3))
        for cut in (0, 1, 3, 7):
            with pytest.raises(ValueError):
                await store.write(StoreBatch(truncate_from=cut))
        await store.write(StoreBatch(truncate_from=6))  # at last + 1: nothing to drop
        await store.write(StoreBatch(truncate_from=4))
        assert store.last_index == 3

    @pytest.mark.anyio
    async def test_compact_before_drops_a_prefix_and_moves_first_index(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 11), applied_index=6))
        await store.write(StoreBatch(compact_before=5))
        assert (store.first_index, store.last_index) == (5, 10)
        assert store.read_entries(5, 11) == [b"e5", b"e6", b"e7", b"e8", b"e9", b"e10"]
        with pytest.raises(ValueError):
            store.read_entries(4, 6)
        await store.write(StoreBatch(compact_before=3))  # behind first_index: no-op
        assert store.first_index == 5
        store = await self._reopen(store, open_store)
        assert (store.first_index, store.last_index) == (5, 10)
        # Applied and compacted in one batch, the applied entry itself is kept.
        await store.write(StoreBatch(applied_index=10, compact_before=10))
        assert (store.first_index, store.last_index) == (10, 10)
        assert store.read_entries(10, 11) == [b"e10"]
        await store.write(StoreBatch(entries=[(11, b"e11")]))
        assert store.read_entries(10, 12) == [b"e10", b"e11"]

    @pytest.mark.anyio
    async def test_compact_before_past_the_applied_index_is_refused(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 11), applied_index=4))
        for before in (5, 6, 11, 12):
            with pytest.raises(ValueError):
                await store.write(StoreBatch(compact_before=before, nodes={"/n": b"n"}))
        with pytest.raises(ValueError):  # the batch's own applied index counts
            await store.write(StoreBatch(applied_index=6, compact_before=7))
        assert (store.first_index, store.last_index, store.applied_index) == (1, 10, 4)
        assert list(store.iter_nodes()) == []
        await store.write(StoreBatch(applied_index=6, compact_before=6))
        assert (store.first_index, store.applied_index) == (6, 6)

    @pytest.mark.anyio
    async def test_compact_before_past_the_log_leaves_it_empty_there(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        """Records applied past the log (a snapshot installed): the log restarts there."""
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 4)))
        await store.write(StoreBatch(nodes={"/s": b"snap"}, applied_index=20, compact_before=20))
        assert (store.first_index, store.last_index, store.applied_index) == (20, 19, 20)
        assert store.read_entries(20, 20) == []
        with pytest.raises(ValueError):
            await store.write(StoreBatch(entries=[(4, b"old")]))
        store = await self._reopen(store, open_store)
        assert (store.first_index, store.last_index) == (20, 19)
        await store.write(StoreBatch(entries=[(20, b"e20")]))
        assert store.read_entries(20, 21) == [b"e20"]

    # --- atomic batches ------------------------------------------------------------

    @pytest.mark.anyio
    async def test_batch_parts_become_visible_together(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        store = open_store()
        batch = StoreBatch(
            entries=_entries(1, 4),
            hard_state=HardState(term=2, vote=1),
            nodes={"/": b"root", "/a": b"a", "/a/b": b"ab"},
            sessions={0x1234: b"s1", -7: b"s2"},
            applied_index=3,
        )
        assert batch
        await store.write(batch)
        for reopen in (False, True):
            if reopen:
                store = await self._reopen(store, open_store)
            assert store.read_entries(1, 4) == [b"e1", b"e2", b"e3"]
            assert store.hard_state == HardState(term=2, vote=1)
            assert list(store.iter_nodes()) == [("/", b"root"), ("/a", b"a"), ("/a/b", b"ab")]
            assert sorted(store.iter_sessions()) == [(-7, b"s2"), (0x1234, b"s1")]
            assert store.applied_index == 3

    @pytest.mark.anyio
    async def test_rejected_batch_changes_nothing_even_after_reopen(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        store = open_store()
        await store.write(
            StoreBatch(
                entries=_entries(1, 6),
                hard_state=HardState(3, 2),
                nodes={"/keep": b"k"},
                sessions={1: b"one"},
                applied_index=4,
            )
        )
        before = _snapshot(store)
        payload: dict[str, Any] = {
            "hard_state": HardState(3, 9),
            "nodes": {"/keep": None, "/new": b"n"},
            "sessions": {1: None, 2: b"two"},
        }
        rejected = [
            StoreBatch(entries=[(7, b"gap")], **payload),
            StoreBatch(truncate_from=2, entries=[(2, b"x")], **payload),
            StoreBatch(entries=[(6, b"ok")], compact_before=6, **payload),
            StoreBatch(entries=[(6, b"ok")], applied_index=3, **payload),
            StoreBatch(entries=[(6, b"ok")], hard_state=HardState(2, 1)),
            StoreBatch(entries=[(6, b"ok")], nodes={"/bad": "not bytes"}),  # type: ignore[dict-item]
            StoreBatch(entries=[(6, b"ok")], sessions={1 << 64: b"too big"}),
            StoreBatch(entries=[(6, "not bytes")]),  # type: ignore[list-item]
        ]
        for batch in rejected:
            with pytest.raises(ValueError):
                await store.write(batch)
            assert _snapshot(store) == before, batch
        store = await self._reopen(store, open_store)
        assert _snapshot(store) == before

    @pytest.mark.anyio
    async def test_empty_batch_changes_nothing(self, open_store: Callable[..., LogStore]) -> None:
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 3), nodes={"/a": b"a"}))
        before = _snapshot(store)
        assert not StoreBatch()
        await store.write(StoreBatch())
        await store.write(StoreBatch(), sync=False)
        assert _snapshot(store) == before

    @pytest.mark.anyio
    async def test_unsynced_writes_are_visible_and_a_synced_one_makes_them_durable(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 3), nodes={"/a": b"1"}), sync=False)
        assert store.read_entries(1, 3) == [b"e1", b"e2"]
        await store.write(StoreBatch(entries=_entries(3, 4), nodes={"/b": b"2"}))
        store = await self._reopen(store, open_store)
        assert store.read_entries(1, 4) == [b"e1", b"e2", b"e3"]
        assert list(store.iter_nodes()) == [("/a", b"1"), ("/b", b"2")]

    # --- records -------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_iter_nodes_yields_parents_before_children(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        """Sorted by path (code point order = UTF-8 byte order), so a parent -- a prefix
        of its descendants -- always comes first, whatever the names."""
        store = open_store()
        shuffled = list(TRICKY_PATHS)
        random.Random(4).shuffle(shuffled)
        half = len(shuffled) // 2
        await store.write(StoreBatch(nodes={p: p.encode() for p in shuffled[:half]}))
        await store.write(StoreBatch(nodes={p: p.encode() for p in shuffled[half:]}))
        for reopen in (False, True):
            if reopen:
                store = await self._reopen(store, open_store)
            paths = [path for path, _ in store.iter_nodes()]
            assert paths == sorted(TRICKY_PATHS)
            assert [p.encode() for p in paths] == sorted(p.encode() for p in TRICKY_PATHS)
            seen: set[str] = set()
            for path in paths:
                parent = _parent(path)
                assert parent is None or parent not in TRICKY_PATHS or parent in seen, path
                seen.add(path)
            assert dict(store.iter_nodes()) == {p: p.encode() for p in TRICKY_PATHS}

    @pytest.mark.anyio
    async def test_iter_nodes_covers_many_records(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        store = open_store()
        paths = [f"/n/{i:05d}" for i in range(10_000)]
        for start in range(0, len(paths), 2500):
            await store.write(
                StoreBatch(nodes={p: b"x" * 100 for p in paths[start : start + 2500]})
            )
        assert [p for p, _ in store.iter_nodes()] == paths

    @pytest.mark.anyio
    async def test_none_deletes_records(self, open_store: Callable[..., LogStore]) -> None:
        store = open_store()
        await store.write(
            StoreBatch(nodes={"/a": b"a", "/b": b"b"}, sessions={1: b"one", 2: b"two"})
        )
        await store.write(
            StoreBatch(nodes={"/a": None, "/absent": None}, sessions={2: None, 3: None})
        )
        await store.write(StoreBatch(nodes={"/b": b"b2"}, sessions={1: b"one2"}))
        for reopen in (False, True):
            if reopen:
                store = await self._reopen(store, open_store)
            assert list(store.iter_nodes()) == [("/b", b"b2")]
            assert list(store.iter_sessions()) == [(1, b"one2")]

    @pytest.mark.anyio
    async def test_records_keep_every_byte(self, open_store: Callable[..., LogStore]) -> None:
        big = bytes(range(256)) * 4096  # 1 MiB: ZooKeeper's jute.maxbuffer
        store = open_store()
        await store.write(
            StoreBatch(
                entries=[(1, big)],
                nodes={"/big": big, "/empty": b""},
                sessions={(1 << 63) - 1: b"\x00", -(1 << 63): b""},
            )
        )
        for reopen in (False, True):
            if reopen:
                store = await self._reopen(store, open_store)
            assert store.read_entries(1, 2) == [big]
            assert dict(store.iter_nodes()) == {"/big": big, "/empty": b""}
            assert dict(store.iter_sessions()) == {(1 << 63) - 1: b"\x00", -(1 << 63): b""}

    @pytest.mark.anyio
    async def test_hard_state_round_trips_and_its_term_never_goes_back(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        store = open_store()
        await store.write(StoreBatch(hard_state=HardState(term=5, vote=3)))
        assert store.hard_state == HardState(5, 3)
        store = await self._reopen(store, open_store)
        assert store.hard_state == HardState(5, 3)
        await store.write(StoreBatch(hard_state=HardState(term=5, vote=0)))
        await store.write(StoreBatch(hard_state=HardState(term=7, vote=2)))
        with pytest.raises(ValueError):
            await store.write(StoreBatch(hard_state=HardState(term=6, vote=2)))
        store = await self._reopen(store, open_store)
        assert store.hard_state == HardState(7, 2)

    @pytest.mark.anyio
    async def test_applied_index_never_goes_back(self, open_store: Callable[..., LogStore]) -> None:
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 4), applied_index=3))
        await store.write(StoreBatch(applied_index=3))
        with pytest.raises(ValueError):
            await store.write(StoreBatch(applied_index=2))
        store = await self._reopen(store, open_store)
        assert store.applied_index == 3

    # --- persistence, locking, copies ----------------------------------------------

    @pytest.mark.anyio
    async def test_reopen_keeps_everything(
        self, open_store: Callable[..., LogStore], tmp_path: Path
    ) -> None:
        self._skip_unless_persistent()
        store = open_store()
        await store.write(
            StoreBatch(
                entries=_entries(1, 21),
                hard_state=HardState(4, 1),
                nodes={f"/n{i}": bytes([i]) for i in range(50)},
                sessions={i: str(i).encode() for i in range(-5, 5)},
                applied_index=15,
            )
        )
        await store.write(StoreBatch(compact_before=10))
        before = _snapshot(store)
        for _ in range(3):
            store = await self._reopen(store, open_store)
            assert _snapshot(store) == before

    @pytest.mark.anyio
    async def test_reset_to_installs_a_snapshot_in_place_of_everything(
        self, open_store: Callable[..., LogStore], tmp_path: Path
    ) -> None:
        """A follower catching up: log and records replaced by a snapshot's, atomically."""
        store = open_store()
        await store.write(
            StoreBatch(
                entries=_entries(1, 11),
                hard_state=HardState(3, 2),
                nodes={"/old": b"o", "/old/child": b"c"},
                sessions={7: b"s7"},
                applied_index=5,
            )
        )
        await store.write(
            StoreBatch(
                reset_to=(100, b"entry-100"),
                entries=_entries(101, 103),
                nodes={"/new": b"n"},
                sessions={9: b"s9"},
                applied_index=100,
            )
        )
        assert (store.first_index, store.last_index, store.applied_index) == (100, 102, 100)
        assert store.read_entries(100, 103) == [b"entry-100", *[d for _, d in _entries(101, 103)]]
        assert list(store.iter_nodes()) == [("/new", b"n")]
        assert list(store.iter_sessions()) == [(9, b"s9")]
        assert store.hard_state == HardState(3, 2)
        with pytest.raises(ValueError):
            store.read_entries(99, 100)
        await store.write(StoreBatch(entries=_entries(103, 104)))
        assert store.last_index == 103
        if self.persistent:
            before = _snapshot(store)
            store = await self._reopen(store, open_store)
            assert _snapshot(store) == before

    @pytest.mark.anyio
    async def test_membership_is_kept_with_the_applied_state(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        store = open_store()
        assert store.membership is None
        await store.write(StoreBatch(entries=_entries(1, 4), applied_index=2, membership=b"m1"))
        await store.write(StoreBatch(entries=_entries(4, 5)))  # unchanged when not given
        assert store.membership == b"m1"
        with pytest.raises(ValueError):
            await store.write(StoreBatch(membership="text"))  # type: ignore[arg-type]
        assert store.membership == b"m1"
        await store.write(StoreBatch(membership=b"m2", applied_index=3))
        if self.persistent:
            store = await self._reopen(store, open_store)
        assert store.membership == b"m2"

    @pytest.mark.anyio
    async def test_reset_to_is_refused_unless_consistent(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 11), applied_index=8))
        before = _snapshot(store)
        for bad in (
            StoreBatch(reset_to=(20, b"x")),  # no applied index
            StoreBatch(reset_to=(20, b"x"), applied_index=19),  # a different one
            StoreBatch(reset_to=(5, b"x"), applied_index=5),  # behind what was applied
            StoreBatch(reset_to=(20, b"x"), applied_index=20, truncate_from=9),
            StoreBatch(reset_to=(20, b"x"), applied_index=20, entries=_entries(22, 23)),
        ):
            with pytest.raises(ValueError):
                await store.write(bad)
            assert _snapshot(store) == before

    @pytest.mark.anyio
    async def test_second_open_is_locked_until_close(
        self, open_store: Callable[..., LogStore], tmp_path: Path
    ) -> None:
        self._skip_unless_persistent()
        store = open_store()
        await store.write(StoreBatch(entries=[(1, b"mine")]))
        with pytest.raises(StoreLockedError, match=re.escape(str(tmp_path / "data"))):
            open_store()
        other = open_store(tmp_path / "other")  # another directory is independent
        await other.close()
        await store.close()
        again = open_store()
        assert again.read_entries(1, 2) == [b"mine"]

    @pytest.mark.anyio
    async def test_close_is_idempotent_and_final(self, open_store: Callable[..., LogStore]) -> None:
        store = open_store()
        await store.write(StoreBatch(entries=[(1, b"x")]))
        await store.close()
        await store.close()
        with pytest.raises(StoreError):
            await store.write(StoreBatch(entries=[(2, b"y")]))

    @pytest.mark.anyio
    async def test_copy_to_makes_an_openable_point_in_time_copy(
        self, open_store: Callable[..., LogStore], tmp_path: Path
    ) -> None:
        store = open_store()
        await store.write(
            StoreBatch(
                entries=_entries(1, 6),
                hard_state=HardState(2, 2),
                nodes={"/a": b"a"},
                sessions={9: b"s"},
                applied_index=5,
            )
        )
        copy_dir = tmp_path / "copies" / "copy"
        if not self.persistent:
            with pytest.raises(StoreError):
                await store.copy_to(copy_dir)
            return
        before = _snapshot(store)
        reported: list[int] = []
        await store.copy_to(copy_dir, reported.append)
        assert reported and all(isinstance(n, int) for n in reported)
        await store.write(StoreBatch(entries=[(6, b"after")], nodes={"/a": None}))
        with pytest.raises(StoreError):  # the target must be new
            await store.copy_to(copy_dir)
        copy = open_store(copy_dir)
        assert _snapshot(copy) == before
        await copy.write(StoreBatch(entries=[(6, b"in the copy")]))
        assert store.read_entries(6, 7) == [b"after"]

    # --- damage and failures -------------------------------------------------------

    @pytest.mark.anyio
    async def test_corrupted_entry_is_reported_by_index(
        self, open_store: Callable[..., LogStore], tmp_path: Path
    ) -> None:
        store = open_store()
        await store.write(StoreBatch(entries=_entries(1, 6)))
        await store.close()
        self._corrupt_or_skip(tmp_path / "data", "entry", 3)
        store = open_store()
        assert store.read_entries(1, 3) == [b"e1", b"e2"]
        assert store.read_entries(4, 6) == [b"e4", b"e5"]
        with pytest.raises(StoreCorruptedError, match=r"\b3\b"):
            store.read_entries(1, 6)

    @pytest.mark.anyio
    async def test_corrupted_node_record_is_reported_by_path(
        self, open_store: Callable[..., LogStore], tmp_path: Path
    ) -> None:
        store = open_store()
        await store.write(StoreBatch(nodes={"/a": b"a", "/a/b": b"ab", "/c": b"c"}))
        await store.close()
        self._corrupt_or_skip(tmp_path / "data", "node", "/a/b")
        store = open_store()
        with pytest.raises(StoreCorruptedError, match=re.escape("/a/b")):
            list(store.iter_nodes())

    @pytest.mark.anyio
    async def test_corrupted_session_record_is_detected(
        self, open_store: Callable[..., LogStore], tmp_path: Path
    ) -> None:
        store = open_store()
        await store.write(StoreBatch(sessions={0x51: b"s"}))
        await store.close()
        self._corrupt_or_skip(tmp_path / "data", "session", 0x51)
        store = open_store()
        with pytest.raises(StoreCorruptedError):
            list(store.iter_sessions())

    @pytest.mark.anyio
    async def test_failed_write_raises_store_error_and_stops_the_store(
        self, open_store: Callable[..., LogStore]
    ) -> None:
        """Fail-stop: after a write failed the store's state is unknown, so it refuses
        every later write rather than let the server acknowledge anything more."""
        store = open_store()
        await store.write(StoreBatch(entries=[(1, b"a")]))
        try:
            self.break_writes(store)
        except NotImplementedError:
            pytest.skip("the backend's tests provide no break_writes() hook")
        with pytest.raises(StoreError):
            await store.write(StoreBatch(entries=[(2, b"b")]))
        with pytest.raises(StoreError):
            await store.write(StoreBatch(entries=[(2, b"b")]))
        with pytest.raises(StoreError):
            await store.write(StoreBatch(nodes={"/x": b"x"}), sync=False)
        await store.close()

    # --- everything at once --------------------------------------------------------

    @pytest.mark.anyio
    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_random_batches_match_a_model(
        self, open_store: Callable[..., LogStore], seed: int
    ) -> None:
        """Hundreds of random batches, valid and not: the store always equals the model."""
        rng = random.Random(seed)
        model = _Model()
        store = open_store()
        paths = ["/", "/a", "/a/b", "/a-b", "/b", "/é", "/a/b/c"]
        for step in range(300):
            batch = StoreBatch()
            if rng.random() < 0.15 and model.last >= model.first:
                batch.truncate_from = rng.randint(model.first - 1, model.last + 2)
            start = batch.truncate_from if batch.truncate_from is not None else model.last + 1
            if rng.random() < 0.7:
                start += rng.choice([0, 0, 0, 0, 1, -1])
                n = rng.randint(1, 5)
                batch.entries = [
                    (i, rng.randbytes(rng.randint(0, 40))) for i in range(start, start + n)
                ]
            if rng.random() < 0.2:
                batch.hard_state = HardState(
                    model.hard.term + rng.randint(-1, 2), rng.randint(0, 3)
                )
            for _ in range(rng.randint(0, 3)):
                batch.nodes[rng.choice(paths)] = rng.choice([None, rng.randbytes(8)])
            for _ in range(rng.randint(0, 2)):
                batch.sessions[rng.randint(-3, 3)] = rng.choice([None, rng.randbytes(4)])
            if rng.random() < 0.4:
                top = max(model.last, model.applied) + len(batch.entries)
                batch.applied_index = rng.randint(max(0, model.applied - 1), top)
            if rng.random() < 0.2:
                batch.compact_before = rng.randint(model.first, max(model.first, model.applied + 2))
            if model.apply(batch):
                await store.write(batch, sync=rng.random() < 0.5)
            else:
                with pytest.raises(ValueError):
                    await store.write(batch)
            assert _snapshot(store) == _model_snapshot(model), f"seed {seed} step {step}"
            if rng.random() < 0.03:
                store = await self._reopen(store, open_store)
        store = await self._reopen(store, open_store)
        assert _snapshot(store) == _model_snapshot(model), f"seed {seed} after reopen"
