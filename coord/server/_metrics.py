"""Server metrics: counted in plain arrays on the request path, rendered for Prometheus.

Theory of operation
-------------------
One Python thread serves every request, and the write path is CPU-bound
(docs/benchmarks.md), so what the request path pays for metrics must stay well under a
microsecond. Nothing here uses a metrics library on that path:

* a request's latency is counted into a per-operation list of bucket counters by
  :meth:`Metrics.request`: one clock read, one dict lookup, an integer ``bit_length`` to
  find the bucket (buckets are powers of two of 1.024 µs) and two list increments; errors
  also bump a ``(op, code)`` counter;
* the connection stamps the clock once per read from its socket (``Connection.turn``);
  every request in that read counts its latency from there (writes until they are
  applied, reads until they are answered, queued behind the session's writes or not);
* store writes, snapshots and leader changes are counted where they happen (a few per
  batch, not per request);
* everything else -- sessions, znodes, watches, data size, the consensus indexes and each
  follower's lag -- is read from the server's state when ``/metrics`` is scraped.

:func:`render` writes the Prometheus text exposition format (version 0.0.4) itself; the
format is a few lines per family and a client library would add nothing but cost. Names
follow Prometheus' conventions: ``coord_`` prefix, base units (``_seconds``,
``_bytes``), ``_total`` on counters.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import coord
from coord.protocol import ErrorCode

from ._access import op_name

if TYPE_CHECKING:
    from ._server import Server

__all__ = ["LATENCY_BOUNDS", "Metrics", "clock", "op_name", "render"]

#: The clock of request latencies (nanoseconds, monotonic).
clock = time.perf_counter_ns

#: Bucket ``b`` counts latencies below ``1024 << b`` ns; the last one everything longer.
_TOP = 24
#: Index of the running sum (ns) in a per-operation counter list.
_SUM = _TOP + 1
#: Lowest bucket exported (8.192 µs): finer ones are below what Python can resolve.
_LOW = 3
#: The ``le`` bounds exported for request latencies, in seconds.
LATENCY_BOUNDS = tuple((1024 << b) / 1e9 for b in range(_LOW, _TOP))
#: Entries per synced write: bucket ``b`` counts batches of at most ``1 << b`` entries.
_BATCH_TOP = 14
#: Trees with at least this many znodes have their data size recomputed at most every
#: DATA_SIZE_MAX_AGE seconds.
_LARGE_TREE = 100_000
DATA_SIZE_MAX_AGE = 30.0


def _error_name(err: int) -> str:
    try:
        name = ErrorCode(err).name
    except ValueError:
        return str(err)
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


class Metrics:
    """The counters the server updates as it works; read by :func:`render`.

    Attributes:
        ops: per opcode, bucket counts of request latencies then their sum in ns.
        errors: requests answered with an error, by ``(opcode, error code)``.
        fsync: bucket counts of synced store write durations (the log append + fsync),
            then their sum in ns.
        writes: bucket counts of unsynced store writes (applied state while idle).
        batch: bucket counts of entries per synced write.
        entries: log entries written.
        snapshots_sent: snapshots streamed to members behind the compacted log.
        snapshots_installed: snapshots this member installed to catch up.
        leader_changes: leader or term changes this member observed.
    """

    __slots__ = (
        "_data_size",
        "batch",
        "entries",
        "errors",
        "fsync",
        "leader_changes",
        "ops",
        "snapshots_installed",
        "snapshots_sent",
        "writes",
    )

    def __init__(self) -> None:
        self.ops: dict[int, list[int]] = {}
        self.errors: dict[tuple[int, int], int] = {}
        self.fsync = [0] * (_TOP + 2)
        self.writes = [0] * (_TOP + 2)
        self.batch = [0] * (_BATCH_TOP + 1)
        self.entries = 0
        self.snapshots_sent = 0
        self.snapshots_installed = 0
        self.leader_changes = 0
        self._data_size = (0.0, 0)  # (when, value): see data_size()

    def data_size(self, server: Server) -> int:
        """The tree's approximate data size; on a large tree (a scan takes ~0.1 s per
        million znodes, on the event loop) recomputed at most every
        :data:`DATA_SIZE_MAX_AGE` seconds."""
        from ._fourlw import data_size

        now = time.monotonic()
        when, value = self._data_size
        if len(server.state.nodes) < _LARGE_TREE or now - when >= DATA_SIZE_MAX_AGE:
            value = data_size(server)
            self._data_size = (now, value)
        return value

    def request(self, op: int, arrival: int, err: int) -> None:
        """Count a request of ``op`` received at ``arrival`` (:data:`clock`) and answered
        now with ``err`` (0: success). The request path's one call."""
        ns = clock() - arrival
        counts = self.ops.get(op)
        if counts is None:
            counts = self.ops[op] = [0] * (_TOP + 2)
        b = (ns >> 10).bit_length()
        counts[b if b < _TOP else _TOP] += 1
        counts[_SUM] += ns
        if err:
            key = (op, err)
            self.errors[key] = self.errors.get(key, 0) + 1

    def store_write(self, started: int, sync: bool, entries: int) -> None:
        """Count a store write begun at ``started`` (:data:`clock`) that just returned."""
        ns = clock() - started
        counts = self.fsync if sync else self.writes
        b = (ns >> 10).bit_length()
        counts[b if b < _TOP else _TOP] += 1
        counts[_SUM] += ns
        if sync and entries:
            self.entries += entries
            b = (entries - 1).bit_length()
            self.batch[b if b < _BATCH_TOP else _BATCH_TOP] += 1


