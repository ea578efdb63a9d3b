"""The HTTP API's settings: validated like every ServerConfig field; off unless set.

Rules under test: http_port is a port distinct from the client ports; http_tls needs the
server certificate; the bounds are positive; without http_port the http transport binds
nothing; certificate files that do not load stop start-up with a clear error.
"""

from __future__ import annotations

from typing import Any

import pytest

from coord.plugins.builtin.http_api import HttpApiTransport
from coord.server._config import ConfigError, ServerConfig, load_config
from coord.testing._server import CoordServerThread, running_server


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"http_port": 70000}, "http_port"),
        ({"http_port": 2181, "port": 2181}, "http_port"),
        ({"http_tls": True, "http_port": 0}, "tls_cert"),
        ({"http_max_sessions": 0}, "http_max_sessions"),
        ({"http_idle_timeout": 0}, "http_idle_timeout"),
        ({"http_heartbeat": -1}, "http_heartbeat"),
        ({"http_watch_history": 0}, "http_watch_history"),
    ],
)
def test_http_api_settings_are_validated(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        ServerConfig(**settings)
    assert error.value.key == key


def test_http_api_settings_come_from_file_and_environment(tmp_path: Any) -> None:
    path = tmp_path / "coord.toml"
    path.write_text("http_port = 8181\nhttp-idle-timeout = 5\n")
    config = load_config(file=path, env={"COORD_HTTP_WATCH_HISTORY": "50"})
    assert (config.http_port, config.http_idle_timeout) == (8181, 5.0)
    assert config.http_watch_history == 50


def test_http_api_is_off_unless_http_port_is_set() -> None:
    with CoordServerThread() as server:
        (transport,) = [t for t in server.server.transports if isinstance(t, HttpApiTransport)]
        assert transport.addresses == []
        assert transport.api is None
        assert len(server.server.addresses) == 1


@pytest.mark.anyio
async def test_http_api_unloadable_certificate_stops_start_up(tmp_path: Any) -> None:
    missing = tmp_path / "missing.pem"
    settings = {"http_port": 0, "http_tls": True, "tls_cert": str(missing),
                "tls_client_auth": "none"}  # fmt: skip
    with pytest.raises(BaseException) as info:  # raised through a task group
        async with running_server(**settings):
            pass
    leaves = [info.value]
    while isinstance(leaves[-1], BaseExceptionGroup):
        leaves.append(leaves[-1].exceptions[0])
    assert isinstance(leaves[-1], ConfigError)
    assert "missing.pem" in str(leaves[-1])
