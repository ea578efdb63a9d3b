"""Quotas on subtrees, as ZooKeeper keeps them under ``/zookeeper/quota``.

Theory of operation
-------------------
A quota on ``/app`` is two ordinary znodes that clients create (zkCli's ``setquota`` does):
``/zookeeper/quota/app/zookeeper_limits``, holding the limits, and
``/zookeeper/quota/app/zookeeper_stats``, holding the usage. Both hold ZooKeeper's
``StatsTrack`` text: ``count=<n>,bytes=<n>`` then, when there are other keys, ``=`` and
``;key=value`` pairs sorted by key (``count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3``);
-1 means unset. ``count`` and ``bytes`` are soft limits (exceeding them is logged),
``countHardLimit`` and ``byteHardLimit`` hard ones. Usage counts the quota's root node and
all its descendants, and the bytes of their data.

The apply path (:mod:`coord.server._apply`) keeps this exactly as ZooKeeper's ``DataTree``
does, deterministically on every replica, so the quota state is part of the replicated
tree and needs no log entries of its own:

* creating a ``zookeeper_limits`` node registers its subtree as a quota root; creating a
  ``zookeeper_stats`` node sets its data to the subtree's current usage (a walk, once);
* every create, delete and setData below a quota root updates the usage in that root's
  stats node incrementally (the deepest root containing the path; ZooKeeper forbids
  nested quotas, so there is at most one in practice);
* with ``enforce_quota`` (ZooKeeper's ``zookeeper.enforceQuota``), a create or setData
  that would take the usage past a hard limit fails with ``QuotaExceeded`` (-125) --
  checked in apply, after the ACL and existence checks, as ``PrepRequestProcessor``
  does; a soft limit is only logged.

The set of quota roots (:class:`QuotaIndex`) is derived from the tree: it is rebuilt from
the nodes whenever the state machine's node map is replaced (recovery, snapshot install),
and kept up to date by apply otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

__all__ = [
    "LIMIT_NODE",
    "QUOTA_ROOT",
    "STAT_NODE",
    "QuotaIndex",
    "format_stats",
    "limit_path",
    "parse_stats",
    "stat_path",
]

log = logging.getLogger("coord.server")

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"
_PREFIX = QUOTA_ROOT + "/"


class _NodeLike(Protocol):
    data: bytes | None
    children: set[str]


def limit_path(root: str) -> str:
    """``/zookeeper/quota<root>/zookeeper_limits``."""
    return f"{QUOTA_ROOT}{root}/{LIMIT_NODE}"


def stat_path(root: str) -> str:
    """``/zookeeper/quota<root>/zookeeper_stats``."""
    return f"{QUOTA_ROOT}{root}/{STAT_NODE}"


def parse_stats(data: bytes | None) -> dict[str, int]:
    """A ``StatsTrack`` text as a dict (``count``, ``bytes``, ``countHardLimit``, ...).

    Pairs are separated by ``,`` or ``;``; the value is what follows the first ``=`` up to
    a second one (ZooKeeper reads ``bytes=5=`` as 5, ``count==3`` as -1). Pairs that are
    not ``key=<integer>`` are skipped, where ZooKeeper would throw.
    """
    out: dict[str, int] = {}
    if not data:
        return out
    text = data.decode("utf-8", errors="replace")
    for pair in text.replace(";", ",").split(","):
        if not pair:
            continue
        parts = pair.split("=")
        while len(parts) > 1 and not parts[-1]:
            parts.pop()  # Java's split drops trailing empty strings
        if len(parts) < 2:
            continue
        value = parts[1].strip()
        try:
            out[parts[0]] = int(value) if value else -1
        except ValueError:
            continue
    return out


def format_stats(stats: Mapping[str, int]) -> bytes:
    """``StatsTrack.toString``: ``count=..,bytes=..`` then ``=;key=value`` sorted by key."""
    text = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    others = sorted(k for k in stats if k not in ("count", "bytes"))
    if others:
        text += "=" + "".join(f";{k}={stats[k]}" for k in others)
    return text.encode()


class QuotaIndex:
    """The quota roots of a tree (paths with a ``zookeeper_limits`` node).

    Args:
        nodes: the tree (path -> node) the index is built from and kept for.
    """

    __slots__ = ("nodes", "roots")

    def __init__(self, nodes: Mapping[str, _NodeLike]) -> None:
        self.nodes = nodes
        self.roots: set[str] = set()
        suffix = "/" + LIMIT_NODE
        for path in nodes:
            if path.startswith(_PREFIX) and path.endswith(suffix):
                root = path[len(QUOTA_ROOT) : -len(suffix)]
                if root and root != "/":
                    self.roots.add(root)

    def root_of(self, path: str) -> str | None:
        """The deepest quota root containing ``path`` (the path itself included), if any.

        A quota on ``/`` never applies (as ZooKeeper's ``getMaxPrefixWithQuota``).
        """
        roots = self.roots
        if not roots:
            return None
        probe = path
        while probe and probe != "/":
            if probe in roots:
                return probe
            probe = probe[: probe.rfind("/")]
        return None

    @staticmethod
    def quota_root_of_node(parent_path: str) -> str | None:
        """For a node under ``/zookeeper/quota<root>``, the ``<root>`` (else None)."""
        if parent_path.startswith(_PREFIX):
            return parent_path[len(QUOTA_ROOT) :]
        return None

    def usage(self, root: str) -> tuple[int, int]:
        """(node count, data bytes) of the subtree at ``root``, by walking it."""
        nodes = self.nodes
        top = nodes.get(root)
        if top is None:
            return 0, 0
        count, size = 0, 0
        stack = [(root, top)]
        while stack:
            path, node = stack.pop()
            count += 1
            size += len(node.data) if node.data else 0
            prefix = path if path != "/" else ""
            for name in node.children:
                child = nodes.get(f"{prefix}/{name}")
                if child is not None:
                    stack.append((f"{prefix}/{name}", child))
        return count, size


def exceeds(
    limits: Mapping[str, int], usage: Mapping[str, int], count_diff: int, bytes_diff: int
) -> tuple[bool, str | None]:
    """ZooKeeper's ``checkQuota`` on one root: (hard limit exceeded, message if any limit is).

    Args:
        limits: the parsed ``zookeeper_limits``.
        usage: the parsed ``zookeeper_stats``.
        count_diff: nodes the write adds (1 for a create, 0 for setData).
        bytes_diff: data bytes the write adds (may be negative).
    """
    message = None
    hard = False
    if count_diff and (limits.get("count", -1) > -1 or limits.get("countHardLimit", -1) > -1):
        new = usage.get("count", 0) + count_diff
        is_hard = limits.get("countHardLimit", -1) > -1
        limit = limits["countHardLimit"] if is_hard else limits.get("count", -1)
        if new > limit:
            kind = "hard" if is_hard else "soft"
            message = f"current count={new}, {kind}CountLimit={limit}"
            hard = hard or is_hard
    if bytes_diff and (limits.get("bytes", -1) > -1 or limits.get("byteHardLimit", -1) > -1):
        new = usage.get("bytes", 0) + bytes_diff
        is_hard = limits.get("byteHardLimit", -1) > -1
        limit = limits["byteHardLimit"] if is_hard else limits.get("bytes", -1)
        if new > limit:
            kind = "hard" if is_hard else "soft"
            message = f"current bytes={new}, {kind}ByteLimit={limit}"
            hard = hard or is_hard
    return hard, message