# --- rendering ------------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str] | None) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def metric(
        self,
        name: str,
        kind: str,
        help_text: str,
        value: float,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.family(name, kind, help_text)
        self.sample(name, value, labels)

    def histogram(
        self,
        name: str,
        counts: list[int],
        bounds: Iterable[tuple[int, str]],
        total_sum: float,
        labels: dict[str, str] | None = None,
    ) -> None:
        """Cumulative buckets of ``counts`` at ``(highest index, le)`` bounds, then
        ``+Inf``, ``_sum`` and ``_count``."""
        labels = labels or {}
        running = 0
        done = 0
        for index, le in bounds:
            while done <= index:
                running += counts[done]
                done += 1
            self.sample(f"{name}_bucket", running, {**labels, "le": le})
        total = sum(counts[: len(counts)])
        self.sample(f"{name}_bucket", total, {**labels, "le": "+Inf"})
        self.sample(f"{name}_sum", total_sum, labels)
        self.sample(f"{name}_count", total, labels)


def _latency_bounds() -> Iterator[tuple[int, str]]:
    for b in range(_LOW, _TOP):
        yield b, repr((1024 << b) / 1e9)


def _duration_histogram(out: _Writer, name: str, counts: list[int], labels: dict[str, str]) -> None:
    out.histogram(name, counts[:_SUM], _latency_bounds(), counts[_SUM] / 1e9, labels)


