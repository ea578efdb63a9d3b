"""The admin HTTP endpoint: AdminServer commands, health, metrics and a read-only web page.

Theory of operation
-------------------
Off by default; ``admin_port`` turns it on (``admin_host``, default 127.0.0.1, is where it
binds). It runs in the server's event loop on :mod:`coord.server._http` and reads the
server's state directly, between requests of the client port -- so every answer is a
consistent view, and nothing it does can block a client for long (the page's reads are
bounded: children lists and data are truncated).

Routes (docs/admin.md shows each with curl):

* ``/commands`` and ``/commands/<name>``: ZooKeeper's AdminServer commands as JSON
  (``org.apache.zookeeper.server.admin.Commands``), computed by coord/server/_fourlw.py from
  the same data as the four-letter words. ``snapshot`` streams the store as a tar archive
  (coord/server/_snapshot.py) only when ``snap`` is named in ``four_letter_words``, exactly
  as the ``snap`` word: it bypasses every ACL.
* ``/health`` (the process serves HTTP: liveness) and ``/ready`` (this member serves
  clients: readiness; 503 with the reason otherwise), for Kubernetes probes.
* ``/metrics``: Prometheus text format (coord/server/_metrics.py).
* ``/ui/``: a static page (coord/server/static/) over ``/api/tree``, ``/api/node`` and
  ``/api/ensemble``. Node reads go through the state machine's ``read`` -- the very code
  that answers getChildren2/getData/getACL on the client port -- with the identities an
  unauthenticated client from the browser's address has (``world``, ``ip``), plus a
  ``digest`` identity when the request carries HTTP Basic credentials. So the page shows
  nothing a client could not read; where a read is refused it says "not authorized".
"""

from __future__ import annotations

import ipaddress
import json
import logging
import mimetypes
import time
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc

from coord.protocol import (
    CoordError,
    ExistsRequest,
    GetACLRequest,
    GetACLResponse,
    GetChildren2Request,
    GetChildren2Response,
    GetDataRequest,
    GetDataResponse,
    Id,
    OpCode,
    Reader,
    Stat,
)

from ._fourlw import COMMANDS, command_data, find_command
from ._http import App, HTTPError, Request, Response, Router, serve_http
from ._tree import validate_path
from .http_api._app import stat_json

if TYPE_CHECKING:
    from ._server import Server

__all__ = ["admin_app", "readiness", "serve_admin"]

log = logging.getLogger("coord.server")
audit_log = logging.getLogger("coord.audit")

#: Children listed per /api/tree answer (the rest are counted, not listed).
MAX_CHILDREN: Final = 1000
#: Bytes of a node's data shown by /api/node (the rest is cut off, with a note).
MAX_DATA: Final = 64 * 1024
#: A follower this many entries behind its commit index is not ready.
READY_LAG: Final = 1000
_PROMETHEUS_TEXT: Final = "text/plain; version=0.0.4; charset=utf-8"


