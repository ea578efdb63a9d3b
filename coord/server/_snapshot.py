"""The ``snap`` four-letter word: stream a consistent copy of the store as a tar archive.

Theory of operation
-------------------
``coord snapshot save`` connects to the client port and sends ``snap`` in place of a
handshake, as for any four-letter word. When ``snap`` is whitelisted -- it must be named
in ``four_letter_words``; ``*`` does not enable it -- the server:

1. asks the store for a point-in-time copy (:meth:`LogStore.copy_to`; for ``rocksdb`` a
   RocksDB checkpoint: hard links to the immutable table files plus copies of the
   manifest and WAL) in a scratch directory next to the store. The copy is consistent
   without any coordination with the commit loop: every batch the loop writes is atomic
   and carries the log entries, the applied records *and* the applied index together, and
   recovery replays the log after the applied index, so any batch boundary is a valid
   state. Nothing is flushed and the commit loop keeps running meanwhile;
2. describes the copy (:func:`~coord.plugins.builtin.rocksdb_store.inspect`, read-only);
3. streams it as a POSIX tar archive, file by file in chunks of :data:`CHUNK` bytes
   (never the whole archive in memory), reading and hashing in a worker thread, and
   writes last a manifest member, :data:`MANIFEST`, listing every file with its size and
   SHA-256 and what the store holds; the receiver treats an archive without it as
   truncated;
4. closes the connection and removes the scratch copy.

Anything else is answered with one line of text and the connection is closed: the
whitelist refusal ZooKeeper sends for any word (``snap is not executed because it is not
in the whitelist.``) or ``snap failed: <reason>`` (e.g. the ``memory`` backend cannot copy).
A receiver tells the two apart by the tar magic at offset 257 of the first 512 bytes.

Security: whoever can send ``snap`` receives every znode and session of the store,
whatever the ACLs say (and session passwords with them). That is why it is off by
default and not covered by ``*``; enable it only where the client port is reachable by
operators alone. The admin endpoint's ``snapshot`` command (coord/server/_admin.py) streams
the same archive over HTTP and is enabled by the same setting.

Scratch directories are ``<data_dir>/.snapshot-<pid>-<n>`` (same file system as the
store, so the checkpoint is made of hard links and costs almost no space or time);
those left by an earlier process (a crash mid-stream) are removed at the next ``snap``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import anyio
import anyio.to_thread

import coord

from ._storage import StoreError

if TYPE_CHECKING:
    from ._server import Connection, Server

__all__ = [
    "CHUNK",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "SNAP",
    "archive_chunks",
    "open_snapshot",
    "remove_scratch",
    "snapshot_allowed",
    "stream_snapshot",
]

log = logging.getLogger("coord.server")
audit_log = logging.getLogger("coord.audit")

#: The four-letter word.
SNAP: Final = "snap"
#: The manifest member, always the archive's last.
MANIFEST: Final = "SNAPSHOT.json"
#: ``format`` of the manifest (and of the archive's layout).
MANIFEST_FORMAT: Final = 1
#: Bytes read, hashed and sent at a time.
CHUNK: Final = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_SCRATCH_PREFIX = ".snapshot-"
_counter = itertools.count(1)


def snapshot_allowed(server: Server) -> bool:
    """Whether ``snap`` is whitelisted: named in ``four_letter_words`` (``*`` is not enough)."""
    return SNAP in server.config.enabled_four_letter_words


async def stream_snapshot(server: Server, connection: Connection) -> None:
    """Answer ``snap`` on ``connection``: the store as a tar archive, or a line of text.

    Called by the connection in place of a handshake, outside the handshake deadline; the
    connection is closed when this returns. A client that goes away mid-stream only ends
    the stream. Errors are logged, never raised (a failed snapshot must not take the
    server down).
    """
    peer = connection.peer_name
    if not snapshot_allowed(server):
        connection.out += f"{SNAP} is not executed because it is not in the whitelist.\n".encode()
        connection.kick()
        return
    audit_log.info("snapshot of the whole store requested by %s", peer)
    started = time.monotonic()
    scratch = await anyio.to_thread.run_sync(_scratch_dir, server)
    try:
        copy = scratch / "copy"
        try:
            await server.store.copy_to(copy)
        except StoreError as exc:
            log.warning("snapshot for %s failed: %s", peer, exc)
            connection.out += f"{SNAP} failed: {exc}\n".encode()
            connection.kick()
            return
        info = await anyio.to_thread.run_sync(_describe, copy)
        sent = await _send_archive(connection, copy, info)
        log.info(
            "snapshot sent to %s: %d bytes in %.2f s (log up to index %s)",
            peer,
            sent,
            time.monotonic() - started,
            info.get("last_index", "?"),
        )
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        log.info(
            "snapshot for %s abandoned: the connection failed (%s)",
            peer,
            exc or type(exc).__name__,
        )
    except Exception:
        log.exception("snapshot for %s failed", peer)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, scratch, True)


def _scratch_dir(server: Server) -> Path:
    """A new scratch directory beside the store; removes those of earlier processes."""
    base = getattr(server.store, "data_dir", None)
    if not isinstance(base, Path) or not base.is_dir():
        return Path(tempfile.mkdtemp(prefix=_SCRATCH_PREFIX))
    mine = f"{_SCRATCH_PREFIX}{os.getpid()}-"
    for stale in base.glob(f"{_SCRATCH_PREFIX}*"):
        if not stale.name.startswith(mine):
            shutil.rmtree(stale, ignore_errors=True)
    scratch = base / f"{mine}{next(_counter)}"
    scratch.mkdir()
    return scratch


def _describe(copy: Path) -> dict[str, Any]:
    """What the copy holds (indexes, term, counts), or ``{}`` for a non-rocksdb copy."""
    from coord.plugins.builtin.rocksdb_store import inspect

    try:
        info = inspect(copy)
    except StoreError:
        return {}
    keys = ("format", "first_index", "last_index", "applied_index", "term", "vote")
    return {key: info[key] for key in (*keys, "nodes", "sessions")}


def _tar_header(name: str, size: int) -> bytes:
    member = tarfile.TarInfo(name)
    member.size = size
    member.mode = 0o644
    member.mtime = int(time.time())
    return member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _list_files(copy: Path) -> list[tuple[Path, str, int]]:
    """``(path, name in the archive, size)`` of every file under ``copy``, sorted."""
    paths = sorted(p for p in copy.rglob("*") if p.is_file())
    return [(p, p.relative_to(copy).as_posix(), p.stat().st_size) for p in paths]


def _open(path: Path) -> BinaryIO:
    return path.open("rb")


def _read_hashed(handle: BinaryIO, digest: Any, n: int) -> bytes:
    data = handle.read(n)
    digest.update(data)
    return data


def _padding(size: int) -> bytes:
    return bytes(-size % _BLOCK)


async def _send_archive(connection: Connection, copy: Path, store: dict[str, Any]) -> int:
    """Stream every file under ``copy`` then the manifest; returns the bytes sent."""
    stream = connection.stream
    sent = 0
    async for chunk in archive_chunks(connection.server, copy, store):
        await stream.send(chunk)
        sent += len(chunk)
    return sent


async def open_snapshot(server: Server) -> tuple[Path, Path, dict[str, Any]]:
    """Make a point-in-time copy of the store: ``(scratch directory, copy, description)``.

    The caller streams it with :func:`archive_chunks` and removes the scratch directory
    (:func:`remove_scratch`). The admin endpoint's ``snapshot`` command uses this.

    Raises:
        StoreError: the backend cannot copy itself (e.g. ``memory``).
    """
    scratch = await anyio.to_thread.run_sync(_scratch_dir, server)
    try:
        copy = scratch / "copy"
        await server.store.copy_to(copy)
        info = await anyio.to_thread.run_sync(_describe, copy)
    except BaseException:
        await remove_scratch(scratch)
        raise
    return scratch, copy, info


async def remove_scratch(scratch: Path) -> None:
    """Remove a scratch directory of :func:`open_snapshot` (shielded from cancellation)."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(shutil.rmtree, scratch, True)


