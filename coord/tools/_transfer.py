"""``coord export`` and ``coord import``: a subtree as JSON, through the client protocol.

Both work against any ZooKeeper-protocol server -- coord or Apache ZooKeeper -- so they
migrate data between the two in either direction.

The file format (``"format": "coord-tree"``, ``"version": 1``)
------------------------------------------------------------------
One JSON object: ``root`` (the exported path), ``source`` and ``exported_at`` (for
people), and ``nodes``, one object per line, sorted by path (so parents come first)::

    {"path": "/app/cfg", "type": "persistent", "data": "aGVsbG8=",
     "acl": [{"scheme": "world", "id": "anyone", "perms": "cdrwa"}]}

* ``data``: base64, or ``null`` for a node created with null data.
* ``acl``: the node's ACL; ``perms`` in zkCli's letters (``c`` create, ``d`` delete,
  ``r`` read, ``w`` write, ``a`` admin); an integer is accepted on import.
* ``type``: ``persistent``, ``container``, or ``ttl`` with ``"ttl": <ms>``. The client
  protocol does not reveal containers or TTL nodes (both Apache ZooKeeper and coord report
  ephemeralOwner 0 for them, as ``DataNode.getClientEphemeralOwner``), so an export
  writes them as ``persistent``; edit the type by hand to recreate them as such.
* Ephemeral nodes die with their session, so they cannot be carried over as such: an
  export writes them as ``persistent`` with a ``note`` naming the owner session, or
  leaves them out (``skip_ephemeral``).
* Sequential nodes are plain nodes whose names end in a counter; names are kept as they
  are. (The parent's ``cversion`` is not, so a later sequential create under that parent
  may pick a suffix already used; see docs/operations.md.)
* ``/zookeeper`` (the server's own subtree) is never exported.

Theory of operation
-------------------
**Export** walks the tree breadth first, one level at a time; each level is a single
pipelined batch of ``getData``, ``getACL`` and ``getChildren`` per node
(:meth:`~coord.tools._zkclient.ZkClient.call_many`), so the cost is a few round trips per
level rather than three per node. The reads of one session are ordered, but the tree may
change during the walk: the export is not a point-in-time copy (``coord snapshot save``
is). A node deleted meanwhile is left out and counted.

**Import** first checks, in one batch of ``exists``, which target nodes already exist, and
fails before writing anything if any does (unless ``overwrite``). Then it creates the
missing parents of the destination, then every node in path order, pipelined: a session's
requests are applied in order, so a parent always exists before its children's creates
arrive. A node whose ACL would not let the importer create its children is created with
that ACL plus ``ALL`` for the importer's own identity (its ``digest`` id when
authenticated, else its ``ip``), and gets its exact ACL in a last pass, once everything
below it exists; existing nodes being overwritten also get their ACL in that pass.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from coord.protocol import (
    ACL,
    CoordError,
    CreateMode,
    ExistsRequest,
    GetACLRequest,
    GetACLResponse,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    Id,
    NoAuthError,
    NoNodeError,
    OpCode,
    Perm,
    SetACLRequest,
    SetDataRequest,
    UnimplementedError,
)

from ._common import Progress, ToolError
from ._zkclient import Call, ZkClient, create_call

__all__ = [
    "FORMAT",
    "VERSION",
    "ExportResult",
    "ImportResult",
    "export_tree",
    "import_tree",
    "read_document",
    "write_document",
]

#: ``format`` of an export file.
FORMAT: Final = "coord-tree"
#: ``version`` of the format this module writes and reads.
VERSION: Final = 1
_PERMS: Final = (
    ("c", int(Perm.CREATE)),
    ("d", int(Perm.DELETE)),
    ("r", int(Perm.READ)),
    ("w", int(Perm.WRITE)),
    ("a", int(Perm.ADMIN)),
)
_TYPES: Final = {
    "persistent": CreateMode.PERSISTENT,
    "container": CreateMode.CONTAINER,
    "ttl": CreateMode.PERSISTENT_WITH_TTL,
}
_OPEN_ACL: Final = (ACL(Perm.ALL, Id("world", "anyone")),)
_WORLD: Final = Id("world", "anyone")
_RESERVED: Final = "/zookeeper"
#: Calls per :meth:`ZkClient.call_many` during an import (progress is shown between).
_IMPORT_BATCH: Final = 2000


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What :func:`export_tree` read."""

    #: Nodes in the document.
    nodes: int
    #: Bytes of node data in it.
    data_bytes: int
    #: Ephemeral nodes written as persistent.
    ephemeral: int
    #: Ephemeral nodes left out (``skip_ephemeral``).
    skipped_ephemeral: int
    #: Nodes deleted while the export ran (left out).
    vanished: int
    seconds: float


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What :func:`import_tree` wrote."""

    #: Nodes created.
    created: int
    #: Existing nodes whose data and ACL were replaced (``overwrite``).
    updated: int
    #: Missing ancestors of the destination created (empty, open ACL).
    parents: int
    #: Nodes created with a temporary ACL and given their own in the last pass.
    acl_deferred: int
    seconds: float


# --- ACLs ----------------------------------------------------------------------------------


def perms_text(perms: int) -> str:
    """Permission bits as zkCli's letters: ``31`` is ``"cdrwa"``."""
    return "".join(letter for letter, bit in _PERMS if perms & bit)


