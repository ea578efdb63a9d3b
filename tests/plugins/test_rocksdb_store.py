"""The rocksdb backend beyond the shared contract (tests/storage): its plugin, directory
lock, checksums over keys, metadata damage, verify/inspect, crash recovery, cancellation."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from rocksdict import Options, Rdict

from coord.plugins import load_plugins, storage_backend
from coord.plugins.builtin import rocksdb_store
from coord.plugins.builtin.rocksdb_store import (
    DB_DIR,
    FORMAT_VERSION,
    LOCK_FILE,
    RocksDBBackend,
    RocksDBStore,
    inspect,
)
from coord.server._config import ServerConfig
from coord.server._storage import (
    HardState,
    LogStore,
    StorageBackend,
    StoreBatch,
    StoreCorruptedError,
    StoreError,
    StoreLockedError,
)

FAMILIES = ("log", "nodes", "sessions", "meta")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextmanager
def raw_db(data_dir: Path) -> Iterator[Rdict]:
    families = {name: Options(raw_mode=True) for name in FAMILIES}
    db = Rdict(str(data_dir / DB_DIR), Options(raw_mode=True), column_families=families)
    try:
        yield db
    finally:
        db.close()


@asynccontextmanager
async def opened(data_dir: Path, **options: Any) -> AsyncIterator[RocksDBStore]:
    """The store in ``data_dir``, open for the block."""
    store = RocksDBStore.open(data_dir, **options)
    try:
        yield store
    finally:
        await store.close()


def raw_get(data_dir: Path, family: str, key: bytes) -> bytes:
    """A value of the closed store's database, read behind its back."""
    with raw_db(data_dir) as db:
        value = db.get_column_family(family)[key]
    assert isinstance(value, bytes)
    return value


def raw_put(data_dir: Path, family: str, key: bytes, value: bytes | None) -> None:
    """Overwrite (or with None delete) a value of the closed store's database."""
    with raw_db(data_dir) as db:
        # No reference to the family may outlive close(): it would keep the database open.
        if value is None:
            del db.get_column_family(family)[key]
        else:
            db.get_column_family(family)[key] = value


async def filled(data_dir: Path) -> None:
    store = RocksDBStore.open(data_dir)
    await store.write(
        StoreBatch(
            entries=[(i, b"entry %d" % i) for i in range(1, 11)],
            hard_state=HardState(3, 1),
            nodes={"/": b"root", "/a": b"a", "/b": b"b"},
            sessions={5: b"five"},
            applied_index=8,
        )
    )
    await store.close()


def test_rocksdb_backend_is_a_builtin_plugin() -> None:
    pm = load_plugins(ServerConfig(), entry_points=False)
    backend = storage_backend(pm, "rocksdb")
    assert isinstance(backend, RocksDBBackend)
    assert isinstance(backend, StorageBackend)
    pm = load_plugins(ServerConfig(plugins_disabled=("builtin.rocksdb_store",)), entry_points=False)
    with pytest.raises(Exception, match="unknown storage backend 'rocksdb'"):
        storage_backend(pm, "rocksdb")


@pytest.mark.anyio
async def test_RocksDBBackend_open_creates_and_locks_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    store = RocksDBBackend().open(ServerConfig(data_dir=str(data_dir), storage="rocksdb"))
    try:
        assert isinstance(store, LogStore)
        assert (data_dir / DB_DIR / "CURRENT").exists()
        assert (data_dir / LOCK_FILE).read_text().strip() == str(os.getpid())
        message = f"data directory {data_dir} is in use by another coord server (pid {os.getpid()})"
        with pytest.raises(StoreLockedError) as info:
            RocksDBStore.open(data_dir)
        assert str(info.value) == message
    finally:
        await store.close()
    await RocksDBStore.open(data_dir).close()


@pytest.mark.anyio
async def test_RocksDBStore_recycles_wal_files_and_keeps_point_in_time_recovery(
    tmp_path: Path,
) -> None:
    """WAL files are reused (cheaper synced writes) while RocksDB keeps the point-in-time
    WAL recovery the durability design relies on (RocksDB would silently drop one of the
    two if it considered them incompatible)."""
    store = RocksDBStore.open(tmp_path)
    await store.close()
    options = "\n".join(path.read_text() for path in (tmp_path / DB_DIR).glob("OPTIONS-*")).replace(
        " ", ""
    )
    assert "recycle_log_file_num=2" in options
    assert "wal_recovery_mode=kPointInTimeRecovery" in options