def render(server: Server) -> str:
    """Every metric of ``server`` in the Prometheus text format (version 0.0.4)."""
    from ._fourlw import ZOOKEEPER_VERSION, node_count

    metrics = server.metrics
    out = _Writer()
    state = server.state
    replicator = server.replicator

    out.metric(
        "coord_info",
        "gauge",
        "Constant 1, labelled with the versions.",
        1,
        {"version": coord.__version__, "zookeeper_version": ZOOKEEPER_VERSION},
    )
    mode = "standalone" if replicator is None else replicator.mode
    out.family("coord_server_state", "gauge", "1 for this member's current role.")
    for role in ("standalone", "leader", "follower", "observer"):
        out.sample("coord_server_state", role == mode, {"state": role})
    out.metric(
        "coord_uptime_seconds", "gauge", "Seconds since the server started.",
        round(time.time() - server.started, 3),
    )  # fmt: skip
    from ._admin import readiness

    ready, _reason = readiness(server)
    out.metric("coord_ready", "gauge", "1 when /ready answers 200 (serving clients).", ready)

    # --- requests -------------------------------------------------------------------------
    ops = sorted(metrics.ops.items())
    out.family(
        "coord_request_duration_seconds",
        "histogram",
        "Request latency by operation: from its arrival to its answer (writes: applied).",
    )
    for op, counts in ops:
        _duration_histogram(out, "coord_request_duration_seconds", counts, {"op": op_name(op)})
    out.family("coord_requests_total", "counter", "Requests answered, by operation and result.")
    by_op: dict[int, int] = {}
    for (op, _err), count in metrics.errors.items():
        by_op[op] = by_op.get(op, 0) + count
    for op, counts in ops:
        ok = sum(counts[:_SUM]) - by_op.get(op, 0)
        out.sample("coord_requests_total", ok, {"op": op_name(op), "result": "ok"})
    for (op, err), count in sorted(metrics.errors.items()):
        out.sample("coord_requests_total", count, {"op": op_name(op), "result": _error_name(err)})
    from ._fourlw import packet_counts

    received, sent = packet_counts(server)
    out.metric("coord_packets_received_total", "counter", "Client packets received.", received)
    out.metric("coord_packets_sent_total", "counter", "Client packets sent.", sent)

    # --- clients and the tree -------------------------------------------------------------
    connections = server.connections
    out.metric("coord_connections", "gauge", "Open client connections.", len(connections))
    out.metric(
        "coord_outstanding_requests", "gauge", "Requests received and not yet answered.",
        sum(len(c.pending) for c in connections),
    )  # fmt: skip
    out.metric("coord_sessions", "gauge", "Live sessions (global).", len(state.sessions))
    out.metric(
        "coord_ephemerals", "gauge", "Ephemeral znodes.",
        sum(len(s.ephemerals) for s in state.sessions.values()),
    )  # fmt: skip
    out.metric("coord_znodes", "gauge", "Znodes in the tree (as ZooKeeper counts them).",
               node_count(server))  # fmt: skip
    out.metric("coord_watches", "gauge", "Watches registered on this server.",
               server.watches.count())  # fmt: skip
    out.metric(
        "coord_data_size_bytes", "gauge", "Approximate size of the tree: paths plus data.",
        metrics.data_size(server),
    )  # fmt: skip
    out.metric("coord_last_zxid", "gauge", "Zxid of the last applied entry.", state.last_zxid)

    # --- the log and the store ------------------------------------------------------------
    out.family(
        "coord_log_fsync_seconds",
        "histogram",
        "Synced store writes (log entries + applied state, one WAL append and fsync).",
    )
    _duration_histogram(out, "coord_log_fsync_seconds", metrics.fsync, {})
    out.family(
        "coord_store_write_seconds",
        "histogram",
        "Unsynced store writes (the applied state persisted while idle).",
    )
    _duration_histogram(out, "coord_store_write_seconds", metrics.writes, {})
    out.family("coord_log_batch_entries", "histogram", "Log entries per synced write.")
    batch_bounds = ((b, str(1 << b)) for b in range(_BATCH_TOP))
    out.histogram("coord_log_batch_entries", metrics.batch, batch_bounds, metrics.entries, {})
    out.metric(
        "coord_log_entries_total", "counter", "Log entries written durably.", metrics.entries
    )
    out.metric("coord_applied_index", "gauge", "Index of the last applied log entry.",
               server._applied_index)  # fmt: skip

    # --- consensus ------------------------------------------------------------------------
    out.metric(
        "coord_snapshots_sent_total", "counter",
        "Snapshots streamed to members behind the compacted log.", metrics.snapshots_sent,
    )  # fmt: skip
    out.metric(
        "coord_snapshots_installed_total", "counter",
        "Snapshots this member installed to catch up.", metrics.snapshots_installed,
    )  # fmt: skip
    if replicator is None:
        leader, term, commit, last = server.config.server_id, 0, server._applied_index, None
        elections = 0
    else:
        raft = replicator.raft
        leader, term, commit, last = raft.leader, raft.term, raft.commit, raft.last_index()
        elections = replicator.elections
    out.metric("coord_is_leader", "gauge", "1 on the leader (and a standalone server).",
               replicator is None or replicator.is_leader)  # fmt: skip
    out.metric("coord_leader_id", "gauge", "Id of the member this one follows (0: none).", leader)
    out.metric("coord_term", "gauge", "Current consensus term.", term)
    out.metric("coord_commit_index", "gauge", "Index of the last committed log entry.", commit)
    out.metric(
        "coord_last_log_index", "gauge", "Index of the last log entry (committed or not).",
        commit if last is None else last,
    )  # fmt: skip
    out.metric(
        "coord_leader_elections_won_total", "counter",
        "Elections this member won (it became leader).", elections,
    )  # fmt: skip
    out.metric(
        "coord_leader_changes_total", "counter",
        "Changes of leader or term this member observed.", metrics.leader_changes,
    )  # fmt: skip
    out.family(
        "coord_follower_match_index",
        "gauge",
        "On the leader: the last log index known to be replicated on each member.",
    )
    lags: list[tuple[dict[str, str], int]] = []
    if replicator is not None and replicator.is_leader and last is not None:
        raft = replicator.raft
        for member in sorted(replicator.members.values(), key=lambda m: m.id):
            if member.id == replicator.id:
                continue
            progress = raft.progress(member.id)
            if progress is None:
                continue
            labels = {"member": str(member.id), "role": member.role}
            out.sample("coord_follower_match_index", progress[0], labels)
            lags.append((labels, max(0, last - progress[0])))
    out.family(
        "coord_follower_lag_entries",
        "gauge",
        "On the leader: log entries each member is behind the leader's last index.",
    )
    for labels, lag in lags:
        out.sample("coord_follower_lag_entries", lag, labels)

    # --- the process ----------------------------------------------------------------------
    times = os.times()
    out.metric("process_cpu_seconds_total", "counter", "User and system CPU time spent.",
               round(times.user + times.system, 3))  # fmt: skip
    with contextlib.suppress(OSError):
        out.metric("process_open_fds", "gauge", "Open file descriptors.",
                   len(os.listdir("/proc/self/fd")))  # fmt: skip
    out.metric("process_max_fds", "gauge", "Maximum number of open file descriptors.",
               resource.getrlimit(resource.RLIMIT_NOFILE)[0])  # fmt: skip
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        out.metric("process_resident_memory_bytes", "gauge", "Resident memory size.",
                   pages * os.sysconf("SC_PAGE_SIZE"))  # fmt: skip
    except (OSError, ValueError, IndexError):
        pass
    out.metric("process_start_time_seconds", "gauge", "Start time since the epoch.",
               round(server.started, 3))  # fmt: skip
    return "\n".join(out.lines) + "\n"
