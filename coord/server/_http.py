"""A small HTTP/1.1 server on anyio, shared by the admin endpoint and the HTTP API transport.

Theory of operation
-------------------
HTTP parsing and framing are h11's (a sans-IO HTTP/1.1 state machine); this module owns
only the I/O loop around it, routing and limits. An application is an async function
``app(request) -> Response``; a :class:`Router` is one. A connection serves requests one
after the other (keep-alive), each request fully read (bounded by
:attr:`HttpLimits.max_body_bytes`) before the application runs.

A :class:`Response` body is either bytes (sent with ``Content-Length``) or an async
iterable of chunks (sent chunked, for Server-Sent Events and other streams). While a
streamed body is being sent, the connection is also read: when the client goes away the
stream is cancelled at once rather than at the next write, so an idle event stream never
outlives its client.

Errors: a malformed request gets ``400`` and the connection is closed; a request whose
headers do not arrive within :attr:`HttpLimits.request_timeout` is dropped (slow-loris
clients cannot hold a connection); an :class:`HTTPError` raised by the application becomes
a JSON error body ``{"error": code, "message": text}`` with its status; any other exception
is logged and answered with ``500``. Nothing here knows about znodes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import ssl
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, cast
from urllib.parse import parse_qs, unquote

import anyio
import anyio.abc
import h11
from anyio.streams.tls import TLSAttribute, TLSStream

from ._acl import PeerInfo

__all__ = [
    "App",
    "HTTPError",
    "HttpLimits",
    "Request",
    "Response",
    "Router",
    "serve_connection",
    "serve_http",
]

log = logging.getLogger("coord.server")

_SERVER_HEADER: Final = b"coord"
_RECEIVE_SIZE: Final = 65536
_JSON: Final = "application/json"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds on what one client may make the server hold.

    Attributes:
        max_header_bytes: the request line plus headers; larger gets ``431``-like closing.
        max_body_bytes: a request body; larger gets ``413``.
        request_timeout: seconds for a request's headers and body to arrive (and for an idle
            keep-alive connection to send its next request).
        handshake_timeout: seconds for a TLS handshake, when serving TLS.
    """

    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024 + 64 * 1024
    request_timeout: float = 30.0
    handshake_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, read whole.

    Attributes:
        method: upper case (``GET``, ``PUT``...).
        path: the percent-decoded path, without the query string.
        query: every query parameter with all of its values.
        headers: header names in lower case; repeated headers joined with ``", "``.
        body: the request body.
        peer: the client's address (and TLS certificate when it sent one).
        params: the path parameters the router matched.
    """

    method: str
    path: str
    query: Mapping[str, Sequence[str]]
    headers: Mapping[str, str]
    body: bytes
    peer: PeerInfo
    params: Mapping[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The last value of query parameter ``name``, else ``default``."""
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        """Whether query parameter ``name`` is present and not ``0``/``false``/``no``."""
        value = self.arg(name)
        return value is not None and value.lower() not in ("0", "false", "no")

    def int_arg(self, name: str, default: int) -> int:
        """Query parameter ``name`` as an integer.

        Raises:
            HTTPError: 400, the value is not an integer.
        """
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise HTTPError(
                400, "bad_request", f"{name} must be an integer, not {value!r}"
            ) from None

    def basic_credentials(self) -> tuple[str, str] | None:
        """``(user, password)`` from an ``Authorization: Basic`` header, None without one.

        Raises:
            HTTPError: 400, the header is present but not valid Basic credentials.
        """
        header = self.headers.get("authorization")
        if header is None:
            return None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise HTTPError(400, "bad_request", "the Basic credentials are not valid") from None
        user, colon, password = decoded.partition(":")
        if not colon:
            raise HTTPError(400, "bad_request", "Basic credentials must be user:password")
        return user, password

    def json(self) -> Any:
        """The body decoded as JSON.

        Raises:
            HTTPError: 400, the body is not valid UTF-8 JSON.
        """
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HTTPError(400, "bad_request", f"the body is not valid JSON: {exc}") from None