@pytest.mark.anyio
async def test_RocksDBStore_lock_names_the_holding_process_and_dies_with_it(
    tmp_path: Path,
) -> None:
    """The lock is an flock: held by a live process, gone with it (even on SIGKILL)."""
    script = textwrap.dedent(
        f"""
        import sys
        from coord.plugins.builtin.rocksdb_store import RocksDBStore
        store = RocksDBStore.open({str(tmp_path)!r})
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    async with await anyio.open_process([sys.executable, "-c", script]) as child:
        assert child.stdout is not None
        try:
            received = b""
            while b"\n" not in received:  # a pipe may deliver the line in pieces
                received += await child.stdout.receive()
            assert received == b"ready\n"
            pattern = rf"in use by another coord server \(pid {child.pid}\)"
            with pytest.raises(StoreLockedError, match=pattern):
                RocksDBStore.open(tmp_path)
            assert inspect(tmp_path)["locked_by"] == child.pid
        finally:
            child.kill()
            assert await child.wait() == -signal.SIGKILL
    store = RocksDBStore.open(tmp_path)
    await store.close()
    assert inspect(tmp_path)["locked_by"] is None


@pytest.mark.anyio
async def test_RocksDBStore_acknowledged_write_survives_SIGKILL(tmp_path: Path) -> None:
    """A synced write (or barrier) is in the WAL when write() returns; recovery replays it."""
    script = textwrap.dedent(
        f"""
        import os, signal, anyio
        from coord.plugins.builtin.rocksdb_store import RocksDBStore
        from coord.server._storage import StoreBatch

        async def main():
            store = RocksDBStore.open({str(tmp_path)!r})
            for i in range(1, 101):
                await store.write(StoreBatch(entries=[(i, b"e%d" % i)], nodes={{"/n": b"%d" % i}},
                                             applied_index=i))
            for i in range(101, 111):
                await store.write(StoreBatch(entries=[(i, b"e%d" % i)]), sync=False)
            await store.write(StoreBatch())  # the barrier makes them durable too
            os.kill(os.getpid(), signal.SIGKILL)

        anyio.run(main)
        """
    )
    result = await anyio.run_process([sys.executable, "-c", script], check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    store = RocksDBStore.open(tmp_path)
    try:
        assert (store.last_index, store.applied_index) == (110, 100)
        assert store.read_entries(99, 102) == [b"e99", b"e100", b"e101"]
        assert list(store.iter_nodes()) == [("/n", b"100")]
    finally:
        await store.close()


@pytest.mark.anyio
async def test_RocksDBStore_checksum_covers_the_key(tmp_path: Path) -> None:
    """A valid record found under another key (a misdirected write) is corruption."""
    await filled(tmp_path)
    raw_put(tmp_path, "nodes", b"/b", raw_get(tmp_path, "nodes", b"/a"))
    five, six = (5).to_bytes(8, "big"), (6).to_bytes(8, "big")
    raw_put(tmp_path, "sessions", six, raw_get(tmp_path, "sessions", five))
    store = RocksDBStore.open(tmp_path)
    try:
        with pytest.raises(StoreCorruptedError, match=r"node record /b is corrupted"):
            list(store.iter_nodes())
        with pytest.raises(StoreCorruptedError, match=r"session record 0x6 is corrupted"):
            list(store.iter_sessions())
    finally:
        await store.close()


@pytest.mark.anyio
async def test_RocksDBStore_corruption_message_says_where_and_what_to_do(tmp_path: Path) -> None:
    await filled(tmp_path)
    key = (4).to_bytes(8, "big")
    raw_put(tmp_path, "log", key, raw_get(tmp_path, "log", key)[:-1] + b"X")
    store = RocksDBStore.open(tmp_path)
    try:
        with pytest.raises(StoreCorruptedError) as info:
            store.read_entries(1, 11)
        assert str(info.value) == (
            f"log entry 4 is corrupted (checksum mismatch); the store in {tmp_path} is "
            "damaged: restore it from a snapshot or re-sync it from the ensemble"
        )
        with pytest.raises(StoreCorruptedError, match="log entry 4"):
            store.verify()
    finally:
        await store.close()
    with pytest.raises(StoreCorruptedError, match="log entry 4"):
        inspect(tmp_path, verify=True)


@pytest.mark.anyio
async def test_RocksDBStore_missing_entry_is_corruption(tmp_path: Path) -> None:
    await filled(tmp_path)
    raw_put(tmp_path, "log", (6).to_bytes(8, "big"), None)
    store = RocksDBStore.open(tmp_path)
    try:
        with pytest.raises(StoreCorruptedError, match=r"log entry 6 is corrupted \(missing\)"):
            store.read_entries(5, 8)
        with pytest.raises(StoreCorruptedError, match="log entry 6"):
            store.verify()
    finally:
        await store.close()


@pytest.mark.anyio
@pytest.mark.parametrize("key", [b"applied_index", b"hard_state", b"first_index", b"format"])
async def test_RocksDBStore_damaged_metadata_fails_open(tmp_path: Path, key: bytes) -> None:
    await filled(tmp_path)
    value = raw_get(tmp_path, "meta", key)
    raw_put(tmp_path, "meta", key, value[:-1] + bytes([value[-1] ^ 0x80]))
    with pytest.raises(StoreCorruptedError, match=f"metadata record {key.decode()} is corrupted"):
        RocksDBStore.open(tmp_path)
    await RocksDBStore.open(tmp_path / "fresh").close()  # the failed open left no lock behind
    with pytest.raises(StoreCorruptedError):
        RocksDBStore.open(tmp_path)


@pytest.mark.anyio
async def test_RocksDBStore_refuses_a_newer_format(tmp_path: Path) -> None:
    await filled(tmp_path)
    version = (FORMAT_VERSION + 1).to_bytes(8, "big")
    raw_put(tmp_path, "meta", b"format", rocksdb_store._seal("meta", b"format", version))
    with pytest.raises(StoreError, match="written by a newer coord"):
        RocksDBStore.open(tmp_path)


def test_RocksDBStore_open_on_a_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the data directory"):
        RocksDBStore.open(tmp_path / "file")


@pytest.mark.anyio
async def test_RocksDBStore_verify_and_inspect_report_the_contents(tmp_path: Path) -> None:
    await filled(tmp_path)
    store = RocksDBStore.open(tmp_path)
    try:
        await store.write(StoreBatch(compact_before=4))
        seen: list[int] = []
        counts = store.verify(seen.append)
        assert counts == {"entries": 7, "nodes": 3, "sessions": 1, "meta": 4, "bytes": seen[-1]}
        info = inspect(tmp_path, verify=True)  # read-only, while the server holds the lock
        assert info["locked_by"] == os.getpid()
    finally:
        await store.close()
    assert info["verified"] == counts
    del info["verified"], info["disk_bytes"]
    assert info == {
        "data_dir": str(tmp_path),
        "format": FORMAT_VERSION,
        "first_index": 4,
        "last_index": 10,
        "entries": 7,
        "applied_index": 8,
        "term": 3,
        "vote": 1,
        "nodes": 3,
        "sessions": 1,
        "locked_by": os.getpid(),
    }
    with pytest.raises(StoreError, match="there is no rocksdb store"):
        inspect(tmp_path / "nothing")


@pytest.mark.anyio
async def test_RocksDBStore_write_cancelled_in_the_thread_keeps_memory_and_disk_agreed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a batch is handed to RocksDB, cancelling write() cannot leave the in-memory
    metadata behind the disk."""
    store = RocksDBStore.open(tmp_path, threaded_writes=True)
    started, release = threading.Event(), threading.Event()
    original = RocksDBStore._write_plan

    def slow(self: RocksDBStore, plan: object, sync: bool) -> None:
        started.set()
        release.wait(10)
        original(self, plan, sync)  # type: ignore[arg-type]

    monkeypatch.setattr(RocksDBStore, "_write_plan", slow)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.write, StoreBatch(entries=[(1, b"x")], applied_index=1))
            await anyio.to_thread.run_sync(started.wait)
            tg.cancel_scope.cancel()
            release.set()
        assert (store.last_index, store.applied_index) == (1, 1)
        monkeypatch.setattr(RocksDBStore, "_write_plan", original)
        await store.write(StoreBatch(entries=[(2, b"y")]))
    finally:
        await store.close()
    async with opened(tmp_path) as reopened:
        assert reopened.read_entries(1, 3) == [b"x", b"y"]


