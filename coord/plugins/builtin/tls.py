"""Built-in plugin: the ``tls`` transport (ZooKeeper's ``secureClientPort``) and the ``x509``
auth scheme.

The transport listens on ``secure_port`` (when set) beside the plain ``tcp`` transport;
disable ``builtin.tcp`` to serve TLS only. Each accepted connection does its TLS handshake
under the server's ``handshake_timeout`` (so a client that stalls the TLS handshake is cut
off like one that stalls the ZooKeeper handshake), with at most ``max_client_connections``
handshakes in progress per client address; then it is served exactly like a plain one,
with the verified client certificate in its :class:`~coord.server.PeerInfo`.

The certificate files are checked every ``tls_reload_interval`` seconds and reloaded when
they change (:class:`~coord.server._tls.CertificateReloader`): new handshakes use the new
certificate, established connections keep theirs.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute, TLSStream

from coord.plugins.builtin.tcp import remote_peer, serve_tcp
from coord.plugins.hookspecs import hookimpl
from coord.server._acl import PeerInfo
from coord.server._tls import CertificateReloader, TlsSettings, X509Scheme

if TYPE_CHECKING:
    from coord.server._acl import AuthScheme
    from coord.server._config import ServerConfig
    from coord.server._transport import ConnectionHandler, Transport

__all__ = ["TlsTransport", "coord_auth_schemes", "coord_transports"]

log = logging.getLogger("coord.server")


class TlsTransport:
    """Serves the TLS client port on ``config.host``:``config.secure_port``.

    Attributes:
        reloader: the certificate reloader once serving (its ``generation`` counts reloads).
        addresses: the bound ``(host, port)`` pairs once serving.
    """

    name = "tls"

    def __init__(self) -> None:
        self.reloader: CertificateReloader | None = None
        self.addresses: list[tuple[str, int]] = []
        self._handshaking: dict[str, int] = {}
        self._reloaded = anyio.Event()

    async def wait_reloaded(self) -> None:
        """Wait until changed certificate files are next loaded."""
        await self._reloaded.wait()

    async def serve(
        self,
        config: ServerConfig,
        handler: ConnectionHandler,
        *,
        task_status: anyio.abc.TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``secure_port`` and run ``handler`` per connection until cancelled;
        reports no address and returns at once when ``secure_port`` is unset.

        Raises:
            OSError: the address cannot be bound.
            ConfigError: the certificate, key or CA bundle cannot be read or does not load
                (the message names the file).
        """
        if config.secure_port is None:
            task_status.started([])
            return
        try:
            self.reloader = reloader = CertificateReloader(TlsSettings.from_config(config))
        except (OSError, ssl.SSLError) as exc:
            from coord.server._config import ConfigError

            detail = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
            raise ConfigError(f"the TLS certificate files do not load: {detail}") from exc

        async def serve_one(stream: anyio.abc.SocketStream) -> None:
            peer = remote_peer(stream)
            if peer is None:
                await stream.aclose()
                return
            limit = config.max_client_connections
            if limit and self._handshaking.get(peer.host, 0) >= limit:
                log.warning("too many TLS handshakes in progress from %s; closing", peer.host)
                await stream.aclose()
                return
            await self._serve_connection(stream, peer.host, peer.port, config, handler)

        async with anyio.create_task_group() as tg:
            if config.tls_reload_interval > 0:
                tg.start_soon(self._reload_loop, reloader, config.tls_reload_interval)
            port = config.secure_port
            self.addresses = addresses = await tg.start(
                lambda task_status: serve_tcp(
                    config.host, port, serve_one, name="TLS", task_status=task_status
                )
            )
            for host, bound in addresses:
                log.info("TLS client port on %s:%d", host, bound)
            task_status.started(addresses)

    async def _reload_loop(self, reloader: CertificateReloader, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            # Reading three small files: quick enough for the event loop thread.
            if reloader.check():
                self._reloaded.set()
                self._reloaded = anyio.Event()

    async def _serve_connection(
        self,
        stream: anyio.abc.SocketStream,
        host: str,
        port: int,
        config: ServerConfig,
        handler: ConnectionHandler,
    ) -> None:
        assert self.reloader is not None
        context = self.reloader.context
        self._handshaking[host] = self._handshaking.get(host, 0) + 1
        tls: TLSStream | None = None
        try:
            with anyio.move_on_after(config.handshake_timeout):
                tls = await TLSStream.wrap(
                    stream, server_side=True, ssl_context=context, standard_compatible=False
                )
            if tls is None:
                log.info("closing %s:%d: no TLS handshake within %.1f s", host, port,
                         config.handshake_timeout)  # fmt: skip
        except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc, anyio.BrokenResourceError) else exc
            log.info("TLS handshake with %s:%d failed: %s", host, port, cause or exc)
        finally:
            count = self._handshaking.get(host, 1) - 1
            if count > 0:
                self._handshaking[host] = count
            else:
                self._handshaking.pop(host, None)
        if tls is None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            return
        der = tls.extra(TLSAttribute.peer_certificate_binary, None)
        subject = None
        if der is not None:
            from coord.server._tls import certificate_identity

            try:
                subject = certificate_identity(der, "dn")
            except ValueError:
                subject = None
        peer = PeerInfo(host, port, certificate_subject=subject, certificate=der)
        async with tls:
            try:
                await handler(tls, peer)
            except Exception:
                log.exception("connection from %s:%d failed", host, port)


@hookimpl(trylast=True)
def coord_transports() -> list[Transport]:
    """The ``tls`` transport (idle unless ``secure_port`` is set); after ``tcp``, so the
    plain port stays first in the server's addresses."""
    return [TlsTransport()]


@hookimpl
def coord_auth_schemes(config: ServerConfig) -> list[AuthScheme]:
    """The ``x509`` scheme: identity from the client certificate."""
    return [X509Scheme(config.x509_identity, config.x509_superuser)]
