"""Four-letter words and AdminServer commands, in Apache ZooKeeper's formats.

A client may send one of these four bytes in place of a frame length (``echo ruok | nc``);
the server answers in text and closes the connection. Formats follow ZooKeeper's
``FourLetterCommands``/``server.command`` classes so monitoring scripts and kazoo's
``server_version()`` (which parses ``zookeeper.version=`` from ``envi``) work unchanged.

The admin endpoint (coord/server/_admin.py) serves the same commands as JSON under
``/commands/<name>``, as ZooKeeper's AdminServer does (``org.apache.zookeeper.server.admin
.Commands``): the primary name (``server_stats``) or any alias (``srvr``), a JSON object
with the command's fields plus ``command`` (the primary name) and ``error`` (null).

One function per command computes a dict from the server (:data:`COMMANDS`); the JSON form
is that dict, and the text form is rendered from it -- never the other way round.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import coord

if TYPE_CHECKING:
    from ._server import Server

__all__ = [
    "COMMANDS",
    "ZOOKEEPER_VERSION",
    "Command",
    "answer",
    "command_data",
    "data_size",
    "find_command",
    "node_count",
    "packet_counts",
]

#: The ZooKeeper version coord reports: the protocol level it implements.
ZOOKEEPER_VERSION = f"3.9.2-coord-{coord.__version__}"
_BUILT = "built on 2026-11-21 00:00 UTC"


Data = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Command:
    """One command: its names, its data and (for a four-letter word) its text form.

    Attributes:
        names: the primary name (the AdminServer's, e.g. ``server_stats``) then aliases;
            the four-letter word, when there is one, is among them.
        data: the command's fields, computed from the server.
        text: renders ``data``'s result as the four-letter word's answer; None when the
            command has no four-letter form.
        word: the four-letter word, if any.
    """

    names: tuple[str, ...]
    data: Callable[[Server], Data]
    text: Callable[[Data], str] | None = None
    word: str | None = None

    @property
    def name(self) -> str:
        return self.names[0]


def answer(server: Server, word: str) -> str:
    """The text ZooKeeper would send for ``word``."""
    command = _BY_WORD.get(word)
    if command is None or command.text is None:
        return f"{word} is not supported by coord\n"
    return command.text(command.data(server))


def find_command(name: str) -> Command | None:
    """The command with primary name or alias ``name``, if any."""
    return _BY_NAME.get(name)


def command_data(server: Server, command: Command) -> Data:
    """The AdminServer JSON of ``command``: ``command``, ``error`` and its fields."""
    data = command.data(server)
    return {"command": command.name, "error": None, **data}


# --- shared facts ------------------------------------------------------------------------


def _mode(server: Server) -> str:
    """ZooKeeper's server state: standalone, leader, follower or observer."""
    replicator = server.replicator
    return "standalone" if replicator is None else replicator.mode


def _read_only(server: Server) -> bool:
    replicator = server.replicator
    return bool(replicator is not None and replicator.cut_off and server.config.read_only_mode)


def _latency(server: Server) -> tuple[int, float, int]:
    stats = server.latency
    avg = stats.total / stats.count if stats.count else 0.0
    return stats.min if stats.count else 0, avg, stats.max


def packet_counts(server: Server) -> tuple[int, int]:
    """Packets received and sent by clients, over closed and open connections."""
    received = server.packets_received + sum(c.received for c in server.connections)
    sent = server.packets_sent + sum(c.sent for c in server.connections)
    return received, sent


def node_count(server: Server) -> int:
    """The znode count as ZooKeeper reports it."""
    # ZooKeeper's DataTree stores the root under both "" and "/", and counts it twice.
    return len(server.state.nodes) + 1


def data_size(server: Server) -> int:
    """ZooKeeper's approximate data size: every path plus its data."""
    return sum(len(path) + len(node.data or b"") for path, node in server.state.nodes.items())


def _outstanding(server: Server) -> int:
    return sum(len(c.pending) for c in server.connections)


def _version() -> str:
    return f"{ZOOKEEPER_VERSION}, {_BUILT}"


# --- ruok, isro ------------------------------------------------------------------------------


def _ruok(server: Server) -> Data:
    return {}


def _isro(server: Server) -> Data:
    return {"read_only": _read_only(server)}


# --- srvr, stat, cons ------------------------------------------------------------------------


def _server_stats(server: Server) -> Data:
    low, avg, high = _latency(server)
    received, sent = packet_counts(server)
    return {
        "version": _version(),
        "read_only": _read_only(server),
        "server_stats": {
            "packets_sent": sent,
            "packets_received": received,
            "max_latency": high,
            "min_latency": low,
            "avg_latency": round(avg, 4),
            "fsync_threshold_exceed_count": 0,
            "last_processed_zxid": server.state.last_zxid,
            "outstanding_requests": _outstanding(server),
            "server_state": _mode(server),
            "num_alive_client_connections": len(server.connections),
            "uptime": int((time.time() - server.started) * 1000),
            "provider_null": False,
        },
        "client_response": {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1},
        "node_count": node_count(server),
    }


def _srvr_body(data: Data) -> str:
    stats = data["server_stats"]
    return (
        f"Latency min/avg/max: {stats['min_latency']}/{stats['avg_latency']:.4f}/"
        f"{stats['max_latency']}\n"
        f"Received: {stats['packets_received']}\n"
        f"Sent: {stats['packets_sent']}\n"
        f"Connections: {stats['num_alive_client_connections']}\n"
        f"Outstanding: {stats['outstanding_requests']}\n"
        f"Zxid: 0x{stats['last_processed_zxid']:x}\n"
        f"Mode: {stats['server_state']}\n"
        f"Node count: {data['node_count']}\n"
    )


def _srvr_text(data: Data) -> str:
    return f"Zookeeper version: {data['version']}\n" + _srvr_body(data)


def _connection_info(connection: object, brief: bool) -> Data:
    """ZooKeeper's ``ServerCnxn.getConnectionInfo``."""
    from ._server import Connection

    assert isinstance(connection, Connection)
    info: Data = {
        "remote_socket_address": f"{connection.peer.host}:{connection.peer.port}",
        "interest_ops": 1,
        "outstanding_requests": len(connection.pending),
        "packets_received": connection.received,
        "packets_sent": connection.sent,
    }
    if not brief:
        info |= {
            "session_id": connection.session_id,
            "last_operation": connection.last_op,
            "established": int(connection.started_wall * 1000),
            "session_timeout": connection.timeout,
            "last_zxid": connection.last_zxid,
        }
    return info


def _connection_line(info: Data) -> str:
    line = (
        f" /{info['remote_socket_address']}[1](queued={info['outstanding_requests']},"
        f"recved={info['packets_received']},sent={info['packets_sent']}"
    )
    if "session_id" not in info:
        return line + ")\n"
    return line + (
        f",sid=0x{info['session_id']:x},lop={info['last_operation']}"
        f",est={info['established']},to={info['session_timeout']}"
        f",lzxid=0x{info['last_zxid']:x})\n"
    )


def _stats(server: Server) -> Data:
    data = _server_stats(server)
    data["connections"] = [_connection_info(c, True) for c in server.connections]
    return data


def _stat_text(data: Data) -> str:
    clients = "".join(_connection_line(info) for info in data["connections"])
    return f"Zookeeper version: {data['version']}\nClients:\n{clients}\n" + _srvr_body(data)


def _connections(server: Server) -> Data:
    return {
        "connections": [_connection_info(c, False) for c in server.connections],
        "secure_connections": [],
    }


def _cons_text(data: Data) -> str:
    return "".join(_connection_line(info) for info in data["connections"]) + "\n"


# --- mntr ------------------------------------------------------------------------------------


def _monitor(server: Server) -> Data:
    low, avg, high = _latency(server)
    received, sent = packet_counts(server)
    state = server.state
    data: Data = {
        "version": _version(),
        "server_state": _mode(server),
        "avg_latency": round(avg, 4),
        "max_latency": high,
        "min_latency": low,
        "packets_received": received,
        "packets_sent": sent,
        "num_alive_connections": len(server.connections),
        "outstanding_requests": _outstanding(server),
        "znode_count": node_count(server),
        "watch_count": server.watches.count(),
        "ephemerals_count": sum(len(s.ephemerals) for s in state.sessions.values()),
        "approximate_data_size": data_size(server),
        "open_file_descriptor_count": _open_fds(),
        "max_file_descriptor_count": _max_fds(),
        "global_sessions": len(state.sessions),
        "uptime": int((time.time() - server.started) * 1000),
    }
    replicator = server.replicator
    if replicator is not None and replicator.is_leader:
        raft = replicator.raft
        voters = [v for v in raft.voters if v != replicator.id]
        synced = 0
        for member in voters:
            progress = raft.progress(member)
            if progress is not None and progress[0] >= raft.commit:
                synced += 1
        data |= {
            "followers": len(raft.voters | raft.learners) - 1,
            "synced_followers": synced,
            "pending_syncs": 0,
            "election_count": replicator.elections,
        }
    if replicator is not None:
        data |= {
            "coord_leader_id": replicator.leader,
            "coord_term": replicator.raft.term,
            "coord_commit_index": replicator.raft.commit,
            # The membership in effect (the latest in this member's log) and its majority.
            "coord_voters": len(replicator.raft.voters),
            "coord_observers": len(replicator.raft.learners),
            "coord_quorum_size": len(replicator.raft.voters) // 2 + 1,
            "coord_config_version": f"{replicator.config_version:x}",
        }
    return data


def _mntr_text(data: Data) -> str:
    lines = []
    for key, value in data.items():
        name = key if key.startswith("coord_") else f"zk_{key}"
        shown = f"{value:.4f}" if key == "avg_latency" else value
        lines.append(f"{name}\t{shown}\n")
    return "".join(lines)


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _max_fds() -> int:
    try:
        import resource

        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError):
        return -1


