"""Loading plugins and asking them for storage backends, auth schemes and transports.

Theory of operation
-------------------
:func:`load_plugins` builds a pluggy ``PluginManager`` the way pytest does at start-up:
add the hookspecs, register the built-in plugin modules, block the plugins the
configuration disables, load third-party plugins from the ``coord.plugins`` entry-point
group, then ``check_pending()`` so a misspelt hook implementation stops the server with a
message instead of being silently ignored. Every failure is a :class:`PluginError` that
names the plugin concerned.

The factory hooks (``coord_storage_backends``, ``coord_auth_schemes``, ``coord_transports``)
are collected by calling each implementation in pluggy's call order, so each returned object
is attributed to its plugin: a name registered twice is reported with both plugins, and an
object that does not satisfy its Protocol is reported with the plugin that returned it.
(Hook wrappers therefore do not apply to the factory hooks.) The notification hooks are
delivered to every implementation even when one fails.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from coord.plugins import hookspecs
from coord.plugins.builtin import BUILTIN_PLUGINS

if TYPE_CHECKING:
    from coord.server._acl import AuthScheme
    from coord.server._config import ServerConfig
    from coord.server._storage import StorageBackend
    from coord.server._transport import Transport

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginError",
    "auth_schemes",
    "list_plugins",
    "load_plugins",
    "notify_server_started",
    "notify_server_stopping",
    "storage_backend",
    "storage_backends",
    "transports",
]

#: The entry-point group third-party plugins register under.
ENTRY_POINT_GROUP = "coord.plugins"
#: Auth scheme names no plugin may register: ACL pseudo-schemes with a fixed meaning.
RESERVED_SCHEMES = frozenset({"auth", "super"})
_HOOK_PREFIX = "coord_"

log = logging.getLogger("coord.server")
_T = TypeVar("_T")


class PluginError(Exception):
    """A plugin cannot be loaded or misbehaves at start-up.

    Raised by :func:`load_plugins` (import failures, unknown or unmarked hook
    implementations, unknown names in ``plugins_disabled``, name clashes) and by the
    collecting helpers (a hook returning the wrong thing, two plugins registering the
    same name, an unknown storage backend). The CLI prints it and exits with status 2.
    """


class _CoordPluginManager(pluggy.PluginManager):
    """A pluggy manager that also rejects ``coord_*`` functions lacking ``@hookimpl``."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(_HOOK_PREFIX):
            attr = inspect.getattr_static(plugin, name, None)
            if isinstance(attr, staticmethod | classmethod) or inspect.isroutine(attr):
                raise PluginError(
                    f"{name!r} in plugin {_describe(plugin)} looks like a hook implementation "
                    "but is not marked with @coord.plugins.hookimpl"
                )
        return opts


def _describe(plugin: object) -> str:
    name = getattr(plugin, "__name__", None)
    if isinstance(name, str):
        return repr(name)
    return repr(plugin)


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The group's entry points, one per name (a distribution found twice counts once)."""
    seen: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        other = seen.get(ep.name)
        if other is not None and other.value != ep.value:
            raise PluginError(
                f"two plugins are registered under the entry-point name {ep.name!r} "
                f"({other.value!r} and {ep.value!r}); uninstall one of them"
            )
        seen[ep.name] = ep
    return list(seen.values())


def _check_pending(pm: pluggy.PluginManager) -> None:
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        known = sorted(
            n for n in vars(pm.hook) if not n.startswith("_") and getattr(pm.hook, n).has_spec()
        )
        for hook_name in vars(pm.hook):
            caller = getattr(pm.hook, hook_name)
            if hook_name.startswith("_") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                match = difflib.get_close_matches(hook_name, known, n=1)
                hint = f"did you mean {match[0]!r}?" if match else f"known: {', '.join(known)}"
                raise PluginError(
                    f"plugin {impl.plugin_name!r} implements unknown hook {hook_name!r}; {hint}"
                ) from exc
        raise PluginError(str(exc)) from exc


