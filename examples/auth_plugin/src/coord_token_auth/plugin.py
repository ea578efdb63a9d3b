"""The coord plugin module: registered under the ``coord.plugins`` entry point
``token_auth`` (see pyproject.toml).

Settings, in the server's config file::

    [plugins.token_auth]
    public_keys = ["<base64url Ed25519 public key>", ...]   # required
    leeway = 30                                            # seconds, default 0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coord.plugins import hookimpl
from coord_token_auth._token import TokenScheme, load_public_key

#: This plugin uses coord_validate_settings and the settings argument (hookspec 2).
COORD_HOOKSPEC_VERSION = 2

_KNOWN = {"public_keys", "leeway"}


@hookimpl
def coord_validate_settings(settings: Mapping[str, Any]) -> None:
    """Demand ``public_keys`` (a non-empty list of keys) and an optional ``leeway``."""
    unknown = sorted(set(settings) - _KNOWN)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: public_keys, leeway")
    keys = settings.get("public_keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise ValueError(
            "public_keys must be a non-empty list of base64url Ed25519 public keys "
            "(coord-token keygen prints one)"
        )
    for key in keys:
        load_public_key(key)  # ValueError names what is wrong
    leeway = settings.get("leeway", 0)
    if isinstance(leeway, bool) or not isinstance(leeway, int | float) or leeway < 0:
        raise ValueError(f"leeway must be a non-negative number of seconds, not {leeway!r}")


@hookimpl
def coord_auth_schemes(settings: Mapping[str, Any]) -> list[TokenScheme]:
    """The ``token`` scheme, trusting the configured keys."""
    return [TokenScheme(settings["public_keys"], leeway=float(settings.get("leeway", 0)))]
