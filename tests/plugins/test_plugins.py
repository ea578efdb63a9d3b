"""The plugin manager: built-ins through the hooks, third parties through entry points,
and every mistake a start-up error that names the plugin."""

from __future__ import annotations

import logging
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import coord.plugins
from coord.plugins import (
    PluginError,
    auth_schemes,
    hookimpl,
    list_plugins,
    load_plugins,
    notify_server_started,
    notify_server_stopping,
    storage_backend,
    storage_backends,
    transports,
)
from coord.plugins.builtin.memory_store import MemoryBackend, MemoryStore
from coord.plugins.builtin.rocksdb_store import RocksDBBackend
from coord.plugins.builtin.tcp import TcpTransport
from coord.protocol import Id
from coord.server._acl import DigestScheme, PeerInfo, digest_id
from coord.server._config import ServerConfig
from coord.server._storage import LogStore, StorageBackend, StoreBatch, StoreError
from coord.server._transport import Transport

BUILTINS = [
    "builtin.memory_store",
    "builtin.rocksdb_store",
    "builtin.auth",
    "builtin.tcp",
    "builtin.tls",
    "builtin.http_api",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeScheme:
    """A minimal third-party auth scheme."""

    is_authenticated = True

    def __init__(self, name: str = "token") -> None:
        self.name = name

    def connection_ids(self, peer: PeerInfo) -> list[Id]:
        return []

    def authenticate(self, peer: PeerInfo, credentials: bytes) -> list[Id]:
        return [Id(self.name, credentials.decode())]

    def is_valid(self, acl_id: str) -> bool:
        return bool(acl_id)

    def matches(self, caller_id: str, acl_id: str) -> bool:
        return caller_id == acl_id

    def user_name(self, caller_id: str) -> str:
        return caller_id


class TokenPlugin:
    """A plugin object (not a module) providing one auth scheme."""

    def __init__(self, scheme_name: str = "token") -> None:
        self.scheme_name = scheme_name
        self.__name__ = f"{scheme_name}_plugin"

    @hookimpl
    def coord_auth_schemes(self, config: ServerConfig) -> list[FakeScheme]:
        return [FakeScheme(self.scheme_name)]


def test_plugins_exports_match_all() -> None:
    """coord.plugins re-exports exactly its __all__ (CONVENTIONS.md item 12)."""
    for name in coord.plugins.__all__:
        assert hasattr(coord.plugins, name), name
    public = {n for n in vars(coord.plugins) if not n.startswith("_")}
    modules = {"hookspecs", "builtin"}
    assert public - modules == set(coord.plugins.__all__)


def test_load_plugins_registers_builtins_through_the_hooks() -> None:
    """The built-ins are plugins like any other: found only through the hooks."""
    config = ServerConfig(super_digest=digest_id("super", "pw"))
    pm = load_plugins(config, entry_points=False)
    assert [info.name for info in list_plugins(pm)] == BUILTINS
    assert all(
        info.source.startswith("built-in (coord.plugins.builtin.") and info.enabled
        for info in list_plugins(pm)
    )

    assert isinstance(storage_backend(pm, "memory"), MemoryBackend)
    assert isinstance(storage_backend(pm, "rocksdb"), RocksDBBackend)
    assert set(storage_backends(pm)) == {"memory", "rocksdb"}

    schemes = auth_schemes(pm, config)
    assert set(schemes) == {"world", "digest", "ip", "x509"}
    digest = schemes["digest"]
    assert isinstance(digest, DigestScheme)
    assert digest.super_digest == config.super_digest

    found = transports(pm)
    assert [t.name for t in found] == ["tcp", "tls", "http"]
    assert isinstance(found[0], TcpTransport)
    assert isinstance(found[0], Transport)


def test_load_plugins_extra_plugin_object_provides_an_auth_scheme() -> None:
    pm = load_plugins(ServerConfig(), plugins=[TokenPlugin()], entry_points=False)
    schemes = auth_schemes(pm, ServerConfig())
    assert set(schemes) == {"world", "digest", "ip", "x509", "token"}
    assert isinstance(schemes["token"], FakeScheme)
    assert ("token_plugin", "registered directly (token_plugin)") in [
        (info.name, info.source) for info in list_plugins(pm)
    ]


def test_load_plugins_plugin_registered_later_is_found() -> None:
    pm = load_plugins(ServerConfig(), entry_points=False)
    pm.register(TokenPlugin("bearer"))
    assert "bearer" in auth_schemes(pm, ServerConfig())


def test_auth_schemes_duplicate_name_names_both_plugins() -> None:
    pm = load_plugins(
        ServerConfig(), plugins=[TokenPlugin("token"), TokenPlugin("digest")], entry_points=False
    )
    with pytest.raises(PluginError) as info:
        auth_schemes(pm, ServerConfig())
    message = str(info.value)
    assert "auth scheme 'digest' is registered by two plugins" in message
    assert "'builtin.auth'" in message and "'digest_plugin'" in message


def test_auth_schemes_reserved_name_is_rejected() -> None:
    pm = load_plugins(ServerConfig(), plugins=[TokenPlugin("super")], entry_points=False)
    with pytest.raises(PluginError, match="'super', a reserved"):
        auth_schemes(pm, ServerConfig())


def test_load_plugins_misspelt_hookimpl_fails_check_pending() -> None:
    """A typo in a hook name is a start-up error with a suggestion, not a silent no-op."""

    class Typo:
        __name__ = "typo_plugin"

        @hookimpl
        def coord_auth_scheme(self, config: ServerConfig) -> list[FakeScheme]:
            return [FakeScheme()]

    with pytest.raises(PluginError) as info:
        load_plugins(ServerConfig(), plugins=[Typo()], entry_points=False)
    message = str(info.value)
    assert "plugin 'typo_plugin' implements unknown hook 'coord_auth_scheme'" in message
    assert "did you mean 'coord_auth_schemes'?" in message


def test_load_plugins_unmarked_hook_function_is_an_error() -> None:
    """A coord_* function without @hookimpl would be ignored; it is reported instead."""

    class Unmarked:
        __name__ = "unmarked"

        def coord_transports(self) -> list[Transport]:
            return []

    with pytest.raises(PluginError, match=r"'coord_transports' .* not marked with @"):
        load_plugins(ServerConfig(), plugins=[Unmarked()], entry_points=False)


def test_load_plugins_hookimpl_with_unknown_argument_is_an_error() -> None:
    class BadArgs:
        __name__ = "bad_args"

        @hookimpl
        def coord_transports(self, config: ServerConfig, tls: bool) -> list[Transport]:
            return []

    with pytest.raises(PluginError, match=r"bad_args.*invalid"):
        load_plugins(ServerConfig(), plugins=[BadArgs()], entry_points=False)


def test_load_plugins_disabling_unknown_plugin_lists_the_loaded_ones() -> None:
    config = ServerConfig(plugins_disabled=("builtin.tcpp",))
    with pytest.raises(PluginError) as info:
        load_plugins(config, entry_points=False)
    message = str(info.value)
    assert "unknown plugin 'builtin.tcpp'" in message
    assert "did you mean 'builtin.tcp'?" in message
    for name in BUILTINS:
        assert name in message


def test_load_plugins_disabled_builtin_is_not_registered() -> None:
    pm = load_plugins(ServerConfig(plugins_disabled=("builtin.tcp",)), entry_points=False)
    assert [t.name for t in transports(pm)] == ["tls", "http"]
    assert ("builtin.tcp", "disabled") in [(i.name, i.state) for i in list_plugins(pm)]


def test_storage_backend_unknown_name_lists_available() -> None:
    pm = load_plugins(ServerConfig(), entry_points=False)
    with pytest.raises(
        PluginError, match=r"unknown storage backend 'rocks'.*available: memory, rocksdb"
    ):
        storage_backend(pm, "rocks")


def test_factory_hook_returning_a_non_protocol_object_is_reported() -> None:
    class Broken:
        __name__ = "broken"

        @hookimpl
        def coord_storage_backends(self) -> list[object]:
            return [object()]

    pm = load_plugins(ServerConfig(), plugins=[Broken()], entry_points=False)
    with pytest.raises(PluginError, match=r"plugin 'broken'.*does not implement StorageBackend"):
        storage_backends(pm)


def test_factory_hook_raising_is_reported_with_the_plugin() -> None:
    class Raises:
        __name__ = "raises"

        @hookimpl
        def coord_transports(self) -> list[Transport]:
            raise RuntimeError("boom")

    pm = load_plugins(ServerConfig(), plugins=[Raises()], entry_points=False)
    with pytest.raises(PluginError, match=r"plugin 'raises' failed in coord_transports: .*boom"):
        transports(pm)


def test_notify_calls_every_implementation_even_after_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    class First:
        __name__ = "first"

        @hookimpl
        def coord_server_started(self, server: object) -> None:
            raise RuntimeError("first fails")

        @hookimpl
        def coord_server_stopping(self, server: object) -> None:
            raise RuntimeError("first fails")

    class Second:
        __name__ = "second"

        @hookimpl
        def coord_server_started(self, server: object, addresses: list[tuple[str, int]]) -> None:
            calls.append(f"started {addresses}")

        @hookimpl
        def coord_server_stopping(self, server: object) -> None:
            calls.append("stopping")

    pm = load_plugins(ServerConfig(), plugins=[Second(), First()], entry_points=False)
    with caplog.at_level(logging.ERROR, logger="coord.server"):
        notify_server_started(pm, object(), [("127.0.0.1", 2181)])
        notify_server_stopping(pm, object())
    assert calls == ["started [('127.0.0.1', 2181)]", "stopping"]
    assert sum("plugin 'first' failed" in r.getMessage() for r in caplog.records) == 2


# --- entry-point discovery -------------------------------------------------------------


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A real distribution on sys.path: a package plus a .dist-info with entry points.

    Yields the entry-point name and the plugin module name.
    """
    module = f"coord_test_plugin_{uuid.uuid4().hex[:8]}"
    ep_name = "example"
    package = tmp_path / module
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from coord.plugins import hookimpl
            from coord.server._acl import IpScheme


            class ExampleScheme(IpScheme):
                name = "example"


            @hookimpl
            def coord_auth_schemes(config):
                return [ExampleScheme()]
            """
        )
    )
    dist_info = tmp_path / "coord_example_plugin-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: coord-example-plugin\nVersion: 1.2.3\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[coord.plugins]\n{ep_name} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield ep_name, module
    sys.modules.pop(module, None)


