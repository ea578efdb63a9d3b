"""Built-in plugin: the ``http`` transport, coord's HTTP API (idle unless ``http_port`` is set).

The transport is a protocol gateway (:mod:`coord.server.http_api`): it listens for HTTP
on ``host``:``http_port`` (HTTPS with the ``tls_*`` certificates when ``http_tls`` is set,
the client certificate verified as on the TLS client port) and serves each request over
ZooKeeper sessions it opens to the server in-process, through the same connection handler
the ``tcp`` transport hands its sockets to. The watch history behind the event streams
needs the running server: ``coord_server_started`` attaches it (until then event streams
get 503), ``coord_server_stopping`` ends the streams.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from coord.plugins.hookspecs import hookimpl
from coord.server._http import HttpLimits, serve_http
from coord.server.http_api import EventHistory, Gateway, HttpApi

if TYPE_CHECKING:
    from coord.server._config import ServerConfig
    from coord.server._transport import ConnectionHandler, Transport

__all__ = ["HttpApiTransport", "coord_server_started", "coord_server_stopping", "coord_transports"]

log = logging.getLogger("coord.server")


class HttpApiTransport:
    """Serves the HTTP API on ``config.host``:``config.http_port``.

    Attributes:
        api: the application once serving (its ``gateway`` and ``history``).
        addresses: the bound ``(host, port)`` pairs once serving.
    """

    name = "http"

    def __init__(self) -> None:
        self.api: HttpApi | None = None
        self.addresses: list[tuple[str, int]] = []
        self._server: Any = None

    async def serve(
        self,
        config: ServerConfig,
        handler: ConnectionHandler,
        *,
        task_status: anyio.abc.TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``http_port`` and serve the API until cancelled; reports no address
        and returns at once when ``http_port`` is unset.

        Raises:
            OSError: the address cannot be bound.
            ConfigError: with ``http_tls``, the certificate files do not load.
        """
        if config.http_port is None:
            task_status.started([])
            return
        ssl_context = None
        if config.http_tls:
            from coord.server._config import ConfigError
            from coord.server._tls import CertificateReloader, TlsSettings

            try:
                reloader = CertificateReloader(TlsSettings.from_config(config))
            except (OSError, ssl.SSLError) as exc:
                detail = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
                raise ConfigError(f"the TLS certificate files do not load: {detail}") from exc

            def current() -> ssl.SSLContext:
                return reloader.context

            ssl_context = current
        limits = HttpLimits(max_body_bytes=config.max_frame * 4 // 3 + 64 * 1024)
        async with anyio.create_task_group() as tg:
            gateway = Gateway(config, handler, tg)
            self.api = api = HttpApi(config, gateway)
            if self._server is not None:
                self.attach(self._server)
            tg.start_soon(gateway.reap)
            if ssl_context is not None and config.tls_reload_interval > 0:
                tg.start_soon(_reload_loop, reloader, config.tls_reload_interval)
            self.addresses = await tg.start(
                lambda task_status: serve_http(
                    config.host,
                    config.http_port or 0,
                    api,
                    limits=limits,
                    ssl_context=ssl_context,
                    name="HTTP API",
                    task_status=task_status,
                )
            )
            task_status.started(self.addresses)

    def attach(self, server: Any) -> None:
        """Give the API the running server (for the watch history and connection limits)."""
        self._server = server
        api = self.api
        if api is None or api.history is not None:
            return
        history = EventHistory(
            server.config.http_watch_history,
            server.state.last_zxid,
            server.acl.allows,
            lambda path: _stat_of(server, path),
            lambda: server.state,
        )
        api.history = history
        api.server = server
        api.gateway.server = server
        server.apply_observers.append(history.observe)

    def detach(self, server: Any) -> None:
        """End the event streams; stop recording."""
        api = self.api
        if api is None or api.history is None:
            return
        history = api.history
        if history.observe in server.apply_observers:
            server.apply_observers.remove(history.observe)
        for subscription in list(history.subscriptions):
            history.unsubscribe(subscription)


def _stat_of(server: Any, path: str) -> bytes | None:
    node = server.state.nodes.get(path)
    return None if node is None else node.stat_bytes()


async def _reload_loop(reloader: Any, interval: float) -> None:
    while True:
        await anyio.sleep(interval)
        reloader.check()


@hookimpl(trylast=True)
def coord_transports() -> list[Transport]:
    """The ``http`` transport (idle unless ``http_port`` is set)."""
    return [HttpApiTransport()]


@hookimpl
def coord_server_started(server: Any) -> None:
    """Give each HTTP transport the running server."""
    for transport in getattr(server, "transports", ()):
        if isinstance(transport, HttpApiTransport):
            transport.attach(server)


@hookimpl
def coord_server_stopping(server: Any) -> None:
    """End the HTTP API's event streams."""
    for transport in getattr(server, "transports", ()):
        if isinstance(transport, HttpApiTransport):
            transport.detach(server)
