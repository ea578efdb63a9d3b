"""A linearizability checker for histories recorded against a ZooKeeper-family service.

Theory of operation
-------------------
A *history* is a set of operations, each with the (monotonic) time its call was made
(*invoke*) and the time its answer arrived (*complete*). The history is linearizable
(Herlihy & Wing 1990) with respect to a sequential *model* if every operation can be given
a point between its invoke and complete time such that executing the operations one by one
in that order, from the model's initial state, yields exactly the outputs observed.

An operation whose outcome is unknown (a timeout or a connection loss: the request may or
may not have been applied) has no complete time. It may take effect at any point after its
invocation, or never; the checker treats it as completing at +infinity, and the models
accept any output for it (``output is None``). "Never" is the same as "after every other
operation", which an infinite complete time always allows.

The search is Wing & Gong's (1993) backtracking algorithm with Lowe's (2017, "Testing for
linearizability") memoization, in the form porcupine uses:

* the call and return events are put in one list ordered by time (a call before a return
  at equal times, so touching intervals count as concurrent);
* walking the list from its head, a call whose operation the model accepts from the
  current state is *lifted* (its call and return removed from the list, the operation
  pushed on a stack with the state before it) and the walk restarts at the head;
* reaching a return event means its operation was not linearized before it had to be:
  backtrack (pop the last lifted operation, put it back and try the next call after it);
  an empty stack there means the history is not linearizable;
* a (set of linearized operations, model state) pair already explored leads nowhere new,
  so a lift into such a pair is skipped. This cache is what makes the search practical:
  it bounds the work by the number of distinct reachable configurations rather than by
  the number of interleavings.

Two refinements keep the search small on the histories a fault test produces:

* an unknown operation is tried as taking effect and, when that leads nowhere, as never
  having happened; both count as decided in the cache key, and its return event sits at
  ``invoke + horizon`` (by when it has happened or never will), so once the unknowns of a
  period are decided, configurations that differ only in how they were decided collapse;
* a known operation the model accepts without changing the state (a read, a CAS answered
  BadVersion) is linearized at once, with no alternative to backtrack into: any
  linearization placing it later can place it here instead. Without this, proving a
  history *not* linearizable costs 2^k for k concurrent reads.

Models are *P-compositional* (Herlihy & Wing's locality): a history of independent
objects is linearizable iff each object's sub-history is. :func:`check` partitions the
operations by :attr:`Operation.key` and checks each part alone, which keeps the sets small.

When a part is not linearizable, :func:`check` finds the *shortest failing prefix*: the
earliest time ``t`` such that the history observed up to ``t`` (operations invoked before
``t``; those answered after ``t`` count as pending, i.e. unknown) is already not
linearizable. Prefix-linearizability is monotone in ``t``, so a bisection over the
answer times finds it. The explanation names the operation whose answer at ``t`` broke it,
the operations concurrent with it, and the longest partial linearization the search built.

Models here follow ZooKeeper: :class:`VersionedRegister` is a znode's data with its
version (``getData`` / ``setData`` / ``setData`` with an expected version), and
:class:`SequenceCounter` is a parent's sequential-create counter.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, NamedTuple, Protocol, TypeVar, cast

__all__ = [
    "BAD_VERSION",
    "Cas",
    "CheckResult",
    "Create",
    "History",
    "KeyResult",
    "Model",
    "Operation",
    "PendingOperation",
    "Read",
    "SequenceCounter",
    "Versioned",
    "VersionedRegister",
    "Write",
    "check",
    "check_linearizability",
    "check_operations",
]

S = TypeVar("S", bound=Hashable)


# --- operations and histories ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a history.

    Attributes:
        process: Who issued it (a client or thread id); used only in explanations.
        key: The object it acts on (e.g. a znode path); the history is checked per key.
        input: What was asked (e.g. :class:`Write`), as the model understands it.
        output: What was answered; ``None`` when the outcome is unknown (the operation may
            have taken effect at any time after ``invoke``, or never).
        invoke: Monotonic time the call was made.
        complete: Monotonic time the answer arrived; ``None`` when no answer arrived. An
            operation with an unknown output but a ``complete`` time is one known to have
            been decided (applied or not) by then.
    """

    process: Hashable
    key: Hashable
    input: Any
    output: Any
    invoke: float
    complete: float | None

    def __post_init__(self) -> None:
        if self.complete is not None and self.complete < self.invoke:
            raise ValueError(
                f"operation completes ({self.complete}) before it is invoked ({self.invoke})"
            )

    @property
    def unknown(self) -> bool:
        """Whether the outcome is unknown (no answer was received)."""
        return self.output is None

    def describe(self) -> str:
        """A one-line human-readable form: process, input, output and interval."""
        output = "?" if self.unknown else repr(self.output)
        end = "..." if self.complete is None else f"{self.complete:.6f}"
        return f"[{self.invoke:.6f}, {end}] {self.process}: {self.input!r} -> {output}"


