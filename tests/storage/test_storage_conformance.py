"""Both built-in storage backends keep the storage contract (coord.testing's suite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from coord.plugins.builtin.memory_store import MemoryStore
from coord.plugins.builtin.rocksdb_store import DB_DIR, RocksDBStore
from coord.server._storage import LogStore
from coord.testing import StorageConformance


def flip_last_byte(data_dir: Path, family: str, key: bytes) -> None:
    """Damage one value of a closed RocksDB store behind its back."""
    families = {name: Options(raw_mode=True) for name in ("log", "nodes", "sessions", "meta")}
    db = Rdict(str(data_dir / DB_DIR), Options(raw_mode=True), column_families=families)
    try:
        cf = db.get_column_family(family)
        value = cf[key]
        assert isinstance(value, bytes)
        cf[key] = value[:-1] + bytes([value[-1] ^ 0x01])
        del cf
    finally:
        db.close()
        del db


def rocksdb_key(kind: str, key: int | str) -> tuple[str, bytes]:
    if kind == "entry":
        assert isinstance(key, int)
        return "log", key.to_bytes(8, "big")
    if kind == "node":
        assert isinstance(key, str)
        return "nodes", key.encode()
    assert isinstance(key, int)
    return "sessions", key.to_bytes(8, "big", signed=True)


class TestMemoryStore(StorageConformance):
    persistent = False

    @pytest.fixture
    def store_factory(self) -> object:
        return lambda data_dir: MemoryStore()


class TestRocksDBStore(StorageConformance):
    persistent = True

    @pytest.fixture(params=[True, False], ids=["threaded", "inline"])
    def store_factory(self, request: pytest.FixtureRequest) -> object:
        def open_(data_dir: Path) -> LogStore:
            return RocksDBStore.open(data_dir, threaded_writes=request.param)

        return open_

    def corrupt(self, data_dir: Path, kind: str, key: int | str) -> None:
        flip_last_byte(data_dir, *rocksdb_key(kind, key))

    def break_writes(self, store: LogStore) -> None:
        assert isinstance(store, RocksDBStore)
        db = store._db
        assert db is not None
        db.close()  # RocksDB now fails every write, as on a dead disk
