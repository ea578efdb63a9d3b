"""The linearizability checker on hand-written classic histories and generated ones.

Generated histories come from a sequential execution of the model: operation ``i`` takes
effect at time ``i`` and is given a random interval around that point, so the history is
linearizable by construction; a mutation that no ordering can explain must then fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coord.testing._linearizability import (
    BAD_VERSION,
    Cas,
    Create,
    History,
    Operation,
    Read,
    SequenceCounter,
    Versioned,
    VersionedRegister,
    Write,
    check,
    check_operations,
)

REG = VersionedRegister()


def op(
    process: Hashable,
    input: Any,
    output: Any,
    invoke: float,
    complete: float | None,
    key: Hashable = "/r",
) -> Operation:
    return Operation(process, key, input, output, invoke, complete)


# --- classic hand-written cases ---------------------------------------------------------------


def test_check_sequential_register_history_is_linearizable() -> None:
    """Non-overlapping operations in a valid order pass."""
    ops = [
        op(1, Write("a"), 1, 0, 1),
        op(2, Read(), Versioned("a", 1), 2, 3),
        op(1, Cas(1, "b"), 2, 4, 5),
        op(2, Cas(1, "c"), BAD_VERSION, 6, 7),
        op(3, Read(), Versioned("b", 2), 8, 9),
    ]
    assert check(ops, REG).ok


def test_check_stale_read_after_write_completed_fails() -> None:
    """A read that starts after a write completed must see it (no stale read)."""
    ops = [
        op(1, Write("a"), 1, 0, 1),
        op(2, Read(), Versioned(None, 0), 2, 3),
    ]
    result = check(ops, REG)
    assert not result.ok
    text = result.explain()
    assert "not linearizable" in text
    assert "read() -> Versioned(value=None, version=0)" in text


def test_check_concurrent_read_may_see_old_or_new_value() -> None:
    """A read overlapping a write may return either value."""
    for seen in (Versioned(None, 0), Versioned("a", 1)):
        ops = [op(1, Write("a"), 1, 0, 10), op(2, Read(), seen, 1, 2)]
        assert check(ops, REG).ok, seen


def test_check_reads_going_back_in_time_fail() -> None:
    """Two sequential reads during one long write cannot see new then old."""
    ops = [
        op(1, Write("a"), 1, 0, 10),
        op(2, Read(), Versioned("a", 1), 1, 2),
        op(3, Read(), Versioned(None, 0), 3, 4),
    ]
    assert not check(ops, REG).ok


def test_check_lost_update_fails() -> None:
    """Two writes acknowledged with the same version: one update was lost."""
    ops = [
        op(1, Cas(0, "a"), 1, 0, 2),
        op(2, Write("b"), 1, 1, 3),
    ]
    assert not check(ops, REG).ok


def test_check_cas_succeeding_twice_on_one_version_fails() -> None:
    """Two concurrent CAS on version 0 cannot both succeed."""
    ops = [
        op(1, Cas(0, "a"), 1, 0, 5),
        op(2, Cas(0, "b"), 1, 1, 4),
    ]
    result = check(ops, REG)
    assert not result.ok
    assert result.failures[0].culprit is not None


def test_check_cas_one_wins_one_bad_version_passes() -> None:
    """Of two concurrent CAS on one version, one wins and the other gets BadVersion."""
    ops = [
        op(1, Cas(0, "a"), 1, 0, 5),
        op(2, Cas(0, "b"), BAD_VERSION, 1, 4),
        op(3, Read(), Versioned("a", 1), 6, 7),
    ]
    assert check(ops, REG).ok


def test_check_bad_version_when_version_matched_fails() -> None:
    """A CAS answered BadVersion although nothing else changed the version."""
    ops = [op(1, Cas(0, "a"), BAD_VERSION, 0, 1)]
    assert not check(ops, REG).ok


def test_check_unknown_write_that_must_have_happened_passes() -> None:
    """A read seeing an unknown write's value means it happened: fine."""
    ops = [
        op(1, Write("a"), None, 0, None),
        op(2, Read(), Versioned("a", 1), 5, 6),
        op(2, Cas(1, "b"), 2, 7, 8),
    ]
    assert check(ops, REG).ok


def test_check_unknown_write_may_never_happen() -> None:
    """An unknown write that nobody observed may not have happened at all."""
    ops = [
        op(1, Write("a"), None, 0, None),
        op(2, Read(), Versioned(None, 0), 5, 6),
        op(2, Cas(0, "b"), 1, 7, 8),
        op(2, Read(), Versioned("b", 1), 9, 10),
    ]
    assert check(ops, REG).ok


def test_check_unknown_write_cannot_take_effect_before_its_invocation() -> None:
    """A value seen before the (unknown) write that produced it was even invoked."""
    ops = [
        op(2, Read(), Versioned("a", 1), 0, 1),
        op(1, Write("a"), None, 2, None),
    ]
    assert not check(ops, REG).ok