class PendingOperation:
    """An operation invoked through :class:`History` and not yet completed.

    Finish it exactly once with :meth:`ok` (an answer was received) or :meth:`unknown`
    (timeout, connection loss), or drop it with :meth:`fail` (a definite failure that
    had no effect, e.g. the request was never sent). Unfinished operations are recorded
    as unknown by :meth:`History.operations`.
    """

    __slots__ = ("_done", "_history", "_index", "input", "invoke", "key", "process")

    def __init__(
        self, history: History, index: int, process: Hashable, key: Hashable, input: Any
    ) -> None:
        self._history = history
        self._index = index
        self._done = False
        self.process = process
        self.key = key
        self.input = input
        self.invoke = time.monotonic()

    def ok(self, output: Any) -> Operation:
        """Record the answer, completing now.

        Args:
            output: The observed output (must not be ``None``: that means unknown).

        Returns:
            The recorded operation.

        Raises:
            ValueError: ``output`` is ``None``.
            RuntimeError: The operation was already finished.
        """
        if output is None:
            raise ValueError("a completed operation needs an output; use unknown()")
        return self._finish(output, time.monotonic())

    def unknown(self) -> Operation:
        """Record that the outcome is unknown (it may or may not have taken effect).

        Raises:
            RuntimeError: The operation was already finished.
        """
        return self._finish(None, None)

    def fail(self) -> None:
        """Drop the operation: it definitely had no effect and nothing was observed.

        Raises:
            RuntimeError: The operation was already finished.
        """
        self._claim()
        self._history._drop(self._index)

    def _claim(self) -> None:
        if self._done:
            raise RuntimeError("operation already finished")
        self._done = True

    def _finish(self, output: Any, complete: float | None) -> Operation:
        self._claim()
        op = Operation(self.process, self.key, self.input, output, self.invoke, complete)
        self._history._set(self._index, op)
        return op


class History:
    """A thread-safe recorder of operations with monotonic invoke/complete times::

    history = History()
    op = history.invoke("client-1", "/r/0", Write(b"x"))
    try:
        stat = zk.set("/r/0", b"x")
    except ConnectionLoss:
        op.unknown()
    else:
        op.ok(stat.version)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: list[Operation | PendingOperation | None] = []

    def invoke(self, process: Hashable, key: Hashable, input: Any) -> PendingOperation:
        """Start an operation now.

        Args:
            process: Who issues it.
            key: The object it acts on.
            input: The model's input.

        Returns:
            The pending operation, to be finished with ``ok``/``unknown``/``fail``.
        """
        with self._lock:
            index = len(self._slots)
            pending = PendingOperation(self, index, process, key, input)
            self._slots.append(pending)
            return pending

    def operations(self) -> list[Operation]:
        """Every recorded operation in invocation order; unfinished ones are unknown."""
        with self._lock:
            out = []
            for slot in self._slots:
                if isinstance(slot, PendingOperation):
                    out.append(
                        Operation(slot.process, slot.key, slot.input, None, slot.invoke, None)
                    )
                elif slot is not None:
                    out.append(slot)
            return out

    def __len__(self) -> int:
        with self._lock:
            return sum(slot is not None for slot in self._slots)

    def _set(self, index: int, op: Operation) -> None:
        with self._lock:
            self._slots[index] = op

    def _drop(self, index: int) -> None:
        with self._lock:
            self._slots[index] = None


# --- models ----------------------------------------------------------------------------------


class Model(Protocol[S]):
    """A sequential specification: an initial state and a step function.

    States must be hashable (they are memoized together with the set of linearized
    operations) and compared by value.
    """

    def init(self) -> S:
        """The state before any operation."""
        ...

    def step(self, state: S, input: Any, output: Any) -> tuple[bool, S]:
        """Apply one operation.

        Args:
            state: The state before the operation.
            input: The operation's input.
            output: The observed output, or ``None`` if the outcome is unknown (then the
                model accepts whatever the operation would have returned, and applies it).

        Returns:
            Whether the operation, done in ``state``, could have returned ``output``; and
            the state after it (ignored when not accepted).
        """
        ...

    def relevant(self, op: Operation) -> bool:
        """Whether ``op`` can constrain the check (e.g. unknown reads cannot: drop them)."""
        ...


class Versioned(NamedTuple):
    """A znode's data and version, as ``getData`` returns them."""

    value: Any
    version: int


