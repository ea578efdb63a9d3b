"""The HTTP API's routes: JSON over HTTP for the tree, watches as Server-Sent Events.

Every route turns an HTTP request into calls of coord's client on a gateway session
(:mod:`._gateway`), so the server answers it through its real request path, and maps the
ZooKeeper result to an HTTP status (:data:`ERRORS`). The routes, their parameters, bodies
and errors are described by the OpenAPI document (:mod:`._openapi`, served at
``/v1/openapi.json``); docs/http-api.md shows each one with curl.

Conventions: node data travels base64-encoded in JSON strings unless the request says
``?encoding=utf8``; a Stat is an object with ZooKeeper's field names (``ephemeralOwner``
as a hex string, session ids exceeding what JSON numbers keep exactly); an ACL entry is
``{"perms": "cdrwa", "scheme": "world", "id": "anyone"}``; errors are
``{"error": "bad_version", "message": ..., "zookeeper": "BadVersion", ...}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote

import anyio

from coord.client import Client, GetData, TransactionFailed
from coord.client._paths import validate_path
from coord.client._types import CheckResult, CreateResult, DeleteResult, SetResult
from coord.protocol import ACL, ErrorCode, Id, Stat
from coord.protocol._errors import (
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    CoordError,
    EphemeralOnLocalSessionError,
    InvalidACLError,
    MarshallingError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    QuotaExceededError,
    RolledBackError,
    RuntimeInconsistencyError,
    ThrottledOpError,
    UnimplementedError,
)
from coord.server._http import HTTPError, Request, Response, Router

from ._events import EVENT_NAMES, Compacted, EventHistory, TreeEvent
from ._gateway import Gateway, GatewaySession, Identity

if TYPE_CHECKING:
    from coord.server._config import ServerConfig

__all__ = ["ERRORS", "HttpApi", "stat_json"]

T = TypeVar("T")

#: ZooKeeper error -> (HTTP status, error code). Others: 503 (connection, session, timeouts).
ERRORS: Final[dict[type[CoordError], tuple[int, str]]] = {
    NoNodeError: (404, "no_node"),
    NodeExistsError: (409, "node_exists"),
    BadVersionError: (409, "bad_version"),
    NotEmptyError: (409, "not_empty"),
    NoChildrenForEphemeralsError: (409, "no_children_for_ephemerals"),
    NoAuthError: (403, "no_auth"),
    QuotaExceededError: (403, "quota_exceeded"),
    AuthFailedError: (401, "auth_failed"),
    InvalidACLError: (400, "invalid_acl"),
    BadArgumentsError: (400, "bad_arguments"),
    UnimplementedError: (400, "unimplemented"),
    EphemeralOnLocalSessionError: (400, "bad_arguments"),
    MarshallingError: (413, "too_large"),
    ThrottledOpError: (429, "throttled"),
}
#: How long one HTTP request may wait for the server (a write without a quorum).
_OP_TIMEOUT: Final = 30.0
_PERMS: Final = "rwcda"  # bit order: READ=1, WRITE=2, CREATE=4, DELETE=8, ADMIN=16
_MODES: Final = ("persistent", "ephemeral", "container", "ttl")
_OPS: Final = ("create", "set", "delete", "check")
_SSE: Final = "text/event-stream"
#: Children read per multiRead when a children listing includes their data.
_CHILD_BATCH: Final = 100


def zookeeper_name(error: CoordError) -> str:
    """ZooKeeper's name of an error code (``BadVersion``)."""
    code = error.code if error.code is not None else ErrorCode.SYSTEM_ERROR
    return "".join(part.capitalize() for part in ErrorCode(code).name.split("_"))


def http_error(error: CoordError) -> HTTPError:
    """The HTTP error answering a ZooKeeper error."""
    for cls in type(error).__mro__:
        if cls in ERRORS:
            status, code = ERRORS[cls]
            headers = [("Retry-After", "1")] if status == 429 else []
            return HTTPError(
                status, code, str(error), headers, zookeeper=zookeeper_name(error),
                **({"path": error.path} if error.path else {}),
            )  # fmt: skip
    return HTTPError(
        503,
        "unavailable",
        f"the server could not answer now ({type(error).__name__}: {error}); retry",
        [("Retry-After", "1")],
        zookeeper=zookeeper_name(error),
    )