def test_check_unknown_write_observed_then_unobserved_fails() -> None:
    """Once a read saw the unknown write, a later read cannot see the state before it."""
    ops = [
        op(1, Write("a"), None, 0, None),
        op(2, Read(), Versioned("a", 1), 1, 2),
        op(3, Read(), Versioned(None, 0), 3, 4),
    ]
    assert not check(ops, REG).ok


def test_check_version_gap_means_a_write_happened() -> None:
    """Versions grow by one per write: version 2 after one known write needs another write."""
    ops = [
        op(1, Write("a"), 1, 0, 1),
        op(1, Write("b"), 3, 2, 3),
    ]
    assert not check(ops, REG).ok
    with_unknown = [*ops, op(2, Write("x"), None, 0.5, None)]
    assert check(with_unknown, REG).ok


def test_check_reads_ignored_when_register_says_so() -> None:
    """With check_reads=False a stale read does not count (ZooKeeper's follower reads)."""
    ops = [op(1, Write("a"), 1, 0, 1), op(2, Read(), Versioned(None, 0), 2, 3)]
    assert check(ops, VersionedRegister(check_reads=False)).ok


def test_check_partitions_by_key_and_names_the_failing_key() -> None:
    """Keys are independent: each key is checked alone; only the bad key fails."""
    ops = [
        op(1, Write("a"), 1, 0, 1, key="/good"),
        op(2, Read(), Versioned("a", 1), 2, 3, key="/good"),
        op(1, Write("a"), 1, 0, 1, key="/bad"),
        op(2, Read(), Versioned("zzz", 1), 2, 3, key="/bad"),
    ]
    result = check(ops, REG)
    assert not result.ok
    assert [k.key for k in result.failures] == ["/bad"]
    assert "'/bad'" in result.explain()


def test_check_model_factory_gives_each_key_its_initial_state() -> None:
    """A callable model maps a key to its model."""
    ops = [op(1, Read(), Versioned(b"init", 3), 0, 1, key="/k")]
    assert check(ops, lambda key: VersionedRegister(Versioned(b"init", 3))).ok
    assert not check(ops, REG).ok


def test_check_explanation_points_at_the_shortest_failing_prefix() -> None:
    """A violation late in a long history is reported with the answer that caused it."""
    ops = [op(1, Write(i), i + 1, 2 * i, 2 * i + 1) for i in range(50)]
    bad = op(2, Read(), Versioned(10, 11), 200, 201)
    ops.append(bad)
    ops += [op(1, Write(i), i + 1, 2 * i, 2 * i + 1) for i in range(150, 160)]
    result = check(ops, REG).failures[0]
    assert result.culprit == bad
    assert bad.describe() in result.explanation
    assert all(o.invoke <= 201 for o in result.failing_prefix)


def test_sequence_counter_unique_increasing() -> None:
    """Sequence numbers must be unique and grow in linearization order."""
    model = SequenceCounter()
    good = [
        op(1, Create(), 0, 0, 1),
        op(2, Create(), 2, 0.5, 3),
        op(3, Create(), 1, 0.2, 2.5),
        op(1, Create(), 5, 4, 5),
    ]
    assert check(good, model).ok
    duplicate = [op(1, Create(), 3, 0, 2), op(2, Create(), 3, 1, 3)]
    assert not check(duplicate, model).ok
    reordered = [op(1, Create(), 3, 0, 1), op(2, Create(), 2, 2, 3)]
    assert not check(reordered, model).ok


def test_sequence_counter_dense_counts_unknown_creates() -> None:
    """Dense numbering: a gap is explained only by an unknown create."""
    model = SequenceCounter(dense=True)
    gap = [op(1, Create(), 0, 0, 1), op(1, Create(), 2, 2, 3)]
    assert not check(gap, model).ok
    assert check([*gap, op(2, Create(), None, 0.5, None)], model).ok


def test_operation_rejects_completion_before_invocation() -> None:
    with pytest.raises(ValueError, match="before it is invoked"):
        Operation(1, "/r", Read(), Versioned(None, 0), 5.0, 4.0)


def test_history_records_ok_unknown_and_dropped_operations_across_threads() -> None:
    """History is thread-safe; unfinished operations come back as unknown."""
    history = History()

    def worker(n: int) -> None:
        for i in range(100):
            pending = history.invoke(n, f"/k{n}", Write(i))
            if i % 10 == 0:
                pending.unknown()
            elif i % 10 == 1:
                pending.fail()
            else:
                pending.ok(i + 1)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    left_open = history.invoke(9, "/k9", Read())
    ops = history.operations()
    assert len(ops) == 4 * 90 + 1
    assert sum(o.unknown for o in ops) == 4 * 10 + 1
    assert ops[-1].input == left_open.input and ops[-1].unknown
    with pytest.raises(RuntimeError, match="already finished"):
        pending = history.invoke(1, "/x", Read())
        pending.ok(Versioned(None, 0))
        pending.unknown()
    with pytest.raises(ValueError, match="unknown"):
        history.invoke(1, "/x", Read()).ok(None)


# --- generated histories ------------------------------------------------------------------------