@dataclass(frozen=True, slots=True)
class Read:
    """``getData``; output: a :class:`Versioned`."""

    def __repr__(self) -> str:
        return "read()"


@dataclass(frozen=True, slots=True)
class Write:
    """``setData`` with version -1; output: the new version (an ``int``)."""

    value: Any

    def __repr__(self) -> str:
        return f"write({self.value!r})"


@dataclass(frozen=True, slots=True)
class Cas:
    """``setData`` with an expected version; output: the new version or :data:`BAD_VERSION`."""

    expected_version: int
    value: Any

    def __repr__(self) -> str:
        return f"cas(v{self.expected_version}, {self.value!r})"


@dataclass(frozen=True, slots=True)
class Create:
    """A sequential ``create`` under the counter's parent; output: the sequence number."""

    def __repr__(self) -> str:
        return "create-sequential()"


#: The output of a :class:`Cas` answered with ``BadVersion``.
BAD_VERSION: Final = "BadVersion"


_EMPTY: Final = Versioned(None, 0)


@dataclass(frozen=True, slots=True)
class VersionedRegister:
    """One znode's data and version under ``getData``/``setData``, as ZooKeeper defines them.

    Each successful write increments the version by exactly one. A :class:`Cas` succeeds
    iff the current version equals the expected one, and is answered :data:`BAD_VERSION`
    (changing nothing) otherwise. The state is a :class:`Versioned`.

    Args:
        initial: The znode's data and version when the history starts.
        check_reads: Whether reads constrain the check. ZooKeeper promises linearizable
            writes but only sequentially consistent reads (a follower may answer from a
            slightly old state), so a harness checking ZooKeeper's guarantees passes
            ``False`` and checks reads with its session-order checks instead.
    """

    initial: Versioned = _EMPTY
    check_reads: bool = True

    def init(self) -> Versioned:
        return self.initial

    def relevant(self, op: Operation) -> bool:
        if isinstance(op.input, Read):
            return self.check_reads and not op.unknown
        return True

    def step(self, state: Versioned, input: Any, output: Any) -> tuple[bool, Versioned]:
        if isinstance(input, Read):
            return output is None or output == state, state
        if isinstance(input, Write):
            after = Versioned(input.value, state.version + 1)
            return output is None or output == after.version, after
        if isinstance(input, Cas):
            if state.version != input.expected_version:
                # Unknown: it failed (no effect), indistinguishable from not happening.
                return output is None or output == BAD_VERSION, state
            after = Versioned(input.value, state.version + 1)
            return output is None or output == after.version, after
        raise TypeError(f"VersionedRegister has no operation {input!r}")


@dataclass(frozen=True, slots=True)
class SequenceCounter:
    """A parent znode's sequential-create counter.

    Sequence numbers are unique and increase in linearization order. With ``dense`` they
    are moreover consecutive from ``start`` (ZooKeeper numbers a child by the parent's
    ``cversion``, which grows by one per child created *or deleted*, so ``dense`` holds for
    a parent whose children are only created); an unknown create may then have consumed a
    number or not.

    Args:
        start: The first number (the parent's ``cversion`` before the history).
        dense: Whether numbers must be consecutive.
    """

    start: int = 0
    dense: bool = False

    def init(self) -> int:
        return self.start  # the smallest number the next create may get

    def relevant(self, op: Operation) -> bool:
        return self.dense or not op.unknown

    def step(self, state: int, input: Any, output: Any) -> tuple[bool, int]:
        if not isinstance(input, Create):
            raise TypeError(f"SequenceCounter has no operation {input!r}")
        if output is None:
            return True, state + 1
        if not isinstance(output, int):
            return False, state
        if self.dense:
            return output == state, state + 1
        return output >= state, output + 1


