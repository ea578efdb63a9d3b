"""The shell's pure parts: command-line splitting, option parsing, and output formats.

Nothing here does I/O. The text formats are zkCli.sh's (ZooKeeper 3.8), because users
script against them: a Stat is eleven ``name = value`` lines with zxids in hex and times
as Java's ``Date.toString()``; an ACL entry is ``'scheme,'id`` over ``: perms``; a
children list is Java's ``List.toString()`` (``[a, b]``); a failed operation prints the
message zkCli's ``CliWrapperException`` gives it (``Node does not exist: /x``), and any
other ZooKeeper error prints as ``KeeperErrorCode = <text> for <path>``, as Java's
``KeeperException.getMessage()`` does. The JSON forms carry the same facts with the SDK's
field names.
"""

from __future__ import annotations

import base64
import contextlib
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coord.protocol import (
    ACL,
    BadArgumentsError,
    BadVersionError,
    ClientInfo,
    CoordError,
    ErrorCode,
    EventType,
    Id,
    InvalidACLError,
    KeeperState,
    NewConfigNoQuorumError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    NotReadOnlyError,
    Perm,
    ReconfigInProgressError,
    Stat,
)

__all__ = [
    "UsageError",
    "acl_json",
    "data_json",
    "error_json",
    "error_message",
    "event_json",
    "event_line",
    "format_acl",
    "format_children",
    "format_data",
    "format_stat",
    "parse_acl",
    "parse_options",
    "split_command",
    "stat_json",
]


class UsageError(Exception):
    """A command line the shell cannot run: unknown option, missing argument, bad value."""


# --- command lines ----------------------------------------------------------------------------


def split_command(line: str) -> list[str]:
    """Split a command line into words, honouring single and double quotes.

    Raises:
        UsageError: an unbalanced quote.
    """
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError as exc:
        raise UsageError(f"cannot parse the command line: {exc}") from None


@dataclass(slots=True)
class Options:
    """Parsed options: flags given (``-s``), option values (``-v 3``), positional words."""

    flags: set[str] = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


def parse_options(
    words: Sequence[str], flags: str = "", valued: str = "", *, long: Iterable[str] = ()
) -> Options:
    """Parse a command's words the way zkCli's commons-cli parser does.

    Options may come before or after the positional words; ``--`` ends them. A single
    ``-`` followed by letters that are all flags may bundle them (``-sw``).

    Args:
        words: the words after the command name.
        flags: the one-letter options without a value.
        valued: the one-letter options that take a value (``-v 3``).
        long: multi-letter options that take a value (``-members X`` for reconfig).

    Raises:
        UsageError: an unknown option, or an option missing its value.
    """
    result = Options()
    longs = set(long)
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            result.args.extend(words[i:])
            break
        if len(word) < 2 or not word.startswith("-") or _is_number(word):
            result.args.append(word)
            continue
        name = word[1:]
        if name in longs or (len(name) == 1 and name in valued):
            if i >= len(words):
                raise UsageError(f"option -{name} needs a value")
            if name in result.values and name in longs:
                result.values[name] += "," + words[i]
            else:
                result.values[name] = words[i]
            i += 1
            continue
        if all(letter in flags for letter in name):
            result.flags.update(name)
            continue
        raise UsageError(f"unknown option: {word}")
    return result


def _is_number(word: str) -> bool:
    try:
        int(word)
    except ValueError:
        return False
    return True


# --- text formats (zkCli.sh) ------------------------------------------------------------------


def _java_date(ms: int) -> str:
    """Java's ``new Date(ms).toString()`` in the local time zone."""
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(ms / 1000))