def test_load_plugins_discovers_entry_point_plugins(installed_plugin: tuple[str, str]) -> None:
    ep_name, module = installed_plugin
    pm = load_plugins(ServerConfig())
    assert "example" in auth_schemes(pm, ServerConfig())
    (info,) = [i for i in list_plugins(pm) if i.name == ep_name]
    assert info.source == f"coord-example-plugin 1.2.3 (entry point {ep_name} = {module})"
    assert (info.version, info.state, info.hooks) == ("1.2.3", "enabled", ("coord_auth_schemes",))


def test_load_plugins_disabled_entry_point_is_never_imported(
    installed_plugin: tuple[str, str],
) -> None:
    ep_name, module = installed_plugin
    pm = load_plugins(ServerConfig(plugins_disabled=(ep_name,)))
    assert "example" not in auth_schemes(pm, ServerConfig())
    assert module not in sys.modules
    assert (ep_name, "disabled") in [(i.name, i.state) for i in list_plugins(pm)]


def test_load_plugins_entry_point_failing_to_import_is_named(
    installed_plugin: tuple[str, str], tmp_path: Path
) -> None:
    ep_name, module = installed_plugin
    (tmp_path / module / "__init__.py").write_text("raise ImportError('needs libfoo')\n")
    with pytest.raises(PluginError, match=rf"entry-point plugin '{ep_name}' .*needs libfoo"):
        load_plugins(ServerConfig())