@pytest.mark.anyio
async def test_RocksDBStore_iteration_stops_when_the_store_closes(tmp_path: Path) -> None:
    """No iterator outlives a chunk, so an abandoned iteration never pins the database."""
    store = RocksDBStore.open(tmp_path)
    await store.write(StoreBatch(nodes={f"/n{i:05d}": b"x" for i in range(10_000)}))
    nodes = store.iter_nodes()
    assert next(nodes) == ("/n00000", b"x")
    await store.close()
    reopened = RocksDBStore.open(tmp_path)  # the suspended generator holds no iterator
    await reopened.close()
    with pytest.raises(StoreError, match="closed"):
        list(nodes)


@pytest.mark.anyio
async def test_RocksDBStore_writes_in_a_thread_only_on_a_slow_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open() times the disk's fdatasync: above THREAD_ABOVE_FSYNC, writes go to a thread
    (measured faster there); below, inline (measured faster there)."""
    store = RocksDBStore.open(tmp_path)
    assert store.fsync_seconds > 0
    assert store.threaded_writes == (store.fsync_seconds > rocksdb_store.THREAD_ABOVE_FSYNC)
    await store.close()
    assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"  # the probe left no trace
    monkeypatch.setattr(rocksdb_store, "THREAD_ABOVE_FSYNC", 0.0)
    store = RocksDBStore.open(tmp_path)
    assert store.threaded_writes
    await store.write(StoreBatch(entries=[(1, b"x")]))
    await store.close()
    store = RocksDBStore.open(tmp_path, threaded_writes=False)
    assert not store.threaded_writes and store.fsync_seconds == 0.0
    assert store.read_entries(1, 2) == [b"x"]
    await store.close()


@pytest.mark.anyio
async def test_RocksDBStore_keeps_choosing_thread_or_inline_from_its_synced_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unless forced, the choice made at open is revisited: inline, by the median of every
    32 synced writes; threaded, by three timed inline writes (one in 32). A forced choice
    never changes."""
    window = rocksdb_store._SYNC_WINDOW
    probes = rocksdb_store._THREADED_PROBES
    monkeypatch.setattr(rocksdb_store, "THREAD_ABOVE_FSYNC", 0.0)  # every disk is "slow"
    store = RocksDBStore.open(tmp_path)
    index = 0

    async def synced_writes(count: int) -> None:
        nonlocal index
        for _ in range(count):
            index += 1
            await store.write(StoreBatch(entries=[(index, b"x")]))

    try:
        assert store.threaded_writes and store.adaptive_writes
        await synced_writes(window * probes - 1)
        assert store.threaded_writes  # two timed probes so far, all slow
        monkeypatch.setattr(rocksdb_store, "THREAD_ABOVE_FSYNC", 60.0)  # now every disk is fast
        await synced_writes(window * probes)
        assert not store.threaded_writes
        await synced_writes(window - 1)
        assert not store.threaded_writes
        monkeypatch.setattr(rocksdb_store, "THREAD_ABOVE_FSYNC", 0.0)
        await synced_writes(window)
        assert store.threaded_writes
        await store.write(StoreBatch(), sync=False)  # unsynced writes are not timed
    finally:
        await store.close()
    store = RocksDBStore.open(tmp_path, threaded_writes=True)
    try:
        assert not store.adaptive_writes
        monkeypatch.setattr(rocksdb_store, "THREAD_ABOVE_FSYNC", 60.0)
        await synced_writes(window * probes * 2)
        assert store.threaded_writes
        assert store.read_entries(1, index + 1) == [b"x"] * index
    finally:
        await store.close()