def format_stat(stat: Stat) -> list[str]:
    """A Stat as zkCli's ``StatPrinter`` prints it: eleven ``name = value`` lines."""
    return [
        f"cZxid = {stat.czxid:#x}",
        f"ctime = {_java_date(stat.ctime)}",
        f"mZxid = {stat.mzxid:#x}",
        f"mtime = {_java_date(stat.mtime)}",
        f"pZxid = {stat.pzxid:#x}",
        f"cversion = {stat.cversion}",
        f"dataVersion = {stat.version}",
        f"aclVersion = {stat.aversion}",
        f"ephemeralOwner = {stat.ephemeral_owner & 0xFFFFFFFFFFFFFFFF:#x}",
        f"dataLength = {stat.data_length}",
        f"numChildren = {stat.num_children}",
    ]


def format_children(names: Iterable[str]) -> str:
    """A list as Java's ``List.toString()``: ``[a, b]``."""
    return "[" + ", ".join(names) + "]"


def format_data(data: bytes | None) -> str:
    """Node data as zkCli prints it: decoded as UTF-8 (bad bytes replaced); ``null``
    for a node created with no data."""
    if data is None:
        return "null"
    return data.decode("utf-8", errors="replace")


_PERM_LETTERS = (
    (Perm.CREATE, "c"),
    (Perm.DELETE, "d"),
    (Perm.READ, "r"),
    (Perm.WRITE, "w"),
    (Perm.ADMIN, "a"),
)


def perm_string(perms: int) -> str:
    """Permission bits as letters in zkCli's order (``cdrwa``)."""
    return "".join(letter for bit, letter in _PERM_LETTERS if perms & bit)


def format_acl(acl: Iterable[ACL]) -> list[str]:
    """An ACL as zkCli's ``getAcl`` prints it: ``'scheme,'id`` then ``: perms`` per entry."""
    lines: list[str] = []
    for entry in acl:
        lines.append(f"'{entry.id.scheme},'{entry.id.id}")
        lines.append(f": {perm_string(entry.perms)}")
    return lines


def parse_acl(text: str) -> list[ACL]:
    """Parse zkCli's ACL syntax: ``scheme:id:perms`` entries separated by commas.

    The scheme ends at the first colon and the permissions start after the last, so ids
    may contain colons (``digest:user:hash=:cdrwa``, ``ip:10.0.0.0/8:r``). ``auth::cdrwa``
    grants the session's own identities, as in ZooKeeper.

    Raises:
        UsageError: an entry not of that form, or a permission letter not in ``cdrwa``.
    """
    letters = {letter: bit for bit, letter in _PERM_LETTERS}
    acl: list[ACL] = []
    for entry in text.split(","):
        first, last = entry.find(":"), entry.rfind(":")
        if first <= 0 or first == last:
            raise UsageError(f"{entry!r} does not have the form scheme:id:perm")
        perms = 0
        for letter in entry[last + 1 :]:
            if letter not in letters:
                raise UsageError(f"unknown perm type {letter!r} in {entry!r} (use cdrwa)")
            perms |= letters[letter]
        acl.append(ACL(perms, Id(entry[:first], entry[first + 1 : last])))
    return acl


def parse_stats_track(text: str) -> dict[str, int]:
    """Parse ZooKeeper's quota record (``StatsTrack``): ``count=1,bytes=5`` or, since
    3.7, ``count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3``. Unreadable entries
    are skipped."""
    values: dict[str, int] = {}
    for entry in text.replace("=;", ";").replace(",", ";").split(";"):
        key, sep, value = entry.strip().partition("=")
        if sep:
            with contextlib.suppress(ValueError):
                values[key] = int(value)
    return values


def format_stats_track(values: Mapping[str, int]) -> str:
    """A quota record as ZooKeeper writes it: ``count`` and ``bytes`` first, then (after
    an extra ``=``) the other keys, sorted, each as ``;key=value``."""
    text = f"count={values.get('count', -1)},bytes={values.get('bytes', -1)}"
    rest = sorted(k for k in values if k not in ("count", "bytes"))
    if rest:
        text += "=" + "".join(f";{key}={values[key]}" for key in rest)
    return text


def format_whoami(infos: Iterable[ClientInfo]) -> list[str]:
    """``whoami`` as zkCli prints it."""
    return ["Auth scheme: User", *(f"{info.auth_scheme}: {info.user}" for info in infos)]


