"""Recipe-level losses: what a holder learns when what it held is gone or uncertain."""

from __future__ import annotations

from coord.protocol import CoordError

__all__ = ["LeadershipLost", "LockLost"]


class LockLost(CoordError):
    """The lock was lost while held.

    Raised by ``async with Lock(...)`` (after its body was cancelled) and by
    ``with Lock(sync_client, ...)`` (at the end of its body) when the session was lost,
    the connection stayed suspended past the safe bound, or the lock node was deleted
    by someone else while the lock was held.
    """


class LeadershipLost(CoordError):
    """Leadership was lost while leading.

    Raised by ``async with election.leadership()`` after its body was cancelled, for the
    same reasons as :class:`LockLost`.
    """
