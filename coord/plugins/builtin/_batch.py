"""The rules every built-in store checks a :class:`StoreBatch` against, in one place.

A batch is checked against the store's metadata *before* anything is written, so a
rejected batch changes nothing. The rules follow Raft's invariants (etcd-io/raft
``storage.go``): the log stays contiguous, entries that were applied (so committed) are
never truncated, only applied entries are compacted -- and the entry at the applied index
itself is kept, so the log still knows the term at that index -- and neither the applied
index nor the term ever goes back.
"""

from __future__ import annotations

from dataclasses import dataclass

from coord.server._storage import HardState, StoreBatch

__all__ = ["BatchPlan", "plan_batch"]

_MAX_U64 = (1 << 64) - 1
_MIN_I64 = -(1 << 63)
_MAX_I64 = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """What a valid batch does to the log, and the metadata after it."""

    #: Log indexes ``[start, stop)`` the truncation deletes, or None.
    truncate: tuple[int, int] | None
    #: Log indexes ``[start, stop)`` the compaction deletes, or None.
    compact: tuple[int, int] | None
    #: Every node and session record is dropped before the batch's own are written.
    reset: bool
    first_index: int
    last_index: int
    applied_index: int
    hard_state: HardState


def _index(value: object, what: str) -> int:
    if type(value) is not int or not 1 <= value <= _MAX_U64:
        raise ValueError(f"{what} must be an int in [1, 2**64), not {value!r}")
    return value


def _uint(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_U64:
        raise ValueError(f"{what} must be an int in [0, 2**64), not {value!r}")
    return value


def plan_batch(
    batch: StoreBatch,
    *,
    first_index: int,
    last_index: int,
    applied_index: int,
    hard_state: HardState,
) -> BatchPlan:
    """Check ``batch`` against a store's metadata.

    Returns:
        The plan; the caller writes it atomically.

    Raises:
        ValueError: the batch breaks a rule (the message says which); nothing may be
            written.
    """
    first, last, applied, hard = first_index, last_index, applied_index, hard_state
    truncate: tuple[int, int] | None = None
    compact: tuple[int, int] | None = None
    reset = False

    if batch.reset_to is not None:
        item = batch.reset_to
        if not isinstance(item, tuple) or len(item) != 2 or type(item[1]) is not bytes:
            raise ValueError(f"reset_to must be an (index, bytes) pair, not {item!r}")
        at = _index(item[0], "reset_to index")
        if batch.truncate_from is not None:
            raise ValueError("reset_to and truncate_from cannot be combined")
        if batch.applied_index != at:
            raise ValueError(
                f"reset_to index {at} needs applied_index {at} in the same batch, "
                f"not {batch.applied_index}"
            )
        if at < applied:
            raise ValueError(f"reset_to index {at} is behind the applied index {applied}")
        if first <= last:
            truncate = (first, last + 1)
        reset = True
        first, last = at, at

    if batch.truncate_from is not None:
        cut = _index(batch.truncate_from, "truncate_from")
        if not first <= cut <= last + 1:
            raise ValueError(f"truncate_from {cut} is outside the log [{first}, {last + 1}]")
        if cut <= applied:
            raise ValueError(
                f"truncate_from {cut} would drop applied entries (applied index {applied})"
            )
        if cut <= last:
            truncate = (cut, last + 1)
        last = cut - 1

    expected = last + 1
    for item in batch.entries:
        if not isinstance(item, tuple) or len(item) != 2:
            raise ValueError(f"entries must be (index, bytes) pairs, not {item!r}")
        index, data = item
        if type(index) is not int or index != expected:
            raise ValueError(
                f"entry index {index!r} does not continue the log: expected {expected}"
            )
        if type(data) is not bytes:
            raise ValueError(f"entry {index} is {type(data).__name__}, not bytes")
        expected += 1
    if expected > _MAX_U64:
        raise ValueError("log index overflow")
    last = expected - 1

    if batch.hard_state is not None:
        term = _uint(batch.hard_state.term, "hard_state.term")
        vote = _uint(batch.hard_state.vote, "hard_state.vote")
        if term < hard.term:
            raise ValueError(f"hard_state term {term} is behind the stored term {hard.term}")
        hard = HardState(term, vote)

    for path, record in batch.nodes.items():
        if type(path) is not str or not path:
            raise ValueError(f"node path {path!r} is not a non-empty str")
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"node path {path!r} is not encodable as UTF-8") from None
        if record is not None and type(record) is not bytes:
            raise ValueError(f"node record {path} is {type(record).__name__}, not bytes")

    for session_id, record in batch.sessions.items():
        if type(session_id) is not int or not _MIN_I64 <= session_id <= _MAX_I64:
            raise ValueError(f"session id {session_id!r} is not a signed 64-bit int")
        if record is not None and type(record) is not bytes:
            raise ValueError(
                f"session record {session_id:#x} is {type(record).__name__}, not bytes"
            )

    if batch.membership is not None and type(batch.membership) is not bytes:
        raise ValueError(f"membership is {type(batch.membership).__name__}, not bytes")

    if batch.applied_index is not None:
        new_applied = _uint(batch.applied_index, "applied_index")
        if new_applied < applied:
            raise ValueError(
                f"applied_index {new_applied} is behind the stored applied index {applied}"
            )
        applied = new_applied

    if batch.compact_before is not None:
        before = _index(batch.compact_before, "compact_before")
        if before > first:
            if before > applied:
                raise ValueError(
                    f"compact_before {before} is past the applied index {applied}: only "
                    "applied entries may be compacted, and the entry at the applied index "
                    "is kept"
                )
            if first <= last:
                compact = (first, min(before, last + 1))
            first = before
            last = max(last, first - 1)

    return BatchPlan(truncate, compact, reset, first, last, applied, hard)
