"""Test helpers shipped with coord: real Apache ZooKeeper, its CLI, and a fault proxy."""

from coord.testing._proxy import SyncTcpProxy, TcpProxy
from coord.testing._zkcli import ZkCliCommandOutput, ZkCliResult, run_zkcli
from coord.testing._zookeeper import (
    ZooKeeperProcess,
    ZooKeeperStartError,
    four_letter_word,
    require_zookeeper,
    zookeeper_available,
)

__all__ = [
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
