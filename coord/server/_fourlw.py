"""Four-letter words on the client port, in Apache ZooKeeper's output formats.

A client may send one of these four bytes in place of a frame length (``echo ruok | nc``);
the server answers in text and closes the connection. Formats follow ZooKeeper's
``FourLetterCommands``/``server.command`` classes so monitoring scripts and kazoo's
``server_version()`` (which parses ``zookeeper.version=`` from ``envi``) work unchanged.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import sys
import time
from typing import TYPE_CHECKING

import coord

if TYPE_CHECKING:
    from ._server import Server

__all__ = ["ZOOKEEPER_VERSION", "answer"]

#: The ZooKeeper version coord reports: the protocol level it implements.
ZOOKEEPER_VERSION = f"3.9.2-coord-{coord.__version__}"
_BUILT = "built on 2026-11-21 00:00 UTC"


def answer(server: Server, word: str) -> str:
    """The text ZooKeeper would send for ``word``."""
    handler = _HANDLERS.get(word)
    if handler is None:
        return f"{word} is not supported by coord\n"
    return handler(server)


def _ruok(server: Server) -> str:
    return "imok"


def _isro(server: Server) -> str:
    replicator = server.replicator
    if replicator is not None and replicator.cut_off and server.config.read_only_mode:
        return "ro"
    return "rw"


def _mode(server: Server) -> str:
    """ZooKeeper's server state: standalone, leader, follower or observer."""
    replicator = server.replicator
    return "standalone" if replicator is None else replicator.mode


def _latency(server: Server) -> tuple[int, float, int]:
    stats = server.latency
    avg = stats.total / stats.count if stats.count else 0.0
    return stats.min if stats.count else 0, avg, stats.max


def _counts(server: Server) -> tuple[int, int]:
    received = server.packets_received + sum(c.received for c in server.connections)
    sent = server.packets_sent + sum(c.sent for c in server.connections)
    return received, sent


def _node_count(server: Server) -> int:
    # ZooKeeper's DataTree stores the root under both "" and "/", and counts it twice.
    return len(server.state.nodes) + 1


def _srvr_body(server: Server) -> str:
    low, avg, high = _latency(server)
    received, sent = _counts(server)
    return (
        f"Latency min/avg/max: {low}/{avg:.4f}/{high}\n"
        f"Received: {received}\n"
        f"Sent: {sent}\n"
        f"Connections: {len(server.connections)}\n"
        f"Outstanding: {sum(len(c.pending) for c in server.connections)}\n"
        f"Zxid: 0x{server.state.last_zxid:x}\n"
        f"Mode: {_mode(server)}\n"
        f"Node count: {_node_count(server)}\n"
    )


def _srvr(server: Server) -> str:
    return f"Zookeeper version: {ZOOKEEPER_VERSION}, {_BUILT}\n" + _srvr_body(server)


def _connection_line(connection: object, full: bool) -> str:
    from ._server import Connection

    assert isinstance(connection, Connection)
    base = (
        f" /{connection.peer.host}:{connection.peer.port}[1]"
        f"(queued={len(connection.pending)},recved={connection.received},sent={connection.sent}"
    )
    if not full:
        return base + ")\n"
    return base + (
        f",sid=0x{connection.session_id:x},lop={connection.last_op}"
        f",est={int(connection.started_wall * 1000)},to={connection.timeout}"
        f",lzxid=0x{connection.last_zxid:x})\n"
    )


def _stat(server: Server) -> str:
    clients = "".join(_connection_line(c, False) for c in server.connections)
    return f"Zookeeper version: {ZOOKEEPER_VERSION}, {_BUILT}\nClients:\n{clients}\n" + _srvr_body(
        server
    )


def _cons(server: Server) -> str:
    return "".join(_connection_line(c, True) for c in server.connections) + "\n"