# --- envi, conf ------------------------------------------------------------------------------


def _environment(server: Server) -> Data:
    return {
        "zookeeper.version": _version(),
        "host.name": socket.gethostname(),
        "python.version": sys.version.split()[0],
        "python.implementation": platform.python_implementation(),
        "coord.version": coord.__version__,
        "os.name": platform.system(),
        "os.arch": platform.machine(),
        "os.version": platform.release(),
        "user.name": os.environ.get("USER", ""),
        "user.dir": os.getcwd(),
        "process.id": os.getpid(),
    }


def _envi_text(data: Data) -> str:
    return "Environment:\n" + "".join(f"{key}={value}\n" for key, value in data.items())


#: The conf word's names for the configuration command's JSON keys (ZooKeeper's
#: ``ZooKeeperServerConf.toMap`` vs ``dumpConf``).
_CONF_TEXT_KEYS = {
    "client_port": "clientPort",
    "client_port_address": "clientPortAddress",
    "data_dir": "dataDir",
    "storage": "storage",
    "tick_time": "tickTime",
    "max_client_cnxns": "maxClientCnxns",
    "min_session_timeout": "minSessionTimeout",
    "max_session_timeout": "maxSessionTimeout",
    "jute_maxbuffer": "jute.maxbuffer",
    "server_id": "serverId",
}


