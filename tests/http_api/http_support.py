"""Helpers for the HTTP API tests: a tiny JSON client and an SSE reader on http.client."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from coord.plugins.builtin.http_api import HttpApiTransport


def http_address(server: Any) -> tuple[str, int]:
    """The ``(host, port)`` of a running server's HTTP API."""
    for transport in server.transports:
        if isinstance(transport, HttpApiTransport):
            return transport.addresses[0]
    raise AssertionError("the server has no http transport")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]
    raw: bytes = b""


@dataclass
class Api:
    """Sends one request per connection to the HTTP API."""

    host: str
    port: int
    headers: dict[str, str] = field(default_factory=dict)
    context: ssl.SSLContext | None = None

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self.context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        conn = self.connection()
        try:
            payload = raw if raw is not None else (None if body is None else json.dumps(body))
            all_headers = {**self.headers, **(headers or {})}
            if payload is not None:
                all_headers.setdefault("Content-Type", "application/json")
            conn.request(method, url, body=payload, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
            headers_ = {k.lower(): v for k, v in response.getheaders()}
            parsed = (
                json.loads(data) if data and "json" in headers_.get("content-type", "") else None
            )
            return Reply(response.status, parsed, headers_, data)
        finally:
            conn.close()

    def get(self, url: str, **kw: Any) -> Reply:
        return self.request("GET", url, **kw)

    def post(self, url: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", url, body, **kw)

    def put(self, url: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PUT", url, body, **kw)

    def delete(self, url: str, **kw: Any) -> Reply:
        return self.request("DELETE", url, **kw)

    def with_headers(self, **headers: str) -> Api:
        return Api(self.host, self.port, {**self.headers, **headers}, self.context)


@dataclass
class SseEvent:
    event: str
    data: Any
    id: str | None


class EventStream:
    """An open ``GET /v1/watch...`` stream, read event by event."""

    def __init__(self, api: Api, url: str, headers: Mapping[str, str] | None = None) -> None:
        self.conn = api.connection(timeout=10)
        self.conn.request("GET", url, headers={**api.headers, **(headers or {})})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.comments: list[str] = []

    def __iter__(self) -> Iterator[SseEvent]:
        while True:
            event = self.next()
            if event is None:
                return
            yield event

    def next(self) -> SseEvent | None:
        """The next event (comments are collected), None at the end of the stream."""
        name, data, ident = "message", [], None
        while True:
            line = self.response.readline()
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if text == "":
                if data:
                    return SseEvent(name, json.loads("\n".join(data)), ident)
                continue
            if text.startswith(":"):
                self.comments.append(text)
                continue
            key, _, value = text.partition(": ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
            elif key == "id":
                ident = value

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