def test_load_plugins_entry_point_with_a_builtin_name_is_rejected(
    installed_plugin: tuple[str, str], tmp_path: Path
) -> None:
    _, module = installed_plugin
    entry_points = tmp_path / "coord_example_plugin-1.2.3.dist-info" / "entry_points.txt"
    entry_points.write_text(f"[coord.plugins]\nbuiltin.tcp = {module}\n")
    with pytest.raises(PluginError, match=r"'builtin.tcp' .* already registered"):
        load_plugins(ServerConfig())


# --- the memory store (its contract: tests/storage) -------------------------------------


@pytest.mark.anyio
async def test_MemoryBackend_opens_a_new_empty_store_each_time(tmp_path: Path) -> None:
    backend = MemoryBackend()
    assert isinstance(backend, StorageBackend)
    config = ServerConfig(data_dir=str(tmp_path / "unused"))
    store = backend.open(config)
    assert isinstance(store, MemoryStore) and isinstance(store, LogStore)
    await store.write(StoreBatch(entries=[(1, b"x")], nodes={"/a": b"a"}))
    again = backend.open(config)  # not locked, and nothing shared
    assert again.last_index == 0 and list(again.iter_nodes()) == []
    assert not (tmp_path / "unused").exists()
    with pytest.raises(StoreError, match="keeps nothing on disk; use --storage rocksdb"):
        await store.copy_to(tmp_path / "copy")
    await store.close()
    await store.close()
    assert store.closed
    with pytest.raises(StoreError, match="closed"):
        await store.write(StoreBatch(entries=[(2, b"y")]))