# --- the search ------------------------------------------------------------------------------


class _Entry:
    """A call or return event in the doubly linked event list."""

    __slots__ = ("id", "is_call", "match", "next", "op", "prev", "time")

    def __init__(self, id: int, op: Operation | None, time: float, is_call: bool) -> None:
        self.id = id
        self.op = op
        self.time = time
        self.is_call = is_call
        self.match: _Entry | None = None  # the call's return entry
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _build_list(ops: Sequence[Operation], horizon: float) -> _Entry:
    events: list[tuple[float, int, int, _Entry]] = []
    for i, op in enumerate(ops):
        call = _Entry(i, op, op.invoke, True)
        end = op.invoke + horizon if op.complete is None else op.complete
        ret = _Entry(i, None, end, False)
        call.match = ret
        # calls sort before returns at equal times: touching intervals are concurrent
        events.append((call.time, 0, i, call))
        events.append((ret.time, 1, i, ret))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    head = _Entry(-1, None, -math.inf, False)
    prev = head
    for *_, entry in events:
        prev.next = entry
        entry.prev = prev
        prev = entry
    return head


def _lift(entry: _Entry) -> None:
    assert entry.prev is not None and entry.match is not None
    entry.prev.next = entry.next
    if entry.next is not None:
        entry.next.prev = entry.prev
    match = entry.match
    assert match.prev is not None
    match.prev.next = match.next
    if match.next is not None:
        match.next.prev = match.prev


def _unlift(entry: _Entry) -> None:
    match = entry.match
    assert match is not None and match.prev is not None and entry.prev is not None
    match.prev.next = match
    if match.next is not None:
        match.next.prev = match
    entry.prev.next = entry
    if entry.next is not None:
        entry.next.prev = entry


@dataclass(frozen=True, slots=True)
class _Search(Generic[S]):
    ok: bool
    order: tuple[int, ...]  # a linearization (ok) or the longest partial one (not ok)
    states: tuple[Any, ...]  # the state after each operation of ``order``
    applied: tuple[bool, ...]  # False: an unknown operation placed as "never happened"
    steps: int
    timed_out: bool = False