def parse_perms(value: object) -> int:
    """Letters (``"cdrwa"``, any order) or an integer, as permission bits.

    Raises:
        ValueError: an unknown letter, or not a string or integer in 0..31.
    """
    if isinstance(value, bool):
        raise ValueError(f"bad perms {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= int(Perm.ALL):
            raise ValueError(f"perms {value} out of 0..31")
        return value
    if not isinstance(value, str):
        raise ValueError(f"bad perms {value!r}")
    bits = dict(_PERMS)
    perms = 0
    for letter in value.lower():
        if letter not in bits:
            raise ValueError(f"unknown permission {letter!r} in {value!r} (letters: cdrwa)")
        perms |= bits[letter]
    return perms


def _acl_json(acl: Iterable[ACL]) -> list[dict[str, str]]:
    return [{"scheme": a.id.scheme, "id": a.id.id, "perms": perms_text(a.perms)} for a in acl]


def _acl_from_json(items: object) -> tuple[ACL, ...]:
    if not isinstance(items, list) or not items:
        raise ValueError("acl must be a non-empty list")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError(f"ACL entry {item!r} is not an object")
        scheme, ident = item.get("scheme"), item.get("id")
        if not isinstance(scheme, str) or not isinstance(ident, str):
            raise ValueError(f"ACL entry {item!r} needs string scheme and id")
        out.append(ACL(parse_perms(item.get("perms")), Id(scheme, ident)))
    return tuple(out)


# --- paths ---------------------------------------------------------------------------------


def normalize_path(path: str) -> str:
    """``path`` without a trailing ``/`` (except the root).

    Raises:
        ToolError: ``path`` is not absolute.
    """
    if not path.startswith("/"):
        raise ToolError(f"{path!r} is not an absolute path (it must start with /)")
    return path.rstrip("/") or "/"


def _join(parent: str, child: str) -> str:
    return f"/{child}" if parent == "/" else f"{parent}/{child}"


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith("/" if root == "/" else root + "/")


def _relocate(path: str, root: str, dest: str) -> str:
    if path == root:
        return dest
    rel = path if root == "/" else path[len(root) :]
    return rel if dest == "/" else dest + rel


# --- export --------------------------------------------------------------------------------


def export_tree(
    client: ZkClient,
    root: str,
    *,
    skip_ephemeral: bool = False,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], ExportResult]:
    """Read the subtree at ``root`` into an export document (see the module docs).

    Args:
        client: a session with the source server.
        root: the subtree's root path (``/`` for everything but ``/zookeeper``).
        skip_ephemeral: leave ephemeral nodes out instead of writing them as persistent.
        progress: reports nodes read.

    Returns:
        The document (for :func:`write_document`) and what was read.

    Raises:
        ToolError: ``root`` does not exist, a node cannot be read (no READ permission:
            the message suggests ``--auth``), or the connection failed.
    """
    root = normalize_path(root)
    started = time.monotonic()
    nodes: list[dict[str, Any]] = []
    data_bytes = ephemeral = skipped = vanished = 0
    level = [root]
    while level:
        calls: list[Call] = []
        for path in level:
            calls.append(Call(OpCode.GET_DATA, GetDataRequest(path, False), path))
            calls.append(Call(OpCode.GET_ACL, GetACLRequest(path), path))
            calls.append(Call(OpCode.GET_CHILDREN, GetChildrenRequest(path, False), path))
        results = client.call_many(calls)
        next_level: list[str] = []
        for i, path in enumerate(level):
            got_data, got_acl, got_children = results[3 * i : 3 * i + 3]
            failure = next(
                (r for r in (got_data, got_acl, got_children) if isinstance(r, CoordError)),
                None,
            )
            if isinstance(failure, NoNodeError):
                if path == root:
                    raise ToolError(f"{root} does not exist on {client.address}")
                vanished += 1
                continue
            if isinstance(failure, NoAuthError):
                raise ToolError(
                    f"not allowed to read {path} on {client.address} (NoAuth): pass "
                    "--auth digest:USER:PASSWORD for an identity its ACL lets READ"
                )
            if failure is not None:
                raise ToolError(f"reading {path} from {client.address} failed: {failure}")
            assert isinstance(got_data, GetDataResponse)
            assert isinstance(got_acl, GetACLResponse)
            assert isinstance(got_children, GetChildrenResponse)
            node: dict[str, Any] = {"path": path, "type": "persistent"}
            owner = got_data.stat.ephemeral_owner
            if owner:
                if skip_ephemeral:
                    skipped += 1
                    continue
                ephemeral += 1
                node["note"] = (
                    f"ephemeral in the source (session 0x{owner & (2**64 - 1):x}); "
                    "exported as persistent"
                )
            data = got_data.data
            node["data"] = None if data is None else base64.b64encode(data).decode("ascii")
            node["acl"] = _acl_json(got_acl.acl)
            data_bytes += len(data or b"")
            nodes.append(node)
            for child in sorted(got_children.children):
                child_path = _join(path, child)
                if child_path != _RESERVED:
                    next_level.append(child_path)
        level = next_level
        if progress is not None:
            progress.update(lambda: f"{len(nodes)} nodes read")
    nodes.sort(key=lambda n: str(n["path"]))
    document = {
        "format": FORMAT,
        "version": VERSION,
        "root": root,
        "source": client.address,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nodes": nodes,
    }
    result = ExportResult(
        len(nodes), data_bytes, ephemeral, skipped, vanished, time.monotonic() - started
    )
    return document, result


