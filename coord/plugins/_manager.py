"""Loading plugins and asking them for storage backends, auth schemes and transports.

Theory of operation
-------------------
:func:`load_plugins` builds a pluggy ``PluginManager`` the way pytest does at start-up:
add the hookspecs, register the built-in plugin modules, block the plugins the
configuration disables (``plugins.disabled``) or does not enable (``plugins.enabled``, for
entry-point plugins), load third-party plugins from the ``coord.plugins`` entry-point
group, then ``check_pending()`` so a misspelt hook implementation stops the server with a
message instead of being silently ignored. Then each plugin's settings (its
``[plugins.<name>]`` table) are handed to its ``coord_validate_settings``; settings for a
plugin that is not loaded, or that takes none, are errors. Every failure is a
:class:`PluginError` that names the plugin concerned and says what to do.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from coord.plugins import hookspecs
from coord.plugins.builtin import BUILTIN_PLUGINS

if TYPE_CHECKING:
    from coord.server._acl import AuthScheme
    from coord.server._audit import AuditEvent
    from coord.server._config import ServerConfig
    from coord.server._storage import StorageBackend
    from coord.server._transport import Transport

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginError",
    "PluginInfo",
    "auth_schemes",
    "list_plugins",
    "load_plugins",
    "notify_audit_event",
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
    """A pluggy manager that also rejects ``coord_*`` functions lacking ``@hookimpl`` and
    plugins needing a newer hookspec version, and remembers the configuration, each
    plugin's settings and why a plugin is not loaded."""

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self.coord_config: ServerConfig | None = None
        self.coord_settings: dict[str, Mapping[str, Any]] = {}
        #: Plugin name -> "disabled" / "not enabled", for blocked plugins.
        self.coord_blocked_why: dict[str, str] = {}
        #: Entry-point plugin name -> "<distribution> <version>", "<entry point value>".
        self.coord_entry_points: dict[str, tuple[str, str, str]] = {}

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        wanted = getattr(plugin, "COORD_HOOKSPEC_VERSION", None)
        if wanted is not None:
            if not isinstance(wanted, int) or isinstance(wanted, bool):
                raise PluginError(
                    f"plugin {name or _describe(plugin)}: COORD_HOOKSPEC_VERSION must be an "
                    f"integer, not {wanted!r}"
                )
            if wanted > hookspecs.HOOKSPEC_VERSION:
                raise PluginError(
                    f"plugin {name or _describe(plugin)} needs coord hookspec version "
                    f"{wanted}, but this coord ({_coord_version()}) provides version "
                    f"{hookspecs.HOOKSPEC_VERSION}; upgrade coord or disable the plugin "
                    "(plugins.disabled)"
                )
        return super().register(plugin, name)

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


