"""The hooks a coord plugin may implement: the whole plugin API in one module.

Theory of operation
-------------------
coord uses pluggy (project name ``"coord"``). A plugin is any object or module with
functions named after the hooks below and marked with :data:`hookimpl`; the built-in storage
backends, auth schemes and transport are plugins exactly like a third party's
(:mod:`coord.plugins.builtin`). Third-party plugins are found through the ``coord.plugins``
entry-point group; the entry point's name is the plugin's name (what ``plugins.enabled``,
``plugins.disabled`` and a ``[plugins.<name>]`` settings table refer to)::

    [project.entry-points."coord.plugins"]
    kerberos = "coord_kerberos.plugin"

Call semantics, the same for every hook unless its docstring says otherwise:

- **Synchronous.** pluggy cannot await, so every hook is a plain function. The *factory*
  hooks (``coord_storage_backends``, ``coord_auth_schemes``, ``coord_transports``) return
  objects whose I/O methods are async (a :class:`~coord.server._storage.StorageBackend`,
  an :class:`~coord.server._acl.AuthScheme`, a :class:`~coord.server._transport.Transport`).
- **No hook is firstresult.** Every implementation is called, in pluggy's order (the
  last registered first); the server combines the factories' lists, so two plugins
  registering the same name is a start-up error naming both.
- **Where they run.** ``coord_validate_settings`` and the factory hooks run once, at
  start-up, in the thread that builds the :class:`~coord.server.Server` (before any event
  loop serves clients). The notification hooks (``coord_server_started``,
  ``coord_server_stopping``, ``coord_audit_event``) run in the server's event-loop thread,
  inside the loop: they must return quickly and never block (hand slow work to a thread or
  a queue).
- **Exceptions.** An exception from ``coord_validate_settings`` or a factory hook stops
  start-up with a :class:`~coord.plugins.PluginError` naming the plugin. An exception
  from a notification hook is logged (logger ``coord.server``) and swallowed: the other
  implementations still run and the server carries on.
- :mod:`coord.plugins` calls each implementation itself (to name the plugin in errors and
  to pass each plugin its own settings), so hook wrappers do not apply.

Versioning: :data:`HOOKSPEC_VERSION` is raised whenever a hook is added or an argument is
added to one; each hook's docstring says since which version it exists. A plugin may
declare the version it needs as a module (or object) attribute ``COORD_HOOKSPEC_VERSION =
2``; loading it into an older coord is then a start-up error instead of hooks silently
never called. A hook implementation may accept fewer arguments than the spec lists (pluggy
passes only those it names), so adding an argument later never breaks existing plugins.
A function named ``coord_*`` that matches no spec (a typo such as ``coord_auth_scheme``)
or lacks ``@hookimpl`` fails start-up with a message naming the plugin and the closest hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import pluggy

if TYPE_CHECKING:
    from coord.server._acl import AuthScheme
    from coord.server._audit import AuditEvent
    from coord.server._config import ServerConfig
    from coord.server._storage import StorageBackend
    from coord.server._transport import Transport

__all__ = [
    "HOOKSPEC_VERSION",
    "PROJECT_NAME",
    "coord_audit_event",
    "coord_auth_schemes",
    "coord_server_started",
    "coord_server_stopping",
    "coord_storage_backends",
    "coord_transports",
    "coord_validate_settings",
    "hookimpl",
    "hookspec",
]

#: The pluggy project name; also the entry-point group is ``coord.plugins``.
PROJECT_NAME: Final = "coord"
#: The version of this hook API. 1: storage, auth, transports, server start/stop.
#: 2: ``coord_validate_settings``, ``coord_audit_event``, the ``settings`` argument.
HOOKSPEC_VERSION: Final = 2

#: Marks a hook specification (used only in this module).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marks a plugin's hook implementation: ``@hookimpl def coord_transports(): ...``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def coord_validate_settings(settings: Mapping[str, Any]) -> None:
    """Check this plugin's own settings (its ``[plugins.<name>]`` table of the config file).

    Since version 2. Called once at start-up, before any factory hook, with the plugin's
    table (``{}`` when the config has none, so required settings can be demanded). Only
    the plugin's own implementation is called with its own table. A plugin that does not
    implement this hook accepts no settings: a table for it is a start-up error.

    Args:
        settings: the plugin's settings, as read from TOML (or ``plugin_settings``).

    Raises:
        ValueError: (or any exception) the settings are invalid; start-up stops with a
            :class:`~coord.plugins.PluginError` quoting the message and naming the plugin.
    """


@hookspec
def coord_storage_backends(
    config: ServerConfig, settings: Mapping[str, Any]
) -> list[StorageBackend]:
    """Storage backends this plugin provides.

    Since version 1 (``config`` and ``settings`` since 2). Called once at start-up; the
    server opens the one named by ``ServerConfig.storage`` (``backend.open(config)``
    returns a :class:`~coord.server._storage.LogStore`).

    Args:
        config: the server configuration.
        settings: this plugin's validated settings (``{}`` when none).

    Returns:
        Backends, each with a ``name`` unique across all plugins (built-in: ``rocksdb``,
        ``memory``). An empty list (or None) provides none.
    """
    raise NotImplementedError  # a specification: pluggy never calls it


@hookspec
def coord_auth_schemes(config: ServerConfig, settings: Mapping[str, Any]) -> list[AuthScheme]:
    """Authentication schemes this plugin provides (ACL id schemes and ``addauth``).

    Since version 1 (``settings`` since 2). Called once at start-up with the server's
    configuration. Every member of an ensemble must load the same schemes with the same
    settings: ACL checks are part of the deterministic apply. A scheme that also
    implements :class:`~coord.server._acl.SaslScheme` serves the SASL exchange
    (opcode 102) as well.

    Args:
        config: the server configuration (e.g. ``super_digest`` for the digest scheme).
        settings: this plugin's validated settings (``{}`` when none).

    Returns:
        Schemes, each with a ``name`` unique across all plugins (built-in: ``world``,
        ``digest``, ``ip``, and ``sasl`` when ``sasl_users`` is set); ``auth`` and
        ``super`` are reserved.
    """
    raise NotImplementedError  # a specification: pluggy never calls it


@hookspec
def coord_transports(config: ServerConfig, settings: Mapping[str, Any]) -> list[Transport]:
    """Transports this plugin provides; the server serves on every loaded transport.

    Since version 1 (``config`` and ``settings`` since 2). Called once at start-up; each
    transport's ``serve`` runs in the server's task group and reports the addresses it
    bound.

    Args:
        config: the server configuration.
        settings: this plugin's validated settings (``{}`` when none).

    Returns:
        Transports, each with a ``name`` unique across all plugins (built-in: ``tcp``,
        ``tls``, ``http``).
    """
    raise NotImplementedError  # a specification: pluggy never calls it


@hookspec
def coord_server_started(server: object, addresses: list[tuple[str, int]]) -> None:
    """Notification: the server is serving.

    Since version 1. Called in the server's event loop once every transport listens,
    before the first client is served. Must not block: start background work in a thread
    or through the server's own facilities. An exception is logged and does not stop the
    other implementations or the server.

    Args:
        server: the running :class:`~coord.server.Server`.
        addresses: every ``(host, port)`` the transports bound.
    """


@hookspec
def coord_server_stopping(server: object) -> None:
    """Notification: the server is shutting down.

    Since version 1. Called in the server's event loop (shielded from cancellation) after
    the listeners stopped, before the store is closed. Must not block; an exception is
    logged and does not stop the others.

    Args:
        server: the stopping server.
    """


@hookspec
def coord_audit_event(event: AuditEvent) -> None:
    """Notification: an auditable event (a state-changing request, an authentication
    attempt, the server starting or stopping).

    Since version 2. Called only when the server's ``audit`` setting is on, in the
    server's event loop, once per event, right after the ``coord.audit`` logger wrote the
    same event as a line; for a request, when its result is known (after apply for a
    write). Must not block (it is on the request path: queue the event and ship it from a
    thread); an exception is logged and the request is unaffected.

    Args:
        event: the :class:`~coord.server.AuditEvent` (frozen): who, from where, what,
            on which path, and whether it was allowed, denied or failed.
    """