# --- settings, enabling, hookspec versions ----------------------------------------------


class Configurable:
    """A plugin with settings: validates them, and its factory receives them."""

    __name__ = "configurable"

    def __init__(self) -> None:
        self.validated: list[dict[str, object]] = []

    @hookimpl
    def coord_validate_settings(self, settings: dict[str, object]) -> None:
        self.validated.append(dict(settings))
        if "scheme" in settings and not isinstance(settings["scheme"], str):
            raise ValueError("scheme must be a string")

    @hookimpl
    def coord_auth_schemes(self, settings: dict[str, object]) -> list[FakeScheme]:
        return [FakeScheme(str(settings.get("scheme", "token")))]


def test_plugin_settings_are_validated_then_given_to_the_factories() -> None:
    plugin = Configurable()
    config = ServerConfig(plugin_settings={"configurable": {"scheme": "bearer"}})
    pm = load_plugins(config, plugins=[plugin], entry_points=False)
    assert plugin.validated == [{"scheme": "bearer"}]
    assert "bearer" in auth_schemes(pm, config)


def test_plugin_settings_validator_gets_an_empty_table_without_settings() -> None:
    plugin = Configurable()
    load_plugins(ServerConfig(), plugins=[plugin], entry_points=False)
    assert plugin.validated == [{}]


def test_plugin_settings_rejected_by_the_plugin_name_it() -> None:
    config = ServerConfig(plugin_settings={"configurable": {"scheme": 3}})
    with pytest.raises(
        PluginError,
        match=r"plugin 'configurable' rejects its settings \(\[plugins.configurable\]\): "
        "scheme must be a string",
    ):
        load_plugins(config, plugins=[Configurable()], entry_points=False)


def test_plugin_settings_for_an_unknown_plugin_suggest_the_closest() -> None:
    config = ServerConfig(plugin_settings={"configurabel": {}})
    with pytest.raises(PluginError) as info:
        load_plugins(config, plugins=[Configurable()], entry_points=False)
    message = str(info.value)
    assert "settings [plugins.configurabel] name unknown plugin 'configurabel'" in message
    assert "did you mean [plugins.configurable]?" in message


def test_plugin_settings_for_a_plugin_without_validator_are_an_error() -> None:
    config = ServerConfig(plugin_settings={"builtin.tcp": {"port": 1}})
    with pytest.raises(PluginError, match=r"'builtin.tcp' accepts no settings"):
        load_plugins(config, entry_points=False)


