"""Test helpers shipped with coord: real Apache ZooKeeper, its CLI, a fault proxy, and the
storage backends' conformance suite.

``coord.testing`` imports without pytest; :class:`StorageConformance` (a pytest suite)
is loaded on first access.
"""

from typing import TYPE_CHECKING

from coord.testing._proxy import SyncTcpProxy, TcpProxy
from coord.testing._zkcli import ZkCliCommandOutput, ZkCliResult, run_zkcli
from coord.testing._zookeeper import (
    ZooKeeperProcess,
    ZooKeeperStartError,
    four_letter_word,
    require_zookeeper,
    zookeeper_available,
)

if TYPE_CHECKING:
    from coord.testing._storage_conformance import StorageConformance

__all__ = [
    "StorageConformance",
    "SyncTcpProxy",
    "TcpProxy",
    "ZkCliCommandOutput",
    "ZkCliResult",
    "ZooKeeperProcess",
    "ZooKeeperStartError",
    "four_letter_word",
    "require_zookeeper",
    "run_zkcli",
    "zookeeper_available",
]


def __getattr__(name: str) -> object:
    if name == "StorageConformance":
        from coord.testing._storage_conformance import StorageConformance

        return StorageConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