_EVENT_NAMES = {
    EventType.NONE: "None",
    EventType.NODE_CREATED: "NodeCreated",
    EventType.NODE_DELETED: "NodeDeleted",
    EventType.NODE_DATA_CHANGED: "NodeDataChanged",
    EventType.NODE_CHILDREN_CHANGED: "NodeChildrenChanged",
    EventType.DATA_WATCH_REMOVED: "DataWatchRemoved",
    EventType.CHILD_WATCH_REMOVED: "ChildWatchRemoved",
    EventType.PERSISTENT_WATCH_REMOVED: "PersistentWatchRemoved",
}
_STATE_NAMES = {
    KeeperState.DISCONNECTED: "Disconnected",
    KeeperState.SYNC_CONNECTED: "SyncConnected",
    KeeperState.AUTH_FAILED: "AuthFailed",
    KeeperState.CONNECTED_READ_ONLY: "ConnectedReadOnly",
    KeeperState.SASL_AUTHENTICATED: "SaslAuthenticated",
    KeeperState.EXPIRED: "Expired",
    KeeperState.CLOSED: "Closed",
}


def event_name(event_type: int) -> str:
    """A watch event type as Java names it (``NodeDataChanged``)."""
    try:
        return _EVENT_NAMES[EventType(event_type)]
    except ValueError:
        return str(event_type)


def event_line(event_type: int, path: str, state: int = KeeperState.SYNC_CONNECTED) -> str:
    """A watch event as Java's ``WatchedEvent.toString()``."""
    try:
        state_name = _STATE_NAMES[KeeperState(state)]
    except ValueError:
        state_name = str(state)
    return f"WatchedEvent state:{state_name} type:{event_name(event_type)} path:{path}"


# --- errors -----------------------------------------------------------------------------------

# Java's KeeperException.getCodeMessage, for the codes zkCli has no sentence of its own for.
_CODE_MESSAGES: Mapping[int, str] = {
    ErrorCode.SYSTEM_ERROR: "SystemError",
    ErrorCode.RUNTIME_INCONSISTENCY: "RuntimeInconsistency",
    ErrorCode.DATA_INCONSISTENCY: "DataInconsistency",
    ErrorCode.CONNECTION_LOSS: "ConnectionLoss",
    ErrorCode.MARSHALLING_ERROR: "MarshallingError",
    ErrorCode.UNIMPLEMENTED: "Unimplemented",
    ErrorCode.OPERATION_TIMEOUT: "OperationTimeout",
    ErrorCode.BAD_ARGUMENTS: "BadArguments",
    ErrorCode.NEW_CONFIG_NO_QUORUM: "NewConfigNoQuorum",
    ErrorCode.RECONFIG_IN_PROGRESS: "ReconfigInProgress",
    ErrorCode.API_ERROR: "APIError",
    ErrorCode.NO_NODE: "NoNode",
    ErrorCode.NO_AUTH: "NoAuth",
    ErrorCode.BAD_VERSION: "BadVersion",
    ErrorCode.NO_CHILDREN_FOR_EPHEMERALS: "NoChildrenForEphemerals",
    ErrorCode.NODE_EXISTS: "NodeExists",
    ErrorCode.NOT_EMPTY: "Directory not empty",
    ErrorCode.SESSION_EXPIRED: "Session expired",
    ErrorCode.INVALID_CALLBACK: "Invalid callback",
    ErrorCode.INVALID_ACL: "InvalidACL",
    ErrorCode.AUTH_FAILED: "AuthFailed",
    ErrorCode.SESSION_MOVED: "Session moved",
    ErrorCode.NOT_READ_ONLY: "Not a read-only call",
    ErrorCode.EPHEMERAL_ON_LOCAL_SESSION: "Ephemeral node on local session",
    ErrorCode.NO_WATCHER: "No such watcher",
    ErrorCode.REQUEST_TIMEOUT: "Request timeout",
    ErrorCode.RECONFIG_DISABLED: "Reconfig is disabled",
    ErrorCode.SESSION_CLOSED_REQUIRE_SASL_AUTH: (
        "Session closed because client failed to authenticate"
    ),
    ErrorCode.QUOTA_EXCEEDED: "Quota has exceeded",
    ErrorCode.THROTTLED_OP: "Op throttled due to high load",
}


