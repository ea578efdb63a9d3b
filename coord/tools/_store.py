"""``coord store inspect``: what a data directory holds, safe while a server runs.

The description comes from :func:`coord.plugins.builtin.rocksdb_store.inspect`, which
opens the database read-only and takes no lock. The store knows log *indexes*; a zxid is
``term << 32 | index`` where the term is the one the entry was written in, so the applied
zxid is not known without decoding the entry and the report gives index and term.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coord.plugins.builtin.rocksdb_store import inspect
from coord.server._storage import StoreCorruptedError, StoreError

from ._common import Progress, ToolError, human_bytes

__all__ = ["format_store_info", "inspect_store"]


def inspect_store(
    data_dir: Path | str, *, verify: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    """Describe the rocksdb store in ``data_dir`` (see :func:`format_store_info`).

    Args:
        data_dir: a server's data directory (its server may be running).
        verify: also read every record and check its checksum (and the log for holes).
        progress: reports bytes checked while verifying.

    Returns:
        The keys of :func:`~coord.plugins.builtin.rocksdb_store.inspect`: ``data_dir``,
        ``format``, ``first_index``, ``last_index``, ``entries``, ``applied_index``,
        ``term``, ``vote``, ``nodes``, ``sessions``, ``disk_bytes``, ``locked_by`` and,
        with ``verify``, ``verified`` (counts of what was checked).

    Raises:
        ToolError: no store there, it cannot be opened, or it is damaged (the message
            names the first damaged record).
    """
    path = Path(data_dir)
    if not path.is_dir():
        raise ToolError(f"no data directory {path}")
    report = None
    if progress is not None:
        report = progress.reporter(lambda n: f"verifying: {human_bytes(n)} checked")
    try:
        return inspect(path, verify=verify, progress=report)
    except StoreCorruptedError as exc:
        raise ToolError(f"verification failed: {exc}") from None
    except StoreError as exc:
        raise ToolError(str(exc)) from None


def format_store_info(info: dict[str, Any]) -> str:
    """``info`` from :func:`inspect_store` as the lines ``coord store inspect`` prints."""
    locked = info.get("locked_by")
    if locked is None:
        server = "none (the directory is not locked)"
    else:
        server = f"running, pid {locked}" if locked else "running (pid unknown)"
    if info["entries"]:
        log = f"indexes {info['first_index']}..{info['last_index']} ({info['entries']} entries)"
    else:
        log = f"empty (compacted up to index {info['last_index']})"
    applied = f"index {info['applied_index']}"
    behind = info["last_index"] - info["applied_index"]
    if behind > 0:
        applied += f" ({behind} later log entries are replayed at start-up)"
    rows = [
        ("data dir", f"{info['data_dir']} (rocksdb, format {info['format']})"),
        ("server", server),
        ("applied", applied),
        ("term", f"{info['term']} (vote {info['vote']})"),
        ("log", log),
        ("nodes", str(info["nodes"])),
        ("sessions", str(info["sessions"])),
        ("disk", f"{human_bytes(info['disk_bytes'])} ({info['disk_bytes']} bytes)"),
    ]
    verified = info.get("verified")
    if verified is not None:
        rows.append(
            (
                "verified",
                f"OK: {_count(verified['entries'], 'entry', 'entries')}, "
                f"{_count(verified['nodes'], 'node')}, "
                f"{_count(verified['sessions'], 'session')}, "
                f"{_count(verified['meta'], 'metadata record')}, "
                f"{human_bytes(verified['bytes'])}",
            )
        )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"