def load_plugins(
    config: ServerConfig | None = None,
    *,
    plugins: Iterable[object] = (),
    entry_points: bool = True,
) -> pluggy.PluginManager:
    """Build the plugin manager: built-ins, extra ``plugins``, then entry-point plugins.

    Args:
        config: supplies ``plugins_disabled``; None disables nothing.
        plugins: extra plugin objects or modules to register (embedding, tests), under
            their ``__name__`` when they have one.
        entry_points: whether to load the ``coord.plugins`` entry-point group.

    Returns:
        A pluggy ``PluginManager`` with every hook checked against its spec.

    Raises:
        PluginError: a name in ``plugins_disabled`` names no plugin (the message lists the
            available ones); an entry point fails to import or clashes with another
            plugin's name; a plugin implements an unknown hook (``coord_auth_scheme``) or
            has a ``coord_*`` function without ``@hookimpl``, or a hook implementation
            takes arguments its spec does not provide.
    """
    pm = _CoordPluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    eps = _entry_points() if entry_points else []

    disabled = tuple(dict.fromkeys(config.plugins_disabled)) if config is not None else ()
    available = [name for name, _ in BUILTIN_PLUGINS] + [ep.name for ep in eps]
    extra = list(plugins)
    available += [pm.get_canonical_name(p) for p in extra]
    for name in disabled:
        if name not in available:
            match = difflib.get_close_matches(name, available, n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            raise PluginError(
                f"plugins_disabled names unknown plugin {name!r}{hint}; available plugins: "
                f"{', '.join(available)}"
            )
        pm.set_blocked(name)

    def register(plugin: object, name: str | None, what: str) -> None:
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{what} is invalid: {exc}") from exc
        except ValueError as exc:  # a name or object registered twice
            raise PluginError(f"{what} cannot be registered: {exc}") from exc

    for name, module_name in BUILTIN_PLUGINS:
        if not pm.is_blocked(name):
            register(importlib.import_module(module_name), name, f"built-in plugin {name!r}")
    for plugin in extra:
        register(plugin, None, f"plugin {_describe(plugin)}")

    for ep in eps:
        if pm.is_blocked(ep.name):
            continue
        if pm.has_plugin(ep.name):
            raise PluginError(
                f"entry-point plugin {ep.name!r} ({ep.value}) has the name of an already "
                "registered plugin; rename its entry point"
            )
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)
        except PluginError:
            raise
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"entry-point plugin {ep.name!r} is invalid: {exc}") from exc
        except Exception as exc:
            raise PluginError(
                f"entry-point plugin {ep.name!r} ({ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    _check_pending(pm)
    return pm


def _collect(
    pm: pluggy.PluginManager,
    hook_name: str,
    protocol: type,
    kwargs: dict[str, object],
) -> list[tuple[str, Any]]:
    """Call every implementation of a factory hook; ``(plugin name, object)`` per result."""
    out: list[tuple[str, Any]] = []
    caller: pluggy.HookCaller = getattr(pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        try:
            result = impl.function(*(kwargs[arg] for arg in impl.argnames))
        except Exception as exc:
            raise PluginError(
                f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
            ) from exc
        if result is None:
            continue
        if not isinstance(result, list | tuple):
            raise PluginError(
                f"plugin {impl.plugin_name!r}: {hook_name} must return a list of "
                f"{protocol.__name__} objects, not {type(result).__name__}"
            )
        for item in result:
            if not isinstance(item, protocol):
                raise PluginError(
                    f"plugin {impl.plugin_name!r}: {hook_name} returned {item!r}, which does "
                    f"not implement {protocol.__name__}"
                )
            name = getattr(item, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(
                    f"plugin {impl.plugin_name!r}: {hook_name} returned {item!r} without a "
                    "name (a non-empty string)"
                )
            out.append((impl.plugin_name, item))
    return out


def _by_name(items: Sequence[tuple[str, _T]], what: str) -> dict[str, _T]:
    found: dict[str, tuple[str, _T]] = {}
    for plugin_name, item in items:
        name: str = getattr(item, "name")  # noqa: B009 - checked by _collect
        if name in found:
            raise PluginError(
                f"{what} {name!r} is registered by two plugins: {found[name][0]!r} and "
                f"{plugin_name!r}; disable one of them with plugins_disabled"
            )
        found[name] = (plugin_name, item)
    return {name: item for name, (_, item) in found.items()}


def storage_backends(pm: pluggy.PluginManager) -> dict[str, StorageBackend]:
    """Every storage backend the plugins provide, by name.

    Raises:
        PluginError: two plugins provide the same name, or a plugin returns something
            that is not a :class:`~coord.server._storage.StorageBackend`.
    """
    from coord.server._storage import StorageBackend

    items = _collect(pm, "coord_storage_backends", StorageBackend, {})
    return _by_name(items, "storage backend")


def storage_backend(pm: pluggy.PluginManager, name: str) -> StorageBackend:
    """The storage backend called ``name`` (``ServerConfig.storage``).

    Raises:
        PluginError: no plugin provides ``name`` (the message lists those available), or
            as :func:`storage_backends`.
    """
    backends = storage_backends(pm)
    try:
        return backends[name]
    except KeyError:
        match = difflib.get_close_matches(name, backends, n=1)
        hint = f"did you mean {match[0]!r}? " if match else ""
        raise PluginError(
            f"unknown storage backend {name!r}; {hint}available: "
            f"{', '.join(sorted(backends)) or 'none (all storage plugins disabled?)'}"
        ) from None


def auth_schemes(pm: pluggy.PluginManager, config: ServerConfig) -> dict[str, AuthScheme]:
    """Every auth scheme the plugins provide, by scheme name.

    Raises:
        PluginError: two plugins provide the same scheme (the message names both), a
            scheme is called ``auth`` or ``super`` (reserved), or a plugin returns
            something that is not an :class:`~coord.server._acl.AuthScheme`.
    """
    from coord.server._acl import AuthScheme

    items = _collect(pm, "coord_auth_schemes", AuthScheme, {"config": config})
    for plugin_name, scheme in items:
        if scheme.name in RESERVED_SCHEMES:
            raise PluginError(
                f"plugin {plugin_name!r} registers auth scheme {scheme.name!r}, a reserved "
                "ACL scheme name"
            )
    return _by_name(items, "auth scheme")


def transports(pm: pluggy.PluginManager) -> list[Transport]:
    """Every transport the plugins provide, in hook call order.

    Raises:
        PluginError: two plugins provide the same transport name, or a plugin returns
            something that is not a :class:`~coord.server._transport.Transport`.
    """
    from coord.server._transport import Transport

    items = _collect(pm, "coord_transports", Transport, {})
    return list(_by_name(items, "transport").values())


def _notify(pm: pluggy.PluginManager, hook_name: str, kwargs: dict[str, object]) -> None:
    caller: pluggy.HookCaller = getattr(pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        try:
            impl.function(*(kwargs[arg] for arg in impl.argnames))
        except Exception:
            log.exception("plugin %r failed in %s", impl.plugin_name, hook_name)


def notify_server_started(
    pm: pluggy.PluginManager, server: object, addresses: list[tuple[str, int]]
) -> None:
    """Call every ``coord_server_started``; a failing one is logged, the rest still run."""
    _notify(pm, "coord_server_started", {"server": server, "addresses": addresses})


def notify_server_stopping(pm: pluggy.PluginManager, server: object) -> None:
    """Call every ``coord_server_stopping``; a failing one is logged, the rest still run."""
    _notify(pm, "coord_server_stopping", {"server": server})


def list_plugins(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """``(name, source)`` of every plugin, in registration order, for ``coord plugins list``.

    The source is ``built-in (<module>)``, ``<distribution> <version> (entry point)``,
    ``registered directly (<module or object>)``, or ``disabled`` for a blocked name.
    """
    builtin = dict(BUILTIN_PLUGINS)
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out: list[tuple[str, str]] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            source = "disabled"
        elif name in builtin:
            source = f"built-in ({builtin[name]})"
        elif id(plugin) in dists:
            dist = dists[id(plugin)]
            source = f"{dist.project_name} {dist.version} (entry point)"
        else:
            module = getattr(plugin, "__name__", None) or type(plugin).__module__
            source = f"registered directly ({module})"
        out.append((name, source))
    return out