def _coord_version() -> str:
    import coord

    return str(getattr(coord, "__version__", "?"))


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
        config: supplies ``plugins_enabled``, ``plugins_disabled`` and
            ``plugin_settings`` (and is what the factory hooks receive); None is the
            default configuration.
        plugins: extra plugin objects or modules to register (embedding, tests), under
            their ``__name__`` when they have one.
        entry_points: whether to load the ``coord.plugins`` entry-point group.

    Returns:
        A pluggy ``PluginManager`` with every hook checked against its spec and every
        plugin's settings validated.

    Raises:
        PluginError: a name in ``plugins_enabled``, ``plugins_disabled`` or
            ``plugin_settings`` names no plugin (the message lists the available ones and
            the closest name); settings are given for a disabled plugin, for one that
            accepts none (no ``coord_validate_settings``), or its
            ``coord_validate_settings`` rejects them; an entry point fails to import or
            clashes with another plugin's name; a plugin needs a newer hookspec version;
            a plugin implements an unknown hook (``coord_auth_scheme``) or has a
            ``coord_*`` function without ``@hookimpl``, or a hook implementation takes
            arguments its spec does not provide.
    """
    if config is None:
        from coord.server._config import ServerConfig

        config = ServerConfig()
    pm = _CoordPluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.coord_config = config
    eps = _entry_points() if entry_points else []
    for ep in eps:
        dist = ep.dist
        dist_name = f"{dist.name} {dist.version}" if dist is not None else "?"
        pm.coord_entry_points[ep.name] = (dist_name, ep.value, dist.version if dist else "")

    builtin_names = [name for name, _ in BUILTIN_PLUGINS]
    ep_names = [ep.name for ep in eps]
    extra = list(plugins)
    available = builtin_names + ep_names + [pm.get_canonical_name(p) for p in extra]

    def check_known(name: str, setting: str) -> None:
        if name not in available:
            match = difflib.get_close_matches(name, available, n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            raise PluginError(
                f"{setting} names unknown plugin {name!r}{hint}; available plugins: "
                f"{', '.join(available)} (coord plugins list shows them)"
            )

    disabled = tuple(dict.fromkeys(config.plugins_disabled))
    for name in disabled:
        check_known(name, "plugins_disabled")
        pm.set_blocked(name)
        pm.coord_blocked_why[name] = "disabled"
    enabled = tuple(dict.fromkeys(config.plugins_enabled))
    if "*" not in enabled:
        for name in enabled:
            check_known(name, "plugins_enabled")
        for name in ep_names:
            if name not in enabled and not pm.is_blocked(name):
                pm.set_blocked(name)
                pm.coord_blocked_why[name] = "not enabled"

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
    _validate_settings(pm, config, available)
    return pm


def _validate_settings(pm: _CoordPluginManager, config: ServerConfig, available: list[str]) -> None:
    """Give each plugin its settings table through ``coord_validate_settings``."""
    settings = config.plugin_settings
    for name in settings:
        if name not in available:
            match = difflib.get_close_matches(name, available, n=1)
            hint = f"did you mean [plugins.{match[0]}]? " if match else ""
            raise PluginError(
                f"settings [plugins.{name}] name unknown plugin {name!r}; {hint}available "
                f"plugins: {', '.join(available)}"
            )
        if pm.is_blocked(name):
            raise PluginError(
                f"settings [plugins.{name}] are given for plugin {name!r}, which is "
                f"{pm.coord_blocked_why.get(name, 'disabled')}; remove the table or enable "
                "the plugin"
            )
    caller: pluggy.HookCaller = pm.hook.coord_validate_settings
    validators = {impl.plugin_name: impl for impl in caller.get_hookimpls()}
    for name in settings:
        if name not in validators:
            raise PluginError(
                f"plugin {name!r} accepts no settings (it does not implement "
                f"coord_validate_settings); remove the [plugins.{name}] table"
            )
    for name, impl in validators.items():
        table = settings.get(name, {})
        try:
            impl.function(*({"settings": table}[arg] for arg in impl.argnames))
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} rejects its settings ([plugins.{name}]): "
                f"{type(exc).__name__ + ': ' if not isinstance(exc, ValueError) else ''}{exc}"
            ) from exc
        pm.coord_settings[name] = table


def _collect(
    pm: pluggy.PluginManager,
    hook_name: str,
    protocol: type,
    kwargs: dict[str, object],
) -> list[tuple[str, Any]]:
    """Call every implementation of a factory hook; ``(plugin name, object)`` per result."""
    out: list[tuple[str, Any]] = []
    caller: pluggy.HookCaller = getattr(pm.hook, hook_name)
    config = getattr(pm, "coord_config", None)
    if config is None:
        from coord.server._config import ServerConfig

        config = ServerConfig()
    all_settings: Mapping[str, Mapping[str, Any]] = getattr(pm, "coord_settings", {})
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        args = {"config": config, **kwargs, "settings": all_settings.get(impl.plugin_name, {})}
        try:
            result = impl.function(*(args[arg] for arg in impl.argnames))
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


def notify_audit_event(pm: pluggy.PluginManager, event: AuditEvent) -> None:
    """Call every ``coord_audit_event``; a failing one is logged, the rest still run."""
    caller: pluggy.HookCaller = pm.hook.coord_audit_event
    if caller.get_hookimpls():
        _notify(pm, "coord_audit_event", {"event": event})


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One row of ``coord plugins list``.

    Attributes:
        name: the plugin's name (entry-point name, ``builtin.*``, or the registered name).
        version: the distribution's version (coord's own for built-ins; the module's
            ``__version__`` for directly registered plugins; "" when unknown).
        source: ``built-in (<module>)``, ``<distribution> <version> (entry point <value>)``
            or ``registered directly (<module or object>)``.
        hooks: the hooks the plugin implements (empty when it is not loaded).
        state: ``enabled``, ``disabled`` (``plugins.disabled``) or ``not enabled`` (an
            entry-point plugin left out of ``plugins.enabled``).
    """

    name: str
    version: str
    source: str
    hooks: tuple[str, ...]
    state: str

    @property
    def enabled(self) -> bool:
        """Whether the plugin is loaded."""
        return self.state == "enabled"


def list_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every known plugin, in registration order (blocked ones included), for
    ``coord plugins list``."""
    builtin = dict(BUILTIN_PLUGINS)
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distributions()}
    eps: dict[str, tuple[str, str, str]] = getattr(pm, "coord_entry_points", {})
    why: dict[str, str] = getattr(pm, "coord_blocked_why", {})
    out: list[PluginInfo] = []
    seen: set[str] = set()
    for name, plugin in pm.list_name_plugin():
        seen.add(name)
        hooks: tuple[str, ...] = ()
        if plugin is None:
            state = why.get(name, "disabled")
        else:
            state = "enabled"
            hooks = tuple(sorted(c.name for c in pm.get_hookcallers(plugin) or ()))
        if name in builtin:
            source = f"built-in ({builtin[name]})"
            version = _coord_version()
        elif name in eps or id(plugin) in dists:
            if id(plugin) in dists:
                dist = dists[id(plugin)]
                dist_name, version = dist.metadata["Name"], dist.version
                value = eps.get(name, ("", "?", ""))[1]
            else:
                dist_name, value, version = eps[name]
                dist_name = dist_name.rsplit(" ", 1)[0]
            source = f"{dist_name} {version} (entry point {name} = {value})"
        else:
            module = getattr(plugin, "__name__", None) or type(plugin).__module__
            source = f"registered directly ({module})"
            version = str(getattr(plugin, "__version__", ""))
        out.append(PluginInfo(name, version, source, hooks, state))
    return out