def _configuration(server: Server) -> Data:
    config = server.config
    port = server.addresses[0][1] if server.addresses else config.port
    data: Data = {
        "client_port": port,
        "client_port_address": f"{config.host}:{port}",
        "data_dir": os.path.abspath(config.data_dir),
        "storage": config.storage,
        "tick_time": config.tick_time,
        "max_client_cnxns": config.max_client_connections,
        "min_session_timeout": config.effective_min_session_timeout,
        "max_session_timeout": config.effective_max_session_timeout,
        "jute_maxbuffer": config.max_frame,
        "server_id": config.server_id,
    }
    if server.replicator is not None:
        data["members"] = [m.spec() for m in server.replicator.members.values()]
    return data


def _conf_text(data: Data) -> str:
    return "".join(f"{text}={data[key]}\n" for key, text in _CONF_TEXT_KEYS.items())


# --- watches ---------------------------------------------------------------------------------


def _watch_summary(server: Server) -> Data:
    watches = server.watches
    return {
        "num_connections": len(list(watches.watchers())),
        "num_paths": len(watches.paths()),
        "num_total_watches": watches.count(),
    }


def _wchs_text(data: Data) -> str:
    return (
        f"{data['num_connections']} connections watching {data['num_paths']} paths\n"
        f"Total watches:{data['num_total_watches']}\n"
    )


def _watches(server: Server) -> Data:
    from ._server import Connection

    by_session: dict[str, list[str]] = {}
    for watcher in server.watches.watchers():
        assert isinstance(watcher, Connection)
        by_session[str(watcher.session_id)] = sorted(server.watches.watched_by(watcher))
    return {"session_id_to_watched_paths": by_session}


def _wchc_text(data: Data) -> str:
    out = []
    for session_id, paths in data["session_id_to_watched_paths"].items():
        out.append(f"0x{int(session_id):x}\n")
        out.extend(f"\t{path}\n" for path in paths)
    return "".join(out)


def _watches_by_path(server: Server) -> Data:
    from ._server import Connection

    by_path: dict[str, list[int]] = {}
    for path in sorted(server.watches.paths()):
        ids = by_path[path] = []
        for watcher in server.watches.watchers_of(path):
            assert isinstance(watcher, Connection)
            ids.append(watcher.session_id)
    return {"path_to_session_ids": by_path}


def _wchp_text(data: Data) -> str:
    out = []
    for path, ids in data["path_to_session_ids"].items():
        out.append(f"{path}\n")
        out.extend(f"\t0x{session_id:x}\n" for session_id in ids)
    return "".join(out)


# --- dump, dirs, resets ----------------------------------------------------------------------


