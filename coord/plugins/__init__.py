"""coord's plugin system: pluggy hooks for storage backends, auth schemes, transports,
settings, audit events and server start/stop (docs/plugins.md).

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
    PluginInfo,
    auth_schemes,
    list_plugins,
    load_plugins,
    notify_audit_event,
    notify_server_started,
    notify_server_stopping,
    storage_backend,
    storage_backends,
    transports,
)
from coord.plugins.hookspecs import HOOKSPEC_VERSION, PROJECT_NAME, hookimpl, hookspec

__all__ = [
    "ENTRY_POINT_GROUP",
    "HOOKSPEC_VERSION",
    "PROJECT_NAME",
    "PluginError",
    "PluginInfo",
    "auth_schemes",
    "hookimpl",
    "hookspec",
    "list_plugins",
    "load_plugins",
    "notify_audit_event",
    "notify_server_started",
    "notify_server_stopping",
    "storage_backend",
    "storage_backends",
    "transports",
]
