"""The OpenAPI 3.1 document of the HTTP API, built here (the one source) and served at
``/v1/openapi.json``; ``openapi.json`` beside this module is the same document committed
(a test keeps them equal; regenerate with ``python -m coord.server.http_api._openapi``).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["openapi_document"]

_REF = "#/components/schemas/"
_ERRORS = {
    "400": "Bad request: malformed path, body, base64 data, ACL or parameter "
    "(bad_request, bad_path, bad_data, invalid_acl, bad_arguments, session_required).",
    "401": "The credentials were refused, or the Authorization header is not Basic "
    "(auth_failed); comes with WWW-Authenticate.",
    "403": "The node's ACL denies this identity (no_auth), or a quota is exceeded "
    "(quota_exceeded).",
    "404": "No such node (no_node) or session (unknown_session).",
    "409": "Conflict: node_exists, bad_version (compare-and-set failed), not_empty, "
    "no_children_for_ephemerals.",
    "410": "The session expired (session_expired).",
    "413": "The body or the node data is too large (too_large).",
    "429": "The server throttles this client (throttled); retry after Retry-After.",
    "503": "The server cannot answer now (unavailable, timeout, too_many_sessions, "
    "too_many_connections, starting); retry after Retry-After.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*extra: str) -> dict[str, Any]:
    codes = dict(_ERRORS)
    if "406" in extra:
        codes["406"] = "The data is not UTF-8 text and encoding=utf8 was asked (not_utf8)."
    return {code: _json(_ref("Error"), text) for code, text in sorted(codes.items())}


_PATH_PARAM = {
    "name": "path",
    "in": "path",
    "required": True,
    "description": "The node's path without its leading slash (a/b for /a/b; "
    "percent-encode / inside it as %2F or write it as is; empty for the root).",
    "schema": {"type": "string"},
}
_ENCODING = {
    "name": "encoding",
    "in": "query",
    "description": "How node data is written in JSON strings: base64 (default) or utf8 text.",
    "schema": {"type": "string", "enum": ["base64", "utf8"], "default": "base64"},
}
_VERSION = {
    "name": "version",
    "in": "query",
    "description": "Only if the node has this version (compare-and-set); -1 (default): any.",
    "schema": {"type": "integer", "minimum": -1, "maximum": 2147483647, "default": -1},
}
_SESSION = {
    "name": "X-Coord-Session",
    "in": "header",
    "description": "Run the request on this session (POST /v1/sessions) instead of the "
    "pooled one of the caller; required to create ephemeral nodes.",
    "schema": {"type": "string"},
}


def _flag(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": "boolean", "default": False},
    }


def _body(schema: dict[str, Any], description: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "required": required,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _schemas() -> dict[str, Any]:
    integer = {"type": "integer"}
    string = {"type": "string"}
    data = {"type": "string", "description": "Node data: base64, or text with encoding=utf8."}
    acl_list = {"type": "array", "minItems": 1, "items": _ref("AclEntry")}
    create_fields = {
        "mode": {
            "type": "string",
            "enum": ["persistent", "ephemeral", "container", "ttl"],
            "default": "persistent",
            "description": "ephemeral needs X-Coord-Session; ttl needs ttl.",
        },
        "sequential": {
            "type": "boolean",
            "default": False,
            "description": "Append the parent's 10-digit counter to the name.",
        },
        "ttl": {
            "type": "integer",
            "minimum": 1,
            "description": "Milliseconds without change after which a ttl node is deleted.",
        },
        "acl": acl_list,
    }
    return {
        "Stat": {
            "type": "object",
            "description": "A node's metadata, with ZooKeeper's field names.",
            "required": [
                "czxid",
                "mzxid",
                "ctime",
                "mtime",
                "version",
                "cversion",
                "aversion",
                "ephemeralOwner",
                "dataLength",
                "numChildren",
                "pzxid",
            ],
            "properties": {
                "czxid": integer,
                "mzxid": integer,
                "ctime": {"type": "integer", "description": "Milliseconds since the epoch."},
                "mtime": {"type": "integer", "description": "Milliseconds since the epoch."},
                "version": integer,
                "cversion": integer,
                "aversion": integer,
                "ephemeralOwner": {
                    "type": "string",
                    "pattern": "^0x[0-9a-f]+$",
                    "description": "The owning session id in hex; 0x0 for a persistent node.",
                },
                "dataLength": integer,
                "numChildren": integer,
                "pzxid": integer,
            },
        },
        "AclEntry": {
            "type": "object",
            "required": ["perms", "scheme", "id"],
            "additionalProperties": False,
            "properties": {
                "perms": {
                    "type": "string",
                    "pattern": "^[rwcda]+$",
                    "description": "Letters of the permissions granted: r(ead) w(rite) "
                    "c(reate) d(elete) a(dmin).",
                },
                "scheme": {"type": "string", "minLength": 1, "examples": ["world", "digest"]},
                "id": {"type": "string", "examples": ["anyone"]},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "A short code (bad_version...)."},
                "message": string,
                "zookeeper": {"type": "string", "description": "ZooKeeper's error name."},
                "path": string,
                "index": {"type": "integer", "description": "multi: the op that failed."},
                "results": {
                    "type": "array",
                    "description": "multi: each op's outcome (rolled_back, not_run or an "
                    "error code).",
                    "items": {"type": "object", "properties": {"op": string, "error": string}},
                },
                "oldest": {"type": "integer", "description": "watch: the oldest zxid kept."},
            },
        },
        "Node": {
            "type": "object",
            "required": ["path", "data", "encoding", "stat"],
            "properties": {
                "path": string,
                "data": data,
                "encoding": {"type": "string", "enum": ["base64", "utf8"]},
                "stat": _ref("Stat"),
            },
        },
        "NodeStat": {
            "type": "object",
            "required": ["path", "stat"],
            "properties": {"path": string, "stat": _ref("Stat")},
        },
        "Child": {
            "type": "object",
            "required": ["name", "stat"],
            "properties": {"name": string, "stat": _ref("Stat"), "data": data},
        },
        "Children": {
            "type": "object",
            "required": ["path", "stat", "children"],
            "properties": {
                "path": string,
                "stat": _ref("Stat"),
                "children": {
                    "type": "array",
                    "description": "Names, sorted; objects with stat (and data) when asked.",
                    "items": {"anyOf": [string, _ref("Child")]},
                },
            },
        },
        "CreateBody": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "data": data,
                **create_fields,
                "makepath": {
                    "type": "boolean",
                    "default": False,
                    "description": "Create missing ancestors (persistent, empty).",
                },
            },
        },
        "SetBody": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"data": data},
        },
        "Acl": {
            "type": "object",
            "required": ["path", "acl", "stat"],
            "properties": {"path": string, "acl": acl_list, "stat": _ref("Stat")},
        },
        "AclBody": {
            "type": "object",
            "required": ["acl"],
            "additionalProperties": False,
            "properties": {"acl": acl_list},
        },
        "Op": {
            "type": "object",
            "required": ["op", "path"],
            "additionalProperties": False,
            "description": "One op of a multi: create (data, mode, sequential, ttl, acl), "
            "set (data, version), delete (version) or check (version).",
            "properties": {
                "op": {"type": "string", "enum": ["create", "set", "delete", "check"]},
                "path": string,
                "data": data,
                "version": {"type": "integer", "minimum": -1, "maximum": 2147483647},
                **create_fields,
            },
        },
        "MultiBody": {
            "type": "object",
            "required": ["ops"],
            "additionalProperties": False,
            "properties": {"ops": {"type": "array", "minItems": 1, "items": _ref("Op")}},
        },
        "MultiResult": {
            "type": "object",
            "required": ["results"],
            "properties": {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["op"],
                        "properties": {"op": string, "path": string, "stat": _ref("Stat")},
                    },
                }
            },
        },
        "Identities": {
            "type": "object",
            "required": ["identities"],
            "properties": {
                "identities": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["scheme", "id"],
                        "properties": {"scheme": string, "id": string},
                    },
                }
            },
        },
        "SessionBody": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "timeout": {
                    "type": "number",
                    "minimum": 1,
                    "maximum": 3600,
                    "default": 10,
                    "description": "Seconds without a request or keep-alive before the "
                    "session is closed (its ephemeral nodes deleted).",
                }
            },
        },
        "Session": {
            "type": "object",
            "required": ["id", "sessionId", "timeout"],
            "properties": {
                "id": {"type": "string", "description": "Send it as X-Coord-Session."},
                "sessionId": {"type": "string", "pattern": "^0x[0-9a-f]+$"},
                "timeout": {"type": "number"},
            },
        },
        "Synced": {"type": "object", "required": ["path"], "properties": {"path": string}},
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the HTTP API."""
    node_path = [_PATH_PARAM, _SESSION]
    errors = _errors()
    node_get = {
        "operationId": "getNode",
        "summary": "Read a node's data and Stat (or only its Stat, with stat=true).",
        "parameters": [*node_path, _ENCODING, _flag("stat", "Only the Stat, not the data.")],
        "responses": {
            "200": _json({"anyOf": [_ref("Node"), _ref("NodeStat")]}, "The node."),
            **_errors("406"),
        },
    }
    node_head = {
        "operationId": "headNode",
        "summary": "Whether a node exists (200) or not (404), without a body.",
        "parameters": node_path,
        "responses": {"200": {"description": "It exists."}, **errors},
    }
    paths: dict[str, Any] = {
        "/v1/node/{path}": {
            "get": node_get,
            "head": node_head,
            "post": {
                "operationId": "createNode",
                "summary": "Create a node (persistent, ephemeral, container or ttl; optionally "
                "sequential; makepath creates missing ancestors).",
                "parameters": [*node_path, _ENCODING],
                "requestBody": _body(_ref("CreateBody"), "The new node.", required=False),
                "responses": {
                    "201": _json(
                        _ref("NodeStat"),
                        "Created; path is the created path (with its sequence number).",
                    ),
                    **errors,
                },
            },
            "put": {
                "operationId": "setNode",
                "summary": "Set a node's data; with version, only if the node has that "
                "version (else 409 bad_version).",
                "parameters": [*node_path, _ENCODING, _VERSION],
                "requestBody": _body(_ref("SetBody"), "The new data.", required=False),
                "responses": {"200": _json(_ref("NodeStat"), "The new Stat."), **errors},
            },
            "delete": {
                "operationId": "deleteNode",
                "summary": "Delete a node (with version: only that version; recursive: with "
                "its descendants).",
                "parameters": [
                    *node_path,
                    _VERSION,
                    _flag("recursive", "Delete the descendants first."),
                ],
                "responses": {"204": {"description": "Deleted."}, **errors},
            },
        },
        "/v1/children/{path}": {
            "get": {
                "operationId": "getChildren",
                "summary": "A node's children (names, or objects with their Stat and data).",
                "parameters": [
                    *node_path,
                    _ENCODING,
                    _flag("stat", "Each child as {name, stat}."),
                    _flag("data", "Each child as {name, stat, data}."),
                ],
                "responses": {"200": _json(_ref("Children"), "The children."), **_errors("406")},
            }
        },
        "/v1/acl/{path}": {
            "get": {
                "operationId": "getAcl",
                "summary": "A node's ACL and Stat.",
                "parameters": node_path,
                "responses": {"200": _json(_ref("Acl"), "The ACL."), **errors},
            },
            "put": {
                "operationId": "setAcl",
                "summary": "Set a node's ACL (with version: only if its aversion matches).",
                "parameters": [*node_path, _VERSION],
                "requestBody": _body(_ref("AclBody"), "The new ACL."),
                "responses": {"200": _json(_ref("NodeStat"), "The new Stat."), **errors},
            },
        },
        "/v1/sync/{path}": {
            "post": {
                "operationId": "sync",
                "summary": "Wait until this server has applied everything the leader "
                "committed (ZooKeeper's sync), for read-after-write across servers.",
                "parameters": node_path,
                "responses": {"200": _json(_ref("Synced"), "Synced."), **errors},
            }
        },
        "/v1/multi": {
            "post": {
                "operationId": "multi",
                "summary": "Apply ops atomically: all or none (ZooKeeper's multi).",
                "parameters": [_SESSION, _ENCODING],
                "requestBody": _body(_ref("MultiBody"), "The ops, in order."),
                "responses": {
                    "200": _json(_ref("MultiResult"), "All ops applied; one result each."),
                    **errors,
                },
            }
        },
        "/v1/whoami": {
            "get": {
                "operationId": "whoami",
                "summary": "The identities requests of this caller run with.",
                "parameters": [_SESSION],
                "responses": {"200": _json(_ref("Identities"), "The identities."), **errors},
            }
        },
        "/v1/sessions": {
            "post": {
                "operationId": "createSession",
                "summary": "Open a session of your own (for ephemeral nodes), kept while you "
                "send requests on it or keep-alives within its timeout.",
                "requestBody": _body(_ref("SessionBody"), "The timeout.", required=False),
                "responses": {"201": _json(_ref("Session"), "The session."), **errors},
            }
        },
        "/v1/sessions/{id}": {
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The session's id from POST /v1/sessions.",
                }
            ],
            "put": {
                "operationId": "keepAlive",
                "summary": "Restart the session's timeout.",
                "responses": {"200": _json(_ref("Session"), "The session."), **errors},
            },
            "delete": {
                "operationId": "closeSession",
                "summary": "Close the session now; its ephemeral nodes are deleted.",
                "responses": {"204": {"description": "Closed."}, **errors},
            },
        },
        "/v1/watch/{path}": {
            "get": {
                "operationId": "watch",
                "summary": "Stream the node's changes as Server-Sent Events.",
                "description": "Events: ready (first; its data has the zxid watched from), "
                "then created, deleted, changed (with the new stat) and, without "
                "recursive, children; each with id: <zxid> (on the last event of a zxid) "
                "and JSON data {type, path, zxid, stat?}. Comment lines are heartbeats. "
                "overflow ends a stream that fell behind: reconnect with Last-Event-ID. "
                "Resuming from a zxid (Last-Event-ID header or since) first replays the "
                "kept events after it; 410 when it is older than what is kept.",
                "parameters": [
                    _PATH_PARAM,
                    _flag(
                        "recursive",
                        "Also the node's descendants (created, deleted and "
                        "changed events, as ZooKeeper's persistent recursive watches).",
                    ),
                    {
                        "name": "since",
                        "in": "query",
                        "description": "Resume after this zxid.",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "description": "As since.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The event stream.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **errors,
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "coord HTTP API",
            "version": "1",
            "description": "JSON over HTTP to coord's tree; every request runs on a ZooKeeper "
            "session through the server's request path (ACLs, quotas, ordering). "
            "Identity: the client address (ip scheme), HTTP Basic credentials (digest "
            "scheme: user:password), the TLS client certificate (x509 scheme). "
            "See docs/http-api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"digest": {"type": "http", "scheme": "basic"}},
        },
    }


def committed_path() -> Path:
    """Where the committed copy of the document lives."""
    return Path(__file__).with_name("openapi.json")


def render() -> str:
    """The document as committed (indented, sorted keys, final newline)."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover - the regeneration command
    committed_path().write_text(render())
    sys.stdout.write(f"wrote {committed_path()}\n")
