"""The shared HTTP/1.1 server (coord/server/_http.py): routing, keep-alive, limits, malformed
requests, streamed bodies that stop when the client goes away; on asyncio and trio."""

from __future__ import annotations

import base64
import functools
import http.client
import json
from collections.abc import AsyncIterator

import anyio
import pytest

from coord.server._http import HTTPError, HttpLimits, Request, Response, Router, serve_http

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class App:
    """A router with a few routes, recording what the streamed route did."""

    def __init__(self) -> None:
        self.router = Router()
        self.stream_closed = anyio.Event()
        self.stream_started = anyio.Event()
        self.router.add("GET", "/hello/{name}", self.hello)
        self.router.add("PUT", "/echo{path:path}", self.echo)
        self.router.add("GET", "/boom", self.boom)
        self.router.add("GET", "/teapot", self.teapot)
        self.router.add("GET", "/events", self.events)

    async def hello(self, request: Request) -> Response:
        body = {"name": request.params["name"], "n": request.int_arg("n", 1)}
        if (credentials := request.basic_credentials()) is not None:
            body["user"] = list(credentials)
        return Response.json(body)

    async def echo(self, request: Request) -> Response:
        return Response.json(
            {"path": request.params["path"], "body": request.json(), "peer": request.peer.host}
        )

    async def boom(self, request: Request) -> Response:
        raise RuntimeError("application bug")

    async def teapot(self, request: Request) -> Response:
        raise HTTPError(418, "teapot", "short and stout", hint="tip me over")

    async def events(self, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            try:
                self.stream_started.set()
                yield b"data: first\n\n"
                await anyio.sleep_forever()
                yield b"never"
            finally:
                self.stream_closed.set()

        return Response(200, body(), "text/event-stream")


async def _call(port: int, method: str, path: str, body: bytes | None = None, **headers: str):
    def run() -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    return await anyio.to_thread.run_sync(run)


async def _raw(port: int, data: bytes, *, read_until_close: bool = True) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        received = b""
        with anyio.fail_after(10):
            while True:
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return received
                if not read_until_close and b"\r\n\r\n" in received:
                    return received


async def _serve(tg: anyio.abc.TaskGroup, app: App, limits: HttpLimits | None = None) -> int:
    addresses = await tg.start(
        functools.partial(serve_http, limits=limits), "127.0.0.1", 0, app.router
    )
    return int(addresses[0][1])


async def test_routes_params_and_json_errors() -> None:
    app = App()
    async with anyio.create_task_group() as tg:
        port = await _serve(tg, app)
        status, headers, body = await _call(port, "GET", "/hello/w%C3%B6rld?n=3")
        assert (status, json.loads(body)) == (200, {"name": "wörld", "n": 3})
        assert headers["content-type"] == "application/json"

        status, _, body = await _call(port, "PUT", "/echo/a/b", b'{"x": [1]}')
        assert (status, json.loads(body)) == (
            200,
            {"path": "/a/b", "body": {"x": [1]}, "peer": "127.0.0.1"},
        )

        basic = "Basic " + base64.b64encode(b"bob:s3:cret").decode()
        status, _, body = await _call(port, "GET", "/hello/x", Authorization=basic)
        assert json.loads(body)["user"] == ["bob", "s3:cret"]
        status, _, body = await _call(port, "GET", "/hello/x", Authorization="Basic !!")
        assert status == 400 and "Basic" in json.loads(body)["message"]
        status, _, body = await _call(port, "GET", "/hello/x?n=three")
        assert status == 400 and json.loads(body)["error"] == "bad_request"
        status, _, body = await _call(port, "PUT", "/echo/x", b"{not json")
        assert status == 400 and "not valid JSON" in json.loads(body)["message"]
        status, _, body = await _call(port, "GET", "/nowhere")
        assert (status, json.loads(body)["error"]) == (404, "not_found")
        status, headers, _ = await _call(port, "DELETE", "/hello/x")
        assert status == 405 and headers["allow"] == "GET"
        status, _, body = await _call(port, "GET", "/teapot")
        assert (status, json.loads(body)) == (
            418,
            {"error": "teapot", "message": "short and stout", "hint": "tip me over"},
        )
        status, _, body = await _call(port, "GET", "/boom")
        assert (status, json.loads(body)["error"]) == (500, "internal")
        status, headers, body = await _call(port, "HEAD", "/hello/x")
        assert status == 200 and body == b"" and int(headers["content-length"]) > 0
        tg.cancel_scope.cancel()


async def test_keep_alive_serves_pipelined_requests_on_one_connection() -> None:
    app = App()
    async with anyio.create_task_group() as tg:
        port = await _serve(tg, app)
        request = b"GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\n"
        last = b"GET /hello/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        received = await _raw(port, request * 2 + last)
        assert received.count(b"HTTP/1.1 200") == 3
        assert received.index(b'"name":"a"') < received.index(b'"name":"b"')
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    "data",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /hello/a HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET /hello/a HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n",
        b"GET /hello/%FF HTTP/1.1\r\nHost: x\r\n\r\n",  # not UTF-8
    ],
)
async def test_malformed_requests_get_400_and_the_connection_closes(data: bytes) -> None:
    app = App()
    async with anyio.create_task_group() as tg:
        port = await _serve(tg, app)
        received = await _raw(port, data)
        assert received.startswith(b"HTTP/1.1 400"), received
        status, _, _ = await _call(port, "GET", "/hello/still-serving")
        assert status == 200
        tg.cancel_scope.cancel()


async def test_limits_on_headers_body_and_slow_clients() -> None:
    app = App()
    limits = HttpLimits(max_header_bytes=1024, max_body_bytes=100, request_timeout=0.5)
    async with anyio.create_task_group() as tg:
        port = await _serve(tg, app, limits)
        status, _, body = await _call(port, "PUT", "/echo/x", b'"' + b"a" * 200 + b'"')
        assert status == 413 and json.loads(body)["error"] == "too_large"
        chunked = (
            b"PUT /echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"80\r\n" + b"a" * 128 + b"\r\n0\r\n\r\n"
        )  # fmt: skip
        assert (await _raw(port, chunked)).startswith(b"HTTP/1.1 413")
        huge = b"GET /hello/a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 4096 + b"\r\n\r\n"
        assert (await _raw(port, huge)).startswith(b"HTTP/1.1 431")
        with anyio.fail_after(5):  # a client that never finishes its headers is dropped
            slow = await _raw(port, b"GET /hello/a HTTP/1.1\r\nHost: x\r\n")
        assert slow.startswith(b"HTTP/1.1 408")
        tg.cancel_scope.cancel()


async def test_a_streamed_body_stops_when_the_client_goes_away() -> None:
    app = App()
    async with anyio.create_task_group() as tg:
        port = await _serve(tg, app)
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            with anyio.fail_after(5):
                while b"data: first" not in received:
                    received += await stream.receive()
            assert b"transfer-encoding: chunked" in received.lower()
            assert b"text/event-stream" in received
            assert not app.stream_closed.is_set()
        with anyio.fail_after(5):  # closed at once, not at the next (never) write
            await app.stream_closed.wait()
        tg.cancel_scope.cancel()
