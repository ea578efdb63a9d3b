"""The pure ordering decision of the lock-like recipes, tested without a server."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coord.recipes._ordering import READ_PREFIX, WRITE_PREFIX, Kind, decide, sequence_of


def node(seq: int, prefix: str = "lock-") -> str:
    return f"_c_{uuid.uuid4()}-{prefix}{seq:010d}"


def test_sequence_of_parses_last_ten_digits() -> None:
    assert sequence_of(node(42)) == 42
    assert sequence_of("config") is None


def test_decide_exclusive_lowest_holds_others_watch_predecessor() -> None:
    names = [node(3), node(1), node(2), "not-a-contender"]
    assert decide(names, names[1]).holds
    assert decide(names, names[2]).watch == names[1]
    assert decide(names, names[0]).watch == names[2]


def test_decide_read_shares_and_watches_nearest_writer() -> None:
    r1, w2, r3, r4, w5 = (
        node(1, READ_PREFIX),
        node(2, WRITE_PREFIX),
        node(3, READ_PREFIX),
        node(4, READ_PREFIX),
        node(5, WRITE_PREFIX),
    )
    names = [r1, w2, r3, r4, w5]
    assert decide(names, r1, Kind.READ).holds
    assert decide(names, r4, Kind.READ).watch == w2
    assert decide(names, w2, Kind.WRITE).watch == r1
    assert decide(names, w5, Kind.WRITE).watch == r4


def test_decide_semaphore_n_holders_watch_n_ahead() -> None:
    names = [node(i) for i in range(5)]
    assert [decide(names, n, Kind.SEMAPHORE, leases=2).holds for n in names] == [
        True, True, False, False, False,
    ]  # fmt: skip
    assert decide(names, names[4], Kind.SEMAPHORE, leases=2).watch == names[2]


def test_decide_missing_node_is_an_error() -> None:
    with pytest.raises(ValueError):
        decide([node(1)], node(2))
    with pytest.raises(ValueError):
        decide([node(1)], node(1), Kind.SEMAPHORE, leases=0)


contenders = st.lists(
    st.tuples(st.integers(0, 10**6), st.sampled_from([READ_PREFIX, WRITE_PREFIX])),
    min_size=1,
    max_size=30,
    unique_by=lambda pair: pair[0],
)
kinds = st.sampled_from([Kind.EXCLUSIVE, Kind.WRITE, Kind.SEMAPHORE])


def _decisions(
    pairs: list[tuple[int, str]], leases: int
) -> dict[str, tuple[Kind, bool, str | None]]:
    names = [node(seq, prefix) for seq, prefix in pairs]
    out = {}
    for name in names:
        kind = Kind.READ if READ_PREFIX in name else Kind.WRITE
        d = decide(names, name, kind)
        out[name] = (kind, d.holds, d.watch)
    return out


@given(contenders)
def test_decide_never_two_exclusive_holders(pairs: list[tuple[int, str]]) -> None:
    names = [node(seq) for seq, _ in pairs]
    holders = [n for n in names if decide(names, n).holds]
    assert holders == [min(names, key=lambda n: sequence_of(n) or 0)]


@given(contenders)
def test_decide_rw_writer_is_alone_and_readers_share(pairs: list[tuple[int, str]]) -> None:
    decisions = _decisions(pairs, 1)
    holders = [n for n, (_, holds, _) in decisions.items() if holds]
    writers = [n for n in holders if decisions[n][0] is Kind.WRITE]
    assert len(writers) <= 1
    if writers:
        assert holders == writers
    ordered = sorted(decisions, key=lambda n: sequence_of(n) or 0)
    leading_readers = []
    for n in ordered:
        if decisions[n][0] is not Kind.READ:
            break
        leading_readers.append(n)
    assert set(leading_readers) <= set(holders)


@given(contenders, kinds, st.integers(1, 4))
def test_decide_non_holders_watch_an_existing_predecessor(
    pairs: list[tuple[int, str]], kind: Kind, leases: int
) -> None:
    names = [node(seq, prefix) for seq, prefix in pairs]
    holders = 0
    for name in names:
        d = decide(names, name, kind, leases=leases)
        holders += d.holds
        if not d.holds:
            assert d.watch in names
            assert (sequence_of(d.watch) or 0) < (sequence_of(name) or 0)
    assert holders == min(len(names), leases if kind is Kind.SEMAPHORE else 1)


@given(contenders, kinds, st.integers(1, 4), st.data())
def test_decide_deleting_holders_eventually_lets_everyone_in(
    pairs: list[tuple[int, str]], kind: Kind, leases: int, data: st.DataObject
) -> None:
    """Holders release in any order; waking only the watchers of a deleted node, every
    contender eventually holds, and never more than allowed at once."""
    names = [node(seq, prefix) for seq, prefix in pairs]
    limit = leases if kind is Kind.SEMAPHORE else 1
    held: set[str] = set()
    watching: dict[str, str | None] = {}

    def evaluate(name: str) -> None:
        d = decide(names, name, kind, leases=leases)
        if d.holds:
            held.add(name)
            watching.pop(name, None)
        else:
            watching[name] = d.watch

    for name in list(names):
        evaluate(name)
    served = 0
    while names:
        assert held and len(held) <= limit
        victim = data.draw(st.sampled_from(sorted(held)))
        held.discard(victim)
        names.remove(victim)
        served += 1
        for waiter, watched in list(watching.items()):
            if watched == victim:
                evaluate(waiter)
    assert served == len(pairs)
