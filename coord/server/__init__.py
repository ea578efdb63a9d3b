"""The coord server: data tree, sessions, watches, request pipeline, four-letter words."""

from ._acl import (
    AclPolicy,
    AuthScheme,
    DigestScheme,
    IpScheme,
    PeerInfo,
    SaslExchange,
    SaslScheme,
    WorldScheme,
    digest_id,
)
from ._apply import ApplyResult, Entry, StateMachine
from ._audit import AUDIT_LOGGER, AuditEvent
from ._config import ConfigError, ServerConfig, load_config
from ._sasl import DigestMD5Server, SaslDigestScheme
from ._server import Server, run, serve
from ._storage import (
    HardState,
    LogStore,
    StorageBackend,
    StoreBatch,
    StoreCorruptedError,
    StoreError,
    StoreLockedError,
)
from ._transport import ConnectionHandler, Transport

__all__ = [
    "AUDIT_LOGGER",
    "AclPolicy",
    "ApplyResult",
    "AuditEvent",
    "AuthScheme",
    "ConfigError",
    "ConnectionHandler",
    "DigestMD5Server",
    "DigestScheme",
    "Entry",
    "HardState",
    "IpScheme",
    "LogStore",
    "PeerInfo",
    "SaslDigestScheme",
    "SaslExchange",
    "SaslScheme",
    "Server",
    "ServerConfig",
    "StateMachine",
    "StorageBackend",
    "StoreBatch",
    "StoreCorruptedError",
    "StoreError",
    "StoreLockedError",
    "Transport",
    "WorldScheme",
    "digest_id",
    "load_config",
    "run",
    "serve",
]
