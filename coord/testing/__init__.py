"""Test helpers shipped with coord: an in-process coord server, a coord ensemble of member
processes (``CoordEnsemble``), real Apache ZooKeeper (one server or a replicated
ensemble), its CLI, a fault proxy, session faults for users' own tests
(``drop_connection``, ``expire_session``), the conformance suites of storage backends,
auth schemes and transports, and process-level fault testing (``run_chaos``, a
linearizability checker).

``coord.testing`` imports without pytest; :class:`StorageConformance`,
:class:`AuthSchemeConformance` and :class:`TransportConformance` (pytest suites) are
loaded on first access.
"""

from typing import TYPE_CHECKING

from coord.client._testing import drop_connection, expire_session
from coord.testing._chaos import (
    ChaosConfig,
    ChaosResult,
    Cluster,
    Fault,
    FaultReport,
    OneBasedCluster,
    Violation,
    render_markdown,
    run_chaos,
)
from coord.testing._ensemble import CoordEnsemble
from coord.testing._linearizability import (
    BAD_VERSION,
    Cas,
    CheckResult,
    Create,
    History,
    Model,
    Operation,
    Read,
    SequenceCounter,
    Versioned,
    VersionedRegister,
    Write,
    check_linearizability,
)
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
from coord.testing._zookeeper_ensemble import ZooKeeperEnsemble, ZooKeeperEnsembleError

if TYPE_CHECKING:
    from coord.testing._auth_conformance import AuthSchemeConformance
    from coord.testing._storage_conformance import StorageConformance
    from coord.testing._transport_conformance import TransportConformance

__all__ = [
    "AuthSchemeConformance",
    "BAD_VERSION",
    "Cas",
    "ChaosConfig",
    "ChaosResult",
    "CheckResult",
    "Cluster",
    "CoordEnsemble",
    "CoordServerThread",
    "Create",
    "Fault",
    "FaultReport",
    "History",
    "Model",
    "OneBasedCluster",
    "Operation",
    "Read",
    "SequenceCounter",
    "StorageConformance",
    "SyncTcpProxy",
    "TcpProxy",
    "TransportConformance",
    "Versioned",
    "VersionedRegister",
    "Violation",
    "Write",
    "ZkCliCommandOutput",
    "ZkCliResult",
    "ZooKeeperEnsemble",
    "ZooKeeperEnsembleError",
    "ZooKeeperProcess",
    "ZooKeeperStartError",
    "drop_connection",
    "expire_session",
    "check_linearizability",
    "four_letter_word",
    "render_markdown",
    "require_zookeeper",
    "run_zkcli",
    "run_chaos",
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