def write_document(document: dict[str, Any], out: TextIO) -> None:
    """Write an export document as JSON, one node per line (diff- and grep-friendly)."""
    out.write("{\n")
    for key, value in document.items():
        if key != "nodes":
            out.write(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n")
    nodes = document.get("nodes", [])
    out.write(' "nodes": [\n')
    last = len(nodes) - 1
    for i, node in enumerate(nodes):
        out.write("  " + json.dumps(node, ensure_ascii=False) + (",\n" if i < last else "\n"))
    out.write(" ]\n}\n")


# --- import --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    path: str
    mode: CreateMode
    ttl: int
    data: bytes | None
    acl: tuple[ACL, ...]


def read_document(source: TextIO, name: str = "the input") -> dict[str, Any]:
    """Parse an export file and check its format (node by node checks come on import).

    Raises:
        ToolError: not JSON, or not a ``coord-tree`` document of a version this reads.
    """
    try:
        document = json.load(source)
    except ValueError as exc:
        raise ToolError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ToolError(f'{name} is not a coord export (no "format": "{FORMAT}")')
    if document.get("version") != VERSION:
        raise ToolError(
            f"{name} has format version {document.get('version')!r}; this coord reads "
            f"version {VERSION}"
        )
    return document


def _parse_nodes(document: dict[str, Any]) -> tuple[str, list[_Node]]:
    root = document.get("root")
    if not isinstance(root, str):
        raise ToolError('the document has no "root" path')
    root = normalize_path(root)
    raw = document.get("nodes")
    if not isinstance(raw, list):
        raise ToolError('the document has no "nodes" list')
    nodes: list[_Node] = []
    for i, item in enumerate(raw):
        where = f"node {i}"
        try:
            if not isinstance(item, dict):
                raise ValueError("not an object")
            path = item.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"bad path {path!r}")
            where = f"node {path}"
            if not _under(path, root):
                raise ValueError(f"not under the root {root}")
            kind = item.get("type", "persistent")
            if kind not in _TYPES:
                raise ValueError(f"type {kind!r} cannot be imported (persistent, container or ttl)")
            ttl = -1
            if kind == "ttl":
                ttl = item.get("ttl", 0)
                if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
                    raise ValueError('a ttl node needs "ttl": milliseconds > 0')
            data = item.get("data")
            if data is not None:
                if not isinstance(data, str):
                    raise ValueError("data must be a base64 string or null")
                data = base64.b64decode(data, validate=True)
            nodes.append(_Node(path, _TYPES[kind], ttl, data, _acl_from_json(item.get("acl"))))
        except (ValueError, binascii.Error) as exc:
            raise ToolError(f"{where}: {exc}") from None
    nodes.sort(key=lambda n: n.path)
    present = {n.path for n in nodes}
    if len(present) != len(nodes):
        raise ToolError("the document lists a path twice")
    for node in nodes:
        if node.path != root and _parent(node.path) not in present:
            raise ToolError(f"node {node.path}: its parent {_parent(node.path)} is not listed")
    return root, nodes


