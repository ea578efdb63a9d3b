"""The coord server: data tree, sessions, watches, request pipeline, four-letter words."""

from ._acl import AclPolicy, AuthScheme, DigestScheme, IpScheme, PeerInfo, WorldScheme, digest_id
from ._apply import ApplyResult, Entry, StateMachine
from ._config import ConfigError, ServerConfig, load_config
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
    "AclPolicy",
    "ApplyResult",
    "AuthScheme",
    "ConfigError",
    "ConnectionHandler",
    "DigestScheme",
    "Entry",
    "HardState",
    "IpScheme",
    "LogStore",
    "PeerInfo",
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
