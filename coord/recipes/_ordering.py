"""The ordering decision shared by the lock-like recipes: do I hold it, and whom do I watch?

Theory of operation
-------------------
Contenders for a lock node create *protected ephemeral-sequential* children named
``_c_<uuid>-<prefix><seq10>`` (ZooKeeper recipe "Locks"; Curator's
``StandardLockInternalsDriver``; kazoo ``kazoo/recipe/lock.py``). The server gives every
child of a parent a distinct, increasing 10-digit sequence number, so sorting the children
by their last 10 digits gives the order of arrival, identical for every client that lists
the same children. The UUID prefix lets a contender find its node again after a create
whose reply was lost; it plays no part in the order.

Given the sorted contenders, each recipe asks the same two questions, answered here by a
pure function (no I/O, no clock):

* **exclusive** (Lock, Election): I hold it iff I am first. Otherwise I watch my
  immediate predecessor; only its deletion can change my answer.
* **read** (ReadWriteLock): I hold it iff no *write* node precedes me (readers share).
  Otherwise I watch the nearest preceding write node: readers between it and me are no
  obstacle, and write nodes further ahead go before it does -- or, if one of them is
  deleted out of order, it does not change my answer while my watched writer exists.
* **write** (ReadWriteLock): exclusive with respect to everything, read or write.
* **semaphore(n)**: I hold one of ``n`` leases iff fewer than ``n`` contenders precede
  me. Otherwise I watch the node ``n`` places ahead of me: it is the node whose deletion
  lets me in when leases are released in order of arrival. When a lease *ahead of it* is
  released out of order, my answer may change without my watch firing: I then enter at
  the latest when my watched node goes (never more than ``n`` holders and progress is
  kept, but a lease may sit idle meanwhile). A work-conserving semaphore needs its first
  waiter to watch the children list as well; that is the Semaphore
  recipe's business, not this function's.

Every non-holder watches exactly one *existing* predecessor (the "no herd" rule of
the ZooKeeper recipe, Curator CURATOR-444): a deletion wakes at most the contenders that
watched that one node. The watch must be set with ``exists``; if the node is already gone
the caller lists the children again and asks again.

Nodes that do not end with 10 digits are not contenders and are ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "READ_PREFIX",
    "WRITE_PREFIX",
    "Decision",
    "Kind",
    "decide",
    "is_reader",
    "sequence_of",
    "sort_contenders",
]

READ_PREFIX = "read-"
"""The name prefix (after the protection prefix) of a ReadWriteLock's read nodes."""
WRITE_PREFIX = "write-"
"""The name prefix of a ReadWriteLock's write nodes (any non-read node counts as a writer)."""

_SEQ_DIGITS = 10


class Kind(enum.Enum):
    """What a contender asks for."""

    EXCLUSIVE = "exclusive"
    READ = "read"
    WRITE = "write"
    SEMAPHORE = "semaphore"


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of :func:`decide`.

    Attributes:
        holds: whether the contender holds the lock (or a lease).
        watch: if not, the name of the one predecessor to watch (``exists`` watch); its
            deletion is what may let the contender in. ``None`` when ``holds``.
        position: the contender's index among the sorted contenders.
    """

    holds: bool
    watch: str | None
    position: int


def sequence_of(name: str) -> int | None:
    """The sequence number of a contender's node name (its last 10 digits), or None."""
    tail = name[-_SEQ_DIGITS:]
    if len(tail) != _SEQ_DIGITS or not tail.isdigit():
        return None
    return int(tail)


def _base_name(name: str) -> str:
    """The name without the protection prefix ``_c_<uuid>-`` (a UUID has 4 dashes)."""
    if name.startswith("_c_"):
        parts = name.split("-", 5)
        if len(parts) == 6:
            return parts[5]
    return name


def is_reader(name: str) -> bool:
    """Whether a contender node is a ReadWriteLock read node."""
    return _base_name(name).startswith(READ_PREFIX)


def sort_contenders(children: Iterable[str]) -> list[str]:
    """The contender names among ``children``, in order of their sequence numbers."""
    keyed = [(seq, name) for name in children if (seq := sequence_of(name)) is not None]
    keyed.sort()
    return [name for _, name in keyed]


def decide(
    children: Iterable[str] | Sequence[str],
    mine: str,
    kind: Kind = Kind.EXCLUSIVE,
    *,
    leases: int = 1,
) -> Decision:
    """Whether ``mine`` holds the lock among ``children``, and if not whom to watch.

    Args:
        children: the names of the lock node's children (any order; non-contenders are
            ignored).
        mine: the name (not the path) of this contender's node.
        kind: what the contender asks for.
        leases: the number of leases, for ``Kind.SEMAPHORE`` (at least 1).

    Returns:
        A :class:`Decision`.

    Raises:
        ValueError: ``mine`` is not among the contenders (its node is gone: the session
            was lost or someone deleted it), or ``leases`` < 1.
    """
    if leases < 1:
        raise ValueError("leases must be at least 1")
    order = sort_contenders(children)
    try:
        position = order.index(mine)
    except ValueError:
        raise ValueError(f"{mine!r} is not among the contenders") from None
    if kind is Kind.READ:
        for name in reversed(order[:position]):
            if not is_reader(name):
                return Decision(False, name, position)
        return Decision(True, None, position)
    n = leases if kind is Kind.SEMAPHORE else 1
    if position < n:
        return Decision(True, None, position)
    return Decision(False, order[position - n], position)