def _search(
    model: Model[Any],
    ops: Sequence[Operation],
    deadline: float | None = None,
    horizon: float = math.inf,
) -> _Search[Any]:
    """Wing & Gong's search with Lowe's cache (see the module docstring), plus two rules.

    *Unknown outcomes*: an unknown operation is first tried as taking effect; when that
    leads nowhere it is tried as never having happened (state unchanged, but decided).
    Both count as linearized in the cache key, so once the unknowns of a period are
    decided, configurations that differ only in how they were decided collapse.

    *Eager observers*: a known operation that the model accepts without changing the state
    (a read, a CAS answered BadVersion) is linearized at once with no alternative. Any
    linearization that places it later can place it here instead (the state is the same,
    and every operation that returned before its call is already linearized), so if the
    configuration with it has no completion, neither has the one without it. This removes
    the 2^k subsets of k concurrent reads from the search of a non-linearizable history.
    """
    head = _build_list(ops, horizon)
    state: Any = model.init()
    linearized = 0
    cache: set[tuple[int, Any]] = set()
    # (call entry, state before it, whether it took effect, whether it was forced)
    calls: list[tuple[_Entry, Any, bool, bool]] = []
    best: tuple[tuple[int, ...], tuple[Any, ...], tuple[bool, ...]] = ((), (), ())
    entry = head.next
    steps = 0
    step = model.step
    while head.next is not None:
        steps += 1
        if deadline is not None and steps % 4096 == 0 and time.monotonic() > deadline:
            return _Search(False, *best, steps, timed_out=True)
        assert entry is not None
        dead_end = not entry.is_call
        if entry.is_call:
            op = entry.op
            assert op is not None
            accepted, new_state = step(state, op.input, op.output)
            new_linearized = linearized | (1 << entry.id)
            applied = True
            forced = accepted and op.output is not None and new_state == state
            if not accepted or (new_linearized, new_state) in cache:
                if forced:
                    dead_end = True  # explored already, and it dominates every alternative
                # An unknown operation may also never have happened.
                accepted, new_state, applied = op.output is None, state, False
            if not dead_end:
                if accepted and (new_linearized, new_state) not in cache:
                    cache.add((new_linearized, new_state))
                    calls.append((entry, state, applied, forced))
                    state = new_state
                    linearized = new_linearized
                    _lift(entry)
                    entry = head.next
                else:
                    entry = entry.next
                continue
        # A return whose operation is not linearized yet: backtrack.
        if len(calls) > len(best[0]):  # from the deepest point so far
            best = (
                tuple(c[0].id for c in calls),
                (*(c[1] for c in calls[1:]), state),
                tuple(c[2] for c in calls),
            )
        while True:
            if not calls:
                return _Search(False, *best, steps)
            top, state, applied, forced = calls.pop()
            op = top.op
            assert op is not None
            if applied and op.output is None:
                # Unknown outcome: try "it never happened" (it stays lifted).
                key = (linearized, state)
                if key not in cache:
                    cache.add(key)
                    calls.append((top, state, False, False))
                    entry = head.next
                    break
            linearized &= ~(1 << top.id)
            _unlift(top)
            if not forced:
                entry = top.next
                break
    return _Search(
        True,
        tuple(c[0].id for c in calls),
        (),
        tuple(c[2] for c in calls),
        steps,
    )


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyResult:
    """The verdict for one key's sub-history.

    Attributes:
        key: The key.
        ok: Whether the sub-history is linearizable.
        operations: How many operations were checked (after dropping irrelevant ones).
        explanation: Why not (empty when ``ok``).
        failing_prefix: The operations of the shortest failing prefix (empty when ``ok``).
        culprit: The operation whose answer made that prefix fail, if found.
        timed_out: The search hit its time budget; the verdict is "unknown", reported as
            not ok.
    """

    key: Hashable
    ok: bool
    operations: int
    explanation: str = ""
    failing_prefix: tuple[Operation, ...] = ()
    culprit: Operation | None = None
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict for a whole history (all keys).

    Attributes:
        ok: Whether every key's sub-history is linearizable.
        keys: The per-key results, failing keys first.
        operations: Total operations checked.
        seconds: Time the check took.
    """

    ok: bool
    keys: tuple[KeyResult, ...]
    operations: int
    seconds: float

    @property
    def failures(self) -> list[KeyResult]:
        """The keys whose sub-history is not linearizable (or could not be decided)."""
        return [k for k in self.keys if not k.ok]

    def explain(self) -> str:
        """A readable report: ``linearizable`` or every failing key's explanation."""
        if self.ok:
            return f"linearizable ({self.operations} operations, {len(self.keys)} keys)"
        return "\n\n".join(k.explanation for k in self.failures)


# --- entry points ----------------------------------------------------------------------------


def _truncate(ops: Sequence[Operation], t: float) -> list[Operation]:
    """The history as observed at time ``t``: answers after ``t`` are not yet known."""
    out = []
    for op in ops:
        if op.invoke > t:
            continue
        if op.complete is not None and op.complete > t:
            op = Operation(op.process, op.key, op.input, None, op.invoke, op.complete)
        out.append(op)
    return out


