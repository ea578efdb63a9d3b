"""The coord server: data tree, sessions, watches, request pipeline, four-letter words."""

from ._acl import AclPolicy, AuthScheme, DigestScheme, IpScheme, PeerInfo, WorldScheme, digest_id
from ._apply import ApplyResult, Entry, StateMachine
from ._server import Server, run, serve

__all__ = [
    "AclPolicy",
    "ApplyResult",
    "AuthScheme",
    "DigestScheme",
    "Entry",
    "IpScheme",
    "PeerInfo",
    "Server",
    "StateMachine",
    "WorldScheme",
    "digest_id",
    "run",
    "serve",
]