def stat_json(stat: Stat) -> dict[str, Any]:
    """A Stat as JSON, with ZooKeeper's field names."""
    return {
        "czxid": stat.czxid,
        "mzxid": stat.mzxid,
        "ctime": stat.ctime,
        "mtime": stat.mtime,
        "version": stat.version,
        "cversion": stat.cversion,
        "aversion": stat.aversion,
        "ephemeralOwner": f"0x{stat.ephemeral_owner:x}",
        "dataLength": stat.data_length,
        "numChildren": stat.num_children,
        "pzxid": stat.pzxid,
    }


def perms_text(perms: int) -> str:
    """Permission bits as zkCli writes them (``cdrwa`` letters, in bit order ``rwcda``)."""
    return "".join(letter for bit, letter in enumerate(_PERMS) if perms & (1 << bit))


def acl_json(acl: list[ACL] | tuple[ACL, ...]) -> list[dict[str, str]]:
    return [{"perms": perms_text(e.perms), "scheme": e.id.scheme, "id": e.id.id} for e in acl]


def _bad(message: str, code: str = "bad_request") -> HTTPError:
    return HTTPError(400, code, message)


def _text(value: str, what: str, code: str = "bad_request") -> str:
    """``value`` if it can be sent (JSON strings may hold lone surrogates, UTF-8 cannot)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise _bad(f"{what} is not valid Unicode text", code) from None
    return value


def parse_acl(value: Any) -> tuple[ACL, ...]:
    """An ACL from JSON.

    Raises:
        HTTPError: 400, malformed.
    """
    if not isinstance(value, list) or not value:
        raise _bad("acl must be a non-empty list of {perms, scheme, id} objects", "invalid_acl")
    entries = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) - {"perms", "scheme", "id"}:
            raise _bad("each acl entry is an object {perms, scheme, id}", "invalid_acl")
        perms, scheme, ident = entry.get("perms"), entry.get("scheme"), entry.get("id")
        if not isinstance(scheme, str) or not isinstance(ident, str) or not scheme:
            raise _bad("an acl entry needs a scheme and an id (strings)", "invalid_acl")
        if not isinstance(perms, str) or not perms or set(perms) - set(_PERMS):
            raise _bad('perms is a string of the letters "cdrwa"', "invalid_acl")
        bits = sum(1 << _PERMS.index(letter) for letter in set(perms))
        entries.append(ACL(bits, Id(_text(scheme, "scheme"), _text(ident, "id"))))
    return tuple(entries)


def _path(request: Request, *, sequential: bool = False) -> str:
    raw = request.params.get("path", "")
    if raw and not raw.startswith("/"):  # /v1/nodes/a is not /v1/node/s/a
        raise HTTPError(404, "not_found", f"no such resource: {request.path}")
    path = raw or "/"
    try:
        return validate_path(path, sequential=sequential)
    except BadArgumentsError as exc:
        raise _bad(str(exc), "bad_path") from None


def _encoding(request: Request) -> str:
    encoding = request.arg("encoding", "base64") or "base64"
    if encoding not in ("base64", "utf8"):
        raise _bad(f'encoding must be "base64" or "utf8", not {encoding!r}')
    return encoding


def _encode(data: bytes, encoding: str) -> str:
    if encoding == "base64":
        return base64.b64encode(data).decode()
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise HTTPError(
            406, "not_utf8", "the node's data is not UTF-8 text; read it with encoding=base64"
        ) from None


def _decode(value: Any, encoding: str, limit: int) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise _bad("data must be a string (base64, or text with encoding=utf8)")
    if encoding == "base64":
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("data is not valid base64 (or pass encoding=utf8)", "bad_data") from None
    else:
        data = _text(value, "data", "bad_data").encode()
    if len(data) > limit:
        raise HTTPError(413, "too_large", f"data larger than {limit} bytes (max_frame)")
    return data


def _object(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    body = request.json()
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    return body


def _version(request: Request) -> int:
    version = request.int_arg("version", -1)
    if not -1 <= version < 2**31:
        raise _bad("version must be -1 (any) or a node version")
    return version


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise _bad(f"{key} must be true or false")
    return value


def _create_options(body: dict[str, Any], *, session: bool) -> dict[str, Any]:
    mode = body.get("mode", "persistent")
    if mode not in _MODES:
        raise _bad(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
    ttl = body.get("ttl")
    options: dict[str, Any] = {
        "ephemeral": mode == "ephemeral",
        "container": mode == "container",
        "sequential": _bool(body, "sequential"),
        "ttl": None,
    }
    if mode == "ttl":
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl < 2**40:
            raise _bad("a ttl node needs ttl, a positive number of milliseconds")
        options["ttl"] = ttl / 1000
    elif ttl is not None:
        raise _bad('ttl is only for mode "ttl"')
    if mode == "container" and options["sequential"]:
        raise _bad("a container node cannot be sequential")
    if mode == "ephemeral" and not session:
        raise _bad(
            "ephemeral nodes belong to a session: create one with POST /v1/sessions and "
            "send its id in X-Coord-Session",
            "session_required",
        )
    if "acl" in body:
        options["acl"] = parse_acl(body["acl"])
    return options


def _since(request: Request) -> int | None:
    text = request.headers.get("last-event-id") or request.arg("since")
    if text is None or text == "":
        return None
    try:
        since = int(text, 0)
    except ValueError:
        raise _bad(f"since (or Last-Event-ID) must be a zxid, not {text!r}") from None
    if since < 0:
        raise _bad("since must not be negative")
    return since


def _sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    text = f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n"
    if event_id is not None:
        text += f"id: {event_id}\n"
    return (text + "\n").encode()


def _event_json(event: TreeEvent) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": EVENT_NAMES.get(event.type, str(event.type)),  # type: ignore[call-overload]
        "path": event.path,
        "zxid": event.zxid,
    }
    if event.stat is not None:
        body["stat"] = stat_json(event.stat)
    return body


class HttpApi:
    """The HTTP API application (a :class:`~coord.server._http.Router` of its routes).

    Args:
        config: the server configuration.
        gateway: the sessions requests run on.
    """

    def __init__(self, config: ServerConfig, gateway: Gateway) -> None:
        self.config = config
        self.gateway = gateway
        #: The watch history, once the server started (``coord_server_started``).
        self.history: EventHistory | None = None
        self.server: Any = None
        self._data_limit = config.max_frame - 1024
        router = self.router = Router()
        for method, pattern, handler in (
            ("GET", "/v1/openapi.json", self.openapi),
            ("GET", "/v1/node{path:path}", self.get_node),
            ("POST", "/v1/node{path:path}", self.create_node),
            ("PUT", "/v1/node{path:path}", self.set_node),
            ("DELETE", "/v1/node{path:path}", self.delete_node),
            ("GET", "/v1/children{path:path}", self.get_children),
            ("GET", "/v1/acl{path:path}", self.get_acl),
            ("PUT", "/v1/acl{path:path}", self.set_acl),
            ("POST", "/v1/sync{path:path}", self.sync),
            ("POST", "/v1/multi", self.multi),
            ("GET", "/v1/whoami", self.whoami),
            ("POST", "/v1/sessions", self.create_session),
            ("PUT", "/v1/sessions/{token}", self.keep_alive),
            ("DELETE", "/v1/sessions/{token}", self.close_session),
            ("GET", "/v1/watch{path:path}", self.watch),
        ):
            router.add(method, pattern, handler)

    async def __call__(self, request: Request) -> Response:
        return await self.router(request)

    # --- plumbing --------------------------------------------------------------------------

    @staticmethod
    def identity(request: Request) -> Identity:
        """Who sent ``request``: address, Basic credentials, client certificate.

        Raises:
            HTTPError: 400, malformed Basic credentials; 401, another kind of
                ``Authorization``.
        """
        peer = request.peer
        credentials = request.basic_credentials()
        if credentials is None and "authorization" in request.headers:
            raise HTTPError(
                401,
                "auth_failed",
                "only HTTP Basic credentials are understood (user:password, the digest scheme)",
                [("WWW-Authenticate", 'Basic realm="coord"')],
            )
        return Identity(
            peer.host,
            peer.port,
            credentials,
            peer.certificate,
            peer.certificate_subject,
        )

    async def _run(self, request: Request, op: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``op`` on the request's session (``X-Coord-Session``, else pooled)."""
        token = request.headers.get("x-coord-session")
        async with self.gateway.session(self.identity(request), token) as session:
            return await self._call(session, op)

    @staticmethod
    async def _call(session: GatewaySession, op: Callable[[Client], Awaitable[T]]) -> T:
        client = session.client
        assert client is not None
        try:
            with anyio.fail_after(_OP_TIMEOUT):
                return await op(client)
        except TimeoutError:
            raise HTTPError(
                503, "timeout", "the server did not answer in time", [("Retry-After", "1")]
            ) from None
        except TransactionFailed:
            raise
        except CoordError as exc:
            raise http_error(exc) from None

    # --- routes ----------------------------------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        from ._openapi import openapi_document

        return Response.json(openapi_document())

    async def get_node(self, request: Request) -> Response:
        path = _path(request)
        encoding = _encoding(request)
        if request.method == "HEAD" or request.flag("stat"):
            found = await self._run(request, lambda c: c.exists(path))
            if found is None:
                raise HTTPError(404, "no_node", f"{path} does not exist", zookeeper="NoNode",
                                path=path)  # fmt: skip
            return Response.json({"path": path, "stat": stat_json(found)})

        async def read(client: Client) -> tuple[bytes, Stat]:
            return await client.get(path)

        data, stat = await self._run(request, read)
        return Response.json(
            {
                "path": path,
                "data": _encode(data, encoding),
                "encoding": encoding,
                "stat": stat_json(stat),
            }
        )

    async def create_node(self, request: Request) -> Response:
        body = _object(request)
        unknown = set(body) - {"data", "mode", "sequential", "ttl", "acl", "makepath"}
        if unknown:
            raise _bad(f"unknown fields: {', '.join(sorted(unknown))}")
        options = _create_options(body, session="x-coord-session" in request.headers)
        path = _path(request, sequential=options["sequential"])
        if path == "/" and not options["sequential"]:
            raise HTTPError(409, "node_exists", "the root always exists", zookeeper="NodeExists",
                            path="/")  # fmt: skip
        data = _decode(body.get("data"), _encoding(request), self._data_limit)
        makepath = _bool(body, "makepath")
        created, stat = await self._run(
            request,
            lambda c: c.create_with_stat(path, data, makepath=makepath, protected=False, **options),
        )
        return Response.json(
            {"path": created, "stat": stat_json(stat)},
            201,
            [("Location", quote(f"/v1/node{created}"))],
        )

    async def set_node(self, request: Request) -> Response:
        path = _path(request)
        body = _object(request)
        if set(body) - {"data"}:
            raise _bad('the body is {"data": ...}')
        data = _decode(body.get("data"), _encoding(request), self._data_limit)
        version = _version(request)
        stat = await self._run(request, lambda c: c.set(path, data, version))
        return Response.json({"path": path, "stat": stat_json(stat)})

    async def delete_node(self, request: Request) -> Response:
        path = _path(request)
        version = _version(request)
        recursive = request.flag("recursive")
        if path == "/":
            raise _bad("the root cannot be deleted", "bad_arguments")
        await self._run(request, lambda c: c.delete(path, version, recursive=recursive))
        return Response(204)

    async def get_children(self, request: Request) -> Response:
        path = _path(request)
        with_data = request.flag("data")
        with_stat = request.flag("stat") or with_data
        encoding = _encoding(request)

        async def read(client: Client) -> dict[str, Any]:
            names, stat = await client.children_with_stat(path)
            names.sort()
            body: dict[str, Any] = {"path": path, "stat": stat_json(stat)}
            if not with_stat:
                body["children"] = names
                return body
            children = []
            prefix = "/" if path == "/" else path + "/"
            for start in range(0, len(names), _CHILD_BATCH):
                batch = names[start : start + _CHILD_BATCH]
                results = await client.multi_read(*(GetData(prefix + n) for n in batch))
                for name, result in zip(batch, results):
                    if isinstance(result, NoNodeError):
                        continue  # deleted meanwhile
                    if isinstance(result, CoordError):
                        raise result
                    assert isinstance(result, tuple)
                    child: dict[str, Any] = {"name": name, "stat": stat_json(result[1])}
                    if with_data:
                        child["data"] = _encode(result[0], encoding)
                    children.append(child)
            body["children"] = children
            return body

        return Response.json(await self._run(request, read))

    async def get_acl(self, request: Request) -> Response:
        path = _path(request)
        acl, stat = await self._run(request, lambda c: c.get_acl(path))
        return Response.json({"path": path, "acl": acl_json(acl), "stat": stat_json(stat)})

    async def set_acl(self, request: Request) -> Response:
        path = _path(request)
        body = _object(request)
        if set(body) != {"acl"}:
            raise _bad('the body is {"acl": [...]}', "invalid_acl")
        acl = parse_acl(body["acl"])
        version = _version(request)
        stat = await self._run(request, lambda c: c.set_acl(path, acl, version))
        return Response.json({"path": path, "stat": stat_json(stat)})

    async def sync(self, request: Request) -> Response:
        path = _path(request)
        await self._run(request, lambda c: c.sync(path))
        return Response.json({"path": path})

    async def whoami(self, request: Request) -> Response:
        infos = await self._run(request, lambda c: c.whoami())
        return Response.json(
            {"identities": [{"scheme": i.auth_scheme, "id": i.user} for i in infos]}
        )

    async def multi(self, request: Request) -> Response:
        body = _object(request)
        ops = body.get("ops")
        if set(body) != {"ops"} or not isinstance(ops, list) or not ops:
            raise _bad('the body is {"ops": [...]} with at least one op')
        encoding = _encoding(request)
        has_session = "x-coord-session" in request.headers
        plan: list[tuple[str, str, dict[str, Any]]] = []
        for index, op in enumerate(ops):
            if not isinstance(op, dict) or op.get("op") not in _OPS:
                raise _bad(f"op {index}: an object with op one of {', '.join(_OPS)}")
            kind = op["op"]
            allowed = {
                "create": {"op", "path", "data", "mode", "sequential", "ttl", "acl"},
                "set": {"op", "path", "data", "version"},
                "delete": {"op", "path", "version"},
                "check": {"op", "path", "version"},
            }[kind]
            if set(op) - allowed:
                raise _bad(f"op {index}: unknown fields {', '.join(sorted(set(op) - allowed))}")
            raw_path = op.get("path")
            if not isinstance(raw_path, str):
                raise _bad(f"op {index}: path must be a string", "bad_path")
            args: dict[str, Any] = {}
            sequential = False
            if kind == "create":
                options = {k: v for k, v in op.items() if k not in ("op", "path", "data")}
                args = _create_options(options, session=has_session)
                sequential = args["sequential"]
            try:
                path = validate_path(_text(raw_path, "path", "bad_path"), sequential=sequential)
            except BadArgumentsError as exc:
                raise _bad(f"op {index}: {exc}", "bad_path") from None
            if kind in ("create", "set"):
                args["data"] = _decode(op.get("data"), encoding, self._data_limit)
            if kind in ("set", "delete", "check"):
                version = op.get("version", -1)
                if isinstance(version, bool) or not isinstance(version, int):
                    raise _bad(f"op {index}: version must be an integer")
                if not -1 <= version < 2**31:
                    raise _bad(f"op {index}: version must be -1 (any) or a node version")
                args["version"] = version
            plan.append((kind, path, args))

        async def commit(client: Client) -> list[Any]:
            txn = client.transaction()
            for kind, path, args in plan:
                if kind == "create":
                    data = args.pop("data")
                    txn.create(path, data, **args)
                elif kind == "set":
                    txn.set(path, args["data"], args["version"])
                elif kind == "delete":
                    txn.delete(path, args["version"])
                else:
                    txn.check(path, args["version"])
            return await txn.commit()

        try:
            results = await self._run(request, commit)
        except TransactionFailed as failed:
            error = http_error(failed.error)
            error.details["index"] = failed.index
            error.details["results"] = [
                {"op": kind, "error": _op_error(result)}
                for (kind, _, _), result in zip(plan, failed.results)
            ]
            error.message = f"op {failed.index} failed ({error.code}); nothing was applied"
            raise error from None
        out = []
        for (kind, _, _), result in zip(plan, results):
            item: dict[str, Any] = {"op": kind}
            if isinstance(result, CreateResult):
                item["path"] = result.path
                if result.stat is not None:
                    item["stat"] = stat_json(result.stat)
            elif isinstance(result, SetResult):
                item["stat"] = stat_json(result.stat)
            else:
                assert isinstance(result, DeleteResult | CheckResult)
            out.append(item)
        return Response.json({"results": out})

    # --- sessions --------------------------------------------------------------------------

    async def create_session(self, request: Request) -> Response:
        body = _object(request)
        if set(body) - {"timeout"}:
            raise _bad('the body is {"timeout": seconds}')
        timeout = body.get("timeout", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise _bad("timeout must be a number of seconds")
        if not 1 <= timeout <= 3600:
            raise _bad("timeout must be between 1 and 3600 seconds")
        session = await self.gateway.create_owned(self.identity(request), float(timeout))
        assert session.client is not None and session.token is not None
        return Response.json(
            self._session_json(session),
            201,
            [("Location", f"/v1/sessions/{session.token}")],
        )

    @staticmethod
    def _session_json(session: GatewaySession) -> dict[str, Any]:
        assert session.client is not None
        return {
            "id": session.token,
            "sessionId": f"0x{session.client.session_id:x}",
            "timeout": session.timeout,
        }

    async def keep_alive(self, request: Request) -> Response:
        session = self.gateway.keep_alive(self.identity(request), request.params["token"])
        return Response.json(self._session_json(session))

    async def close_session(self, request: Request) -> Response:
        await self.gateway.close_owned(self.identity(request), request.params["token"])
        return Response(204)

    # --- watches ---------------------------------------------------------------------------

    async def watch(self, request: Request) -> Response:
        path = _path(request)
        recursive = request.flag("recursive")
        since = _since(request)
        history = self.history
        if history is None:
            raise HTTPError(503, "starting", "the server is starting", [("Retry-After", "1")])
        async with self.gateway.session(self.identity(request)) as session:
            ids = session.auth_ids(self.server)
        if since is not None and since < history.horizon:
            raise HTTPError(
                410,
                "compacted",
                f"events after zxid {since} are no longer kept (the oldest zxid a stream can "
                f"resume from is {history.horizon}): read the current state and watch again "
                "without since",
                oldest=history.horizon,
            )
        heartbeat = self.config.http_heartbeat
        overflow = {
            "message": "the stream fell behind (or the server loaded a snapshot); "
            "reconnect with Last-Event-ID to resume"
        }

        async def stream() -> AsyncIterator[bytes]:
            # Subscribing here, when the body is first iterated, ties the subscription to
            # the body: one that is never sent (HEAD, the client gone before the headers)
            # never subscribes, and the body's closing always unsubscribes.
            try:
                subscription = history.subscribe(path, recursive=recursive, ids=ids, since=since)
            except Compacted:  # compacted since the check above: resuming gets the 410
                yield _sse("overflow", overflow)
                return
            start = history.last_zxid
            ready = {"path": path, "recursive": recursive, "zxid": start}
            try:
                yield b"retry: 1000\n" + _sse("ready", ready, start if since is None else None)
                events = subscription.events
                while True:
                    event: TreeEvent | None = None
                    with anyio.move_on_after(heartbeat):
                        try:
                            event = await events.receive()
                        except anyio.EndOfStream:
                            break
                    if event is None:
                        yield b": heartbeat\n\n"
                        continue
                    batch = [event]
                    while True:
                        try:
                            batch.append(events.receive_nowait())
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                    yield _format_batch(batch)
                if subscription.overflowed:
                    yield _sse("overflow", overflow)
            finally:
                history.unsubscribe(subscription)

        return Response(200, stream(), _SSE)


def _format_batch(events: list[TreeEvent]) -> bytes:
    """SSE lines for ``events``; only the last event of a zxid carries the ``id``, so a
    stream resumed from an id never skips events of the same zxid."""
    out = []
    for index, event in enumerate(events):
        last = index + 1 == len(events) or events[index + 1].zxid != event.zxid
        name = EVENT_NAMES.get(event.type, str(event.type))  # type: ignore[call-overload]
        out.append(_sse(name, _event_json(event), event.zxid if last else None))
    return b"".join(out)


def _op_error(error: CoordError) -> str:
    if isinstance(error, RolledBackError):
        return "rolled_back"
    if isinstance(error, RuntimeInconsistencyError):
        return "not_run"
    return http_error(error).code