async def archive_chunks(server: Server, copy: Path, store: dict[str, Any]) -> AsyncIterator[bytes]:
    """The tar archive of every file under ``copy`` then the manifest, chunk by chunk."""
    files: list[dict[str, Any]] = []
    for path, name, size in await anyio.to_thread.run_sync(_list_files, copy):
        yield _tar_header(name, size)
        digest = hashlib.sha256()
        remaining = size
        handle = await anyio.to_thread.run_sync(_open, path)
        try:
            while remaining:
                data = await anyio.to_thread.run_sync(
                    _read_hashed, handle, digest, min(CHUNK, remaining)
                )
                if not data:
                    raise OSError(f"{path} shrank while being sent")
                yield data
                remaining -= len(data)
        finally:
            with contextlib.suppress(OSError):
                handle.close()
        pad = _padding(size)
        if pad:
            yield pad
        files.append({"name": name, "size": size, "sha256": digest.hexdigest()})
    manifest = json.dumps(
        {
            "format": MANIFEST_FORMAT,
            "coord_version": coord.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "server": [f"{host}:{port}" for host, port in server.addresses],
            "storage": server.config.storage,
            "store": store,
            "files": files,
        },
        indent=1,
    ).encode()
    tail = _tar_header(MANIFEST, len(manifest)) + manifest + _padding(len(manifest))
    tail += bytes(2 * _BLOCK)  # end of archive
    yield tail
