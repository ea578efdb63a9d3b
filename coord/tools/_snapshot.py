"""``coord snapshot save`` and ``coord snapshot restore``: a running server's store, to a
file and back into a data directory.

Theory of operation
-------------------
**Save.** The server streams a tar archive in answer to the ``snap`` four-letter word
(:mod:`coord.server._snapshot` describes the archive and why the copy is consistent). The
client writes every byte it receives to ``FILE.part`` while parsing the same bytes as a tar
stream, hashing each member; the archive is accepted only if its last member is the
manifest and every file matches the size and SHA-256 the manifest gives. Then the file is
fsynced and renamed to ``FILE``: a ``FILE`` that exists is complete. The saved file is the
archive exactly as sent, so ``tar tf FILE`` lists it.

**Restore.** The archive is unpacked into a scratch directory inside the data directory
(``.restore-<pid>``), checked against its manifest, opened as a store and verified
(every checksum, the log without holes), and only then moved into place as
``DIR/rocksdb`` (a rename, atomic). During all of this the tool holds the data directory's
lock (``LOCK.coord``, the lock a server takes), so no server can start on a half-restored
directory, and a running server makes the restore fail before anything is touched. The
archive may be compressed (``gzip FILE`` still restores).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Final

from coord.plugins.builtin.rocksdb_store import DB_DIR, LOCK_FILE, RocksDBStore, inspect
from coord.server._snapshot import MANIFEST, MANIFEST_FORMAT, SNAP
from coord.server._storage import StoreError

from ._common import Progress, ToolError, human_bytes, parse_address

__all__ = ["RestoreResult", "SaveResult", "restore_snapshot", "save_snapshot"]

_MEMBER = re.compile(rf"^{DB_DIR}/[A-Za-z0-9][A-Za-z0-9._-]*$")
_CHUNK: Final = 1 << 20
_RESTORE_PREFIX = ".restore-"


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What :func:`save_snapshot` wrote."""

    path: Path
    #: Bytes of the archive.
    size: int
    #: Store files in it.
    files: int
    seconds: float
    #: The archive's manifest (``store``: indexes, term, node and session counts).
    manifest: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What :func:`restore_snapshot` put in place."""

    data_dir: Path
    files: int
    #: Bytes unpacked.
    size: int
    seconds: float
    #: Whether a store was replaced (``force``).
    replaced: bool
    #: :func:`~coord.plugins.builtin.rocksdb_store.inspect` of the restored store, with
    #: ``verified`` counts.
    info: dict[str, Any] = field(repr=False)


# --- reading the archive -----------------------------------------------------------------


class _Tee:
    """A readable file over ``read_more`` that copies every byte read into ``sink``."""

    def __init__(
        self,
        read_more: Callable[[], bytes],
        sink: IO[bytes] | None,
        prefix: bytes = b"",
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self._read_more = read_more
        self._sink = sink
        self._buffer = bytearray(prefix)
        self._progress = progress
        self.total = 0
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buffer) < n):
            data = self._read_more()
            if not data:
                self._eof = True
                break
            self._buffer += data
        if n < 0:
            n = len(self._buffer)
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        if self._sink is not None:
            self._sink.write(out)
        self.total += len(out)
        if self._progress is not None:
            self._progress(self.total)
        return out

    def drain(self) -> None:
        """Read (and copy) everything up to the end of the stream."""
        while self.read(_CHUNK):
            pass


def _members(
    tar: tarfile.TarFile, write: Callable[[str], BinaryIO | None]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read every member, hashing each (and writing it where ``write(name)`` says);
    returns the manifest and what was found, checked against each other.

    Raises:
        ToolError: an unexpected member, no manifest (a truncated archive), a file that
            does not match the manifest.
    """
    found: list[dict[str, Any]] = []
    manifest: dict[str, Any] | None = None
    for member in tar:
        if manifest is not None:
            raise ToolError(f"not a coord snapshot: {member.name!r} follows the manifest")
        if not member.isfile():
            raise ToolError(f"not a coord snapshot: {member.name!r} is not a regular file")
        source = tar.extractfile(member)
        assert source is not None
        if member.name == MANIFEST:
            try:
                manifest = json.loads(source.read())
            except ValueError as exc:
                raise ToolError(f"the snapshot's manifest is not valid JSON: {exc}") from None
            continue
        if not _MEMBER.match(member.name):
            raise ToolError(f"not a coord snapshot: unexpected member {member.name!r}")
        digest = hashlib.sha256()
        size = 0
        sink = write(member.name)
        try:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
        finally:
            if sink is not None:
                os.fsync(sink.fileno())
                sink.close()
        found.append({"name": member.name, "size": size, "sha256": digest.hexdigest()})
    if manifest is None:
        raise ToolError(
            "the snapshot is incomplete: its manifest is missing (the transfer was cut short)"
        )
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ToolError(
            f"unsupported snapshot format {manifest.get('format')!r} "
            f"(this coord reads format {MANIFEST_FORMAT})"
            if isinstance(manifest, dict)
            else "the snapshot's manifest is not an object"
        )
    expected = sorted(manifest.get("files", []), key=lambda f: str(f.get("name")))
    if sorted(found, key=lambda f: str(f["name"])) != expected:
        names = {f["name"] for f in found} ^ {f.get("name") for f in expected}
        detail = f"files missing or extra: {sorted(map(str, names))}" if names else "a checksum"
        raise ToolError(f"the snapshot is damaged: it does not match its manifest ({detail})")
    return manifest, found


