"""The hooks a coord plugin may implement: the whole plugin API in one module.

Theory of operation
-------------------
coord uses pluggy (project name ``"coord"``). A plugin is any object or module with
functions named after the hooks below and marked with :data:`hookimpl`; the built-in storage
backend, auth schemes and transport are plugins exactly like a third party's
(:mod:`coord.plugins.builtin`). Third-party plugins are found through the ``coord.plugins``
entry-point group::

    [project.entry-points."coord.plugins"]
    kerberos = "coord_kerberos.plugin"

Hooks are synchronous *factories*: pluggy cannot await, so a hook returns objects whose
methods are async (a :class:`~coord.server._storage.StorageBackend`, an
:class:`~coord.server._acl.AuthScheme`, a :class:`~coord.server._transport.Transport`).
No hook is ``firstresult``: every implementation is called and the server combines their
lists, so two plugins registering the same name is a start-up error naming both. To name
the plugin in such errors, :mod:`coord.plugins` calls each implementation of the factory
hooks itself (so hook wrappers do not apply to them), and delivers the notification hooks to
every implementation even when one raises.

A hook implementation may accept fewer arguments than the spec lists (pluggy passes only
those it names), so adding an argument to a spec later does not break existing plugins.
A function named ``coord_*`` that matches no spec (a typo such as ``coord_auth_scheme``)
fails start-up (``PluginManager.check_pending``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from coord.server._acl import AuthScheme
    from coord.server._config import ServerConfig
    from coord.server._storage import StorageBackend
    from coord.server._transport import Transport

__all__ = [
    "PROJECT_NAME",
    "coord_auth_schemes",
    "coord_server_started",
    "coord_server_stopping",
    "coord_storage_backends",
    "coord_transports",
    "hookimpl",
    "hookspec",
]

#: The pluggy project name; also the entry-point group is ``coord.plugins``.
PROJECT_NAME = "coord"

#: Marks a hook specification (used only in this module).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marks a plugin's hook implementation: ``@hookimpl def coord_transports(): ...``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def coord_storage_backends() -> list[StorageBackend]:
    """Storage backends this plugin provides.

    Called once at start-up; the server opens the one named by ``ServerConfig.storage``
    (``backend.open(config)`` returns a :class:`~coord.server._storage.LogStore`).

    Returns:
        Backends, each with a ``name`` unique across all plugins (built-in: ``rocksdb``,
        ``memory``). An empty list (or None) provides none.
    """
    raise NotImplementedError  # a specification: pluggy never calls it


@hookspec
def coord_auth_schemes(config: ServerConfig) -> list[AuthScheme]:
    """Authentication schemes this plugin provides (ACL id schemes and ``addauth``).

    Called once at start-up with the server's configuration. Every member of an ensemble
    must load the same schemes: ACL checks are part of the deterministic apply.

    Args:
        config: the server configuration (e.g. ``super_digest`` for the digest scheme).

    Returns:
        Schemes, each with a ``name`` unique across all plugins (built-in: ``world``,
        ``digest``, ``ip``); ``auth`` and ``super`` are reserved.
    """
    raise NotImplementedError  # a specification: pluggy never calls it


@hookspec
def coord_transports() -> list[Transport]:
    """Transports this plugin provides; the server serves on every loaded transport.

    Called once at start-up; each transport's ``serve`` runs in the server's task group
    and reports the addresses it bound.

    Returns:
        Transports, each with a ``name`` unique across all plugins (built-in: ``tcp``).
    """
    raise NotImplementedError  # a specification: pluggy never calls it


@hookspec
def coord_server_started(server: object, addresses: list[tuple[str, int]]) -> None:
    """Notification: the server is serving.

    Every implementation is called (see :func:`coord.plugins.notify_server_started`); an
    exception is logged and does not stop the others or the server. Must not block: start
    background work in a thread or through the server's own facilities.

    Args:
        server: the running server.
        addresses: every ``(host, port)`` the transports bound.
    """


@hookspec
def coord_server_stopping(server: object) -> None:
    """Notification: the server is shutting down.

    Every implementation is called (see :func:`coord.plugins.notify_server_stopping`); an
    exception is logged and does not stop the others. Must not block.

    Args:
        server: the stopping server.
    """