def _explain_key(
    key: Hashable,
    model: Model[Any],
    ops: Sequence[Operation],
    search: _Search[Any],
    deadline: float | None,
    horizon: float,
) -> KeyResult:
    if search.timed_out:
        return KeyResult(
            key,
            False,
            len(ops),
            f"key {key!r}: undecided, the search exceeded its time budget "
            f"({len(ops)} operations, {search.steps} steps)",
            timed_out=True,
        )
    # Bisect the answer times for the shortest failing prefix.
    times = sorted({op.complete for op in ops if op.complete is not None and not op.unknown})
    lo, hi = 0, len(times) - 1  # the full history fails, i.e. at times[-1]
    while lo < hi:
        mid = (lo + hi) // 2
        part = [op for op in _truncate(ops, times[mid]) if model.relevant(op)]
        result = _search(model, part, deadline, horizon)
        if result.timed_out:
            lo = hi  # give up refining; keep the full history as the prefix
            break
        if result.ok:
            lo = mid + 1
        else:
            hi = mid
    t = times[hi] if times else math.inf
    prefix = [op for op in _truncate(ops, t) if model.relevant(op)]
    culprits = [op for op in ops if op.complete == t and not op.unknown]
    culprit = culprits[0] if culprits else None
    partial = _search(model, prefix, deadline, horizon)
    lines = [f"key {key!r}: not linearizable ({len(ops)} operations)"]
    if culprit is not None:
        lines.append("  the history becomes non-linearizable when this answer arrives:")
        lines.append(f"    {culprit.describe()}")
        concurrent = [
            op
            for op in prefix
            if op is not culprit
            and op.invoke <= culprit.complete  # type: ignore[operator]
            and (op.invoke + horizon if op.complete is None else op.complete) >= culprit.invoke
        ]
        if concurrent:
            lines.append("  operations concurrent with it (answers after it shown as '?'):")
            lines.extend(f"    {op.describe()}" for op in concurrent[:20])
            if len(concurrent) > 20:
                lines.append(f"    ... and {len(concurrent) - 20} more")
    lines.append(
        f"  the shortest failing prefix has {len(prefix)} operations; its longest "
        f"partial linearization ({len(partial.order)} operations) ends with:"
    )
    tail = list(zip(partial.order, partial.states, partial.applied))[-8:]
    lines.append(f"    initial state {model.init()!r}" if len(partial.order) <= 8 else "    ...")
    for index, after, applied in tail:
        effect = "" if applied else " (never happened)"
        lines.append(f"    {prefix[index].describe()}{effect}   => state {after!r}")
    done = set(partial.order)
    stuck = [op for i, op in enumerate(prefix) if i not in done]
    stuck_known = [op for op in stuck if not op.unknown]
    if stuck_known:
        lines.append("  operations that could not be linearized after it:")
        lines.extend(f"    {op.describe()}" for op in stuck_known[:10])
    return KeyResult(key, False, len(ops), "\n".join(lines), tuple(prefix), culprit)


def check_operations(
    model: Model[Any],
    ops: Iterable[Operation],
    *,
    key: Hashable = None,
    timeout: float = 60.0,
    horizon: float = math.inf,
) -> KeyResult:
    """Check one object's history (no partitioning by key).

    Args:
        model: The sequential specification.
        ops: The operations (any order).
        key: The key to name in the result.
        timeout: Seconds after which the search gives up (the result is then not ok, with
            ``timed_out`` set).
        horizon: Seconds after its invocation by which an operation without an answer has
            taken effect or never will. The default, infinity, is the textbook semantics;
            a finite bound (a harness knows how long a request can stay in flight) keeps
            the search polynomial on long histories with many unknown outcomes, notably
            when it must prove a history *not* linearizable.

    Returns:
        The verdict with an explanation when not linearizable.
    """
    deadline = time.monotonic() + timeout
    relevant = sorted(
        (op for op in ops if model.relevant(op)),
        key=lambda op: (op.invoke, math.inf if op.complete is None else op.complete),
    )
    result = _search(model, relevant, deadline, horizon)
    if result.ok:
        return KeyResult(key, True, len(relevant))
    return _explain_key(key, model, relevant, result, deadline, horizon)


def check(
    ops: Iterable[Operation],
    model: Model[Any] | Callable[[Hashable], Model[Any]],
    *,
    timeout: float = 60.0,
    horizon: float = math.inf,
) -> CheckResult:
    """Check a history, key by key.

    Args:
        ops: The operations, e.g. :meth:`History.operations`.
        model: One model for every key, or a function from a key to its model (e.g. to give
            each register its initial value).
        timeout: Seconds the whole check may take; keys left undecided are reported as
            failures with ``timed_out`` set.
        horizon: See :func:`check_operations`.

    Returns:
        The verdict; :meth:`CheckResult.explain` renders it.
    """
    started = time.monotonic()
    by_key: dict[Hashable, list[Operation]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    results = []
    for key, key_ops in by_key.items():
        key_model = cast("Model[Any]", model if _is_model(model) else model(key))  # type: ignore[operator]
        remaining = max(0.0, started + timeout - time.monotonic())
        results.append(
            check_operations(key_model, key_ops, key=key, timeout=remaining, horizon=horizon)
        )
    results.sort(key=lambda r: r.ok)
    return CheckResult(
        all(r.ok for r in results),
        tuple(results),
        sum(r.operations for r in results),
        time.monotonic() - started,
    )


def _is_model(obj: object) -> bool:
    return hasattr(obj, "step") and hasattr(obj, "init")


#: :func:`check` under the name :mod:`coord.testing` exports it by.
check_linearizability = check