def import_tree(
    client: ZkClient,
    document: dict[str, Any],
    *,
    dest: str | None = None,
    overwrite: bool = False,
    identities: Sequence[Id] = (),
    progress: Progress | None = None,
) -> ImportResult:
    """Create the nodes of an export document on ``client``'s server (see module docs).

    Args:
        client: a session with the destination server.
        document: from :func:`read_document` (or :func:`export_tree`).
        dest: where the document's root goes; its own ``root`` when None.
        overwrite: replace the data and ACL of nodes that exist (never deletes any).
        identities: ids the session holds besides ``world:anyone`` (its ``digest`` id
            when authenticated); used to tell whether a node's ACL lets it create the
            node's children, and as the temporary owner when it does not.
        progress: reports nodes written.

    Returns:
        What was written.

    Raises:
        ToolError: the document is malformed; nodes exist without ``overwrite`` (nothing
            is written then); a write failed (the message says which and how far the
            import got).
    """
    started = time.monotonic()
    root, nodes = _parse_nodes(document)
    dest = root if dest is None else normalize_path(dest)
    if dest == _RESERVED or dest.startswith(_RESERVED + "/"):
        raise ToolError(f"{_RESERVED} is reserved for the server; choose another --path")
    targets = [(_relocate(n.path, root, dest), n) for n in nodes]
    where = client.address

    # 1. What exists already?
    probes = [p for p, _ in targets if p != "/"]
    existing = {"/"}
    for path, found in zip(
        probes,
        client.call_many([Call(OpCode.EXISTS, ExistsRequest(p, False), p) for p in probes]),
    ):
        if isinstance(found, NoNodeError):
            continue
        if isinstance(found, CoordError):
            raise ToolError(f"checking {path} on {where} failed: {found}")
        existing.add(path)
    clashes = sorted(p for p, _ in targets if p in existing and p != "/")
    if clashes and not overwrite:
        shown = ", ".join(clashes[:3]) + (", ..." if len(clashes) > 3 else "")
        raise ToolError(
            f"{len(clashes)} of the {len(targets)} nodes already exist on {where} ({shown}); "
            "nothing was written. Pass --overwrite to replace their data and ACL, or "
            "--path to import elsewhere"
        )

    # 2. Missing ancestors of the destination.
    ancestors: list[str] = []
    path = dest
    while path != "/":
        path = _parent(path)
        if path != "/":
            ancestors.insert(0, path)
    parents = 0
    if ancestors and dest not in existing:
        found_all = client.call_many(
            [Call(OpCode.EXISTS, ExistsRequest(p, False), p) for p in ancestors]
        )
        missing = [p for p, f in zip(ancestors, found_all) if isinstance(f, NoNodeError)]
        calls = [Call(*create_call(p, b"", _OPEN_ACL), p) for p in missing]
        _check(client.call_many(calls), calls, where, "creating the parent")
        parents = len(missing)

    # 3. Nodes, parents first; ACLs that would lock us out are deferred.
    holders = {_WORLD, Id("ip", client.local_address), *identities}
    owner = next((i for i in identities if i.scheme == "digest"), Id("ip", client.local_address))
    has_children = {_parent(p) for p, _ in targets}
    calls = []
    deferred: list[Call] = []
    created = updated = 0
    for target, node in targets:
        if target in existing:
            if not overwrite:
                continue  # only "/" gets here: it always exists
            calls.append(Call(OpCode.SET_DATA, SetDataRequest(target, node.data, -1), target))
            deferred.append(Call(OpCode.SET_ACL, SetACLRequest(target, node.acl, -1), target))
            updated += 1
            continue
        acl = node.acl
        if target in has_children and not _lets_create(acl, holders):
            acl = (*acl, ACL(Perm.ALL, owner))
            deferred.append(Call(OpCode.SET_ACL, SetACLRequest(target, node.acl, -1), target))
        calls.append(Call(*create_call(target, node.data, acl, node.mode, node.ttl), target))
        created += 1
    total = len(calls)
    report = progress.reporter(lambda n: f"{n} of {total} nodes written") if progress else None
    for start in range(0, len(calls), _IMPORT_BATCH):
        batch = calls[start : start + _IMPORT_BATCH]
        try:
            _check(client.call_many(batch), batch, where, "importing")
        except ToolError as exc:
            raise ToolError(f"{exc} ({start} of {len(calls)} writes had succeeded)") from None
        if report is not None:
            report(start + len(batch))

    # 4. The exact ACLs, once everything below exists.
    _check(client.call_many(deferred), deferred, where, "setting the ACL of")
    acl_deferred = len(deferred) - updated
    return ImportResult(created, updated, parents, acl_deferred, time.monotonic() - started)


def _lets_create(acl: Iterable[ACL], holders: set[Id]) -> bool:
    return any(entry.perms & Perm.CREATE and entry.id in holders for entry in acl)


def _check(results: Sequence[object], calls: Sequence[Call], where: str, doing: str) -> None:
    for result, call in zip(results, calls):
        if isinstance(result, CoordError):
            hint = ""
            if isinstance(result, NoAuthError):
                hint = " (pass --auth digest:USER:PASSWORD for an identity allowed to write)"
            elif isinstance(result, UnimplementedError) and call.op == OpCode.CREATE_TTL:
                hint = " (TTL nodes need zookeeper.extendedTypesEnabled=true on the server)"
            raise ToolError(f"{doing} {call.path} on {where} failed: {result}{hint}")
