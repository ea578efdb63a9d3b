"""``coord store inspect``: what a data directory holds, read-only; --verify checks every
record. Also the progress reporting every long tool shares."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import pytest
from rocksdict import Options, Rdict

from coord.cli import main
from coord.plugins.builtin.rocksdb_store import DB_DIR, RocksDBStore
from coord.server._storage import HardState, StoreBatch
from coord.tools import Progress, human_bytes


async def _write_known_store(data_dir: Path) -> None:
    store = RocksDBStore.open(data_dir, threaded_writes=False)
    try:
        await store.write(
            StoreBatch(
                entries=[(i, b"entry %d" % i) for i in range(1, 8)],
                hard_state=HardState(term=3, vote=1),
                nodes={"/": b"root", "/a": b"a", "/a/b": b"b"},
                sessions={0x100: b"session"},
                applied_index=5,
            )
        )
        await store.write(StoreBatch(compact_before=3))
    finally:
        await store.close()


@pytest.fixture
def known_store(tmp_path: Path) -> Path:
    """Log 3..7, applied 5, term 3 (vote 1), 3 nodes, 1 session."""
    data_dir = tmp_path / "data"
    anyio.run(_write_known_store, data_dir)
    return data_dir


def test_store_inspect_describes_a_known_store(
    known_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["store", "inspect", "--data-dir", str(known_store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:7] == [
        f"data dir  {known_store} (rocksdb, format 1)",
        "server    none (the directory is not locked)",
        "applied   index 5 (2 later log entries are replayed at start-up)",
        "term      3 (vote 1)",
        "log       indexes 3..7 (5 entries)",
        "nodes     3",
        "sessions  1",
    ]
    assert lines[7].startswith("disk      ") and lines[7].endswith(" bytes)")
    assert len(lines) == 8


def test_store_inspect_verify_and_json(
    known_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["store", "inspect", "--data-dir", str(known_store), "--verify", "--json"]) == 0
    out, err = capsys.readouterr()
    info = json.loads(out)
    assert (info["applied_index"], info["first_index"], info["last_index"]) == (5, 3, 7)
    assert info["verified"] == {
        "entries": 5,
        "nodes": 3,
        "sessions": 1,
        "meta": 4,
        "bytes": info["verified"]["bytes"],
    }
    assert err.startswith("verify: ") and err.count("\n") == 1  # stderr is not a TTY


def test_store_inspect_verify_names_the_damaged_record(
    known_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    families = {name: Options(raw_mode=True) for name in ("log", "nodes", "sessions", "meta")}
    db = Rdict(str(known_store / DB_DIR), Options(raw_mode=True), column_families=families)
    try:
        nodes = db.get_column_family("nodes")
        nodes[b"/a"] = b"\0\0\0\0garbage"
        del nodes
    finally:
        db.close()
    assert main(["store", "inspect", "--data-dir", str(known_store)]) == 0  # no --verify
    capsys.readouterr()
    assert main(["store", "inspect", "--data-dir", str(known_store), "--verify"]) == 2
    err = capsys.readouterr().err
    assert "coord: verification failed: node record /a is corrupted (checksum mismatch)" in err


def test_store_inspect_without_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "inspect", "--data-dir", str(tmp_path)]) == 2
    assert f"coord: there is no rocksdb store in {tmp_path}" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_Progress_on_a_terminal_updates_a_few_times_a_second() -> None:
    """However often the work reports, the status line is rewritten at most every
    interval; the summary ends it on its own line."""
    clock, out = _Clock(), _Terminal()
    progress = Progress("copy", stream=out, interval=0.25, clock=clock)
    rendered: list[float] = []

    def render() -> str:
        rendered.append(clock.now)
        return "working"

    for _ in range(1000):  # 1,000 records over 1 second
        clock.now += 0.001
        progress.update(render)
    assert 3 <= len(rendered) <= 4
    progress.done("1000 records in 1.00 s")
    text = out.getvalue()
    assert text.count("\r") == len(rendered) + 1
    assert text.endswith("\r\x1b[Kcopy: 1000 records in 1.00 s\n")


def test_Progress_off_a_terminal_writes_only_the_summary() -> None:
    clock, out = _Clock(), io.StringIO()
    progress = Progress("copy", stream=out, clock=clock)
    for _ in range(100):
        clock.now += 0.1
        progress.update(lambda: "never shown")
    progress.done("done")
    assert out.getvalue() == "copy: done\n"


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 1536, 5 << 20, 3 << 30)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]


def test_tools_package_exports_its_public_names() -> None:
    import coord.tools

    assert sorted(coord.tools.__all__) == sorted(
        name for name in vars(coord.tools) if not name.startswith("_")
    )
