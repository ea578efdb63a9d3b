"""coord's plugin system: pluggy hooks for storage backends, auth schemes and transports.

Write a plugin as a module of ``@hookimpl`` functions named after the hooks in
:mod:`coord.plugins.hookspecs` and register it under the ``coord.plugins`` entry-point
group::

    from coord.plugins import hookimpl

    @hookimpl
    def coord_auth_schemes(config):
        return [KerberosScheme(config)]
"""

from coord.plugins._manager import (
    ENTRY_POINT_GROUP,
    PluginError,
    auth_schemes,
    list_plugins,
    load_plugins,
    notify_server_started,
    notify_server_stopping,
    storage_backend,
    storage_backends,
    transports,
)
from coord.plugins.hookspecs import PROJECT_NAME, hookimpl, hookspec

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "PluginError",
    "auth_schemes",
    "hookimpl",
    "hookspec",
    "list_plugins",
    "load_plugins",
    "notify_server_started",
    "notify_server_stopping",
    "storage_backend",
    "storage_backends",
    "transports",
]