@pytest.mark.anyio
async def test_RocksDBStore_write_inline_writes_now_unless_the_write_belongs_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write_inline does a synced write on the calling thread when the store writes inline
    (or a threaded store's timed probe is due); otherwise it writes nothing and says so."""
    store = RocksDBStore.open(tmp_path, threaded_writes=False)
    try:
        assert store.write_inline(StoreBatch(entries=[(1, b"a")], applied_index=1))
        assert (store.last_index, store.applied_index) == (1, 1)
        assert store.write_inline(StoreBatch())  # a barrier, nothing unsynced: no-op
        with pytest.raises(ValueError):
            store.write_inline(StoreBatch(entries=[(5, b"gap")]))
        store.threaded_writes = True  # forced threaded: never inline
        assert not store.write_inline(StoreBatch(entries=[(2, b"b")]))
        assert store.last_index == 1
    finally:
        await store.close()
    monkeypatch.setattr(rocksdb_store, "THREAD_ABOVE_FSYNC", 0.0)
    store = RocksDBStore.open(tmp_path)  # adaptive, and threaded
    try:
        assert store.threaded_writes
        inline = 0
        for index in range(2, 2 + 2 * rocksdb_store._SYNC_WINDOW):
            batch = StoreBatch(entries=[(index, b"x")])
            if store.write_inline(batch):
                inline += 1
            else:
                await store.write(batch)
        assert inline == 2  # one timed probe in every _SYNC_WINDOW writes
        assert store.last_index == 1 + 2 * rocksdb_store._SYNC_WINDOW
    finally:
        await store.close()
    store = RocksDBStore.open(tmp_path)
    try:
        assert store.read_entries(1, 3) == [b"a", b"x"]
    finally:
        await store.close()


def _current_wal(data_dir: Path) -> tuple[str, int]:
    """The WAL file RocksDB writes now (the highest-numbered) and its size."""
    newest = max((data_dir / DB_DIR).glob("*.log"), key=lambda path: int(path.stem))
    return newest.name, newest.stat().st_size


@pytest.mark.anyio
async def test_RocksDBStore_primed_wal_writes_into_a_recycled_file_and_recovers_from_it(
    tmp_path: Path,
) -> None:
    """With prime_wal, synced writes land in a recycled WAL file at least
    WAL_PRIME_BYTES long (overwrites: no inode update per fdatasync) instead of appending
    to a new one; a SIGKILL after them loses nothing; every open primes again."""
    script = textwrap.dedent(
        f"""
        import os, signal, anyio
        from coord.plugins.builtin.rocksdb_store import RocksDBStore
        from coord.server._storage import StoreBatch

        async def main():
            store = RocksDBStore.open({str(tmp_path)!r}, prime_wal=True)
            for i in range(1, 201):
                await store.write(StoreBatch(entries=[(i, b"e%d" % i)], nodes={{"/n": b"%d" % i}},
                                             applied_index=i))
            wals = [n for n in os.listdir({str(tmp_path / DB_DIR)!r}) if n.endswith(".log")]
            print(max(wals), flush=True)  # zero-padded numbers: the newest
            os.kill(os.getpid(), signal.SIGKILL)

        anyio.run(main)
        """
    )
    result = await anyio.run_process([sys.executable, "-c", script], check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    written = result.stdout.decode().strip()
    size = (tmp_path / DB_DIR / written).stat().st_size
    # 200 small batches are ~100 KB: a file this long was recycled, not grown by them.
    assert size >= rocksdb_store.WAL_PRIME_BYTES, (written, size)
    async with opened(tmp_path, prime_wal=True) as store:
        assert (store.last_index, store.applied_index) == (200, 200)
        assert store.read_entries(199, 201) == [b"e199", b"e200"]
        assert list(store.iter_nodes()) == [("/n", b"200")]
        await store.write(StoreBatch(entries=[(201, b"e201")]))
        assert _current_wal(tmp_path)[1] >= rocksdb_store.WAL_PRIME_BYTES
    async with opened(tmp_path) as store:
        assert store.read_entries(200, 202) == [b"e200", b"e201"]


@pytest.mark.anyio
async def test_RocksDBStore_does_not_prime_without_room_or_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Priming needs free space (a nearly full disk must still start) and is the server's
    choice (tools that open a store briefly skip it): then writes append to a new WAL."""
    for data_dir, prime in ((tmp_path / "unasked", False), (tmp_path / "no-room", True)):
        if prime:
            monkeypatch.setattr(rocksdb_store, "_PRIME_FREE_FACTOR", 1 << 40)
        async with opened(data_dir, prime_wal=prime) as store:
            await store.write(StoreBatch(entries=[(1, b"e1")]))
            assert _current_wal(data_dir)[1] < 1 << 20


@pytest.mark.anyio
async def test_RocksDBStore_copy_of_a_primed_store_carries_the_data_not_the_wal_slack(
    tmp_path: Path,
) -> None:
    """A checkpoint copies the live WAL file whole, and a recycled one is megabytes of old
    records and filler: copy_to replays it into the copy's tables and drops it, so a
    snapshot of a small tree stays small and holds every write (the last ones only in
    the WAL when the copy was made)."""
    async with opened(tmp_path / "primed", prime_wal=True) as store:
        for i in range(1, 101):
            await store.write(StoreBatch(entries=[(i, b"e%d" % i)], nodes={f"/n{i}": b"%d" % i}))
    # Reopened, with nothing written since the priming (no memtable to flush, so the
    # checkpoint keeps the live WAL: the recycled file) and then with a write.
    async with opened(tmp_path / "primed", prime_wal=True) as store:
        await store.copy_to(tmp_path / "copy")
        await store.write(StoreBatch(entries=[(101, b"e101")], nodes={"/n101": b"101"}))
        await store.copy_to(tmp_path / "copy2")
    for copy_dir, last in ((tmp_path / "copy", 100), (tmp_path / "copy2", 101)):
        files = list((copy_dir / DB_DIR).iterdir())
        assert sum(f.stat().st_size for f in files) < 1 << 20, sorted(
            (f.name, f.stat().st_size) for f in files
        )
        async with opened(copy_dir) as copy:
            assert copy.last_index == last
            assert copy.read_entries(last - 1, last + 1) == [b"e%d" % (last - 1), b"e%d" % last]
            assert dict(copy.iter_nodes())[f"/n{last}"] == b"%d" % last