# --- save --------------------------------------------------------------------------------


def save_snapshot(
    server: str,
    output: Path | str,
    *,
    force: bool = False,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> SaveResult:
    """Save a consistent copy of a running coord server's store into ``output``.

    The server must whitelist ``snap`` (``--four-letter-words ...,snap``).

    Args:
        server: ``host:port`` of the server's client port.
        output: the archive to write (a tar file).
        force: replace ``output`` if it exists.
        timeout: seconds to wait for each piece of the answer.
        progress: reports bytes received.

    Returns:
        What was saved.

    Raises:
        ToolError: the server refused or failed (its answer is quoted), the transfer was
            cut short or damaged (nothing is left at ``output``), or ``output`` exists.
    """
    output = Path(output)
    if output.exists() and not force:
        raise ToolError(f"{output} already exists; pass --force to replace it")
    host, port = parse_address(server)
    started = time.monotonic()
    part = output.with_name(output.name + ".part")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ToolError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
    with sock:
        sock.sendall(SNAP.encode())

        def receive() -> bytes:
            try:
                return sock.recv(_CHUNK)
            except TimeoutError:
                raise ToolError(
                    f"{host}:{port} sent nothing for {timeout:g} s; the snapshot is incomplete"
                ) from None
            except OSError as exc:
                raise ToolError(f"the connection to {host}:{port} failed: {exc}") from None

        head = bytearray()
        while len(head) < tarfile.BLOCKSIZE and (data := receive()):
            head += data
        if len(head) < tarfile.BLOCKSIZE or head[257:262] != b"ustar":
            raise _refusal(f"{host}:{port}", bytes(head))
        shown = None
        if progress is not None:
            shown = progress.reporter(lambda n: f"{human_bytes(n)} received")
        try:
            with part.open("wb") as sink:
                tee = _Tee(receive, sink, bytes(head), shown)
                try:
                    with tarfile.open(fileobj=tee, mode="r|") as tar:  # type: ignore[call-overload]
                        manifest, found = _members(tar, lambda name: None)
                except tarfile.TarError as exc:
                    raise ToolError(
                        f"the snapshot from {host}:{port} is damaged or incomplete: {exc}"
                    ) from None
                tee.drain()
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(part, output)
            _fsync_dir(output.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise
    return SaveResult(output, tee.total, len(found), time.monotonic() - started, manifest)


def _refusal(server: str, answer: bytes) -> ToolError:
    text = answer.decode("utf-8", "replace").strip()
    if not text:
        return ToolError(
            f"{server} closed the connection without answering `snap` (not a coord server? "
            "Apache ZooKeeper has no snapshot command: use coord export)"
        )
    if "not in the whitelist" in text:
        return ToolError(
            f"{server} refused: {text} Enable it on the server by naming it in "
            "four_letter_words (e.g. --four-letter-words srvr,ruok,snap); see the security "
            "note in docs/operations.md"
        )
    return ToolError(f"{server} did not send a snapshot: {text}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- restore -----------------------------------------------------------------------------


@contextlib.contextmanager
def _directory_lock(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir``'s lock, the one a server takes (``flock`` on ``LOCK.coord``)."""
    lock_path = data_dir / LOCK_FILE
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            pid = lock_path.read_text(errors="replace").split("\n", 1)[0].strip() or "unknown"
            raise ToolError(
                f"{data_dir} is in use by a running coord server (pid {pid}); stop it before "
                "restoring into its data directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def restore_snapshot(
    snapshot: Path | str,
    data_dir: Path | str,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> RestoreResult:
    """Unpack a snapshot archive into ``data_dir`` and verify it (see the module docs).

    Args:
        snapshot: an archive written by :func:`save_snapshot` (possibly compressed).
        data_dir: the data directory to restore into (created if missing).
        force: replace the store of a non-empty ``data_dir`` (other files are left alone).
        progress: reports bytes unpacked, then bytes verified.

    Returns:
        What was restored, with the restored store's description.

    Raises:
        ToolError: ``data_dir`` is in use by a server, or not empty without ``force``;
            the archive is not a complete, undamaged coord snapshot; the restored store
            fails verification. ``data_dir`` is left as it was.
    """
    snapshot, data_dir = Path(snapshot), Path(data_dir)
    started = time.monotonic()
    if not snapshot.is_file():
        raise ToolError(f"no snapshot file {snapshot}")
    if data_dir.exists() and not data_dir.is_dir():
        raise ToolError(f"{data_dir} is not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolError(f"cannot create {data_dir}: {exc.strerror}") from None
    with _directory_lock(data_dir):
        for stale in data_dir.glob(f"{_RESTORE_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
        content = sorted(p.name for p in data_dir.iterdir() if p.name != LOCK_FILE)
        if content and not force:
            raise ToolError(
                f"{data_dir} is not empty ({', '.join(content[:5])}"
                f"{', ...' if len(content) > 5 else ''}); pass --force to replace the store "
                "in it"
            )
        scratch = data_dir / f"{_RESTORE_PREFIX}{os.getpid()}"
        scratch.mkdir()
        try:
            files, size = _unpack(snapshot, scratch, progress)
            counts = _verify(scratch, progress)
            replaced = (data_dir / DB_DIR).exists()
            if replaced:
                os.rename(data_dir / DB_DIR, scratch / "replaced")
            os.rename(scratch / DB_DIR, data_dir / DB_DIR)
            _fsync_dir(data_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    try:
        info = inspect(data_dir)
    except StoreError as exc:
        raise ToolError(f"the restored store cannot be read: {exc}") from None
    info["verified"] = counts
    return RestoreResult(data_dir, files, size, time.monotonic() - started, replaced, info)


def _unpack(snapshot: Path, scratch: Path, progress: Progress | None) -> tuple[int, int]:
    (scratch / DB_DIR).mkdir()

    def write(name: str) -> BinaryIO:
        return (scratch / name).open("xb")

    shown = None
    if progress is not None:
        total = human_bytes(snapshot.stat().st_size)
        shown = progress.reporter(lambda n: f"unpacking: {human_bytes(n)} of {total}")
    with snapshot.open("rb") as raw:
        tee = _Tee(lambda: raw.read(_CHUNK), None, b"", shown)
        try:
            with tarfile.open(fileobj=tee, mode="r|*") as tar:  # type: ignore[call-overload]
                _manifest, found = _members(tar, write)
        except tarfile.TarError as exc:
            raise ToolError(f"{snapshot} is not a complete coord snapshot: {exc}") from None
    if not found:
        raise ToolError(f"{snapshot} holds no store files")
    _fsync_dir(scratch / DB_DIR)
    return len(found), sum(int(f["size"]) for f in found)


def _verify(scratch: Path, progress: Progress | None) -> dict[str, int]:
    import anyio

    shown = None
    if progress is not None:
        shown = progress.reporter(lambda n: f"verifying: {human_bytes(n)} checked")
    try:
        store = RocksDBStore.open(scratch, threaded_writes=False)
    except StoreError as exc:
        raise ToolError(f"the snapshot does not open as a store: {exc}") from None
    try:
        return store.verify(shown)
    except StoreError as exc:
        raise ToolError(f"the snapshot fails verification: {exc}") from None
    finally:
        anyio.run(store.close)
