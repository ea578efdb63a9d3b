"""The shell's command interpreter: every zkCli.sh command, on coord's SDK.

Theory of operation
-------------------
A :class:`Shell` owns one :class:`~coord.client.SyncClient` (the SDK's blocking facade:
an event loop in a thread of its own) and runs one command line at a time with
:meth:`Shell.execute`, which returns the command's exit status: 0, 1 for a failed
operation (zkCli's status), 2 for a malformed command line, 127 for an unknown command.

Output goes to two text streams, as in zkCli.sh: results on ``out``; errors -- and, like
zkCli 3.8, ``Created /path`` -- on ``err``. In JSON mode every command writes exactly one
JSON object on one line of ``out`` (``{"command": ..., "ok": true, ...}`` or ``"ok":
false`` with the error), so a script reads one line per command; ``watch`` writes one
object per event.

Most commands are one SDK call. A few need what the SDK keeps to itself and use its
request layer (``Client._call``) directly: ``get`` (to tell null data, which zkCli prints
as ``null``, from empty data), ``create`` (null data when none is given, and plain
sequential names rather than the SDK's protected ones), ``config``, ``reconfig`` and
``removewatches``. The quota commands read and write ZooKeeper's quota znodes under
``/zookeeper/quota`` in its ``StatsTrack`` text format, as zkCli.sh does.

Watches. ``get -w``, ``stat -w``, ``ls -w`` and ``config -w`` set one-shot watches whose
callbacks run on the event loop thread and print ``WATCHER::`` and the event as zkCli
does (unless ``printwatches off``). ``addWatch`` opens SDK watch streams -- a tree
stream for a recursive watch; a node stream and a children stream for a persistent one,
ZooKeeper's non-recursive persistent watch reporting both -- read by one task on the
event loop (a :class:`_Pump`), so their events print in the order they arrived. The shell
keeps a table of the watches it set, so ``removewatches`` can remove them on the server
and from the client's registry and report ``DataWatchRemoved``/``ChildWatchRemoved``/
``PersistentWatchRemoved`` as ZooKeeper's client does; like the Java client, it refuses
(``No such watcher``) to remove a watch this session did not set. ``watch PATH`` streams
events the same way, in the foreground, until interrupted (Ctrl-C), ``-n`` events
arrived or ``-t`` seconds passed.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

import anyio

import coord
from coord.client import (
    Client,
    ConnectionState,
    OneShotWatch,
    SyncClient,
    TlsOptions,
    WatchedEvent,
    WatchStream,
)
from coord.client._registry import WatchKind
from coord.client._transaction import create_op
from coord.protocol import (
    ACL,
    ConnectionLossError,
    CoordError,
    EventType,
    GetDataRequest,
    GetDataResponse,
    KeeperState,
    NoWatcherError,
    OpCode,
    ReconfigRequest,
    RemoveWatchesRequest,
    Stat,
    WatcherType,
    error_for_code,
)

from ._format import (
    Options,
    UsageError,
    acl_json,
    data_json,
    error_json,
    error_message,
    event_json,
    event_line,
    format_acl,
    format_children,
    format_data,
    format_stat,
    format_stats_track,
    format_whoami,
    parse_acl,
    parse_options,
    parse_stats_track,
    split_command,
    stat_json,
)

__all__ = ["COMMANDS", "Shell", "ShellCommand"]

#: Exit statuses of :meth:`Shell.execute`.
OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2
UNKNOWN: Final = 127

CONFIG_NODE: Final = "/zookeeper/config"
QUOTA_ROOT: Final = "/zookeeper/quota"
QUOTA_LIMITS: Final = "zookeeper_limits"
QUOTA_STATS: Final = "zookeeper_stats"
_QUOTA_KEYS: Final = {"n": "count", "b": "bytes", "N": "countHardLimit", "B": "byteHardLimit"}
_NEW_LIMITS: Final = {"count": -1, "bytes": -1, "countHardLimit": -1, "byteHardLimit": -1}
_HISTORY_SHOWN: Final = 11
_PROMPT_STATES: Final = {
    ConnectionState.RECONNECTED: "CONNECTED",
    ConnectionState.SUSPENDED: "CONNECTING",
    ConnectionState.LOST: "EXPIRED",
}
_KEEPER_STATES: Final = {
    ConnectionState.SUSPENDED: KeeperState.DISCONNECTED,
    ConnectionState.RECONNECTED: KeeperState.SYNC_CONNECTED,
    ConnectionState.LOST: KeeperState.EXPIRED,
}


class _Failed(Exception):
    """A command failed with a message of the shell's own (not a ZooKeeper error)."""

    def __init__(self, message: str, *, error: str = "ShellError") -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True, slots=True)
class ShellCommand:
    """One shell command: its name, usage line, options and what it does.

    Attributes:
        name: as typed (``getAcl``; the shell also accepts any letter case).
        usage: zkCli's usage line, printed for a malformed command line.
        flags: one-letter options without a value.
        valued: one-letter options with a value.
        long: multi-letter options with a value (reconfig's ``-members``).
        paths: the positions of the words that are paths (for tab completion).
        summary: one line for ``help``.
    """

    name: str
    usage: str
    flags: str = ""
    valued: str = ""
    long: tuple[str, ...] = ()
    paths: tuple[int, ...] = (0,)
    summary: str = ""


_MODES = "[PERSISTENT, PERSISTENT_RECURSIVE]"

