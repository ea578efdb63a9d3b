"""An in-process coord server for tests: of coord itself and of users' own code."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

__all__ = ["CoordServerThread", "running_server"]


def _config(**overrides: Any) -> Any:
    from coord.server._config import ServerConfig

    defaults: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "four_letter_words": ("*",),
        "storage": "memory",
        "max_client_connections": 0,
    }
    defaults.update(overrides)
    return ServerConfig(**defaults)


def _plugin_manager(config: Any, plugins: Sequence[object]) -> Any:
    if not plugins:
        return None
    from coord.plugins import load_plugins

    return load_plugins(config, plugins=plugins)


@asynccontextmanager
async def running_server(plugins: Sequence[object] = (), **config: Any) -> AsyncIterator[Any]:
    """Run a coord server in the current event loop on a free loopback port.

    Args:
        plugins: extra plugin objects to register (besides built-ins and entry points).
        **config: :class:`~coord.server._config.ServerConfig` fields overriding the
            test defaults (port 0, memory storage, every four-letter word allowed).

    Yields:
        The running :class:`~coord.server.Server`; ``server.addresses[0]`` is its address.
    """
    from coord.server import Server

    server_config = _config(**config)
    server = Server(server_config, _plugin_manager(server_config, plugins))
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


class CoordServerThread:
    """A coord server running in a background thread, for synchronous tests.

    Use as a context manager; ``address`` is ``"127.0.0.1:PORT"``. ``call(fn, *args)``
    runs ``fn`` in the server's event loop thread (for inspecting or poking its state).

    Args:
        plugins: extra plugin objects to register (besides built-ins and entry points).
        **config: ServerConfig fields overriding the test defaults.
    """

    def __init__(self, plugins: Sequence[object] = (), **config: Any) -> None:
        self._config = _config(**config)
        self._plugins = tuple(plugins)
        self._portal_cm: Any = None
        self._portal: BlockingPortal | None = None
        self._future: Any = None
        self.server: Any = None

    def start(self) -> CoordServerThread:
        from coord.server import Server

        self._portal_cm = start_blocking_portal("asyncio")
        self._portal = self._portal_cm.__enter__()
        self.server = Server(self._config, _plugin_manager(self._config, self._plugins))
        self._future, addresses = self._portal.start_task(self.server.serve)
        self.host, self.port = addresses[0]
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def admin_address(self) -> str | None:
        """``"127.0.0.1:PORT"`` of the admin endpoint (start with ``admin_port=0``), or
        None when it is off."""
        addresses = self.server.admin_addresses
        return f"{addresses[0][0]}:{addresses[0][1]}" if addresses else None

    def replace_config(self, **changes: Any) -> None:
        """Change settings that are read at use time (e.g. four_letter_words)."""
        self.server.config = dataclasses.replace(self.server.config, **changes)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` in the server's thread and return its result."""
        assert self._portal is not None

        async def run() -> Any:
            return fn(*args)

        return self._portal.call(run)

    def stop(self) -> None:
        if self._portal is None:
            return
        self._future.cancel()
        try:
            self._portal_cm.__exit__(None, None, None)
        finally:
            self._portal = None

    def __enter__(self) -> CoordServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
