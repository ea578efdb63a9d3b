"""Built-in plugin: the ``rocksdb`` storage backend, coord's durable store (DESIGN.md 4).

Theory of operation
-------------------
**Layout.** ``DATA_DIR/LOCK.coord`` is the directory lock; ``DATA_DIR/rocksdb/`` is one
RocksDB database (through PyPI's ``rocksdict``, raw bytes mode) with four column families:

===========  ==============================================  ==========================
family       key                                             value payload
===========  ==============================================  ==========================
``log``      index, 8 bytes unsigned big-endian              encoded entry
``nodes``    znode path, UTF-8                               znode record
``sessions`` session id, 8 bytes signed big-endian           session record
``meta``     ``format``, ``first_index``, ``applied_index``,  big-endian integers
             ``hard_state``
===========  ==============================================  ==========================

Big-endian index keys make RocksDB's byte order the numeric order, so the log is a range
scan and truncation and compaction are single range deletions. Paths sort parents first:
a parent's path is a proper prefix of each descendant's (``/a`` of ``/a/b``), and in
bytewise order a proper prefix sorts before every string it starts; names such as
``/a-b`` or ``/a.b`` may fall *between* ``/a`` and ``/a/b`` (``-`` and ``.`` sort before
``/``), but never before ``/a``. UTF-8 byte order is also code point order, i.e. Python's
``sorted`` over ``str``, so this backend and ``memory`` iterate in the same order. The log
may be empty (everything compacted); then ``last_index = first_index - 1``.

**Checksums.** Every value is ``crc32 | payload``: a 4-byte big-endian CRC-32 (zlib) of the
family name, the key and the payload, so a record that is damaged, truncated, or found
under another key or in another family fails the check. Every read verifies it (on top of
RocksDB's own block checksums) and a failure raises :class:`StoreCorruptedError` naming the
record and saying what to do; wrong data is never returned. :meth:`RocksDBStore.verify`
checks every record (and that the log has no hole), for start-up checks and
``coord store inspect``.

**Atomicity and durability.** :meth:`RocksDBStore.write` validates the whole
:class:`StoreBatch` against the in-memory copy of the metadata first (a rejected batch
writes nothing), then turns it into *one* RocksDB ``WriteBatch`` -- log puts and range
deletions, record puts and deletes, and the metadata -- written with ``sync=True``: one
WAL append and one fsync per batch, atomic across column families. RocksDB recovers its
WAL in point-in-time mode: a torn tail (a batch whose write was never acknowledged) is
dropped, everything acknowledged is kept. The metadata in memory (first, last and applied
index, hard state) changes only after the write returned. ``max_total_wal_size`` bounds
the WAL, so a restart replays at most a few tens of megabytes.

**WAL recycling and priming.** A synced write appended to the end of a file also makes
the file longer, so its fdatasync writes the inode (the size) besides the data; into
blocks the file already has, it is a data flush only -- ZooKeeper pads its log files to
64 MiB for the same reason. RocksDB reuses retired WAL files (``recycle_log_file_num``),
but a store just opened always starts on a new, empty WAL (its recycling list lives in
memory), and stays on it until the first WAL switch, tens of megabytes later. So the
server's store (``open(..., prime_wal=True)``) primes: it writes
:data:`WAL_PRIME_BYTES` of filler to one key of the (otherwise unused) default column
family, deletes it, and switches WALs twice by flushing, so that writes start on a
recycled file of that size. Measured here: a small synced write p50 0.147 -> 0.100 ms;
the priming costs ~40 ms at open. It is skipped on a disk with less than
:data:`_PRIME_FREE_FACTOR` times that much free space (a full disk must not stop a start).
A checkpoint copies the live WAL file whole, slack included, so :meth:`RocksDBStore.copy_to`
replays the copy's WAL into its tables and drops it: snapshots and followers' catch-ups
carry the tree, not 8 MiB (or, with recycling alone, tens of MiB) of old log.

**Locking.** :meth:`RocksDBStore.open` takes an exclusive ``flock`` on
``DATA_DIR/LOCK.coord`` and writes its pid there. ``flock`` locks belong to the open file,
so a second open of the same directory fails even within one process, with
:class:`StoreLockedError` naming the pid that holds it. The lock dies with the process
(no stale lock files) and :meth:`RocksDBStore.close` releases it.

**Fail-stop.** When RocksDB raises during a write (disk full, I/O error) the batch may or
may not be on disk and our metadata may no longer match it. The store raises
:class:`StoreError` and refuses every later write: the server must stop rather than
acknowledge anything more, and a restart recovers from what is actually on disk.

**Threading.** A synced write blocks for one WAL fsync. Run inline, it blocks the event
loop too; handed to a worker thread (rocksdict releases the GIL inside RocksDB), the loop
reads the next group-commit batch meanwhile. Measured (``benchmarks/storage_bench.py``):
on a disk whose fsync takes ~0.1 ms (an SSD with a write cache, this machine's virtual
disk) inline wins at every load -- the hand-off costs ~0.1 ms per batch, and under load
the worker waits for the GIL (up to the 5 ms switch interval) to hand back its result; on
a disk with a 2 ms fsync the thread wins from ~5k writes/s on (p50 -25 % at 10-15k/s) and
holds 20k/s where inline saturates near 18k/s. So :meth:`RocksDBStore.open` times a few
fdatasyncs of the lock file and writes in a thread when they take more than 1 ms
(``threaded_writes`` overrides it), and then keeps deciding from the synced writes
themselves: inline, every 32 writes' median; threaded, one write in 32 runs inline and
timed (a worker's own timing would include its wait for the GIL), three of those decide.
(Decided once at open, a few slow probes on a busy machine made a whole run threaded.)
Either way cancelling a ``write`` never separates the disk from the metadata in memory:
once the batch is handed to RocksDB the call completes (the worker updates the metadata
itself).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread
from rocksdict import (
    AccessType,
    Checkpoint,
    DBCompressionType,
    DBRecoveryMode,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from coord.plugins.builtin._batch import plan_batch
from coord.plugins.hookspecs import hookimpl
from coord.server._storage import (
    HardState,
    StoreBatch,
    StoreCorruptedError,
    StoreError,
    StoreLockedError,
)

if TYPE_CHECKING:
    from coord.server._config import ServerConfig
    from coord.server._storage import StorageBackend

log = logging.getLogger("coord.server")

__all__ = [
    "DB_DIR",
    "FORMAT_VERSION",
    "LOCK_FILE",
    "THREAD_ABOVE_FSYNC",
    "WAL_PRIME_BYTES",
    "RocksDBBackend",
    "RocksDBStore",
    "coord_storage_backends",
    "inspect",
]

#: The on-disk format this module writes (``meta/format``); newer ones are refused.
FORMAT_VERSION = 1
#: The lock file in the data directory.
LOCK_FILE = "LOCK.coord"
#: The RocksDB database's directory inside the data directory.
DB_DIR = "rocksdb"

_LOG = "log"
_NODES = "nodes"
_SESSIONS = "sessions"
_META = "meta"
_FAMILIES = (_LOG, _NODES, _SESSIONS, _META)
#: RocksDB's own column family; coord keeps nothing there but the WAL priming's filler.
_DEFAULT = "default"
_PRIME_KEY = b"wal-prime"
#: Filler written at open so that synced writes start on a recycled WAL file this large.
WAL_PRIME_BYTES = 8 << 20
#: Priming needs this many times :data:`WAL_PRIME_BYTES` free on the disk.
_PRIME_FREE_FACTOR = 16

_K_FORMAT = b"format"
_K_FIRST = b"first_index"
_K_APPLIED = b"applied_index"
_K_HARD = b"hard_state"
_K_MEMBERSHIP = b"membership"

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_U64x2 = struct.Struct(">QQ")
_MAX_U64 = (1 << 64) - 1
#: Synced writes go to a worker thread when an fdatasync takes longer than this (s).
THREAD_ABOVE_FSYNC = 1e-3
_FSYNC_PROBES = 5
#: Synced writes whose median re-decides ``threaded_writes`` (when not forced).
_SYNC_WINDOW = 32
#: Threaded: inline timed writes (one per ``_SYNC_WINDOW``) whose median decides.
_THREADED_PROBES = 3
#: Records read per iterator in iter_nodes/iter_sessions: no iterator (which pins the
#: database open) survives a ``yield``.
_CHUNK = 4096
_SEEDS = {name: zlib.crc32(name.encode()) for name in _FAMILIES}


def _seal(family: str, key: bytes, payload: bytes) -> bytes:
    return _U32.pack(zlib.crc32(payload, zlib.crc32(key, _SEEDS[family]))) + payload


def _describe(family: str, key: bytes) -> str:
    if family == _LOG:
        return f"log entry {_U64.unpack(key)[0]}" if len(key) == 8 else f"log key {key!r}"
    if family == _NODES:
        try:
            return f"node record {key.decode('utf-8')}"
        except UnicodeDecodeError:
            return f"node record {key!r}"
    if family == _SESSIONS:
        return f"session record {_I64.unpack(key)[0]:#x}" if len(key) == 8 else f"{key!r}"
    return f"metadata record {key.decode('ascii', 'replace')}"


def _damaged(where: Path, what: str, why: str) -> StoreCorruptedError:
    return StoreCorruptedError(
        f"{what} is corrupted ({why}); the store in {where} is damaged: restore it from a "
        "snapshot or re-sync it from the ensemble"
    )


def _unseal(where: Path, family: str, key: bytes, value: bytes) -> bytes:
    if len(value) < 4:
        raise _damaged(where, _describe(family, key), "record shorter than its checksum")
    payload = value[4:]
    if _U32.unpack_from(value)[0] != zlib.crc32(payload, zlib.crc32(key, _SEEDS[family])):
        raise _damaged(where, _describe(family, key), "checksum mismatch")
    return payload


def _db_options() -> Options:
    opts = _family_options()
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    opts.set_max_background_jobs(2)
    opts.set_wal_recovery_mode(DBRecoveryMode.point_in_time())
    opts.set_paranoid_checks(True)
    # The metadata family is written by every batch but holds a few bytes: without a cap,
    # its memtable would pin every WAL file (slow restarts, unbounded WAL).
    opts.set_max_total_wal_size(64 << 20)
    # Reuse retired WAL files instead of creating new ones: a write into blocks already
    # allocated and sized needs no inode update, so its fdatasync is a data flush only
    # (measured here: a small synced write p50 0.12 -> 0.08 ms). Old records left in a
    # recycled file carry an older log number and are never replayed; RocksDB supports
    # this with point-in-time recovery since 9.1 (we never write with disableWAL).
    opts.set_recycle_log_file_num(2)
    opts.set_db_write_buffer_size(128 << 20)
    opts.set_keep_log_file_num(4)
    opts.set_max_log_file_size(16 << 20)
    opts.set_skip_stats_update_on_db_open(True)
    return opts


def _family_options() -> Options:
    opts = Options(raw_mode=True)
    opts.set_write_buffer_size(32 << 20)
    # Values are small; LZ4 on 4 KiB blocks costs little at flush time and shrinks the tree.
    opts.set_compression_type(DBCompressionType.lz4())
    return opts


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


# --- the directory lock ---------------------------------------------------------------


def _lock_holder(lock_path: Path) -> str:
    try:
        text = lock_path.read_text(errors="replace").split("\n", 1)[0].strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def _take_lock(data_dir: Path) -> int:
    lock_path = data_dir / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open the lock file {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise StoreLockedError(
                f"data directory {data_dir} is in use by another coord server "
                f"(pid {_lock_holder(lock_path)})"
            ) from None
        raise StoreError(f"cannot lock {lock_path}: {exc.strerror}") from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"cannot write the lock file {lock_path}: {exc.strerror}") from exc
    return fd


def _probe_fsync(fd: int) -> float:
    """The median time of a few small appends + fdatasyncs to the lock file (s): like a
    WAL append, each makes the file longer. The file is cut back to the pid afterwards."""
    keep = os.fstat(fd).st_size
    block = b"\0" * 256
    samples = []
    try:
        for i in range(_FSYNC_PROBES):
            start = time.perf_counter()
            os.pwrite(fd, block, keep + i * len(block))
            os.fdatasync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.ftruncate(fd, keep)
    return sorted(samples)[len(samples) // 2]


def _is_locked(data_dir: Path) -> int | None:
    """The pid holding ``data_dir``'s lock (0 if unknown), or None when it is free."""
    lock_path = data_dir / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        holder = _lock_holder(lock_path)
        return int(holder) if holder.isdigit() else 0
    finally:
        os.close(fd)
    return None