#: Every command, by name.
COMMANDS: dict[str, ShellCommand] = {
    c.name: c
    for c in (
        ShellCommand(
            "addWatch",
            f"addWatch [-m mode] path # optional mode is one of {_MODES} - default is "
            "PERSISTENT_RECURSIVE",
            valued="m",
            summary="set a persistent (recursive) watch; its events print as they come",
        ),
        ShellCommand("addauth", "addauth scheme auth", paths=(), summary="authenticate"),
        ShellCommand("close", "close ", paths=(), summary="close the session"),
        ShellCommand(
            "config",
            "config [-c] [-w] [-s]",
            flags="cws",
            paths=(),
            summary="the ensemble configuration (/zookeeper/config)",
        ),
        ShellCommand(
            "connect", "connect host:port", paths=(), summary="close, and open a new session"
        ),
        ShellCommand(
            "create",
            "create [-s] [-e] [-c] [-t ttl] path [data] [acl]",
            flags="sec",
            valued="t",
            summary="create a node (sequential, ephemeral, container, TTL in ms)",
        ),
        ShellCommand("delete", "delete [-v version] path", valued="v", summary="delete a node"),
        ShellCommand(
            "deleteall",
            "deleteall path [-b batch size]",
            valued="b",
            summary="delete a node and all its descendants",
        ),
        ShellCommand("get", "get [-s] [-w] path", flags="sw", summary="a node's data"),
        ShellCommand("getAcl", "getAcl [-s] path", flags="s", summary="a node's ACL"),
        ShellCommand(
            "getAllChildrenNumber",
            "getAllChildrenNumber path",
            summary="the number of descendants",
        ),
        ShellCommand(
            "getEphemerals", "getEphemerals path", summary="this session's ephemeral nodes"
        ),
        ShellCommand("help", "help [command]", paths=(), summary="list the commands"),
        ShellCommand("history", "history ", paths=(), summary="the last commands"),
        ShellCommand(
            "ls",
            "ls [-s] [-w] [-R] path",
            flags="swR",
            summary="a node's children (-R: the subtree)",
        ),
        ShellCommand(
            "printwatches",
            "printwatches on|off",
            paths=(),
            summary="print watch events or not",
        ),
        ShellCommand("quit", "quit ", paths=(), summary="leave the shell"),
        ShellCommand(
            "reconfig",
            "reconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;"
            "port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* "
            "[-remove serverId[,...]*]",
            flags="s",
            valued="v",
            long=("file", "members", "add", "remove"),
            paths=(),
            summary="change the ensemble membership (as the server allows)",
        ),
        ShellCommand("redo", "redo cmdno", paths=(), summary="run a command of the history"),
        ShellCommand(
            "removewatches",
            "removewatches path [-c|-d|-a] [-l]",
            flags="cdal",
            summary="remove this session's watches on a node",
        ),
        ShellCommand(
            "set", "set [-s] [-v version] path data", flags="s", valued="v", summary="set data"
        ),
        ShellCommand(
            "setAcl",
            "setAcl [-s] [-v version] [-R] path acl",
            flags="sR",
            valued="v",
            summary="set a node's ACL (-R: and its descendants')",
        ),
        ShellCommand("stat", "stat [-w] path", flags="w", summary="a node's Stat"),
        ShellCommand("sync", "sync path", summary="catch the server up with the leader"),
        ShellCommand("tree", "tree [-d depth] [path]", valued="d", summary="the subtree, drawn"),
        ShellCommand("version", "version ", paths=(), summary="the shell's version"),
        ShellCommand(
            "watch",
            "watch [-R] [-n count] [-t seconds] path",
            flags="R",
            valued="nt",
            summary="print a node's (-R: subtree's) changes until Ctrl-C",
        ),
        ShellCommand("whoami", "whoami ", paths=(), summary="this session's identities"),
        ShellCommand(
            "setquota",
            "setquota -n|-b|-N|-B val path",
            valued="nbNB",
            summary="set a quota on a subtree (-n/-b soft, -N/-B hard: nodes/bytes)",
        ),
        ShellCommand("listquota", "listquota path", summary="a subtree's quota and usage"),
        ShellCommand(
            "delquota",
            "delquota [-n|-b|-N|-B] path",
            flags="nbNB",
            summary="remove a quota, or one of its limits",
        ),
    )
}
_BY_LOWER = {name.lower(): command for name, command in COMMANDS.items()}


@dataclass(slots=True)
class _Watch:
    """A watch this shell set, for ``removewatches``."""

    kind: str  # "data", "child", "persistent", "persistentRecursive"
    path: str
    spath: str
    handle: OneShotWatch | _Pump


@dataclass(slots=True)
class _Output:
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    errors_first: bool = False  # zkCli prints the stderr lines first