def error_message(error: CoordError, path: str | None = None) -> str:
    """The line zkCli prints for a failed operation.

    Args:
        error: the SDK's error.
        path: the path to name when the error carries none.
    """
    where = error.path if error.path is not None else path
    sentences: tuple[tuple[type[CoordError], str], ...] = (
        (NoNodeError, "Node does not exist: "),
        (NoChildrenForEphemeralsError, "Ephemerals cannot have children: "),
        (NodeExistsError, "Node already exists: "),
        (NotEmptyError, "Node not empty: "),
        (NotReadOnlyError, "Not a read-only call: "),
        (InvalidACLError, "Acl is not valid : "),
        (NoAuthError, "Insufficient permission : "),
        (BadVersionError, "version No is not valid : "),
    )
    for kind, sentence in sentences:
        if isinstance(error, kind):
            return f"{sentence}{where}"
    if isinstance(error, ReconfigInProgressError):
        return "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
    if isinstance(error, NewConfigNoQuorumError):
        return (
            "No quorum of new config is connected and up-to-date with the leader of last "
            "commmitted config - try invoking reconfiguration after new servers are "
            "connected and synced"
        )
    if isinstance(error, BadArgumentsError) and error.code is not None and error.path is None:
        return str(error)  # a path the SDK refused before sending anything
    code = error.code
    if code is None or code not in _CODE_MESSAGES:
        return str(error)
    text = f"KeeperErrorCode = {_CODE_MESSAGES[code]}"
    return f"{text} for {where}" if where else text


# --- JSON forms -------------------------------------------------------------------------------


def stat_json(stat: Stat) -> dict[str, int]:
    """A Stat as a JSON object with the SDK's field names (times in ms since the epoch)."""
    return {
        "czxid": stat.czxid,
        "mzxid": stat.mzxid,
        "pzxid": stat.pzxid,
        "ctime": stat.ctime,
        "mtime": stat.mtime,
        "version": stat.version,
        "cversion": stat.cversion,
        "aversion": stat.aversion,
        "ephemeral_owner": stat.ephemeral_owner,
        "data_length": stat.data_length,
        "num_children": stat.num_children,
    }


def data_json(data: bytes | None) -> dict[str, Any]:
    """Node data for JSON: ``{"data": text}`` if it is UTF-8, else base64 with
    ``"data_encoding": "base64"``; ``{"data": null}`` for null data."""
    if data is None:
        return {"data": None}
    try:
        return {"data": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"data": base64.b64encode(data).decode("ascii"), "data_encoding": "base64"}


def acl_json(acl: Iterable[ACL]) -> list[dict[str, Any]]:
    """An ACL as JSON: ``[{"scheme", "id", "perms": "cdrwa"}]``."""
    return [
        {"scheme": entry.id.scheme, "id": entry.id.id, "perms": perm_string(entry.perms)}
        for entry in acl
    ]


def error_json(error: CoordError, path: str | None = None) -> dict[str, Any]:
    """A failed operation as JSON: the error's class, code, path and zkCli's message."""
    where = error.path if error.path is not None else path
    return {
        "error": type(error).__name__,
        "code": None if error.code is None else int(error.code),
        "path": where,
        "message": error_message(error, path),
    }


def event_json(event_type: int, path: str, zxid: int = -1, state: int = 3) -> dict[str, Any]:
    """A watch event as JSON."""
    try:
        state_name = _STATE_NAMES[KeeperState(state)]
    except ValueError:
        state_name = str(state)
    return {"event": event_name(event_type), "path": path, "zxid": zxid, "state": state_name}
