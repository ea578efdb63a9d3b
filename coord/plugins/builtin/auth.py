"""Built-in plugin: the ``world``, ``digest`` and ``ip`` authentication schemes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coord.plugins.hookspecs import hookimpl
from coord.server._acl import DigestScheme, IpScheme, WorldScheme

if TYPE_CHECKING:
    from coord.server._acl import AuthScheme
    from coord.server._config import ServerConfig

__all__ = ["coord_auth_schemes"]


@hookimpl
def coord_auth_schemes(config: ServerConfig) -> list[AuthScheme]:
    """ZooKeeper's standard schemes; ``digest`` knows the configured ``super_digest``."""
    return [WorldScheme(), DigestScheme(super_digest=config.super_digest), IpScheme()]
