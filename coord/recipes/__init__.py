"""coord's recipes: locks and leader election whose holding is a scope.

``async with Lock(client, "/locks/db") as lock:`` and ``async with
Election(client, "/election/app").leadership():`` -- the body is cancelled and
:class:`LockLost` / :class:`LeadershipLost` raised when what is held is lost. See
``docs/recipes.md``.
"""

from coord.recipes._barrier import Barrier, DoubleBarrier
from coord.recipes._config_watcher import ConfigWatcher, Snapshot, SnapshotStream
from coord.recipes._counter import Counter
from coord.recipes._election import Election
from coord.recipes._errors import LeadershipLost, LockLost
from coord.recipes._group import Group, Membership
from coord.recipes._lease import Lease, LeaseExpired
from coord.recipes._lock import Lock
from coord.recipes._partitioner import Partitioner, partition
from coord.recipes._queue import Item, ItemLost, LockingQueue, PriorityQueue, Queue
from coord.recipes._registry import Instance, Registration, ServiceRegistry
from coord.recipes._rwlock import ReadWriteLock, UpgradeConflict
from coord.recipes._semaphore import Semaphore

__all__ = [
    "Barrier",
    "ConfigWatcher",
    "Counter",
    "DoubleBarrier",
    "Election",
    "Group",
    "Instance",
    "Item",
    "ItemLost",
    "LeadershipLost",
    "Lease",
    "LeaseExpired",
    "Lock",
    "LockLost",
    "LockingQueue",
    "Membership",
    "Partitioner",
    "PriorityQueue",
    "Queue",
    "ReadWriteLock",
    "Registration",
    "Semaphore",
    "ServiceRegistry",
    "Snapshot",
    "SnapshotStream",
    "UpgradeConflict",
    "partition",
]