class Shell:
    """An interactive or scripted ZooKeeper shell over coord's SDK.

    Args:
        hosts: the connect string (``host:port[,host:port...][/chroot]``).
        out: where results go.
        err: where errors go.
        json_mode: write one JSON object per command instead of zkCli's text.
        session_timeout: seconds, asked of the server.
        timeout: seconds allowed for each operation.
        auth: ``(scheme, credentials)`` pairs sent on connecting.
        tls: TLS settings for servers' secure ports (:class:`~coord.client.TlsOptions`).
    """

    def __init__(
        self,
        hosts: str,
        *,
        out: TextIO,
        err: TextIO,
        json_mode: bool = False,
        session_timeout: float = 30.0,
        timeout: float = 30.0,
        auth: Sequence[tuple[str, bytes]] = (),
        tls: TlsOptions | None = None,
    ) -> None:
        self.hosts = hosts
        self.tls = tls
        self.json_mode = json_mode
        self.timeout = timeout
        self.session_timeout = session_timeout
        self.history: list[str] = []
        self.print_watches = True
        self.quitting = False
        #: Called (under the output lock) after a notification printed from another
        #: thread, so an interactive prompt can redraw itself and the line being typed.
        self.redraw: Callable[[], None] | None = None
        self._auth = list(auth)
        self._out = out
        self._err = err
        self._lock = threading.Lock()
        self._client: SyncClient | None = None
        self._watches: list[_Watch] = []

    # --- session --------------------------------------------------------------------------

    def connect(self, hosts: str | None = None) -> None:
        """Open a session (closing the current one first).

        Raises:
            ConnectionLossError: no server answered within the session timeout.
            AuthFailedError: the ``auth`` credentials were refused.
        """
        self.close()
        if hosts is not None:
            self.hosts = hosts
        client = coord.connect_sync(
            self.hosts, session_timeout=self.session_timeout, auth=self._auth, tls=self.tls
        )
        client.open()
        client.add_listener(self._on_state)
        self._client = client

    def close(self) -> None:
        """Close the session (its ephemeral nodes go). Idempotent."""
        client, self._client = self._client, None
        pumps = [w.handle for w in self._watches if isinstance(w.handle, _Pump)]
        self._watches.clear()
        if client is not None:
            for pump in pumps:
                pump.close()
            client.close()

    @property
    def state(self) -> str:
        """The session's state as the prompt shows it: ``CONNECTED``, ``CONNECTING``
        (the connection was lost; reconnecting with the same session), ``EXPIRED``,
        ``CLOSED``."""
        client = self._client
        if client is None or client.state is None:
            return "CLOSED"
        return _PROMPT_STATES.get(client.state, client.state.name)

    @property
    def client(self) -> SyncClient:
        """The open client.

        Raises:
            _Failed: no session (after ``close``, or if connecting failed).
        """
        if self._client is None:
            raise _Failed("Not connected (use: connect host:port)", error="NotConnected")
        return self._client

    def children(self, path: str) -> list[str]:
        """A node's children, sorted, or ``[]`` if it cannot be read (for completion)."""
        client = self._client
        if client is None:
            return []
        try:
            return sorted(client.children(path, timeout=min(self.timeout, 2.0)))
        except (CoordError, TimeoutError):
            return []

    # --- output ---------------------------------------------------------------------------

    def write(self, line: str, *, error: bool = False) -> None:
        """Write one line to ``out`` (or ``err``), whole, from any thread."""
        stream = self._err if error else self._out
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def _json(self, obj: dict[str, Any]) -> None:
        self.write(json.dumps(obj, ensure_ascii=False))

    def _print_event(self, event_type: int, path: str, zxid: int, state: int) -> None:
        if not self.print_watches:
            return
        if self.json_mode:
            self._json({"watch": event_json(event_type, path, zxid, state)})
        else:
            self._notify(event_line(event_type, path, state))

    def _notify(self, line: str) -> None:
        """Print a notification as zkCli does, then let the prompt redraw itself."""
        with self._lock:
            self._out.write(f"\nWATCHER::\n\n{line}\n")
            self._out.flush()
            if self.redraw is not None:
                self.redraw()

    def _on_state(self, state: ConnectionState) -> None:
        """Report losing and regaining the connection, as zkCli's watcher does."""
        keeper = _KEEPER_STATES.get(state)
        if keeper is None or not self.print_watches:
            return
        if self.json_mode:
            self._json({"watch": {**event_json(EventType.NONE, "", -1, keeper), "path": None}})
        else:
            self._notify(event_line(EventType.NONE, "null", keeper))

    # --- running commands -----------------------------------------------------------------

    def execute(self, line: str) -> int:
        """Run one command line; return its exit status (0, 1, 2 or 127)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return OK
        try:
            words = split_command(line)
        except UsageError as exc:
            return self._usage_error("", str(exc))
        if not words:
            return OK
        name = words[0]
        command = COMMANDS.get(name) or _BY_LOWER.get(name.lower())
        if command is None:
            if self.json_mode:
                self._json(
                    {
                        "command": name,
                        "ok": False,
                        "error": "UnknownCommand",
                        "message": f"Command not found: {name}",
                    }
                )
            else:
                self.write(f"Command not found: {name} (type help for the commands)", error=True)
            return UNKNOWN
        if command.name != "redo":
            self.history.append(line)
        try:
            options = parse_options(words[1:], command.flags, command.valued, long=command.long)
            return self._run(command, options)
        except UsageError as exc:
            return self._usage_error(command.name, str(exc), command.usage)

    def _usage_error(self, name: str, message: str, usage: str | None = None) -> int:
        if self.json_mode:
            self._json(
                {
                    "command": name,
                    "ok": False,
                    "error": "UsageError",
                    "message": message,
                    "usage": usage,
                }
            )
        else:
            if message != usage:
                self.write(message, error=True)
            if usage is not None:
                self.write(usage, error=True)
        return USAGE

    def _run(self, command: ShellCommand, options: Options) -> int:
        handler: Callable[[Options], _Output] = getattr(self, "_cmd_" + command.name)
        path = options.args[0] if command.paths and options.args else None
        try:
            output = handler(options)
        except CoordError as exc:
            if self.json_mode:
                self._json({"command": command.name, "ok": False, **error_json(exc, path)})
            else:
                self.write(error_message(exc, path), error=True)
            return FAILED
        except _Failed as exc:
            if self.json_mode:
                self._json(
                    {
                        "command": command.name,
                        "ok": False,
                        "error": exc.error,
                        "path": path,
                        "message": str(exc),
                    }
                )
            else:
                self.write(str(exc), error=True)
            return FAILED
        except TimeoutError:
            message = f"the operation took longer than {self.timeout:g} s"
            if self.json_mode:
                self._json(
                    {
                        "command": command.name,
                        "ok": False,
                        "error": "Timeout",
                        "path": path,
                        "message": message,
                    }
                )
            else:
                self.write(message, error=True)
            return FAILED
        if self.json_mode:
            if output.fields.get("_silent"):
                return OK
            self._json({"command": command.name, "ok": True, **output.fields})
        else:
            streams = [(output.lines, False), (output.errors, True)]
            if output.errors_first:
                streams.reverse()
            for lines, error in streams:
                for text in lines:
                    self.write(text, error=error)
        return OK

    @staticmethod
    def _args(options: Options, low: int, high: int, usage: str) -> list[str]:
        if not low <= len(options.args) <= high:
            raise UsageError(usage)
        return options.args

    def _version_opt(self, options: Options) -> int:
        text = options.values.get("v", "-1")
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"version must be a number, not {text!r}") from None

    # --- async helpers run on the client's loop (the SDK's request layer) -----------------

    async def _raw_get(
        self, client: Client, path: str, spath: str, watcher: OneShotWatch | None
    ) -> tuple[bytes | None, Stat]:
        reply = await client._call(
            OpCode.GET_DATA, GetDataRequest(spath, watcher is not None), watcher
        )
        if reply.err:
            raise error_for_code(reply.err, path)
        body = reply.body
        assert isinstance(body, GetDataResponse)
        return body.data, body.stat

    def _get(
        self, path: str, *, watch: bool, server_path: bool = False
    ) -> tuple[bytes | None, Stat]:
        client = self.client
        spath = path if server_path else client.client._server_path(path)
        watcher = OneShotWatch(path) if watch else None
        data, stat = client.run(
            self._raw_get, client.client, path, spath, watcher, timeout=self.timeout
        )
        if watcher is not None:  # set: the read succeeded
            self._track("data", path, watcher, spath)
        return data, stat

    def _track(self, kind: str, path: str, watcher: OneShotWatch, spath: str | None = None) -> None:
        """Keep a one-shot watch the server accepted, until it fires or is removed."""
        if spath is None:
            spath = self.client.client._server_path(path)
        entry = _Watch(kind, path, spath, watcher)

        def fired(event: WatchedEvent) -> None:
            with contextlib.suppress(ValueError):
                self._watches.remove(entry)
            if event.type != EventType.NONE:
                self._print_event(event.type, event.path, event.zxid, event.state)

        self._watches.append(entry)
        watcher.add_callback(fired)

    # --- commands -------------------------------------------------------------------------

    def _cmd_help(self, options: Options) -> _Output:
        names = sorted(COMMANDS, key=str.lower)
        if options.args:
            wanted = {a.lower() for a in options.args}
            names = [n for n in names if n.lower() in wanted]
        lines = ["coord shell: zkCli.sh's commands, plus tree and watch. Commands:"]
        lines += [f"\t{COMMANDS[n].usage}" for n in names]
        rows = [
            {"name": n, "usage": COMMANDS[n].usage, "summary": COMMANDS[n].summary} for n in names
        ]
        return _Output(lines, fields={"commands": rows})

    def _cmd_version(self, options: Options) -> _Output:
        self._args(options, 0, 0, COMMANDS["version"].usage)
        return _Output(
            [f"coord CLI version: {coord.__version__}"], fields={"version": coord.__version__}
        )

    def _cmd_quit(self, options: Options) -> _Output:
        self.quitting = True
        return _Output(fields={})

    def _cmd_close(self, options: Options) -> _Output:
        self.close()
        return _Output(fields={})

    def _cmd_connect(self, options: Options) -> _Output:
        args = self._args(options, 0, 1, COMMANDS["connect"].usage)
        try:
            self.connect(args[0] if args else None)
        except ConnectionLossError as exc:
            raise _Failed(
                f"cannot connect to {self.hosts}: {exc}", error="ConnectionLoss"
            ) from None
        return _Output(fields={"hosts": self.hosts, "session_id": f"{self.client.session_id:#x}"})

    def _cmd_history(self, options: Options) -> _Output:
        start = max(0, len(self.history) - _HISTORY_SHOWN)
        entries = list(enumerate(self.history))[start:]
        return _Output(
            [f"{n} - {text}" for n, text in entries],
            fields={"history": [{"number": n, "command": text} for n, text in entries]},
        )

    def _cmd_redo(self, options: Options) -> _Output:
        (text,) = self._args(options, 1, 1, COMMANDS["redo"].usage)
        try:
            number = int(text)
        except ValueError:
            raise UsageError("redo cmdno: cmdno must be a number") from None
        if not 0 <= number < len(self.history):
            raise _Failed("Command index out of range", error="BadIndex")
        self.execute(self.history[number])
        return _Output(fields={"_silent": True})

    def _cmd_printwatches(self, options: Options) -> _Output:
        args = self._args(options, 0, 1, COMMANDS["printwatches"].usage)
        if args:
            if args[0] not in ("on", "off"):
                raise UsageError(COMMANDS["printwatches"].usage)
            self.print_watches = args[0] == "on"
            return _Output(fields={"printwatches": self.print_watches})
        state = "on" if self.print_watches else "off"
        return _Output([f"printwatches is {state}"], fields={"printwatches": self.print_watches})

    def _cmd_ls(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["ls"].usage)
        client = self.client
        if "R" in options.flags:
            paths = list(self._walk(path))
            return _Output(paths, fields={"path": path, "paths": paths})
        if "w" in options.flags:
            names, stat, watcher = client.run(
                self._children_watch, client.client, path, timeout=self.timeout
            )
            self._track("child", path, watcher)
        else:
            names, stat = client.children_with_stat(path, timeout=self.timeout)
        names = sorted(names)
        lines = [format_children(names)]
        fields: dict[str, Any] = {"path": path, "children": names}
        if "s" in options.flags:
            lines += format_stat(stat)
            fields["stat"] = stat_json(stat)
        return _Output(lines, fields=fields)

    @staticmethod
    async def _children_watch(client: Client, path: str) -> tuple[list[str], Stat, OneShotWatch]:
        return await client.children_with_stat(path, watch=True)

    def _walk(self, path: str) -> Iterator[str]:
        """The subtree under ``path``, depth first, children sorted (zkCli's ``ls -R``)."""
        client = self.client
        client.exists(path, timeout=self.timeout) or self._no_node(path)
        stack = [path]
        while stack:
            current = stack.pop()
            yield current
            try:
                names = client.children(current, timeout=self.timeout)
            except coord.NoNodeError:
                continue  # deleted meanwhile
            base = current.rstrip("/")
            stack.extend(f"{base}/{name}" for name in sorted(names, reverse=True))

    @staticmethod
    def _no_node(path: str) -> bool:
        raise coord.NoNodeError(path=path)

    def _cmd_get(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["get"].usage)
        data, stat = self._get(path, watch="w" in options.flags)
        lines = [format_data(data)]
        fields: dict[str, Any] = {"path": path, **data_json(data)}
        if "s" in options.flags:
            lines += format_stat(stat)
            fields["stat"] = stat_json(stat)
        return _Output(lines, fields=fields)

    def _cmd_stat(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["stat"].usage)
        client = self.client
        if "w" in options.flags:
            stat, watcher = client.run(
                self._exists_watch, client.client, path, timeout=self.timeout
            )
            self._track("data", path, watcher)
        else:
            stat = client.exists(path, timeout=self.timeout)
        if stat is None:
            raise coord.NoNodeError(path=path)
        return _Output(format_stat(stat), fields={"path": path, "stat": stat_json(stat)})

    @staticmethod
    async def _exists_watch(client: Client, path: str) -> tuple[Stat | None, OneShotWatch]:
        return await client.exists(path, watch=True)

    def _cmd_create(self, options: Options) -> _Output:
        args = self._args(options, 1, 3, COMMANDS["create"].usage)
        path = args[0]
        data = args[1].encode("utf-8") if len(args) > 1 else None
        acl = parse_acl(args[2]) if len(args) > 2 else None
        ttl_text = options.values.get("t")
        ttl: float | None = None
        if ttl_text is not None:
            try:
                ttl = int(ttl_text) / 1000
            except ValueError:
                raise UsageError(
                    f"ttl must be a number of milliseconds, not {ttl_text!r}"
                ) from None
        client = self.client
        sequential = "s" in options.flags
        created = client.run(
            self._raw_create,
            client.client,
            path,
            data,
            acl,
            "e" in options.flags,
            sequential,
            "c" in options.flags,
            ttl,
            timeout=self.timeout,
        )
        return _Output(errors=[f"Created {created}"], fields={"path": created})

    @staticmethod
    async def _raw_create(
        client: Client,
        path: str,
        data: bytes | None,
        acl: list[ACL] | None,
        ephemeral: bool,
        sequential: bool,
        container: bool,
        ttl: float | None,
    ) -> str:
        from coord.client._paths import validate_path

        validate_path(path, sequential=sequential)
        op, record = create_op(
            client._server_path(path, sequential=sequential),
            data,  # type: ignore[arg-type]  # None: a node with null data, as zkCli makes
            client._acl(acl),
            ephemeral=ephemeral,
            sequential=sequential,
            container=container,
            ttl=ttl,
            with_stat=False,
        )
        reply = await client._call(op, record)
        if reply.err:
            raise error_for_code(reply.err, path)
        created: str = reply.body.path  # type: ignore[union-attr]
        return client._chroot.to_client(created)

    def _cmd_set(self, options: Options) -> _Output:
        path, data = self._args(options, 2, 2, COMMANDS["set"].usage)
        version = self._version_opt(options)
        stat = self.client.set(path, data.encode("utf-8"), version, timeout=self.timeout)
        lines = format_stat(stat) if "s" in options.flags else []
        return _Output(lines, fields={"path": path, "stat": stat_json(stat)})

    def _cmd_delete(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["delete"].usage)
        self.client.delete(path, self._version_opt(options), timeout=self.timeout)
        return _Output(fields={"path": path})

    def _cmd_deleteall(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["deleteall"].usage)
        if "b" in options.values and not options.values["b"].isdigit():
            raise UsageError(COMMANDS["deleteall"].usage)
        self.client.delete(path, recursive=True, timeout=self.timeout)
        return _Output(fields={"path": path})

    def _cmd_getAcl(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["getAcl"].usage)
        acl, stat = self.client.get_acl(path, timeout=self.timeout)
        lines = format_acl(acl)
        fields: dict[str, Any] = {"path": path, "acl": acl_json(acl)}
        if "s" in options.flags:
            lines += format_stat(stat)
            fields["stat"] = stat_json(stat)
        return _Output(lines, fields=fields)

    def _cmd_setAcl(self, options: Options) -> _Output:
        path, text = self._args(options, 2, 2, COMMANDS["setAcl"].usage)
        acl = parse_acl(text)
        version = self._version_opt(options)
        client = self.client
        if "R" in options.flags:
            paths = list(self._walk(path))
            stat = None
            for node in paths:
                result = client.set_acl(node, acl, -1, timeout=self.timeout)
                stat = stat or result
            assert stat is not None
        else:
            stat = client.set_acl(path, acl, version, timeout=self.timeout)
        lines = format_stat(stat) if "s" in options.flags else []
        return _Output(lines, fields={"path": path, "stat": stat_json(stat)})

    def _cmd_getAllChildrenNumber(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["getAllChildrenNumber"].usage)
        number = self.client.all_children_number(path, timeout=self.timeout)
        return _Output([str(number)], fields={"path": path, "number": number})

    def _cmd_getEphemerals(self, options: Options) -> _Output:
        args = self._args(options, 0, 1, COMMANDS["getEphemerals"].usage)
        prefix = args[0] if args else "/"
        paths = sorted(self.client.ephemerals(prefix, timeout=self.timeout))
        return _Output([format_children(paths)], fields={"prefix": prefix, "paths": paths})

    def _cmd_sync(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["sync"].usage)
        self.client.sync(path, timeout=self.timeout)
        return _Output(["Sync is OK"], fields={"path": path})

    def _cmd_whoami(self, options: Options) -> _Output:
        infos = self.client.whoami(timeout=self.timeout)
        return _Output(
            format_whoami(infos),
            fields={"identities": [{"scheme": i.auth_scheme, "user": i.user} for i in infos]},
        )

    def _cmd_addauth(self, options: Options) -> _Output:
        args = self._args(options, 1, 2, COMMANDS["addauth"].usage)
        scheme = args[0]
        credentials = args[1].encode("utf-8") if len(args) > 1 else b""
        self.client.add_auth(scheme, credentials, timeout=self.timeout)
        self._auth.append((scheme, credentials))
        return _Output(fields={"scheme": scheme})

    def _cmd_config(self, options: Options) -> _Output:
        self._args(options, 0, 0, COMMANDS["config"].usage)
        data, stat = self._get(CONFIG_NODE, watch="w" in options.flags, server_path=True)
        text = format_data(data)
        if "c" in options.flags:
            text = _client_config(text)
        lines = [text]
        fields: dict[str, Any] = {"config": text}
        if "s" in options.flags:
            lines += format_stat(stat)
            fields["stat"] = stat_json(stat)
        return _Output(lines, fields=fields)

    def _cmd_reconfig(self, options: Options) -> _Output:
        self._args(options, 0, 0, COMMANDS["reconfig"].usage)
        values = options.values
        members = values.get("members", "")
        if "file" in values:
            try:
                with open(values["file"], encoding="utf-8") as source:
                    members = ",".join(
                        line.strip()
                        for line in source
                        if line.strip() and not line.lstrip().startswith("#")
                    )
            except OSError as exc:
                raise _Failed(f"cannot read {values['file']}: {exc.strerror}") from None
        joining, leaving = values.get("add", ""), values.get("remove", "")
        if members and (joining or leaving):
            raise UsageError("-members or -file cannot be used with -add or -remove")
        if not (members or joining or leaving):
            raise UsageError(COMMANDS["reconfig"].usage)
        version = -1
        if "v" in values:
            try:
                version = int(values["v"], 16)
            except ValueError:
                raise UsageError(f"-v takes a config version in hex, not {values['v']!r}") from None
        client = self.client
        data, stat = client.run(
            self._raw_reconfig,
            client.client,
            ReconfigRequest(joining, leaving, members, version),
            timeout=self.timeout,
        )
        text = format_data(data)
        lines = ["Committed new configuration:", text]
        fields: dict[str, Any] = {"config": text}
        if "s" in options.flags:
            lines += format_stat(stat)
            fields["stat"] = stat_json(stat)
        return _Output(lines, fields=fields)

    @staticmethod
    async def _raw_reconfig(client: Client, request: ReconfigRequest) -> tuple[bytes | None, Stat]:
        reply = await client._call(OpCode.RECONFIG, request)
        if reply.err:
            raise error_for_code(reply.err, None)
        body = reply.body
        assert isinstance(body, GetDataResponse)
        return body.data, body.stat

    # --- quotas: ZooKeeper's znodes under /zookeeper/quota (docs/operations.md#quotas) -------

    def _cmd_setquota(self, options: Options) -> _Output:
        usage = COMMANDS["setquota"].usage
        (path,) = self._args(options, 1, 1, usage)
        if len(options.values) != 1:
            raise UsageError(usage)
        ((letter, text),) = options.values.items()
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"setquota: -{letter} takes a number, not {text!r}") from None
        if path.startswith(QUOTA_ROOT):
            raise _Failed(f"cannot set a quota under the path: {QUOTA_ROOT}", error="BadPath")
        client = self.client
        if client.exists(path, timeout=self.timeout) is None:
            raise _Failed(f"{path} does not exist.", error="NoNodeError")
        self._check_quota_neighbours(path)
        node = QUOTA_ROOT
        for part in path.strip("/").split("/"):
            node = f"{node}/{part}"
            with contextlib.suppress(coord.NodeExistsError):
                self._create_raw(node, None)
        limits_path = f"{node}/{QUOTA_LIMITS}"
        key = _QUOTA_KEYS[letter]
        try:
            data, _ = self._get(limits_path, watch=False)
        except coord.NoNodeError:
            limits = dict(_NEW_LIMITS, **{key: value})
            self._create_raw(limits_path, format_stats_track(limits).encode())
            with contextlib.suppress(coord.NodeExistsError):
                self._create_raw(f"{node}/{QUOTA_STATS}", b"count=0,bytes=0")
        else:
            limits = parse_stats_track(format_data(data))
            limits[key] = value
            client.set(limits_path, format_stats_track(limits).encode(), timeout=self.timeout)
        return _Output(fields={"path": path, "limits": limits})

    def _check_quota_neighbours(self, path: str) -> None:
        """zkCli refuses a quota below or above another one."""
        client = self.client
        node = QUOTA_ROOT
        own = QUOTA_ROOT + path
        for part in path.strip("/").split("/"):
            node = f"{node}/{part}"
            try:
                children = client.children(node, timeout=self.timeout)
            except coord.NoNodeError:
                break
            if node != own and QUOTA_LIMITS in children:
                above = node[len(QUOTA_ROOT) :]
                raise _Failed(f"{path} has a parent {above} which has a quota", error="Quota")
        if client.exists(own, timeout=self.timeout) is None:
            return
        for below in self._walk(own):
            if below == own:
                continue
            try:
                children = client.children(below, timeout=self.timeout)
            except coord.NoNodeError:
                continue
            if QUOTA_LIMITS in children:
                child = below[len(QUOTA_ROOT) :]
                raise _Failed(f"{path} has a child {child} which has a quota", error="Quota")

    def _create_raw(self, path: str, data: bytes | None) -> None:
        client = self.client
        client.run(
            self._raw_create,
            client.client,
            path,
            data,
            None,
            False,
            False,
            False,
            None,
            timeout=self.timeout,
        )

    def _cmd_listquota(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["listquota"].usage)
        limits_path = f"{QUOTA_ROOT}{path}/{QUOTA_LIMITS}"
        errors = [f"absolute path is {limits_path}"]
        try:
            data, _ = self._get(limits_path, watch=False)
            limits = parse_stats_track(format_data(data))
            data, _ = self._get(f"{QUOTA_ROOT}{path}/{QUOTA_STATS}", watch=False)
            stats = parse_stats_track(format_data(data))
        except coord.NoNodeError:
            if self.json_mode:
                raise _Failed(f"quota for {path} does not exist.", error="NoQuota") from None
            return _Output(errors=[*errors, f"quota for {path} does not exist."])
        return _Output(
            [
                f"Output quota for {path} {format_stats_track(limits)}",
                f"Output stat for {path} {format_stats_track(stats)}",
            ],
            errors,
            fields={"path": path, "limits": limits, "stats": stats},
            errors_first=True,
        )

    def _cmd_delquota(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["delquota"].usage)
        if len(options.flags) > 1:
            raise UsageError(COMMANDS["delquota"].usage)
        client = self.client
        node = QUOTA_ROOT + path
        limits_path = f"{node}/{QUOTA_LIMITS}"
        try:
            data, _ = self._get(limits_path, watch=False)
        except coord.NoNodeError:
            if self.json_mode:
                raise _Failed(f"Quota does not exist for {path}", error="NoQuota") from None
            return _Output([f"Quota does not exist for {path}"])
        if options.flags:
            limits = parse_stats_track(format_data(data))
            limits[_QUOTA_KEYS[next(iter(options.flags))]] = -1
            client.set(limits_path, format_stats_track(limits).encode(), timeout=self.timeout)
            return _Output(fields={"path": path, "limits": limits})
        for child in client.children(node, timeout=self.timeout):
            client.delete(f"{node}/{child}", timeout=self.timeout)
        while node != QUOTA_ROOT and not client.children(node, timeout=self.timeout):
            client.delete(node, timeout=self.timeout)
            node = node.rsplit("/", 1)[0]
        return _Output(fields={"path": path, "limits": None})

    def _cmd_addWatch(self, options: Options) -> _Output:  # zkCli's name
        (path,) = self._args(options, 1, 1, COMMANDS["addWatch"].usage)
        mode = options.values.get("m", "persistent_recursive").lower().replace("_", "")
        if mode not in ("persistent", "persistentrecursive"):
            raise UsageError(COMMANDS["addWatch"].usage)
        client = self.client
        spath = client.client._server_path(path)
        kind = "persistent" if mode == "persistent" else "persistentRecursive"
        # ZooKeeper keeps one persistent mode per path and session: the new one replaces.
        for old in [w for w in self._watches if w.spath == spath and w.kind.startswith("pers")]:
            self._watches.remove(old)
            assert isinstance(old.handle, _Pump)
            old.handle.close()

        def emit(event: WatchedEvent) -> None:
            self._print_event(event.type, event.path, event.zxid, event.state)

        pump = _Pump(client, path, kind == "persistentRecursive", emit)
        pump.start(self.timeout)
        self._watches.append(_Watch(kind, path, spath, pump))
        return _Output(fields={"path": path, "mode": kind})

    def _cmd_removewatches(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["removewatches"].usage)
        chosen = options.flags & set("cda")
        if len(chosen) > 1:
            raise UsageError(COMMANDS["removewatches"].usage)
        which = chosen.pop() if chosen else "a"
        client = self.client
        spath = client.client._server_path(path)
        kinds = {"c": ("child",), "d": ("data",)}.get(
            which, ("data", "child", "persistent", "persistentRecursive")
        )
        found = [w for w in self._watches if w.spath == spath and w.kind in kinds]
        if not found:
            raise NoWatcherError(f"KeeperErrorCode = No such watcher for {path}", path=path)
        watcher_type = {"c": WatcherType.CHILDREN, "d": WatcherType.DATA}.get(
            which, WatcherType.ANY
        )
        one_shots = [w for w in found if isinstance(w.handle, OneShotWatch)]
        pumps = [w for w in found if isinstance(w.handle, _Pump)]
        if one_shots:  # the server first: a refusal leaves everything as it was
            client.run(
                self._raw_remove,
                client.client,
                path,
                spath,
                watcher_type,
                [w.handle for w in one_shots if isinstance(w.handle, OneShotWatch)],
                [w.kind for w in one_shots],
                "l" in options.flags,
                timeout=self.timeout,
            )
        removed: list[dict[str, Any]] = []
        for entry in found:
            with contextlib.suppress(ValueError):
                self._watches.remove(entry)
            if isinstance(entry.handle, _Pump):
                entry.handle.close()
        for kind in dict.fromkeys(w.kind for w in one_shots + pumps):
            event_type = {
                "data": EventType.DATA_WATCH_REMOVED,
                "child": EventType.CHILD_WATCH_REMOVED,
            }.get(kind, EventType.PERSISTENT_WATCH_REMOVED)
            removed.append(event_json(event_type, path))
            self._print_event(event_type, path, -1, KeeperState.SYNC_CONNECTED)
        return _Output(fields={"path": path, "removed": removed})

    @staticmethod
    async def _raw_remove(
        client: Client,
        path: str,
        spath: str,
        watcher_type: WatcherType,
        watchers: list[OneShotWatch],
        kinds: list[str],
        local: bool,
    ) -> None:
        try:
            reply = await client._call(
                OpCode.REMOVE_WATCHES, RemoveWatchesRequest(spath, watcher_type)
            )
            if reply.err:
                raise error_for_code(reply.err, path)
        except CoordError:
            if not local:
                raise
        registry = client._core.registry
        for watcher, kind in zip(watchers, kinds, strict=True):
            table = (WatchKind.CHILD,) if kind == "child" else (WatchKind.DATA, WatchKind.EXIST)
            for watch_kind in table:
                registry.remove(watch_kind, spath, watcher)

    # --- additions: tree and watch --------------------------------------------------------

    def _cmd_tree(self, options: Options) -> _Output:
        args = self._args(options, 0, 1, COMMANDS["tree"].usage)
        path = args[0] if args else "/"
        depth: int | None = None
        if "d" in options.values:
            try:
                depth = int(options.values["d"])
            except ValueError:
                raise UsageError(COMMANDS["tree"].usage) from None
        client = self.client
        if client.exists(path, timeout=self.timeout) is None:
            raise coord.NoNodeError(path=path)
        lines = [path]
        root: dict[str, Any] = {"name": path, "path": path, "children": []}

        def visit(node: dict[str, Any], prefix: str, level: int) -> None:
            if depth is not None and level >= depth:
                return
            try:
                names = sorted(client.children(node["path"], timeout=self.timeout))
            except coord.NoNodeError:
                return
            for i, name in enumerate(names):
                last = i == len(names) - 1
                lines.append(f"{prefix}{'└── ' if last else '├── '}{name}")
                child_path = node["path"].rstrip("/") + "/" + name
                child: dict[str, Any] = {"name": name, "path": child_path, "children": []}
                node["children"].append(child)
                visit(child, prefix + ("    " if last else "│   "), level + 1)

        visit(root, "", 0)
        return _Output(lines, fields={"tree": root})

    def _cmd_watch(self, options: Options) -> _Output:
        (path,) = self._args(options, 1, 1, COMMANDS["watch"].usage)
        count: int | None = None
        deadline: float | None = None
        try:
            if "n" in options.values:
                count = int(options.values["n"])
            if "t" in options.values:
                deadline = time.monotonic() + float(options.values["t"])
        except ValueError:
            raise UsageError(COMMANDS["watch"].usage) from None
        recursive = "R" in options.flags
        events: queue.Queue[WatchedEvent] = queue.Queue()
        pump = _Pump(self.client, path, recursive, events.put)
        seen = 0
        try:
            pump.start(self.timeout)
            if self.json_mode:
                self._json({"command": "watch", "ok": True, "path": path, "started": True})
            else:
                scope = "subtree" if recursive else "node"
                self.write(f"watching the {scope} {path} (Ctrl-C to stop)", error=True)
            while count is None or seen < count:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                try:
                    event = events.get(timeout=0.2)
                except queue.Empty:
                    if pump.ended.is_set() and events.empty():
                        if isinstance(pump.error, CoordError):
                            raise pump.error from None
                        raise _Failed("the watch ended: the session was closed") from None
                    continue
                seen += 1
                if self.json_mode:
                    self._json(
                        {"watch": event_json(event.type, event.path, event.zxid, event.state)}
                    )
                else:
                    stamp = time.strftime("%H:%M:%S")
                    self.write(f"{stamp} {event_line(event.type, event.path, event.state)}")
        except KeyboardInterrupt:
            if not self.json_mode:
                self.write("")
        finally:
            pump.close()
        return _Output(fields={"path": path, "events": seen, "_silent": True})


