"""Session liveness on the server that owns expiry (the leader; standalone: the server).

Theory of operation
-------------------
As ZooKeeper's ``ExpiryQueue``: every session sits in the bucket of the tick at which it
expires, its deadline rounded *up* to a multiple of the tick, so touching a session on a
request moves it between two buckets in O(1) and the expirer only looks at buckets whose
tick has passed. Time is an argument (milliseconds), never read here. Expiring a session
is not done here: the caller proposes a closeSession entry, so the expiry is in the log
and every replica removes the same ephemerals.
"""

from __future__ import annotations

__all__ = ["SessionTracker"]


class SessionTracker:
    """Deadlines of live sessions, bucketed by tick.

    Args:
        tick: the bucket width in milliseconds (``tickTime``).
    """

    def __init__(self, tick: int) -> None:
        self.tick = tick
        self._deadline: dict[int, int] = {}
        self._timeout: dict[int, int] = {}
        self._buckets: dict[int, set[int]] = {}

    def __contains__(self, session_id: int) -> bool:
        return session_id in self._deadline

    def __len__(self) -> int:
        return len(self._deadline)

    def _round(self, when: int) -> int:
        tick = self.tick
        return (when // tick + 1) * tick

    def add(self, session_id: int, timeout: int, now: int) -> None:
        """Track a session with ``timeout`` ms, alive as of ``now``."""
        self._timeout[session_id] = timeout
        self.touch(session_id, now)

    def touch(self, session_id: int, now: int) -> bool:
        """Record activity; False if the session is not tracked (expired or closed)."""
        timeout = self._timeout.get(session_id)
        if timeout is None:
            return False
        deadline = self._round(now + timeout)
        old = self._deadline.get(session_id)
        if old == deadline:
            return True
        if old is not None:
            bucket = self._buckets.get(old)
            if bucket is not None:
                bucket.discard(session_id)
                if not bucket:
                    del self._buckets[old]
        self._deadline[session_id] = deadline
        self._buckets.setdefault(deadline, set()).add(session_id)
        return True

    def remove(self, session_id: int) -> None:
        """Stop tracking a session (closed or expired)."""
        self._timeout.pop(session_id, None)
        deadline = self._deadline.pop(session_id, None)
        if deadline is not None:
            bucket = self._buckets.get(deadline)
            if bucket is not None:
                bucket.discard(session_id)
                if not bucket:
                    del self._buckets[deadline]

    def expired(self, now: int) -> list[int]:
        """Sessions whose deadline has passed at ``now``; they stay tracked until removed."""
        out: list[int] = []
        for deadline in [d for d in self._buckets if d <= now]:
            out.extend(sorted(self._buckets[deadline]))
        return out

    def timeout_of(self, session_id: int) -> int | None:
        """The session's negotiated timeout in ms."""
        return self._timeout.get(session_id)

    def expiry_map(self) -> dict[int, list[int]]:
        """Deadline (ms) -> the ids of the sessions expiring then, sorted (for ``dump``)."""
        return {d: sorted(ids) for d, ids in sorted(self._buckets.items())}

    def next_deadline(self) -> int | None:
        """The earliest bucket deadline, if any session is tracked."""
        return min(self._buckets) if self._buckets else None
