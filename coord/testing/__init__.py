"""Test helpers shipped with coord: an in-process coord server, real Apache ZooKeeper, its
CLI, a fault proxy, session faults for users' own tests (``drop_connection``,
``expire_session``), and the conformance suites of storage backends, auth schemes and
transports.

``coord.testing`` imports without pytest; :class:`StorageConformance`,
:class:`AuthSchemeConformance` and :class:`TransportConformance` (pytest suites) are
loaded on first access.
"""

from typing import TYPE_CHECKING

from coord.client._testing import drop_connection, expire_session
from coord.testing._proxy import SyncTcpProxy, TcpProxy
from coord.testing._server import CoordServerThread, running_server
from coord.testing._zkcli import ZkCliCommandOutput, ZkCliResult, run_zkcli
from coord.testing._zookeeper import (
    ZooKeeperProcess,
    ZooKeeperStartError,
    four_letter_word,
    require_zookeeper,
    zookeeper_available,
)

if TYPE_CHECKING:
    from coord.testing._auth_conformance import AuthSchemeConformance
    from coord.testing._storage_conformance import StorageConformance
    from coord.testing._transport_conformance import TransportConformance

__all__ = [
    "AuthSchemeConformance",
    "CoordServerThread",
    "StorageConformance",
    "SyncTcpProxy",
    "TcpProxy",
    "TransportConformance",
    "ZkCliCommandOutput",
    "ZkCliResult",
    "ZooKeeperProcess",
    "ZooKeeperStartError",
    "drop_connection",
    "expire_session",
    "four_letter_word",
    "require_zookeeper",
    "run_zkcli",
    "running_server",
    "zookeeper_available",
]


def __getattr__(name: str) -> object:
    if name == "StorageConformance":
        from coord.testing._storage_conformance import StorageConformance

        return StorageConformance
    if name == "AuthSchemeConformance":
        from coord.testing._auth_conformance import AuthSchemeConformance

        return AuthSchemeConformance
    if name == "TransportConformance":
        from coord.testing._transport_conformance import TransportConformance

        return TransportConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