def _sequential_register(
    draw: st.DrawFn, n: int, processes: int, unknown_rate: float
) -> list[Operation]:
    """Run random ops sequentially; op i takes effect at time i, in a random interval."""
    state = Versioned(None, 0)
    ops: list[Operation] = []
    for i in range(n):
        kind = draw(st.sampled_from(["read", "write", "cas", "cas"]))
        inp: Any
        if kind == "read":
            inp, out = Read(), state
        elif kind == "write":
            inp = Write(f"w{i}")
            state = Versioned(inp.value, state.version + 1)
            out = state.version
        else:
            expected = state.version - draw(st.integers(0, 1))
            inp = Cas(expected, f"c{i}")
            if expected == state.version:
                state = Versioned(inp.value, state.version + 1)
                out = state.version
            else:
                out = BAD_VERSION
        before = draw(st.floats(0, 3))
        after = draw(st.floats(0, 3))
        unknown = draw(st.floats(0, 1)) < unknown_rate and kind != "read"
        ops.append(
            op(
                draw(st.integers(0, processes - 1)),
                inp,
                None if unknown else out,
                i - before,
                None if unknown else i + after,
            )
        )
    return ops


@st.composite
def register_histories(draw: st.DrawFn) -> list[Operation]:
    n = draw(st.integers(1, 60))
    return _sequential_register(draw, n, 5, draw(st.sampled_from([0.0, 0.1])))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(register_histories())
def test_generated_register_histories_are_linearizable(ops: list[Operation]) -> None:
    result = check(ops, REG)
    assert result.ok, result.explain()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(register_histories(), st.data())
def test_mutated_register_histories_fail(ops: list[Operation], data: st.DataObject) -> None:
    """Mutations no ordering can explain: an unwritten value, an impossible version, or a
    second success on a version already taken."""
    known = [i for i, o in enumerate(ops) if not o.unknown]
    if not known:
        return
    i = data.draw(st.sampled_from(known))
    victim = ops[i]
    mutation = data.draw(st.sampled_from(["value", "version", "duplicate"]))
    if isinstance(victim.input, Read):
        bad = Versioned("never-written", victim.output.version)
        reader = op(victim.process, Read(), bad, victim.invoke, victim.complete)
        mutated = [*ops[:i], reader, *ops[i + 1 :]]
    elif mutation in ("value", "version") or victim.output == BAD_VERSION:
        bogus = op(victim.process, victim.input, 10**6, victim.invoke, victim.complete)
        mutated = [*ops[:i], bogus, *ops[i + 1 :]]
    else:
        # a second write claiming the same new version, during the same interval
        twin = op(
            "twin", Cas(victim.output - 1, "twin"), victim.output, victim.invoke, victim.complete
        )
        mutated = [*ops, twin]
    assert not check(mutated, REG).ok


@st.composite
def counter_histories(draw: st.DrawFn) -> list[Operation]:
    n = draw(st.integers(2, 60))
    ops = []
    number = 0
    for i in range(n):
        number += draw(st.integers(1, 3))
        ops.append(
            op(i % 4, Create(), number, i - draw(st.floats(0, 3)), i + draw(st.floats(0, 3)))
        )
    return ops


@settings(max_examples=100, deadline=None)
@given(counter_histories(), st.data())
def test_generated_counter_histories_pass_and_duplicates_fail(
    ops: list[Operation], data: st.DataObject
) -> None:
    assert check(ops, SequenceCounter()).ok
    i = data.draw(st.integers(0, len(ops) - 1))
    twin = ops[i]
    dup = op("twin", Create(), twin.output, twin.invoke, twin.complete)
    assert not check([*ops, dup], SequenceCounter()).ok


# --- bounded cost ------------------------------------------------------------------------------


def test_check_thousands_of_concurrent_operations_in_seconds() -> None:
    """4000 ops on one key by 8 overlapping clients, with some unknown outcomes, in seconds."""
    import random

    rng = random.Random(7)
    state = Versioned(None, 0)
    ops = []
    for i in range(4000):
        if rng.random() < 0.3:
            inp: Any = Read()
            out: Any = state
        else:
            expected = state.version - (rng.random() < 0.3)
            inp = Cas(expected, i)
            if expected == state.version:
                state = Versioned(i, state.version + 1)
                out = state.version
            else:
                out = BAD_VERSION
        unknown = not isinstance(inp, Read) and rng.random() < 0.003
        t = i * 0.01
        ops.append(
            op(
                i % 8,
                inp,
                None if unknown else out,
                t - rng.uniform(0, 0.04),
                None if unknown else t + rng.uniform(0, 0.04),
            )
        )
    started = time.monotonic()
    result = check_operations(REG, ops, timeout=60)
    elapsed = time.monotonic() - started
    assert result.ok, result.explanation
    assert elapsed < 10, elapsed


def test_reliability_docs_checker_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The checker example of docs/reliability.md runs and finds the stale read."""
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
    blocks = re.findall(r"^```python\n(.*?)^```$", page.read_text(), re.MULTILINE | re.DOTALL)
    example = next(b for b in blocks if "check_linearizability" in b)
    exec(compile(example, str(page), "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("False\nkey '/config': not linearizable")
    assert "read() -> Versioned(value=None, version=0)" in out