def _mntr(server: Server) -> str:
    low, avg, high = _latency(server)
    received, sent = _counts(server)
    state = server.state
    ephemerals = sum(len(s.ephemerals) for s in state.sessions.values())
    data_size = sum(len(path) + len(node.data or b"") for path, node in state.nodes.items())
    rows: list[tuple[str, object]] = [
        ("zk_version", f"{ZOOKEEPER_VERSION}, {_BUILT}"),
        ("zk_server_state", _mode(server)),
        ("zk_avg_latency", f"{avg:.4f}"),
        ("zk_max_latency", high),
        ("zk_min_latency", low),
        ("zk_packets_received", received),
        ("zk_packets_sent", sent),
        ("zk_num_alive_connections", len(server.connections)),
        ("zk_outstanding_requests", sum(len(c.pending) for c in server.connections)),
        ("zk_znode_count", _node_count(server)),
        ("zk_watch_count", server.watches.count()),
        ("zk_ephemerals_count", ephemerals),
        ("zk_approximate_data_size", data_size),
        ("zk_open_file_descriptor_count", _open_fds()),
        ("zk_max_file_descriptor_count", _max_fds()),
        ("zk_global_sessions", len(state.sessions)),
        ("zk_uptime", int((time.time() - server.started) * 1000)),
    ]
    replicator = server.replicator
    if replicator is not None and replicator.is_leader:
        raft = replicator.raft
        voters = [v for v in raft.voters if v != replicator.id]
        synced = 0
        for member in voters:
            progress = raft.progress(member)
            if progress is not None and progress[0] >= raft.commit:
                synced += 1
        rows += [
            ("zk_followers", len(raft.voters | raft.learners) - 1),
            ("zk_synced_followers", synced),
            ("zk_pending_syncs", 0),
            ("zk_election_count", replicator.elections),
        ]
    if replicator is not None:
        rows.append(("coord_leader_id", replicator.leader))
        rows.append(("coord_term", replicator.raft.term))
        rows.append(("coord_commit_index", replicator.raft.commit))
        # The membership in effect (the latest in this member's log) and its majority.
        rows.append(("coord_voters", len(replicator.raft.voters)))
        rows.append(("coord_observers", len(replicator.raft.learners)))
        rows.append(("coord_quorum_size", len(replicator.raft.voters) // 2 + 1))
        rows.append(("coord_config_version", f"{replicator.config_version:x}"))
    return "".join(f"{key}\t{value}\n" for key, value in rows)


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


def _envi(server: Server) -> str:
    rows = [
        ("zookeeper.version", f"{ZOOKEEPER_VERSION}, {_BUILT}"),
        ("host.name", socket.gethostname()),
        ("python.version", sys.version.split()[0]),
        ("python.implementation", platform.python_implementation()),
        ("coord.version", coord.__version__),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", os.environ.get("USER", "")),
        ("user.dir", os.getcwd()),
        ("process.id", os.getpid()),
    ]
    return "Environment:\n" + "".join(f"{key}={value}\n" for key, value in rows)


def _conf(server: Server) -> str:
    config = server.config
    port = server.addresses[0][1] if server.addresses else config.port
    rows = [
        ("clientPort", port),
        ("clientPortAddress", f"{config.host}:{port}"),
        ("dataDir", os.path.abspath(config.data_dir)),
        ("storage", config.storage),
        ("tickTime", config.tick_time),
        ("maxClientCnxns", config.max_client_connections),
        ("minSessionTimeout", config.effective_min_session_timeout),
        ("maxSessionTimeout", config.effective_max_session_timeout),
        ("jute.maxbuffer", config.max_frame),
        ("serverId", config.server_id),
    ]
    return "".join(f"{key}={value}\n" for key, value in rows)


def _wchs(server: Server) -> str:
    watches = server.watches
    watchers = list(watches.watchers())
    return (
        f"{len(watchers)} connections watching {len(watches.paths())} paths\n"
        f"Total watches:{watches.count()}\n"
    )


def _wchc(server: Server) -> str:
    from ._server import Connection

    out = []
    for watcher in server.watches.watchers():
        assert isinstance(watcher, Connection)
        out.append(f"0x{watcher.session_id:x}\n")
        out.extend(f"\t{path}\n" for path in sorted(server.watches.watched_by(watcher)))
    return "".join(out)


def _wchp(server: Server) -> str:
    from ._server import Connection

    out = []
    for path in sorted(server.watches.paths()):
        out.append(f"{path}\n")
        for watcher in server.watches.watchers_of(path):
            assert isinstance(watcher, Connection)
            out.append(f"\t0x{watcher.session_id:x}\n")
    return "".join(out)


def _dump(server: Server) -> str:
    state = server.state
    lines = [
        "SessionTracker dump:",
        f"Session Sets ({len(server.tracker)}):",
    ]
    for session_id in sorted(state.sessions):
        lines.append(f"0x{session_id:x}")
    owners = [s for s in state.sessions.values() if s.ephemerals]
    lines.append("ephemeral nodes dump:")
    lines.append(f"Sessions with Ephemerals ({len(owners)}):")
    for session in sorted(owners, key=lambda s: s.session_id):
        lines.append(f"0x{session.session_id:x}:")
        lines.extend(f"\t{path}" for path in sorted(session.ephemerals))
    lines.append("Connections dump:")
    lines.append(f"Connections ({len(server.connections)}):")
    for connection in server.connections:
        lines.append(f"\t0x{connection.session_id:x}")
    return "\n".join(lines) + "\n"


def _crst(server: Server) -> str:
    for connection in server.connections:
        connection.received = 0
        connection.sent = 0
    return "Connection stats reset.\n"


def _srst(server: Server) -> str:
    server.latency.reset()
    server.packets_received = 0
    server.packets_sent = 0
    return "Server stats reset.\n"


def _dirs(server: Server) -> str:
    total = 0
    for root, _dirs, files in os.walk(server.config.data_dir):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return f"datadir_size: {total}\nlogdir_size: 0\n"


_HANDLERS = {
    "ruok": _ruok,
    "isro": _isro,
    "srvr": _srvr,
    "stat": _stat,
    "cons": _cons,
    "mntr": _mntr,
    "envi": _envi,
    "conf": _conf,
    "wchs": _wchs,
    "wchc": _wchc,
    "wchp": _wchp,
    "dump": _dump,
    "crst": _crst,
    "srst": _srst,
    "dirs": _dirs,
}