async def _merge_streams(
    client: Client,
    path: str,
    recursive: bool,
    started: Callable[[anyio.Event], object],
    emit: Callable[[WatchedEvent], object],
) -> None:
    """Hand the events of ``path`` (``recursive``: of its subtree) to ``emit``, in the
    order they arrived, until the ``anyio.Event`` given to ``started`` is set.

    A node's own events come from a data stream and its children's from a children
    stream (ZooKeeper's non-recursive persistent watch reports both); both are read in
    this one event loop, so their events are emitted in arrival order. Both callbacks
    run on the event loop thread and must not block.
    """
    streams = (
        [client.watch_tree(path)]
        if recursive
        else [client.watch(path), client.watch_children(path)]
    )
    async with contextlib.AsyncExitStack() as stack:
        for stream in streams:
            await stack.enter_async_context(stream)
        stop = anyio.Event()
        started(stop)
        async with anyio.create_task_group() as tg:

            async def forward(stream: WatchStream, children_only: bool) -> None:
                async for event in stream:
                    if children_only and event.type != EventType.NODE_CHILDREN_CHANGED:
                        continue
                    emit(event)
                tg.cancel_scope.cancel()

            for i, stream in enumerate(streams):
                tg.start_soon(forward, stream, i == 1)
            await stop.wait()
            tg.cancel_scope.cancel()


