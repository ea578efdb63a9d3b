"""Built-in plugin: the ``world``, ``digest`` and ``ip`` authentication schemes, and
``sasl`` (DIGEST-MD5) when ``sasl_users`` is configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coord.plugins.hookspecs import hookimpl
from coord.server._acl import DigestScheme, IpScheme, WorldScheme
from coord.server._sasl import SaslDigestScheme

if TYPE_CHECKING:
    from coord.server._acl import AuthScheme
    from coord.server._config import ServerConfig

__all__ = ["coord_auth_schemes"]


@hookimpl
def coord_auth_schemes(config: ServerConfig) -> list[AuthScheme]:
    """ZooKeeper's standard schemes; ``digest`` knows the configured ``super_digest``;
    ``sasl`` only with ``sasl_users`` (as ZooKeeper registers it only when configured)."""
    schemes: list[AuthScheme] = [
        WorldScheme(),
        DigestScheme(super_digest=config.super_digest),
        IpScheme(),
    ]
    if config.sasl_users:
        schemes.append(SaslDigestScheme(config.sasl_credentials, config.sasl_super_user))
    return schemes