def test_plugin_settings_for_a_disabled_plugin_are_an_error() -> None:
    config = ServerConfig(plugins_disabled=("configurable",), plugin_settings={"configurable": {}})
    with pytest.raises(PluginError, match=r"which is disabled; remove the table"):
        load_plugins(config, plugins=[Configurable()], entry_points=False)


def test_plugins_enabled_unknown_name_is_an_error() -> None:
    with pytest.raises(PluginError, match=r"plugins_enabled names unknown plugin 'tokn'"):
        load_plugins(ServerConfig(plugins_enabled=("tokn",)), entry_points=False)


def test_plugins_enabled_leaves_out_other_entry_point_plugins(
    installed_plugin: tuple[str, str],
) -> None:
    ep_name, module = installed_plugin
    pm = load_plugins(ServerConfig(plugins_enabled=("builtin.tcp",)))
    assert module not in sys.modules
    assert "example" not in auth_schemes(pm, ServerConfig())
    (info,) = [i for i in list_plugins(pm) if i.name == ep_name]
    assert (info.state, info.enabled, info.hooks) == ("not enabled", False, ())
    assert transports(pm)  # built-ins are not affected by plugins_enabled


def test_plugin_needing_a_newer_hookspec_is_refused() -> None:
    class Future:
        __name__ = "future"
        COORD_HOOKSPEC_VERSION = coord.plugins.HOOKSPEC_VERSION + 1

    with pytest.raises(PluginError, match=r"plugin 'future' needs coord hookspec version"):
        load_plugins(ServerConfig(), plugins=[Future()], entry_points=False)

    class Current:
        __name__ = "current"
        COORD_HOOKSPEC_VERSION = coord.plugins.HOOKSPEC_VERSION

    load_plugins(ServerConfig(), plugins=[Current()], entry_points=False)


def test_list_plugins_reports_version_hooks_and_state() -> None:
    pm = load_plugins(ServerConfig(plugins_disabled=("builtin.rocksdb_store",)), entry_points=False)
    rows = {info.name: info for info in list_plugins(pm)}
    assert rows["builtin.auth"].hooks == ("coord_auth_schemes",)
    assert rows["builtin.auth"].version == coord.__version__
    assert rows["builtin.rocksdb_store"].state == "disabled"
    assert rows["builtin.tcp"].enabled


def test_config_plugins_table_in_toml(tmp_path: Path) -> None:
    from coord.server._config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text(
        textwrap.dedent(
            """
            [plugins]
            enabled = ["token_auth"]
            disabled = ["builtin.rocksdb_store"]

            [plugins.token_auth]
            public_keys = ["k1"]
            leeway = 5
            """
        )
    )
    config = load_config(file=path)
    assert config.plugins_enabled == ("token_auth",)
    assert config.plugins_disabled == ("builtin.rocksdb_store",)
    assert config.plugin_settings == {"token_auth": {"public_keys": ["k1"], "leeway": 5}}

    path.write_text("[plugins]\ndisable = ['x']\n")
    with pytest.raises(
        ConfigError,
        match=r"unknown key 'disable' in the \[plugins\] table.*"
        r"did you mean 'disabled'",
    ):
        load_config(file=path)
    path.write_text("plugins_disabled = ['a']\n[plugins]\ndisabled = ['b']\n")
    with pytest.raises(ConfigError, match="twice"):
        load_config(file=path)
    env = {"COORD_PLUGIN_SETTINGS": '{"token_auth": {"leeway": 1}}'}
    assert load_config(env=env).plugin_settings == {"token_auth": {"leeway": 1}}
    with pytest.raises(ConfigError, match="JSON object"):
        load_config(env={"COORD_PLUGIN_SETTINGS": "[1]"})
    with pytest.raises(ConfigError, match="both name"):
        ServerConfig(plugins_enabled=("a",), plugins_disabled=("a",))