class _Pump:
    """Watch streams read on the client's event loop by a task that a thread of ours
    waits for (``SyncClient.run``), their events handed to ``emit`` in arrival order."""

    def __init__(
        self,
        client: SyncClient,
        path: str,
        recursive: bool,
        emit: Callable[[WatchedEvent], object],
    ) -> None:
        self._client = client
        self._stop: anyio.Event | None = None
        self._started = threading.Event()
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(path, recursive, emit), name=f"coord-shell {path}", daemon=True
        )

    def start(self, timeout: float) -> None:
        """Register the watches; raise what prevented it."""
        self._thread.start()
        if not self._started.wait(timeout):
            self.close()
            raise TimeoutError
        if self.error is not None:
            raise self.error

    def _run(self, path: str, recursive: bool, emit: Callable[[WatchedEvent], object]) -> None:
        try:
            self._client.run(
                _merge_streams, self._client.client, path, recursive, self._on_start, emit
            )
        except BaseException as exc:  # reported by start(), or ended the watch
            self.error = exc
        finally:
            self._started.set()
            self.ended.set()

    def _on_start(self, stop: anyio.Event) -> None:
        self._stop = stop
        self._started.set()

    def close(self) -> None:
        """Remove the watches and wait for the task to end. Idempotent."""
        stop = self._stop
        if stop is not None and not self.ended.is_set():
            with contextlib.suppress(CoordError, RuntimeError):
                self._client.run(_set_event, stop)
        if self._thread.ident is not None:
            self._thread.join(10)


async def _set_event(event: anyio.Event) -> None:
    event.set()


def _client_config(text: str) -> str:
    """zkCli's ``config -c``: the config version and the client addresses."""
    version = ""
    addresses: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "version":
            version = value
        elif key.startswith("server.") and ";" in value:
            client = value.split(";", 1)[1]
            host, sep, port = client.rpartition(":")
            if not sep:
                host, port = value.split(":", 1)[0], client
            elif host in ("", "0.0.0.0"):
                host = value.split(":", 1)[0]
            addresses.append(f"{host}:{port}")
    return f"{version} {','.join(addresses)}".strip()