def _dump(server: Server) -> Data:
    state = server.state
    owners = sorted(
        (s for s in state.sessions.values() if s.ephemerals), key=lambda s: s.session_id
    )
    return {
        "expiry_time_to_session_ids": {
            str(deadline): ids for deadline, ids in server.tracker.expiry_map().items()
        },
        "session_id_to_ephemeral_paths": {str(s.session_id): sorted(s.ephemerals) for s in owners},
        # coord's additions (the text form's other sections):
        "tracked_sessions": len(server.tracker),
        "session_ids": sorted(state.sessions),
        "connection_session_ids": [c.session_id for c in server.connections],
    }


def _dump_text(data: Data) -> str:
    lines = [
        "SessionTracker dump:",
        f"Session Sets ({data['tracked_sessions']}):",
    ]
    lines.extend(f"0x{session_id:x}" for session_id in data["session_ids"])
    owners = data["session_id_to_ephemeral_paths"]
    lines.append("ephemeral nodes dump:")
    lines.append(f"Sessions with Ephemerals ({len(owners)}):")
    for session_id, paths in owners.items():
        lines.append(f"0x{int(session_id):x}:")
        lines.extend(f"\t{path}" for path in paths)
    connections = data["connection_session_ids"]
    lines.append("Connections dump:")
    lines.append(f"Connections ({len(connections)}):")
    lines.extend(f"\t0x{session_id:x}" for session_id in connections)
    return "\n".join(lines) + "\n"


def _crst(server: Server) -> Data:
    for connection in server.connections:
        connection.received = 0
        connection.sent = 0
    return {}


def _srst(server: Server) -> Data:
    server.latency.reset()
    server.packets_received = 0
    server.packets_sent = 0
    return {}


def _dirs(server: Server) -> Data:
    total = 0
    for root, _dirs, files in os.walk(server.config.data_dir):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return {"datadir_size": total, "logdir_size": 0}


def _dirs_text(data: Data) -> str:
    return f"datadir_size: {data['datadir_size']}\nlogdir_size: {data['logdir_size']}\n"


# --- the ensemble (AdminServer only) ---------------------------------------------------------


def _leader(server: Server) -> Data:
    """ZooKeeper's ``leader``; a standalone server leads itself."""
    replicator = server.replicator
    if replicator is None:
        host = server.addresses[0][0] if server.addresses else server.config.host
        return {"is_leader": True, "leader_id": server.config.server_id, "leader_ip": host}
    leader = replicator.members.get(replicator.leader)
    return {
        "is_leader": replicator.is_leader,
        "leader_id": replicator.leader,
        "leader_ip": leader.peer[0] if leader is not None else "",
    }


def _voting_view(server: Server) -> Data:
    """ZooKeeper's ``voting_view``: every voter as ``host:peer_port:participant;client``."""
    replicator = server.replicator
    if replicator is None:
        return {"current_config": {}}
    voters = replicator.raft.voters
    view = {}
    for member in sorted(replicator.members.values(), key=lambda m: m.id):
        if member.id in voters:
            view[str(member.id)] = (
                f"{member.peer[0]}:{member.peer[1]}:participant;"
                f"{member.client[0]}:{member.client[1]}"
            )
    return {"current_config": view}


COMMANDS: tuple[Command, ...] = (
    Command(("ruok",), _ruok, lambda data: "imok", "ruok"),
    Command(
        ("is_read_only", "isro"),
        _isro,
        lambda data: "ro" if data["read_only"] else "rw",
        "isro",
    ),
    Command(("server_stats", "srvr"), _server_stats, _srvr_text, "srvr"),
    Command(("stats", "stat"), _stats, _stat_text, "stat"),
    Command(("connections", "cons"), _connections, _cons_text, "cons"),
    Command(("monitor", "mntr"), _monitor, _mntr_text, "mntr"),
    Command(("environment", "env", "envi"), _environment, _envi_text, "envi"),
    Command(("configuration", "conf", "config"), _configuration, _conf_text, "conf"),
    Command(("watch_summary", "wchs"), _watch_summary, _wchs_text, "wchs"),
    Command(("watches", "wchc"), _watches, _wchc_text, "wchc"),
    Command(("watches_by_path", "wchp"), _watches_by_path, _wchp_text, "wchp"),
    Command(("dump",), _dump, _dump_text, "dump"),
    Command(
        ("connection_stat_reset", "crst"), _crst, lambda data: "Connection stats reset.\n", "crst"
    ),
    Command(("stat_reset", "srst"), _srst, lambda data: "Server stats reset.\n", "srst"),
    Command(("dirs",), _dirs, _dirs_text, "dirs"),
    Command(("leader", "lead"), _leader),
    Command(("voting_view",), _voting_view),
)

_BY_NAME: dict[str, Command] = {name: c for c in COMMANDS for name in c.names}
_BY_WORD: dict[str, Command] = {c.word: c for c in COMMANDS if c.word is not None}