# --- the store ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """A validated batch: the write to hand to RocksDB and the metadata after it."""

    batch: WriteBatch
    first_index: int
    last_index: int
    applied_index: int
    hard_state: HardState
    membership: bytes | None


class RocksDBStore:
    """A :class:`~coord.server._storage.LogStore` in a RocksDB database (see module docs).

    Open it with :meth:`open`; use it from one task at a time.
    """

    def __init__(
        self,
        data_dir: Path,
        db: Rdict,
        lock_fd: int,
        *,
        threaded_writes: bool,
        fsync_seconds: float,
        adaptive: bool = False,
    ) -> None:
        self._dir = data_dir
        self._db: Rdict | None = db
        self._lock_fd: int | None = lock_fd
        #: Whether synced writes run in a worker thread now (see module docs).
        self.threaded_writes = threaded_writes
        #: Re-decide ``threaded_writes`` from the synced writes' own durations.
        self.adaptive_writes = adaptive
        self._sync_times: list[float] = []
        self._probe_countdown = _SYNC_WINDOW
        #: The fdatasync time measured at open (s); 0.0 when not measured.
        self.fsync_seconds = fsync_seconds
        self._cf = {name: db.get_column_family(name) for name in _FAMILIES}
        self._handles = {name: db.get_column_family_handle(name) for name in _FAMILIES}
        self._sync = WriteOptions()
        self._sync.sync = True
        self._nosync = WriteOptions()
        self._failure: StoreError | None = None
        self._unsynced = False  # an unsynced write since the last synced one
        self._writing = False  # a threaded write is in flight
        self._first_index = 1
        self._last_index = 0
        self._applied_index = 0
        self._hard_state = HardState()
        self._membership: bytes | None = None

    # --- opening --------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: Path | str,
        *,
        threaded_writes: bool | None = None,
        prime_wal: bool = False,
    ) -> RocksDBStore:
        """Open (creating if needed) the store in ``data_dir`` and lock the directory.

        Args:
            data_dir: the server's data directory (created with its parents if missing).
            threaded_writes: run synced writes in a worker thread; None decides by the
                disk's fsync time, measured here and then on every 32 synced writes
                (see module docs).
            prime_wal: start writing on a recycled WAL file (see *WAL recycling and
                priming* in the module docs): cheaper synced writes, ~40 ms more to open.

        Raises:
            StoreLockedError: another server (or another store in this process) holds it.
            StoreCorruptedError: the metadata is damaged or the log has lost its start.
            StoreError: the directory or database cannot be created or opened, or it was
                written by a newer coord.
        """
        data_dir = Path(data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the data directory {data_dir}: {exc.strerror}"
            ) from exc
        lock_fd = _take_lock(data_dir)
        try:
            fsync_seconds = 0.0
            adaptive = threaded_writes is None
            if threaded_writes is None:
                fsync_seconds = _probe_fsync(lock_fd)
                threaded_writes = fsync_seconds > THREAD_ABOVE_FSYNC
            db = _open_db(data_dir, AccessType.read_write())
        except OSError as exc:
            os.close(lock_fd)
            raise StoreError(f"cannot write to the data directory {data_dir}: {exc}") from exc
        except BaseException:
            os.close(lock_fd)
            raise
        store = cls(
            data_dir,
            db,
            lock_fd,
            threaded_writes=threaded_writes,
            fsync_seconds=fsync_seconds,
            adaptive=adaptive,
        )
        try:
            store._load()
            if prime_wal:
                store._prime_wal()
        except BaseException:
            store._release()
            raise
        return store

    def _prime_wal(self) -> None:
        """Move writing onto a recycled WAL file of :data:`WAL_PRIME_BYTES` (module docs)."""
        db = self._check_writable()
        try:
            free = shutil.disk_usage(self._dir).free
        except OSError:
            return
        if free < _PRIME_FREE_FACTOR * WAL_PRIME_BYTES:
            log.debug("not priming the WAL: %d bytes free in %s", free, self._dir)
            return
        filler = bytes(1 << 20)
        try:
            for _ in range(WAL_PRIME_BYTES >> 20):
                batch = WriteBatch(raw_mode=True)
                batch.put(_PRIME_KEY, filler)
                db.write(batch, self._nosync)
            for step in range(2):
                # Each flush switches to a new WAL; the first one retires the filled file,
                # which the second switch takes up again. A WAL is retired only when
                # every family holding its writes is flushed: flush them all, once.
                batch = WriteBatch(raw_mode=True)
                batch.delete(_PRIME_KEY)
                db.write(batch, self._sync)
                for name in (_DEFAULT, *(_FAMILIES if step == 0 else ())):
                    db.get_column_family(name).flush(True)
        except Exception as exc:
            raise self._fail(exc) from exc

    def _load(self) -> None:
        meta = self._cf[_META]
        fmt = self._meta_int(_K_FORMAT)
        if fmt is None:
            if any(_first_key(self._cf[name]) is not None for name in _FAMILIES):
                raise _damaged(self._dir, "metadata record format", "missing")
            self._write_plan(
                self._plan(StoreBatch(hard_state=HardState(), applied_index=0), initial=True),
                sync=True,
            )
            return
        if fmt > FORMAT_VERSION:
            raise StoreError(
                f"the store in {self._dir} has format {fmt}, written by a newer coord; "
                f"this one reads format {FORMAT_VERSION}: upgrade coord"
            )
        first = self._meta_int(_K_FIRST)
        applied = self._meta_int(_K_APPLIED)
        raw_hard = meta.get(_K_HARD)
        if first is None or applied is None or raw_hard is None:
            raise _damaged(self._dir, "the metadata", "a record is missing")
        hard = _unseal(self._dir, _META, _K_HARD, raw_hard)
        if len(hard) != _U64x2.size:
            raise _damaged(self._dir, "metadata record hard_state", "wrong length")
        term, vote = _U64x2.unpack(hard)
        log = self._cf[_LOG]
        head = _first_key(log)
        last = first - 1
        if head is not None:
            if head != _U64.pack(first):
                raise _damaged(
                    self._dir,
                    "the log",
                    f"it starts at {_describe(_LOG, head)} but should start at index {first}",
                )
            tail = _last_key(log)
            assert tail is not None
            last = _U64.unpack(tail)[0]
        self._first_index = first
        self._last_index = last
        self._applied_index = applied
        self._hard_state = HardState(term, vote)
        raw_membership = meta.get(_K_MEMBERSHIP)
        self._membership = (
            None
            if raw_membership is None
            else _unseal(self._dir, _META, _K_MEMBERSHIP, raw_membership)
        )

    def _meta_int(self, key: bytes) -> int | None:
        raw = self._cf[_META].get(key)
        if raw is None:
            return None
        payload = _unseal(self._dir, _META, key, raw)
        if len(payload) != 8:
            raise _damaged(self._dir, _describe(_META, key), "wrong length")
        return int(_U64.unpack(payload)[0])

    # --- properties -----------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The data directory this store locks."""
        return self._dir

    @property
    def first_index(self) -> int:
        """Index of the oldest entry kept; ``last_index + 1`` when the log is empty."""
        return self._first_index

    @property
    def last_index(self) -> int:
        """Index of the newest entry (of the last compacted one when the log is empty)."""
        return self._last_index

    @property
    def applied_index(self) -> int:
        """The applied index last written (0 for a new store)."""
        return self._applied_index

    @property
    def hard_state(self) -> HardState:
        """The hard state last written."""
        return self._hard_state

    @property
    def membership(self) -> bytes | None:
        """The membership last written (``None`` until one is)."""
        return self._membership

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._db is None

    # --- writing --------------------------------------------------------------------

    async def write(self, batch: StoreBatch, *, sync: bool = True) -> None:
        """Apply ``batch`` atomically; with ``sync``, return once it is durable.

        A synced write also makes every earlier unsynced one durable; so does an empty
        batch with ``sync`` (a barrier), which costs one fsync only when there is
        something unsynced.

        Raises:
            ValueError: the batch is inconsistent with the store (entries not contiguous,
                truncation of compacted or applied entries, compaction past the applied
                index, the applied index or term going backwards); nothing is written.
            StoreError: the store is closed, an earlier write failed, or this one failed
                (then every later write is refused: stop the server).
            RuntimeError: another task's write is in flight (use the store from one task).
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        if self._writing:
            raise RuntimeError("RocksDBStore.write called while another write is in flight")
        if not batch:
            # Nothing to write; with sync, a barrier: earlier unsynced writes become durable.
            if sync and self._unsynced:
                self._sync_wal()
            await anyio.lowlevel.cancel_shielded_checkpoint()
            return
        plan = self._plan(batch)
        if sync and self.threaded_writes and not self._probe_due():
            # The worker updates the metadata itself: once RocksDB has the batch, memory
            # follows it even if this task is cancelled meanwhile (run_sync waits).
            self._writing = True
            try:
                await anyio.to_thread.run_sync(self._write_plan, plan, sync)
            finally:
                self._writing = False
        else:
            self._write_plan(plan, sync, timed=sync and self.adaptive_writes)
            await anyio.lowlevel.cancel_shielded_checkpoint()

    def write_inline(self, batch: StoreBatch) -> bool:
        """A synced :meth:`write` done now, on the calling thread, when this store would
        write it inline anyway (see *Threading* in the module docs); returns False, having
        done nothing, when it would go to a worker thread (then call :meth:`write`).

        Unlike :meth:`write` it never yields to the event loop: a caller that answers
        clients once the batch is durable (the standalone commit loop) replies at once,
        instead of after a turn of the loop -- a turn costs a poll system call, and on a
        busy machine a chance to be preempted, between the fsync and the reply.

        Raises:
            ValueError, StoreError, RuntimeError: as :meth:`write`.
        """
        if self._writing:
            raise RuntimeError("RocksDBStore.write called while another write is in flight")
        if not batch:
            if self._unsynced:
                self._sync_wal()
            return True
        if self.threaded_writes:
            # Threaded: only the timed probe (see _probe_due; write() counts the others).
            if not self.adaptive_writes or self._probe_countdown > 1:
                return False
            self._probe_countdown = _SYNC_WINDOW
        self._write_plan(self._plan(batch), True, timed=self.adaptive_writes)
        return True

    def _check_writable(self) -> Rdict:
        if self._failure is not None:
            raise StoreError(
                f"the store in {self._dir} refuses writes after an earlier failure "
                f"({self._failure}); restart the server"
            )
        if self._db is None:
            raise StoreError(f"the store in {self._dir} is closed")
        return self._db

    def _plan(self, batch: StoreBatch, *, initial: bool = False) -> _Plan:
        """Validate ``batch`` and build its WriteBatch; raises ValueError, writes nothing."""
        self._check_writable()
        plan = plan_batch(
            batch,
            first_index=self._first_index,
            last_index=self._last_index,
            applied_index=self._applied_index,
            hard_state=self._hard_state,
        )
        wb = WriteBatch(raw_mode=True)
        log = self._handles[_LOG]
        meta = self._handles[_META]
        if plan.truncate is not None:
            wb.delete_range(_U64.pack(plan.truncate[0]), _key_after(plan.truncate[1] - 1), log)
        if plan.reset:
            assert batch.reset_to is not None
            # Keys: UTF-8 paths (no byte 0xff) and 8-byte session ids: below these ends.
            wb.delete_range(b"", b"\xff", self._handles[_NODES])
            wb.delete_range(b"", b"\xff" * 9, self._handles[_SESSIONS])
            index, data = batch.reset_to
            key = _U64.pack(index)
            wb.put(key, _seal(_LOG, key, data), log)
        # _seal inlined in the two loops below: they run once per entry and per record.
        put = wb.put
        crc32 = zlib.crc32
        pack_crc = _U32.pack
        pack_index = _U64.pack
        seed = _SEEDS[_LOG]
        for index, data in batch.entries:
            key = pack_index(index)
            put(key, pack_crc(crc32(data, crc32(key, seed))) + data, log)
        if batch.hard_state is not None:
            hard = _U64x2.pack(plan.hard_state.term, plan.hard_state.vote)
            wb.put(_K_HARD, _seal(_META, _K_HARD, hard), meta)
        nodes = self._handles[_NODES]
        seed = _SEEDS[_NODES]
        for path, record in batch.nodes.items():
            key = path.encode("utf-8")
            if record is None:
                wb.delete(key, nodes)
            else:
                put(key, pack_crc(crc32(record, crc32(key, seed))) + record, nodes)
        sessions = self._handles[_SESSIONS]
        for session_id, record in batch.sessions.items():
            key = _I64.pack(session_id)
            if record is None:
                wb.delete(key, sessions)
            else:
                wb.put(key, _seal(_SESSIONS, key, record), sessions)
        if batch.membership is not None:
            wb.put(_K_MEMBERSHIP, _seal(_META, _K_MEMBERSHIP, batch.membership), meta)
        if batch.applied_index is not None:
            applied = _U64.pack(plan.applied_index)
            wb.put(_K_APPLIED, _seal(_META, _K_APPLIED, applied), meta)
        if plan.compact is not None:
            wb.delete_range(_U64.pack(plan.compact[0]), _key_after(plan.compact[1] - 1), log)
        if initial or plan.reset or plan.first_index != self._first_index:
            first = _U64.pack(plan.first_index)
            wb.put(_K_FIRST, _seal(_META, _K_FIRST, first), meta)
        if initial:
            version = _U64.pack(FORMAT_VERSION)
            wb.put(_K_FORMAT, _seal(_META, _K_FORMAT, version), meta)
        return _Plan(
            wb,
            plan.first_index,
            plan.last_index,
            plan.applied_index,
            plan.hard_state,
            self._membership if batch.membership is None else batch.membership,
        )

    def _write_plan(self, plan: _Plan, sync: bool, *, timed: bool = False) -> None:
        db = self._check_writable()
        try:
            if timed:
                started = time.perf_counter()
                db.write(plan.batch, self._sync)
                self._timed_sync(time.perf_counter() - started)
            else:
                db.write(plan.batch, self._sync if sync else self._nosync)
        except Exception as exc:
            raise self._fail(exc) from exc
        self._unsynced = not sync
        self._first_index = plan.first_index
        self._last_index = plan.last_index
        self._applied_index = plan.applied_index
        self._hard_state = plan.hard_state
        self._membership = plan.membership

    def _probe_due(self) -> bool:
        """Threaded and adaptive: whether this synced write runs inline, timed."""
        if not self.adaptive_writes:
            return False
        self._probe_countdown -= 1
        if self._probe_countdown > 0:
            return False
        self._probe_countdown = _SYNC_WINDOW
        return True

    def _timed_sync(self, seconds: float) -> None:
        """Re-decide ``threaded_writes`` from the median of the last timed synced writes."""
        times = self._sync_times
        times.append(seconds)
        if len(times) >= (_THREADED_PROBES if self.threaded_writes else _SYNC_WINDOW):
            times.sort()
            self.threaded_writes = times[len(times) // 2] > THREAD_ABOVE_FSYNC
            times.clear()

    def _sync_wal(self) -> None:
        db = self._check_writable()
        try:
            db.flush_wal(True)
        except Exception as exc:
            raise self._fail(exc) from exc
        self._unsynced = False

    def _fail(self, exc: Exception) -> StoreError:
        self._failure = StoreError(
            f"writing to the store in {self._dir} failed: {type(exc).__name__}: {exc}; "
            "the batch may be lost. Stop the server, check the disk (is it full? I/O "
            "errors in the kernel log?), then restart it to recover from the disk"
        )
        return self._failure

    # --- reading --------------------------------------------------------------------

    def _family(self, name: str) -> Rdict:
        if self._db is None:
            raise StoreError(f"the store in {self._dir} is closed")
        return self._cf[name]

    def read_entries(self, start: int, stop: int) -> list[bytes]:
        """Encoded entries with ``start <= index < stop``, in order.

        Raises:
            ValueError: the range is not within ``[first_index, last_index + 1]``.
            StoreCorruptedError: an entry failed its checksum or is missing.
            StoreError: the store is closed.
        """
        log = self._family(_LOG)
        if not self._first_index <= start <= stop <= self._last_index + 1:
            raise ValueError(
                f"entries [{start}, {stop}) are not within the log "
                f"[{self._first_index}, {self._last_index + 1})"
            )
        out: list[bytes] = []
        if start == stop:
            return out
        expected = start
        for key, value in _scan(log, _U64.pack(start), stop=_U64.pack(stop), limit=stop - start):
            if key != _U64.pack(expected):
                break
            out.append(_unseal(self._dir, _LOG, key, value))
            expected += 1
        if expected != stop:
            raise _damaged(self._dir, f"log entry {expected}", "missing")
        return out

    def _iter_family(self, name: str) -> Iterator[tuple[bytes, bytes]]:
        """``(key, payload)`` of a family in key order, checked; holds no iterator across
        a ``yield`` (a live iterator would keep the database open after close)."""
        after: bytes | None = None
        while True:
            chunk = _scan(self._family(name), after, after=True, limit=_CHUNK)
            for key, value in chunk:
                yield key, _unseal(self._dir, name, key, value)
            if len(chunk) < _CHUNK:
                return
            after = chunk[-1][0]

    def iter_nodes(self) -> Iterator[tuple[str, bytes]]:
        """Every znode record, parents before children (sorted by path).

        Raises:
            StoreCorruptedError: a record failed its checksum.
            StoreError: the store is closed (also when closed during the iteration).
        """
        for key, payload in self._iter_family(_NODES):
            try:
                path = key.decode("utf-8")
            except UnicodeDecodeError:
                raise _damaged(self._dir, _describe(_NODES, key), "key not UTF-8") from None
            yield path, payload

    def iter_sessions(self) -> Iterator[tuple[int, bytes]]:
        """Every session record (in the order of the ids' two's complement bytes).

        Raises:
            StoreCorruptedError: a record failed its checksum.
            StoreError: the store is closed (also when closed during the iteration).
        """
        for key, payload in self._iter_family(_SESSIONS):
            if len(key) != 8:
                raise _damaged(self._dir, _describe(_SESSIONS, key), "key not 8 bytes")
            yield _I64.unpack(key)[0], payload

    def verify(self, progress: Callable[[int], None] | None = None) -> dict[str, int]:
        """Read every record and check every checksum, and that the log has no hole.

        Args:
            progress: called now and then with the number of bytes checked so far.

        Returns:
            Counts: ``entries``, ``nodes``, ``sessions``, ``meta`` and ``bytes`` checked.

        Raises:
            StoreCorruptedError: the first damaged or missing record found.
            StoreError: the store is closed.
        """
        return _verify(self._dir, self._family, progress, self._first_index, self._last_index)

    # --- copying and closing --------------------------------------------------------

    async def copy_to(self, path: Path, progress: Callable[[int], None] | None = None) -> None:
        """Write a consistent point-in-time copy into the new directory ``path``.

        A RocksDB checkpoint: hard links to the immutable table files (copies when
        ``path`` is on another file system) plus a copy of the live metadata and WAL;
        the copy's WAL is then replayed into its tables and dropped (:func:`_shed_wal`).
        ``path`` becomes a data directory any server can open.

        Args:
            path: a directory that does not exist yet (its parent is created if needed).
            progress: called with the total bytes of the copy so far, file by file.

        Raises:
            StoreError: ``path`` exists, the store is closed, or the copy failed.
        """
        db = self._db
        if db is None:
            raise StoreError(f"the store in {self._dir} is closed")
        path = Path(path)
        if path.exists():
            raise StoreError(f"cannot copy the store to {path}: it already exists")

        def checkpoint() -> None:
            path.mkdir(parents=True)
            Checkpoint(db).create_checkpoint(str(path / DB_DIR))
            _shed_wal(path)

        try:
            await anyio.to_thread.run_sync(checkpoint)
        except OSError as exc:
            raise StoreError(f"cannot copy the store to {path}: {exc}") from exc
        except Exception as exc:
            raise StoreError(
                f"cannot copy the store to {path}: {type(exc).__name__}: {exc}"
            ) from exc
        total = 0
        for entry in sorted((path / DB_DIR).iterdir()):
            total += entry.stat().st_size
            if progress is not None:
                progress(total)

    async def close(self) -> None:
        """Flush and close the database and release the directory lock. Idempotent."""
        self._release()
        await anyio.lowlevel.checkpoint()

    def _release(self) -> None:
        db, self._db = self._db, None
        # Every view, handle and iterator keeps the database open: drop them all.
        families, self._cf = self._cf, {}
        self._handles = {}
        try:
            for cf in families.values():
                with contextlib.suppress(Exception):
                    cf.close()
            del families
            if db is not None:
                with contextlib.suppress(Exception):
                    db.close()
                del db
        finally:
            fd, self._lock_fd = self._lock_fd, None
            if fd is not None:
                os.close(fd)

    def __repr__(self) -> str:
        state = "closed" if self._db is None else f"log [{self._first_index}, {self._last_index}]"
        return f"<RocksDBStore {self._dir} {state}, applied {self._applied_index}>"


def _key_after(index: int) -> bytes:
    """The exclusive upper bound of a range deletion ending with ``index``."""
    return _U64.pack(index + 1) if index < _MAX_U64 else b"\xff" * 9


def _scan(
    cf: Rdict,
    start: bytes | None,
    *,
    after: bool = False,
    stop: bytes | None = None,
    limit: int,
) -> list[tuple[bytes, bytes]]:
    """Up to ``limit`` raw ``(key, value)`` pairs of ``cf`` in key order, from ``start``
    (the first key when None; exclusive with ``after``) to ``stop`` (exclusive).

    The iterator never leaves this function: a live one (even in a traceback) would keep
    the database open after :meth:`RocksDBStore.close`.
    """
    opts = ReadOptions()
    if stop is not None:
        opts.set_iterate_upper_bound(stop)
    it = cf.iter(opts)
    try:
        if start is None:
            it.seek_to_first()
        else:
            it.seek(start)
            if after and it.valid() and it.key() == start:
                it.next()
        out: list[tuple[bytes, bytes]] = []
        while len(out) < limit and it.valid():
            out.append((it.key(), it.value()))
            it.next()
        return out
    finally:
        del it


def _first_key(cf: Rdict) -> bytes | None:
    it = cf.iter()
    try:
        it.seek_to_first()
        return it.key() if it.valid() else None
    finally:
        del it


def _last_key(cf: Rdict) -> bytes | None:
    it = cf.iter()
    try:
        it.seek_to_last()
        return it.key() if it.valid() else None
    finally:
        del it


def _count(cf: Rdict) -> int:
    it = cf.iter()
    try:
        it.seek_to_first()
        n = 0
        while it.valid():
            n += 1
            it.next()
        return n
    finally:
        del it


def _shed_wal(data_dir: Path) -> None:
    """Replay the WAL of the copy in ``data_dir`` into its tables and delete it.

    A checkpoint copies the live WAL file whole, and a recycled WAL file (see *WAL
    recycling and priming* in the module docs) is as long as it ever was -- megabytes of
    old records and filler after the few that count. Opened once with recycling off,
    RocksDB recovers those records, flushes them and deletes the file, so that a
    snapshot or a follower's catch-up carries the tree, not the log's slack.
    """
    options = _db_options()
    options.set_recycle_log_file_num(0)
    _open_db(data_dir, AccessType.read_write(), options).close()


def _open_db(data_dir: Path, access: AccessType, options: Options | None = None) -> Rdict:
    db_path = data_dir / DB_DIR
    families = {name: _family_options() for name in _FAMILIES}
    try:
        if db_path.exists():
            for name in Rdict.list_cf(str(db_path), Options(raw_mode=True)):
                if name != "default":
                    families.setdefault(name, _family_options())
        return Rdict(
            str(db_path),
            _db_options() if options is None else options,
            column_families=families,
            access_type=access,
        )
    except Exception as exc:
        message = str(exc)
        if "Corruption" in message:
            raise StoreCorruptedError(
                f"the RocksDB database in {db_path} is corrupted ({message}); restore the "
                "data directory from a snapshot or re-sync it from the ensemble"
            ) from exc
        if "lock" in message.lower():
            raise StoreLockedError(
                f"the RocksDB database in {db_path} is still open in this process ({message})"
            ) from exc
        raise StoreError(f"cannot open the RocksDB database in {db_path}: {message}") from exc


def _verify(
    where: Path,
    family: Callable[[str], Rdict],
    progress: Callable[[int], None] | None,
    first: int,
    last: int,
) -> dict[str, int]:
    counts = {"entries": 0, "nodes": 0, "sessions": 0, "meta": 0, "bytes": 0}
    names = {_LOG: "entries", _NODES: "nodes", _SESSIONS: "sessions", _META: "meta"}
    checked = 0
    reported = 0
    for name in _FAMILIES:
        expected = first
        after: bytes | None = None
        while True:
            chunk = _scan(family(name), after, after=True, limit=_CHUNK)
            for key, value in chunk:
                _unseal(where, name, key, value)
                if name == _LOG:
                    if len(key) != 8:
                        raise _damaged(where, _describe(_LOG, key), "key not 8 bytes")
                    if _U64.unpack(key)[0] != expected:
                        raise _damaged(where, f"log entry {expected}", "missing")
                    expected += 1
                elif name == _NODES:
                    try:
                        key.decode("utf-8")
                    except UnicodeDecodeError:
                        raise _damaged(where, _describe(_NODES, key), "key not UTF-8") from None
                elif name == _SESSIONS and len(key) != 8:
                    raise _damaged(where, _describe(_SESSIONS, key), "key not 8 bytes")
                counts[names[name]] += 1
                checked += len(key) + len(value)
            if progress is not None and checked - reported >= 1 << 20:
                reported = checked
                progress(checked)
            if len(chunk) < _CHUNK:
                break
            after = chunk[-1][0]
        if name == _LOG and expected != last + 1:
            raise _damaged(where, f"log entry {expected}", "missing")
    counts["bytes"] = checked
    if progress is not None:
        progress(checked)
    return counts


def inspect(
    data_dir: Path | str,
    *,
    verify: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Describe the store in ``data_dir`` without locking it (safe while a server runs).

    Opens the database read-only. The store knows indexes, not zxids: an index is the low
    32 bits of a zxid whose high 32 bits are the entry's term.

    Args:
        data_dir: a server's data directory.
        verify: also check every record's checksum (adds ``verified`` counts).
        progress: with ``verify``, called now and then with the bytes checked so far.

    Returns:
        ``data_dir``, ``format``, ``first_index``, ``last_index``, ``entries``,
        ``applied_index``, ``term``, ``vote``, ``nodes``, ``sessions``, ``disk_bytes``,
        ``locked_by`` (pid of the server holding the directory, or None).

    Raises:
        StoreError: there is no store in ``data_dir``, or it cannot be opened.
        StoreCorruptedError: the metadata is damaged (or, with ``verify``, any record).
    """
    data_dir = Path(data_dir)
    if not (data_dir / DB_DIR / "CURRENT").exists():
        raise StoreError(f"there is no rocksdb store in {data_dir}")
    db = _open_db(data_dir, AccessType.read_only(False))
    cfs: dict[str, Rdict] = {}
    try:
        cfs.update((name, db.get_column_family(name)) for name in _FAMILIES)

        def meta(key: bytes) -> bytes:
            raw = cfs[_META].get(key)
            if raw is None:
                raise _damaged(data_dir, _describe(_META, key), "missing")
            return _unseal(data_dir, _META, key, raw)

        first = _U64.unpack(meta(_K_FIRST))[0]
        head, tail = _first_key(cfs[_LOG]), _last_key(cfs[_LOG])
        last = _U64.unpack(tail)[0] if tail is not None else first - 1
        term, vote = _U64x2.unpack(meta(_K_HARD))
        info: dict[str, Any] = {
            "data_dir": str(data_dir),
            "format": _U64.unpack(meta(_K_FORMAT))[0],
            "first_index": first,
            "last_index": last,
            "entries": 0 if head is None else last - first + 1,
            "applied_index": _U64.unpack(meta(_K_APPLIED))[0],
            "term": term,
            "vote": vote,
            "nodes": _count(cfs[_NODES]),
            "sessions": _count(cfs[_SESSIONS]),
            "disk_bytes": _dir_size(data_dir / DB_DIR),
            "locked_by": _is_locked(data_dir),
        }
        if verify:
            info["verified"] = _verify(data_dir, cfs.__getitem__, progress, first, last)
    finally:
        for cf in cfs.values():
            cf.close()
        cfs.clear()
        db.close()
        del db
    return info


class RocksDBBackend:
    """The ``rocksdb`` storage backend: a :class:`RocksDBStore` in ``config.data_dir``."""

    name = "rocksdb"

    def open(self, config: ServerConfig) -> RocksDBStore:
        """Open (creating if needed) the store in ``config.data_dir``, locking it.

        Raises:
            StoreLockedError: another server holds the directory.
            StoreCorruptedError: the store's metadata is damaged.
            StoreError: the store cannot be opened (the message says why).
        """
        return RocksDBStore.open(Path(config.data_dir), prime_wal=True)


@hookimpl
def coord_storage_backends() -> list[StorageBackend]:
    """The ``rocksdb`` backend."""
    return [RocksDBBackend()]
