"""Connect strings, chroots and path checks of the client (pure: no I/O).

Theory of operation
-------------------
A connect string is ZooKeeper's: ``host[:port][,host[:port]...][/chroot]`` (IPv6 hosts in
brackets, port 2181 by default). The chroot, when present, is prepended to every path the
client sends and removed from every path it receives -- replies (created paths, the
ephemerals list, multi results) and watch events alike -- so an application can be moved
under a prefix without knowing it (``ZooKeeper``'s ``ClientCnxn.chrootPath``).

Paths are checked on the client with ZooKeeper's ``PathUtils.validatePath`` rules before
anything is sent, so a bad path fails fast with :class:`~coord.BadArgumentsError` instead of
costing a round trip; the server checks them again.
"""

from __future__ import annotations

from dataclasses import dataclass

from coord.protocol import BadArgumentsError

__all__ = ["Chroot", "ConnectString", "HostPort", "join_path", "parse_connect_string"]

DEFAULT_PORT = 2181


@dataclass(frozen=True, slots=True)
class HostPort:
    """One server of a connect string."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ConnectString:
    """A parsed connect string: the servers, in the order given, and the chroot ("" if none)."""

    hosts: tuple[HostPort, ...]
    chroot: str


def _invalid(path: object, reason: str) -> BadArgumentsError:
    return BadArgumentsError(f"invalid path {path!r}: {reason}")


def validate_path(path: str, *, sequential: bool = False) -> str:
    """Check ``path`` against ZooKeeper's path rules and return it.

    Args:
        path: an absolute path such as ``"/app/config"``.
        sequential: the path names a sequential create, whose last segment may be empty
            (``"/queue/"`` gives ``"/queue/0000000001"``).

    Raises:
        BadArgumentsError: the path is not a string, not absolute, has an empty, ``.`` or
            ``..`` segment, a trailing ``/`` (except the root or a sequential prefix), or a
            NUL or control character.
    """
    if not isinstance(path, str):
        raise BadArgumentsError(f"path must be a str, not {type(path).__name__}")
    if not path.startswith("/"):
        raise _invalid(path, "a path must start with /")
    if path == "/":
        return path
    check = path[:-1] if sequential and path.endswith("/") else path
    if check.endswith("/"):
        raise _invalid(path, "a path must not end with /")
    for segment in check[1:].split("/"):
        if segment == "":
            raise _invalid(path, "empty segment")
        if segment in (".", ".."):
            raise _invalid(path, f"relative segment {segment!r}")
    for char in path:
        code = ord(char)
        if (
            code == 0
            or 0x01 <= code <= 0x1F
            or 0x7F <= code <= 0x9F
            or 0xD800 <= code <= 0xF8FF
            or 0xFFF0 <= code <= 0xFFFF
        ):
            raise _invalid(path, f"invalid character U+{code:04X}")
    return path


def join_path(parent: str, name: str) -> str:
    """``parent`` and a child ``name`` joined with one ``/``."""
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


def parent_path(path: str) -> str:
    """The parent of an absolute path (``"/"`` for a top-level node)."""
    head = path.rsplit("/", 1)[0]
    return head or "/"


def _parse_host(spec: str) -> HostPort:
    spec = spec.strip()
    if not spec:
        raise ValueError("empty host in connect string")
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0:
            raise ValueError(f"unterminated IPv6 address in {spec!r}")
        host, rest = spec[1:end], spec[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"junk after IPv6 address in {spec!r}")
        port_text = rest[1:] if rest else ""
    elif spec.count(":") == 1:
        host, port_text = spec.split(":")
    elif ":" in spec:
        host, port_text = spec, ""  # a bare IPv6 address
    else:
        host, port_text = spec, ""
    if not host:
        raise ValueError(f"missing host in {spec!r}")
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"invalid port in {spec!r}")
        port = int(port_text)
    return HostPort(host, port)


def parse_connect_string(hosts: str) -> ConnectString:
    """Parse ``"h1:2181,h2:2182/chroot"``.

    Raises:
        ValueError: no host, a malformed host or port.
        BadArgumentsError: the chroot is not a valid path.
    """
    if not isinstance(hosts, str):
        raise TypeError(f"hosts must be a str, not {type(hosts).__name__}")
    slash = hosts.find("/")
    chroot = ""
    if slash >= 0:
        chroot = validate_path(hosts[slash:])
        hosts = hosts[:slash]
        if chroot == "/":
            chroot = ""
    parsed = tuple(_parse_host(spec) for spec in hosts.split(",") if spec.strip())
    if not parsed:
        raise ValueError("the connect string names no server")
    return ConnectString(parsed, chroot)


class Chroot:
    """Maps client paths to server paths and back for one chroot (``""``: none)."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def to_server(self, path: str) -> str:
        """The server path of a client path."""
        if not self.prefix:
            return path
        return self.prefix if path == "/" else self.prefix + path

    def to_client(self, path: str) -> str:
        """The client path of a server path (unchanged if outside the chroot)."""
        prefix = self.prefix
        if not prefix or not path.startswith(prefix):
            return path
        if len(path) == len(prefix):
            return "/"
        if path[len(prefix)] != "/":
            return path
        return path[len(prefix) :]