async def serve_admin(
    server: Server,
    *,
    task_status: anyio.abc.TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the admin endpoint of ``server`` on ``admin_host``:``admin_port`` until
    cancelled; reports the bound addresses through ``task_status``."""
    config = server.config
    assert config.admin_port is not None
    app = admin_app(server)
    await serve_http(
        config.admin_host,
        config.admin_port,
        _loopback_only(app) if _is_loopback(config.admin_host) else app,
        name="admin",
        task_status=task_status,
    )


def _is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, possibly ``[v6]``) is this machine only."""
    host = host.strip("[]")
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_only(app: Router) -> App:
    """``app`` answering only requests addressed to a loopback name (the ``Host`` header).

    An endpoint bound to loopback is meant for this machine; a web page elsewhere can still
    make a browser here send it requests through DNS rebinding (its own name resolving to
    127.0.0.1), with a ``Host`` header naming that site. Refusing those keeps such a page
    from reading znodes with this machine's ``ip`` identity.
    """

    async def guarded(request: Request) -> Response:
        host = request.headers.get("host", "")
        name = host.rpartition("]")[0] + "]" if host.startswith("[") else host.partition(":")[0]
        if not _is_loopback(name):
            raise HTTPError(
                403,
                "forbidden_host",
                f"the admin endpoint listens on loopback and answers only requests to "
                f"localhost or a loopback address, not {host!r}; set admin_host to serve "
                "other names",
            )
        return await app(request)

    return guarded


def readiness(server: Server) -> tuple[bool, str]:
    """Whether ``server`` serves clients, and why not.

    Ready: a standalone server whose listeners run, or an ensemble member that knows a
    leader (is not cut off) and has applied what it knows to be committed (within
    :data:`READY_LAG` entries). Not ready: starting, draining, a failed store, no leader,
    catching up.
    """
    if server.failed is not None:
        return False, f"the store failed: {server.failed}"
    listeners = server._listeners
    if listeners is None or not server.addresses:
        return False, "starting: the client port is not open yet"
    if listeners.cancel_called:
        return False, "draining: the client port is closed"
    replicator = server.replicator
    if replicator is None:
        return True, "standalone"
    raft = replicator.raft
    if replicator.cut_off or raft.leader == 0:
        return False, "no leader: this member is cut off from a quorum or an election is on"
    lag = raft.commit - server._applied_index
    if lag > READY_LAG:
        return False, f"catching up: {lag} committed entries not applied yet"
    return True, replicator.mode


def _session_ids(server: Server, request: Request) -> tuple[Id, ...]:
    """The identities of a client at the browser's address, plus Basic credentials as
    ``digest``."""
    ids = list(server.connection_ids(request.peer))
    credentials = request.basic_credentials()
    if credentials is not None:
        scheme = server.acl.schemes.get("digest")
        if scheme is None:
            raise HTTPError(400, "bad_request", "the digest scheme is not enabled")
        user, password = credentials
        ids.extend(scheme.authenticate(request.peer, f"{user}:{password}".encode()))
    return tuple(dict.fromkeys(ids))


def _path(request: Request) -> str:
    path = request.arg("path", "/") or "/"
    try:
        validate_path(path)
    except CoordError as exc:
        raise HTTPError(400, "bad_path", str(exc)) from None
    return path


def _perms(perms: int) -> str:
    return "".join(c for c, bit in zip("rwcda", (1, 2, 4, 8, 16), strict=True) if perms & bit)


def _read(server: Server, op: int, request: Any, ids: tuple[Id, ...]) -> Reader | CoordError:
    try:
        return Reader(server.state.read(op, request, ids, 0))
    except CoordError as exc:
        return exc


def _refused(exc: CoordError, path: str) -> HTTPError:
    name = type(exc).__name__
    if name == "NoNodeError":
        return HTTPError(404, "no_node", f"{path} does not exist")
    if name == "NoAuthError":
        return HTTPError(403, "not_authorized", f"not authorized to read {path}")
    return HTTPError(400, "bad_request", f"{path}: {exc}")


def _show_data(data: bytes | None) -> dict[str, Any]:
    """Data as text (JSON pretty-printed when it parses) or hex, truncated."""
    if data is None:
        return {"encoding": "none", "text": "", "size": 0, "truncated": False}
    shown = data[:MAX_DATA]
    out: dict[str, Any] = {"size": len(data), "truncated": len(data) > MAX_DATA}
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Cut inside a multi-byte character at the limit: show text up to it.
        if not (out["truncated"] and exc.start >= len(shown) - 3):
            return out | {"encoding": "hex", "text": shown.hex(" ", 1)}
        try:
            text = shown[: exc.start].decode("utf-8")
        except UnicodeDecodeError:
            return out | {"encoding": "hex", "text": shown.hex(" ", 1)}
    if not out["truncated"] and text.strip()[:1] in ("{", "["):
        try:
            return out | {"encoding": "json", "text": json.dumps(json.loads(text), indent=2)}
        except ValueError:
            pass
    printable = all(c.isprintable() or c in "\n\r\t" for c in text)
    if not printable:
        return out | {"encoding": "hex", "text": shown.hex(" ", 1)}
    return out | {"encoding": "text", "text": text}


def _ensemble(server: Server) -> dict[str, Any]:
    replicator = server.replicator
    config = server.config
    ready, reason = readiness(server)
    base: dict[str, Any] = {
        "server_id": config.server_id,
        "ready": ready,
        "ready_reason": reason,
        "last_zxid": f"0x{server.state.last_zxid:x}",
        "applied_index": server._applied_index,
    }
    if replicator is None:
        host, port = server.addresses[0] if server.addresses else (config.host, config.port)
        return base | {
            "mode": "standalone",
            "leader": config.server_id,
            "term": 0,
            "commit_index": server._applied_index,
            "members": [
                {
                    "id": config.server_id,
                    "role": "participant",
                    "state": "standalone",
                    "client": f"{host}:{port}",
                    "peer": None,
                    "match_index": server._applied_index,
                    "lag": 0,
                    "self": True,
                }
            ],
        }
    raft = replicator.raft
    last = raft.last_index()
    members = []
    for member in sorted(replicator.members.values(), key=lambda m: m.id):
        if member.id == raft.leader:
            state = "leader"
        elif not member.voter:
            state = "observer"
        else:
            state = "follower"
        match: int | None = None
        if member.id == replicator.id:
            match = last
        elif replicator.is_leader:
            progress = raft.progress(member.id)
            match = progress[0] if progress is not None else None
        members.append(
            {
                "id": member.id,
                "role": member.role,
                "state": state,
                "client": f"{member.client[0]}:{member.client[1]}",
                "peer": f"{member.peer[0]}:{member.peer[1]}",
                "match_index": match,
                "lag": None if match is None or not replicator.is_leader else max(0, last - match),
                "self": member.id == replicator.id,
            }
        )
    return base | {
        "mode": replicator.mode,
        "leader": raft.leader,
        "term": raft.term,
        "commit_index": raft.commit,
        "last_index": last,
        "members": members,
    }


def _static(name: str) -> tuple[bytes, str] | None:
    if "/" in name or name.startswith("."):
        return None
    try:
        data = resources.files("coord.server").joinpath("static", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "text/javascript"):
        kind += "; charset=utf-8"
    return data, kind


def admin_app(server: Server) -> Router:
    """The admin endpoint's routes for ``server``."""
    router = Router()

    @router.route("GET", "/")
    async def index(request: Request) -> Response:
        return Response(302, b"", "text/plain", [("Location", "/ui/")])

    @router.route("GET", "/commands")
    async def commands(request: Request) -> Response:
        return Response.json(
            {
                "commands": [c.name for c in COMMANDS] + ["snapshot"],
                "aliases": {c.name: list(c.names[1:]) for c in COMMANDS if len(c.names) > 1}
                | {"snapshot": ["snap"]},
            }
        )

    async def run_command(request: Request) -> Response:
        name = request.params["name"]
        if name in ("snapshot", "snap"):
            return await _snapshot(server, request)
        command = find_command(name)
        if command is None:
            return Response.json({"command": name, "error": f"Unknown command: {name}"}, status=404)
        return Response.json(command_data(server, command))

    router.add("GET", "/commands/{name}", run_command)
    router.add("POST", "/commands/{name}", run_command)

    @router.route("GET", "/health")
    async def health(request: Request) -> Response:
        return Response.json({"status": "ok"})

    @router.route("GET", "/ready")
    async def ready(request: Request) -> Response:
        ok, reason = readiness(server)
        mode = "standalone" if server.replicator is None else server.replicator.mode
        body = {"ready": ok, "reason": reason, "mode": mode}
        return Response.json(body, status=200 if ok else 503)

    @router.route("GET", "/metrics")
    async def metrics(request: Request) -> Response:
        from ._metrics import render

        return Response.text(render(server), content_type=_PROMETHEUS_TEXT)

    @router.route("GET", "/ui")
    async def ui_redirect(request: Request) -> Response:
        return Response(302, b"", "text/plain", [("Location", "/ui/")])

    @router.route("GET", "/ui/{name:path}")
    async def ui(request: Request) -> Response:
        found = _static(request.params["name"] or "index.html")
        if found is None:
            raise HTTPError(404, "not_found", f"no such file: {request.path}")
        data, kind = found
        return Response(200, data, kind, [("Cache-Control", "no-cache")])

    @router.route("GET", "/api/tree")
    async def tree(request: Request) -> Response:
        path = _path(request)
        ids = _session_ids(server, request)
        read = _read(server, OpCode.GET_CHILDREN2, GetChildren2Request(path, False), ids)
        if isinstance(read, CoordError):
            raise _refused(read, path)
        answer = GetChildren2Response.read(read)
        children = sorted(answer.children)
        listed = children[:MAX_CHILDREN]
        # Each child's own child count, where this client may read the child (else null).
        counts: dict[str, int | None] = {}
        for name in listed:
            child = f"{path.rstrip('/')}/{name}"
            stat = _read(server, OpCode.EXISTS, ExistsRequest(child, False), ids)
            counts[name] = None if isinstance(stat, CoordError) else Stat.read(stat).num_children
        return Response.json(
            {
                "path": path,
                "stat": stat_json(answer.stat),
                "children": listed,
                "child_counts": counts,
                "truncated": len(children) > MAX_CHILDREN,
                "total_children": len(children),
            }
        )

    @router.route("GET", "/api/node")
    async def node(request: Request) -> Response:
        path = _path(request)
        ids = _session_ids(server, request)
        body: dict[str, Any] = {"path": path}
        read = _read(server, OpCode.GET_DATA, GetDataRequest(path, False), ids)
        if isinstance(read, CoordError):
            error = _refused(read, path)
            if error.status == 404:
                raise error
            body["authorized"] = False
            body["data"] = None
            body["stat"] = None
        else:
            data = GetDataResponse.read(read)
            body["authorized"] = True
            body["data"] = _show_data(data.data)
            body["stat"] = stat_json(data.stat)
        acl_read = _read(server, OpCode.GET_ACL, GetACLRequest(path), ids)
        if isinstance(acl_read, CoordError):
            body["acl"] = None
        else:
            acl = GetACLResponse.read(acl_read)
            body["acl"] = [
                {"scheme": e.id.scheme, "id": e.id.id, "perms": _perms(e.perms)} for e in acl.acl
            ]
            if body["stat"] is None:
                body["stat"] = stat_json(acl.stat)
        body["identities"] = [f"{i.scheme}:{i.id}" for i in ids]
        return Response.json(body)

    @router.route("GET", "/api/ensemble")
    async def ensemble(request: Request) -> Response:
        return Response.json(_ensemble(server))

    return router


async def _snapshot(server: Server, request: Request) -> Response:
    """The ``snapshot`` command: the store as a tar archive, when ``snap`` is enabled."""
    from ._snapshot import archive_chunks, open_snapshot, remove_scratch, snapshot_allowed

    if not snapshot_allowed(server):
        return Response.json(
            {
                "command": "snapshot",
                "error": "snapshot is not executed because it is not enabled: name snap in "
                "four_letter_words (it streams every znode and session, whatever the ACLs)",
            },
            status=403,
        )
    peer = f"{request.peer.host}:{request.peer.port}"
    audit_log.info("snapshot of the whole store requested over HTTP by %s", peer)
    from ._storage import StoreError

    try:
        scratch, copy, info = await open_snapshot(server)
    except StoreError as exc:
        return Response.json({"command": "snapshot", "error": f"snapshot failed: {exc}"}, 500)

    async def body() -> Any:
        started = time.monotonic()
        try:
            async for chunk in archive_chunks(server, copy, info):
                yield chunk
            log.info("snapshot sent to %s in %.2f s", peer, time.monotonic() - started)
        finally:
            await remove_scratch(scratch)

    headers = [
        ("Content-Disposition", 'attachment; filename="coord-snapshot.tar"'),
        ("X-Coord-Last-Index", str(info.get("last_index", ""))),
    ]
    return Response(200, body(), "application/x-tar", headers)
