"""coord's recipes: locks and leader election whose holding is a scope.

``async with Lock(client, "/locks/db") as lock:`` and ``async with
Election(client, "/election/app").leadership():`` -- the body is cancelled and
:class:`LockLost` / :class:`LeadershipLost` raised when what is held is lost. See
``docs/recipes.md``.
"""

from coord.recipes._election import Election
from coord.recipes._errors import LeadershipLost, LockLost
from coord.recipes._lock import Lock

__all__ = ["Election", "LeadershipLost", "Lock", "LockLost"]