@dataclass(slots=True)
class Response:
    """What an application returns.

    Attributes:
        status: the HTTP status code.
        body: bytes, or an async iterable of chunks for a streamed (chunked) body.
        content_type: the ``Content-Type`` header.
        headers: extra headers.
    """

    status: int = 200
    body: bytes | AsyncIterable[bytes] = b""
    content_type: str = _JSON
    headers: Sequence[tuple[str, str]] = ()

    @classmethod
    def json(
        cls, value: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()
    ) -> Response:
        """A JSON response (compact, UTF-8, newline-terminated for terminals)."""
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        return cls(status, body, _JSON, headers)

    @classmethod
    def text(
        cls,
        text: str,
        status: int = 200,
        content_type: str = "text/plain; charset=utf-8",
        headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """A text response."""
        return cls(status, text.encode(), content_type, headers)


class HTTPError(Exception):
    """Raised by an application to answer with an error status and a JSON error body.

    Attributes:
        status: the HTTP status.
        code: a short machine-readable code (``"not_found"``, ``"bad_version"``...).
        message: what went wrong and, where it helps, what to do next.
        headers: extra headers (``WWW-Authenticate`` with a 401).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Sequence[tuple[str, str]] = (),
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details

    def response(self) -> Response:
        """The error as a JSON response."""
        body: dict[str, Any] = {"error": self.code, "message": self.message, **self.details}
        return Response.json(body, self.status, self.headers)


#: An HTTP application: one request in, one response out.
App: TypeAlias = Callable[[Request], Awaitable[Response]]
Handler: TypeAlias = Callable[..., Awaitable[Response]]

_PARAM = re.compile(r"\{(\w+)(?::(path))?\}")


class Router:
    """Dispatches requests by method and path pattern; itself an :data:`App`.

    Patterns are literal paths with parameters: ``{name}`` matches one segment,
    ``{name:path}`` the rest of the path (slashes included, possibly empty)::

        router = Router()

        @router.route("GET", "/v1/node{path:path}")
        async def get_node(request: Request) -> Response:
            return Response.json({"path": request.params["path"] or "/"})

    ``HEAD`` is answered by the ``GET`` route without its body. An unknown path gets
    ``404``, a known path with another method ``405`` with ``Allow``.
    """

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Register the decorated handler for ``method`` on ``pattern``."""

        def register(handler: Handler) -> Handler:
            self.add(method, pattern, handler)
            return handler

        return register

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` on ``pattern``."""
        regex, pos = [], 0
        for match in _PARAM.finditer(pattern):
            regex.append(re.escape(pattern[pos : match.start()]))
            name, kind = match.groups()
            regex.append(f"(?P<{name}>.*)" if kind == "path" else f"(?P<{name}>[^/]+)")
            pos = match.end()
        regex.append(re.escape(pattern[pos:]))
        self._routes.append((method.upper(), re.compile("".join(regex) + r"\Z"), handler))

    async def __call__(self, request: Request) -> Response:
        """Run the matching handler with ``request.params`` filled in."""
        method = "GET" if request.method == "HEAD" else request.method
        allowed = []
        for route_method, regex, handler in self._routes:
            match = regex.match(request.path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            matched = Request(
                request.method,
                request.path,
                request.query,
                request.headers,
                request.body,
                request.peer,
                match.groupdict(),
            )
            return await handler(matched)
        if allowed:
            raise HTTPError(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}",
                [("Allow", ", ".join(sorted(set(allowed))))],
            )
        raise HTTPError(404, "not_found", f"no such resource: {request.path}")


class _ClientGone(Exception):
    """The client closed the connection (or it broke)."""


class _Connection:
    """One HTTP connection: h11's state machine fed from an anyio byte stream."""

    def __init__(
        self, stream: anyio.abc.ByteStream, peer: PeerInfo, app: App, limits: HttpLimits
    ) -> None:
        self.stream = stream
        self.peer = peer
        self.app = app
        self.limits = limits
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)

    async def _receive(self) -> None:
        try:
            data = await self.stream.receive(_RECEIVE_SIZE)
        except anyio.EndOfStream:
            data = b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise _ClientGone from exc
        self.conn.receive_data(data)

    async def _next_event(self) -> h11.Event:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                await self._receive()
                continue
            return cast(h11.Event, event)

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            try:
                await self.stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                raise _ClientGone from exc

    async def _read_request(self) -> Request | None:
        """The next request, or None when the client closed the connection between requests.

        Raises:
            HTTPError: the body is too large.
            h11.RemoteProtocolError: the request is malformed.
        """
        event = await self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        assert isinstance(event, h11.Request)
        size = len(event.target) + sum(len(name) + len(value) + 4 for name, value in event.headers)
        if size > self.limits.max_header_bytes:
            message = f"the request line and headers exceed {self.limits.max_header_bytes} bytes"
            raise HTTPError(431, "headers_too_large", message)
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        target = event.target.decode("latin-1")
        raw_path, _, raw_query = target.partition("?")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            raise HTTPError(
                413, "too_large", f"the body is larger than {self.limits.max_body_bytes} bytes"
            )
        if self.conn.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        chunks: list[bytes] = []
        size = 0
        while True:
            part = await self._next_event()
            if isinstance(part, h11.Data):
                size += len(part.data)
                if size > self.limits.max_body_bytes:
                    raise HTTPError(
                        413,
                        "too_large",
                        f"the body is larger than {self.limits.max_body_bytes} bytes",
                    )
                chunks.append(part.data)
            elif isinstance(part, h11.EndOfMessage):
                break
            else:  # ConnectionClosed mid-body
                raise _ClientGone
        return Request(
            method=event.method.decode("ascii").upper(),
            path=unquote(raw_path, errors="strict") if "%" in raw_path else raw_path,
            query=parse_qs(raw_query, keep_blank_values=True),
            headers=headers,
            body=b"".join(chunks),
            peer=self.peer,
        )

    async def _respond(self, response: Response, *, head: bool) -> None:
        headers = [
            (b"content-type", response.content_type.encode("latin-1")),
            (b"server", _SERVER_HEADER),
        ]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        body = response.body
        if isinstance(body, bytes):
            headers.append((b"content-length", str(len(body)).encode()))
            await self._send(h11.Response(status_code=response.status, headers=headers))
            if body and not head:
                await self._send(h11.Data(data=body))
            await self._send(h11.EndOfMessage())
            return
        headers.append((b"cache-control", b"no-cache"))
        await self._send(h11.Response(status_code=response.status, headers=headers))
        if not head:
            await self._stream_body(body)
        await self._send(h11.EndOfMessage())

    async def _stream_body(self, body: AsyncIterable[bytes]) -> None:
        """Send ``body``'s chunks until it ends or the client goes away."""
        gone = False

        async def watch_client(scope: anyio.CancelScope) -> None:
            nonlocal gone
            try:
                # Pipelined requests are buffered by h11 until this response ends.
                while self.conn.their_state is not h11.CLOSED:
                    await self._receive()
                    if self.conn.their_state in (h11.CLOSED, h11.MUST_CLOSE, h11.ERROR):
                        break
                    pending, closed = self.conn.trailing_data
                    if closed or len(pending) > self.limits.max_header_bytes:
                        break  # the client half-closed, or floods us while we stream
            except (_ClientGone, h11.RemoteProtocolError):
                pass
            gone = True
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_client, tg.cancel_scope)
            try:
                async for chunk in body:
                    if chunk:
                        await self._send(h11.Data(data=chunk))
            finally:
                aclose = getattr(body, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()
            tg.cancel_scope.cancel()
        if gone:
            raise _ClientGone

    async def _send_error(self, error: HTTPError) -> None:
        # h11 lets a server answer from IDLE too: a request that did not even parse.
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await self._respond(error.response(), head=False)

    async def serve(self) -> None:
        while True:
            try:
                with anyio.fail_after(self.limits.request_timeout):
                    request = await self._read_request()
            except TimeoutError:
                await self._send_error(HTTPError(408, "timeout", "the request took too long"))
                return
            except h11.RemoteProtocolError as exc:
                message = str(exc) or "malformed request"
                await self._send_error(HTTPError(exc.error_status_hint, "bad_request", message))
                return
            except HTTPError as exc:
                await self._send_error(exc)
                return
            except UnicodeDecodeError:
                await self._send_error(HTTPError(400, "bad_request", "the path is not UTF-8"))
                return
            if request is None:
                return
            try:
                response = await self.app(request)
            except HTTPError as exc:
                response = exc.response()
            except Exception:
                log.exception("HTTP %s %s from %s failed", request.method, request.path,
                              self.peer.host)  # fmt: skip
                response = HTTPError(
                    500, "internal", "internal error; see the server log"
                ).response()
            await self._respond(response, head=request.method == "HEAD")
            if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
                return
            try:
                self.conn.start_next_cycle()
            except h11.LocalProtocolError:  # the client is still sending a body we refused
                return


async def serve_connection(
    stream: anyio.abc.ByteStream,
    peer: PeerInfo,
    app: App,
    limits: HttpLimits | None = None,
) -> None:
    """Serve HTTP requests on ``stream`` with ``app`` until the client closes it.

    The caller owns ``stream`` (closes it afterwards). Never raises for anything the client
    does: protocol errors are answered and end the connection.
    """
    with contextlib.suppress(_ClientGone):
        await _Connection(stream, peer, app, limits or HttpLimits()).serve()


async def serve_http(
    host: str,
    port: int,
    app: App,
    *,
    limits: HttpLimits | None = None,
    ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
    name: str = "HTTP",
    task_status: anyio.abc.TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``host``:``port`` and serve ``app`` until cancelled.

    Args:
        host: an address or name; ``""`` for every interface.
        port: the port; 0 picks a free one.
        app: the application.
        limits: the bounds (:class:`HttpLimits` defaults when None).
        ssl_context: serve HTTPS with this server context (or a function returning the
            current one, so certificates can be reloaded); the client's verified certificate
            is in ``request.peer``.
        name: how log lines name this listener (``"admin"``, ``"HTTP API"``).
        task_status: receives every bound ``(host, port)`` once listening.

    Raises:
        OSError: the address cannot be bound.
    """
    from coord.plugins.builtin.tcp import remote_peer, serve_tcp

    limits = limits or HttpLimits()

    async def serve_one(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            remote = remote_peer(stream)
            if remote is None:
                return
            peer_host, peer_port = remote.host, remote.port
            served: anyio.abc.ByteStream = stream
            certificate = subject = None
            if ssl_context is not None:
                context = ssl_context() if callable(ssl_context) else ssl_context
                try:
                    with anyio.fail_after(limits.handshake_timeout):
                        served = await TLSStream.wrap(
                            stream, server_side=True, ssl_context=context, standard_compatible=False
                        )
                except (TimeoutError, ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream,
                        OSError) as exc:  # fmt: skip
                    log.info("%s: TLS handshake with %s:%d failed: %s", name, peer_host,
                             peer_port, exc or "timeout")  # fmt: skip
                    return
                certificate = served.extra(TLSAttribute.peer_certificate_binary, None)
                if certificate is not None:
                    from ._tls import certificate_identity

                    try:
                        subject = certificate_identity(certificate, "dn")
                    except ValueError:
                        subject = None
            peer = PeerInfo(peer_host, peer_port, subject, certificate)
            try:
                await serve_connection(served, peer, app, limits)
            except Exception:
                log.exception("%s connection from %s:%d failed", name, peer_host, peer_port)

    async with anyio.create_task_group() as tg:
        addresses = await tg.start(
            lambda task_status: serve_tcp(host, port, serve_one, name=name, task_status=task_status)
        )
        for bound_host, bound_port in addresses:
            log.info("%s on %s:%d", name, bound_host, bound_port)
        task_status.started(addresses)
