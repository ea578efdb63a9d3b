"""Process-level fault tests for ZooKeeper-family ensembles: a workload, faults, checks.

Theory of operation
-------------------
The harness is cluster-neutral: it drives anything implementing :class:`Cluster` (a
:class:`coord.testing.ZooKeeperEnsemble`, a coord ensemble) through its client addresses
with kazoo (which speaks to both) and through the fault methods of the protocol.

*Workload.* ``clients`` threads, each with its own kazoo session on the whole connect
string, loop until the run ends choosing among: read a register (``get``), write it
(``set`` with version -1), compare-and-set it (``get`` then ``set`` with the version just
read), and a sequential ``create`` under one parent. Every call is recorded in a
:class:`~coord.testing._linearizability.History` with its invoke and complete times; a
connection loss, session expiry or client-side timeout is an *unknown* outcome. Another
thread opens short raw sessions (one connection, no reconnect) that each create one
ephemeral node and then close the session or abandon it (drop the socket without closing:
the session must expire). A watcher client keeps a kazoo ``DataWatch`` on every register.

*Faults*, one after another while the workload runs, each held for a while, then
repaired, then followed by a quiet period: kill the leader (SIGKILL, later restarted),
kill a follower, pause the leader (SIGSTOP) for longer than the session timeout, isolate
the leader from its peers, kill every member and start them all again.

*Checks*, after the workload stops (every client closed, so every unknown operation has
taken effect or never will: the checker's horizon is that moment):

* linearizability of the registers' writes and CASes followed by a read of the final
  state, and of the sequence numbers (unique, dense, increasing in linearization order),
  with
  :func:`~coord.testing._linearizability.check`. ZooKeeper promises linearizable writes
  and sequentially consistent reads, so reads are checked by the next two checks (or by
  the checker too, with ``linearizable_reads``, which makes each read a ``sync`` + ``get``);
* acknowledged writes lost: every acknowledged write must be present in the final state or
  superseded by a later version; every acknowledged sequential node must exist;
* reads: every read returns a (value, version) that some write produced at that version,
  and within one session versions never go backwards (monotonic reads, read-your-writes),
  across reconnects;
* ephemeral cleanup: once the sessions are closed or expired, no ephemeral remains on
  any member;
* replica convergence: after ``sync`` on each member, the trees under the test prefix are
  identical;
* watch delivery: every register's watcher has seen the final version, and within its
  session never an older version after a newer one.

The result holds the counts, the violations, and the longest write outage after each
fault: the time from the fault's injection to the first successful write invoked after it.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import random
import socket
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from coord.protocol import (
    ACL,
    CloseSessionRequest,
    ConnectRequest,
    ConnectResponse,
    CreateMode,
    CreateRequest,
    FrameDecoder,
    Id,
    OpCode,
    Perm,
    Reader,
    ReplyHeader,
    RequestHeader,
    frame,
)
from coord.testing._linearizability import (
    BAD_VERSION,
    Cas,
    CheckResult,
    Create,
    History,
    Model,
    Operation,
    Read,
    SequenceCounter,
    Versioned,
    VersionedRegister,
    Write,
    check,
)

__all__ = [
    "ChaosConfig",
    "ChaosResult",
    "Cluster",
    "Fault",
    "FaultReport",
    "OneBasedCluster",
    "Violation",
    "render_markdown",
    "run_chaos",
]

_log = logging.getLogger("coord.testing.chaos")
_INITIAL = b"init"
_SEQ_KEY = "sequence"
_OPEN_ACL = (ACL(int(Perm.ALL), Id("world", "anyone")),)


@runtime_checkable
class Cluster(Protocol):
    """An ensemble the harness can drive: client addresses and faults on its members.

    Members are numbered from 0. Methods that start members may return before the members
    serve: the harness waits for a leader before each fault and before its final checks.
    """

    @property
    def connect_string(self) -> str:
        """All members' client addresses, comma separated."""
        ...

    @property
    def members(self) -> list[str]:
        """Each member's client address (``host:port``) by index."""
        ...

    def member_address(self, index: int) -> str:
        """Member ``index``'s client address."""
        ...

    def leader(self) -> int | None:
        """The index of the current leader, or ``None`` if there is none right now."""
        ...

    def kill(self, index: int) -> None:
        """Crash member ``index`` (SIGKILL)."""
        ...

    def pause(self, index: int) -> None:
        """Freeze member ``index`` (SIGSTOP)."""
        ...

    def resume(self, index: int) -> None:
        """Unfreeze member ``index`` (SIGCONT)."""
        ...

    def restart(self, index: int) -> None:
        """Start member ``index`` again (stopping it first if it runs) with its data."""
        ...

    def partition(self, index: int) -> None:
        """Cut member ``index``'s links to every other member (clients still reach it)."""
        ...

    def heal(self) -> None:
        """Undo every partition."""
        ...

    def kill_all(self) -> None:
        """Crash every member."""
        ...

    def start_all(self) -> None:
        """Start every member that is not running; wait until they serve."""
        ...


class OneBasedCluster:
    """A :class:`Cluster` view of an ensemble whose members are numbered from 1.

    ``coord.testing._ensemble.CoordEnsemble`` names members by their server id (1, 2, ...) and
    keeps them in a ``members`` dict; the harness numbers them from 0. Every call is
    forwarded with the id shifted by one; :meth:`start_all` also waits for a leader.

    Args:
        ensemble: An object with ``connect_string``, ``members`` (a mapping keyed by id),
            ``member_address(id)``, ``leader()``, ``wait_for_leader()`` and the fault
            methods, taking ids.
    """

    def __init__(self, ensemble: Any) -> None:
        self.ensemble = ensemble

    def _ids(self) -> list[int]:
        return sorted(self.ensemble.members)

    @property
    def connect_string(self) -> str:
        return str(self.ensemble.connect_string)

    @property
    def members(self) -> list[str]:
        return [str(self.ensemble.member_address(i)) for i in self._ids()]

    def member_address(self, index: int) -> str:
        return str(self.ensemble.member_address(self._ids()[index]))

    def leader(self) -> int | None:
        ident = self.ensemble.leader()
        return None if ident is None else self._ids().index(ident)

    def kill(self, index: int) -> None:
        self.ensemble.kill(self._ids()[index])

    def pause(self, index: int) -> None:
        self.ensemble.pause(self._ids()[index])

    def resume(self, index: int) -> None:
        self.ensemble.resume(self._ids()[index])

    def restart(self, index: int) -> None:
        self.ensemble.restart(self._ids()[index])

    def partition(self, index: int) -> None:
        self.ensemble.partition(self._ids()[index])

    def heal(self) -> None:
        self.ensemble.heal()

    def kill_all(self) -> None:
        self.ensemble.kill_all()

    def start_all(self) -> None:
        self.ensemble.start_all()
        self.ensemble.wait_for_leader()


class Fault(enum.Enum):
    """The faults of a scenario (the value is the name used in reports)."""

    KILL_LEADER = "kill leader"
    KILL_FOLLOWER = "kill follower"
    PAUSE_LEADER = "pause leader"
    PARTITION_LEADER = "partition leader"
    KILL_ALL = "kill all"


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """Parameters of a run.

    Attributes:
        faults: The faults, in order.
        clients: Concurrent workload clients (threads, one kazoo session each).
        registers: Compare-and-set registers (znodes).
        session_timeout: Workload sessions' timeout in seconds.
        ephemeral_session_timeout: Timeout of the short ephemeral sessions, seconds.
        warmup: Seconds of workload before the first fault.
        hold: Seconds a fault lasts before it is repaired (a pause lasts at least
            ``session_timeout`` + 1 s so that sessions expire behind it).
        quiet: Seconds of workload after each repair.
        kill_all_hold: Seconds every member stays down in ``KILL_ALL``.
        op_timeout: Client-side timeout of one call, seconds (then: unknown outcome).
        linearizable_reads: ``sync`` before each read and let the linearizability checker
            judge reads too (ZooKeeper does not promise linearizable reads).
        final_timeout: Seconds the final checks wait for cleanup, convergence, watches.
        check_timeout: Seconds the linearizability checker may take.
        seed: Seed for the workload's choices (``None``: random).
        prefix: The znode under which everything happens (``None``: a fresh one).
    """

    faults: tuple[Fault, ...] = tuple(Fault)
    clients: int = 5
    registers: int = 3
    session_timeout: float = 4.0
    ephemeral_session_timeout: float = 2.0
    warmup: float = 2.0
    hold: float = 5.0
    quiet: float = 3.0
    kill_all_hold: float = 1.0
    op_timeout: float = 15.0
    linearizable_reads: bool = False
    final_timeout: float = 30.0
    check_timeout: float = 60.0
    seed: int | None = None
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken guarantee: which check, and what was seen."""

    check: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.detail}"


@dataclass(slots=True)
class FaultReport:
    """What happened around one fault.

    Attributes:
        fault: The fault.
        member: The member it hit (``None`` for all members).
        injected: Seconds since the run started when it was injected.
        repaired: Seconds since the run started when it was repaired.
        write_outage: Seconds from injection to the completion of the first successful
            write invoked after it (``None``: no write succeeded before the next fault).
    """

    fault: Fault
    member: int | None
    injected: float
    repaired: float = 0.0
    write_outage: float | None = None


@dataclass(slots=True)
class ChaosResult:
    """The outcome of :func:`run_chaos`.

    Attributes:
        target: A name for the cluster (e.g. ``"zookeeper"``).
        duration: Seconds the workload ran.
        counts: Operation counts by kind and outcome (e.g. ``"cas ok"``, ``"write unknown"``).
        faults: One report per fault, in order.
        acknowledged_writes: Writes (set, CAS, create) acknowledged to a client.
        acknowledged_writes_lost: Of those, how many the final state lacks.
        violations: Every broken guarantee found (lost writes included).
        linearizability: The checker's verdict on registers and sequence numbers.
        checks: One line per check: ``"ok"`` or the number of violations.
    """

    target: str
    duration: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    faults: list[FaultReport] = field(default_factory=list)
    acknowledged_writes: int = 0
    acknowledged_writes_lost: int = 0
    violations: list[Violation] = field(default_factory=list)
    linearizability: CheckResult | None = None
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No violation and no acknowledged write lost."""
        return not self.violations and self.acknowledged_writes_lost == 0

    def summary(self) -> str:
        """A multi-line human-readable report, violations included."""
        lines = [
            f"{self.target}: {'OK' if self.ok else 'FAILED'} in {self.duration:.1f} s; "
            f"{self.acknowledged_writes} acknowledged writes, "
            f"{self.acknowledged_writes_lost} lost, {len(self.violations)} violations",
            "  ops: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())),
        ]
        for report in self.faults:
            outage = "-" if report.write_outage is None else f"{report.write_outage:.2f} s"
            lines.append(
                f"  {report.fault.value} (member {report.member}) at {report.injected:.1f} s: "
                f"write outage {outage}"
            )
        for name, verdict in self.checks.items():
            lines.append(f"  check {name}: {verdict}")
        lines.extend(f"  {v}" for v in self.violations[:50])
        return "\n".join(lines)


# --- raw ephemeral sessions ----------------------------------------------------------------


def _recv_frame(sock: socket.socket, decoder: FrameDecoder) -> bytes:
    while (payload := decoder.next_frame()) is None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed")
        decoder.receive_data(data)
    return payload


def _ephemeral_session(address: str, path: str, timeout_ms: int, abandon: bool) -> str:
    """Open a session, create an ephemeral ``path``, then close or abandon the session.

    Returns:
        ``"created"``, ``"refused"`` (no session or an error reply), ``"unreachable"`` (no
        connection), or ``"unknown"`` (the connection failed after the create was sent).
    """
    host, _, port = address.rpartition(":")
    decoder = FrameDecoder()
    outcome = "unreachable"
    try:
        with socket.create_connection((host, int(port)), timeout=3.0) as sock:
            outcome = "refused"
            sock.settimeout(3.0)
            sock.sendall(frame(ConnectRequest(0, 0, timeout_ms, 0, bytes(16)).to_bytes()))
            response = ConnectResponse.from_bytes(_recv_frame(sock, decoder))
            if response.time_out <= 0:
                return outcome
            outcome = "unknown"
            out = bytearray()
            RequestHeader(1, int(OpCode.CREATE)).write(out)
            CreateRequest(path, b"", _OPEN_ACL, int(CreateMode.EPHEMERAL)).write(out)
            sock.sendall(frame(out))
            header = ReplyHeader.read(Reader(_recv_frame(sock, decoder)))
            outcome = "created" if header.err == 0 else "refused"
            if not abandon:
                out = bytearray()
                RequestHeader(2, int(OpCode.CLOSE_SESSION)).write(out)
                CloseSessionRequest().write(out)
                sock.sendall(frame(out))
                with contextlib.suppress(OSError, ConnectionError):
                    _recv_frame(sock, decoder)
    except (OSError, ConnectionError, ValueError):
        return outcome
    return outcome


# --- the workload --------------------------------------------------------------------------


class _NotSent(Exception):
    """kazoo failed a call without sending it."""


@dataclass(slots=True)
class _Observation:
    """A version a session saw for a register (a read, or its own acknowledged write)."""

    client: int
    session: int
    key: str
    version: int
    value: bytes | None
    invoke: float
    what: str


class _Run:
    def __init__(self, cluster: Cluster, config: ChaosConfig, target: str) -> None:
        self.cluster = cluster
        self.config = config
        self.result = ChaosResult(target)
        self.rng = random.Random(config.seed)
        self.prefix = config.prefix or f"/chaos-{uuid.uuid4().hex[:10]}"
        self.registers = [f"{self.prefix}/r{i}" for i in range(config.registers)]
        self.seq_parent = f"{self.prefix}/seq"
        self.eph_parent = f"{self.prefix}/eph"
        self.history = History()
        self.observations: list[_Observation] = []
        self.created_seq: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.watch_seen: dict[str, list[int]] = defaultdict(list)
        self.watch_sessions: dict[str, list[int]] = defaultdict(list)
        self.ephemeral_sessions: Counter[str] = Counter()

    # -- helpers ------------------------------------------------------------------------------

    def count(self, name: str) -> None:
        with self.lock:
            self.result.counts[name] += 1

    def kazoo(self, hosts: str, timeout: float | None = None) -> Any:
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry

        client = KazooClient(
            hosts=hosts,
            timeout=timeout or self.config.session_timeout,
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5),
        )
        return client

    def call(self, client: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call kazoo's ``<method>_async`` and wait for the answer.

        Raises:
            _NotSent: kazoo refused the call before queueing it (its session is expired or
                it is closed): it certainly had no effect.
        """
        from kazoo.exceptions import ConnectionClosedError, SessionExpiredError

        result = getattr(client, method + "_async")(*args, **kwargs)
        if result.ready() and not result.successful():
            error = result.exception
            if isinstance(error, SessionExpiredError | ConnectionClosedError):
                raise _NotSent(error)
        return result.get(timeout=self.config.op_timeout)

    def failed(self, what: str, error: BaseException) -> None:
        """Count a failed call by kind and exception, and back off a little (a client
        whose calls fail at once must not flood the history)."""
        self.count(f"{what} ({type(error).__name__})")
        self.stop.wait(0.1)

    # -- workload threads -----------------------------------------------------------------------

    def worker(self, index: int, client: Any, seed: float) -> None:
        from kazoo.exceptions import BadVersionError, NoNodeError

        rng = random.Random(seed)
        n = 0
        while not self.stop.is_set():
            n += 1
            session = client.client_id[0] if client.client_id else 0
            choice = rng.random()
            key = rng.choice(self.registers)
            if choice < 0.15:
                self.create(index, client, session)
                continue
            if choice < 0.45 or (self.config.linearizable_reads and choice < 0.6):
                self.read(index, client, session, key)
                continue
            if choice < 0.6:
                value = f"w{index}-{n}".encode()
                op = self.history.invoke(index, key, Write(value))
                try:
                    stat = self.call(client, "set", key, value, -1)
                except (_NotSent, NoNodeError) as error:
                    op.fail()
                    self.failed("write not applied", error)
                except Exception as error:
                    op.unknown()
                    self.failed("write unknown", error)
                else:
                    op.ok(stat.version)
                    self.count("write ok")
                    self.observe(
                        index,
                        self.same_session(client, session),
                        key,
                        stat.version,
                        value,
                        op.invoke,
                        "own write",
                    )
                continue
            seen = self.read(index, client, session, key)
            if seen is None:
                continue
            value = f"c{index}-{n}".encode()
            op = self.history.invoke(index, key, Cas(seen.version, value))
            try:
                stat = self.call(client, "set", key, value, seen.version)
            except BadVersionError:
                op.ok(BAD_VERSION)
                self.count("cas bad-version")
            except (_NotSent, NoNodeError) as error:
                op.fail()
                self.failed("cas not applied", error)
            except Exception as error:
                op.unknown()
                self.failed("cas unknown", error)
            else:
                op.ok(stat.version)
                self.count("cas ok")
                self.observe(
                    index,
                    self.same_session(client, session),
                    key,
                    stat.version,
                    value,
                    op.invoke,
                    "own cas",
                )

    def read(self, index: int, client: Any, session: int, key: str) -> Versioned | None:
        op = self.history.invoke(index, key, Read())
        try:
            if self.config.linearizable_reads:
                self.call(client, "sync", key)
            data, stat = self.call(client, "get", key)
        except Exception as error:
            op.fail()  # a read without an answer constrains nothing
            self.failed("read failed", error)
            return None
        seen = Versioned(data, stat.version)
        op.ok(seen)
        self.count("read ok")
        self.observe(
            index, self.same_session(client, session), key, stat.version, data, op.invoke, "read"
        )
        return seen

    def create(self, index: int, client: Any, session: int) -> None:
        op = self.history.invoke(index, _SEQ_KEY, Create())
        try:
            path = self.call(client, "create", f"{self.seq_parent}/n-", b"", sequence=True)
        except _NotSent as error:
            op.fail()
            self.failed("create not applied", error)
        except Exception as error:
            op.unknown()
            self.failed("create unknown", error)
        else:
            op.ok(int(path[-10:]))
            self.count("create ok")
            with self.lock:
                self.created_seq.append(path)

    @staticmethod
    def same_session(client: Any, session: int) -> int:
        """``session`` if the client still has it after the call, else 0 (unattributable:
        the call may have run in the session kazoo opened after an expiry)."""
        current = client.client_id[0] if client.client_id else 0
        return session if current == session else 0

    def observe(
        self,
        client: int,
        session: int,
        key: str,
        version: int,
        value: bytes | None,
        invoke: float,
        what: str,
    ) -> None:
        with self.lock:
            self.observations.append(
                _Observation(client, session, key, version, value, invoke, what)
            )

    def ephemerals(self, seed: float) -> None:
        rng = random.Random(seed)
        timeout_ms = int(self.config.ephemeral_session_timeout * 1000)
        n = 0
        while not self.stop.wait(0.2):
            n += 1
            members = self.cluster.members
            address = rng.choice(members)
            abandon = rng.random() < 0.5
            outcome = _ephemeral_session(address, f"{self.eph_parent}/e{n}", timeout_ms, abandon)
            self.count(f"ephemeral {outcome} {'abandoned' if abandon else 'closed'}")

    # -- faults ---------------------------------------------------------------------------------

    def wait_leader(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            leader = self.cluster.leader()
            if leader is not None:
                return leader
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader within {timeout} s")
            time.sleep(0.1)

    def inject(self, fault: Fault, progress: Callable[[str], None]) -> FaultReport:
        cluster, config = self.cluster, self.config
        leader = self.wait_leader()
        member: int | None = leader
        if fault is Fault.KILL_FOLLOWER:
            member = next(i for i in range(len(cluster.members)) if i != leader)
        elif fault is Fault.KILL_ALL:
            member = None
        progress(f"{time.monotonic() - self.started:6.1f}s  {fault.value} (member {member})")
        # The fault counts from the moment its action returns (kill_all kills one member
        # after the other; writes may complete until the last one is gone).
        if fault in (Fault.KILL_LEADER, Fault.KILL_FOLLOWER):
            assert member is not None
            cluster.kill(member)
            injected_at = time.monotonic()
            self.stop.wait(config.hold)
            cluster.restart(member)
        elif fault is Fault.PAUSE_LEADER:
            assert member is not None
            cluster.pause(member)
            injected_at = time.monotonic()
            self.stop.wait(max(config.hold, config.session_timeout + 1.0))
            cluster.resume(member)
        elif fault is Fault.PARTITION_LEADER:
            assert member is not None
            cluster.partition(member)
            injected_at = time.monotonic()
            self.stop.wait(config.hold)
            cluster.heal()
        else:
            cluster.kill_all()
            injected_at = time.monotonic()
            self.stop.wait(config.kill_all_hold)
            cluster.start_all()
        report = FaultReport(fault, member, injected_at - self.started)
        report.repaired = time.monotonic() - self.started
        progress(f"{report.repaired:6.1f}s  repaired")
        return report

    # -- the run ---------------------------------------------------------------------------------

    def setup(self) -> None:
        client = self.kazoo(self.cluster.connect_string)
        client.start(timeout=30)
        try:
            client.ensure_path(self.prefix)
            for path in self.registers:
                client.create(path, _INITIAL)
            client.create(self.seq_parent, b"")
            client.create(self.eph_parent, b"")
        finally:
            client.stop()
            client.close()

    def run(self, progress: Callable[[str], None]) -> ChaosResult:
        config = self.config
        self.setup()
        clients = []
        for _ in range(config.clients):
            client = self.kazoo(self.cluster.connect_string)
            client.start(timeout=30)
            clients.append(client)
        watcher = self.kazoo(self.cluster.connect_string)
        watcher.start(timeout=30)
        for path in self.registers:
            self.watch(watcher, path)
        threads = [
            threading.Thread(
                target=self.worker,
                args=(i, c, self.rng.random()),
                name=f"chaos-client-{i}",
                daemon=True,
            )
            for i, c in enumerate(clients)
        ]
        threads.append(
            threading.Thread(
                target=self.ephemerals,
                args=(self.rng.random(),),
                name="chaos-ephemerals",
                daemon=True,
            )
        )
        self.started = time.monotonic()
        for thread in threads:
            thread.start()
        reports = []
        try:
            self.stop.wait(config.warmup)
            for fault in config.faults:
                reports.append(self.inject(fault, progress))
                self.stop.wait(config.quiet)
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(config.op_timeout + 10)
            for client in clients:
                with contextlib.suppress(Exception):
                    client.stop()
                    client.close()
        closed_at = time.monotonic()
        self.result.duration = closed_at - self.started
        with contextlib.suppress(RuntimeError):
            self.wait_leader(60.0)
        progress(f"{self.result.duration:6.1f}s  workload stopped; checking")
        self.resolve_outages(reports)
        self.result.faults = reports
        try:
            self.final_checks(closed_at, watcher)
        finally:
            with contextlib.suppress(Exception):
                watcher.stop()
                watcher.close()
        return self.result

    def watch(self, watcher: Any, path: str) -> None:
        def on_change(data: bytes | None, stat: Any) -> None:
            if stat is not None:
                session = watcher.client_id[0] if watcher.client_id else 0
                with self.lock:
                    self.watch_seen[path].append(stat.version)
                    self.watch_sessions[path].append(session)

        watcher.DataWatch(path, on_change)

    def resolve_outages(self, reports: list[FaultReport]) -> None:
        writes = [
            op
            for op in self.history.operations()
            if not op.unknown
            and op.complete is not None
            and (
                isinstance(op.input, Write | Create)
                or (isinstance(op.input, Cas) and op.output != BAD_VERSION)
            )
        ]
        starts = [self.started + report.injected for report in reports] + [float("inf")]
        for i, report in enumerate(reports):
            after = [
                op.complete
                for op in writes
                if op.complete is not None and starts[i] <= op.invoke < starts[i + 1]
            ]
            report.write_outage = min(after) - starts[i] if after else None

    # -- checks ------------------------------------------------------------------------------

    def violation(self, check_name: str, detail: str) -> None:
        self.result.violations.append(Violation(check_name, detail))

    def final_checks(self, closed_at: float, watcher: Any) -> None:
        config = self.config
        ops = [
            op
            if not op.unknown
            else Operation(op.process, op.key, op.input, None, op.invoke, closed_at)
            for op in self.history.operations()
        ]
        before = len(self.result.violations)

        def verdict(name: str, start: int) -> None:
            found = len(self.result.violations) - start
            self.result.checks[name] = "ok" if found == 0 else f"{found} violations"

        # The final state, from every member after sync (every client is closed: quiescent).
        trees = self.member_trees()
        reference = next((t for t in trees if t is not None), None)

        # 1. linearizability, the final state included as a last read of each register
        #    (client reads only with linearizable_reads: ZooKeeper's reads are not).
        checked = [op for op in ops if config.linearizable_reads or not isinstance(op.input, Read)]
        if reference is not None:
            at = time.monotonic()
            checked += [
                Operation("final state", path, Read(), Versioned(*reference[path]), at, at)
                for path in self.registers
            ]

        def model(key: Any) -> Model[Any]:
            if key == _SEQ_KEY:
                return SequenceCounter(dense=True)
            return VersionedRegister(Versioned(_INITIAL, 0))

        result = check(checked, model, timeout=config.check_timeout)
        self.result.linearizability = result
        for failure in result.failures:
            self.violation("linearizability", failure.explanation)
        verdict("linearizability", before)

        # 2. convergence
        start = len(self.result.violations)
        for index, tree in enumerate(trees):
            if tree is None:
                self.violation("convergence", f"member {index} could not be read")
            elif tree != reference:
                diff = sorted(set(tree.items()) ^ set(reference.items()))[:5]  # type: ignore[union-attr]
                self.violation("convergence", f"member {index} differs from member 0: {diff}")
        verdict("convergence", start)
        if reference is None:
            return

        # 3. acknowledged writes
        start = len(self.result.violations)
        final = {key: value for key, value in reference.items() if key in self.registers}
        acked = [
            op
            for op in ops
            if not op.unknown and isinstance(op.input, Write | Cas) and op.output != BAD_VERSION
        ]
        # A version is produced by exactly one write, so an acknowledged write is lost
        # when the register ends below its version, ends at its version with another
        # value, or when another acknowledged write claims the same version (a rollback
        # re-issued it). The same for sequential nodes and their numbers.
        producers: dict[tuple[str, int], bytes] = {}
        lost = 0
        for op in sorted(acked, key=lambda o: o.invoke):
            key = str(op.key)
            value = op.input.value
            final_value, final_version = final[key]
            claimed = producers.setdefault((key, op.output), value)
            if claimed != value:
                lost += 1
                self.violation(
                    "lost write",
                    f"{op.describe()} acknowledged version {op.output}, which an earlier "
                    f"acknowledged write of {claimed!r} had produced",
                )
            elif op.output > final_version or (op.output == final_version and value != final_value):
                lost += 1
                self.violation(
                    "lost write",
                    f"{op.describe()} acknowledged, but {key} ends at version {final_version} "
                    f"with {final_value!r}",
                )
        seq_children = {k for k in reference if k.startswith(self.seq_parent + "/")}
        for path, times in Counter(self.created_seq).items():
            if times > 1:
                lost += times - 1
                self.violation("lost write", f"sequential node {path} acknowledged {times} times")
            if path not in seq_children:
                lost += 1
                self.violation("lost write", f"sequential node {path} acknowledged but missing")
        self.result.acknowledged_writes = len(acked) + len(self.created_seq)
        self.result.acknowledged_writes_lost = lost
        verdict("acknowledged writes", start)

        # 4. reads: real values; monotonic per session
        start = len(self.result.violations)
        written = {(str(op.key), op.input.value) for op in ops if isinstance(op.input, Write | Cas)}
        last: dict[tuple[int, int, str], _Observation] = {}
        for obs in sorted(self.observations, key=lambda o: o.invoke):
            where = f"client {obs.client} read {obs.value!r} at version {obs.version} of {obs.key}"
            if obs.what == "read":
                real = (
                    obs.value == _INITIAL if obs.version == 0 else (obs.key, obs.value) in written
                )
                producer = producers.get((obs.key, obs.version))
                if not real:
                    self.violation("reads", f"{where}: never written")
                elif producer is not None and producer != obs.value:
                    self.violation("reads", f"{where}: that version was {producer!r}")
            slot = (obs.client, obs.session, obs.key)
            previous = last.get(slot)
            if obs.session and previous is not None and obs.version < previous.version:
                self.violation(
                    "reads",
                    f"client {obs.client} session {obs.session:#x} saw {obs.key} at version "
                    f"{obs.version} after version {previous.version} ({previous.what})",
                )
            if previous is None or obs.version >= previous.version:
                last[slot] = obs
        verdict("reads", start)

        # 5. ephemerals gone from every member
        start = len(self.result.violations)
        deadline = time.monotonic() + config.final_timeout
        while True:
            left = self.ephemerals_left()
            if not any(left) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for index, names in enumerate(left):
            if names:
                self.violation(
                    "ephemerals", f"member {index} still has {sorted(names)[:5]} ({len(names)})"
                )
        verdict("ephemerals", start)

        # 6. watches saw the final versions
        start = len(self.result.violations)
        deadline = time.monotonic() + config.final_timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(
                    self.watch_seen[k] and self.watch_seen[k][-1] == final[k][1]
                    for k in self.registers
                ):
                    break
            time.sleep(0.2)
        with self.lock:
            for key in self.registers:
                seen = self.watch_seen[key]
                self.result.counts["watch notifications"] += len(seen)
                if not seen or max(seen) != final[key][1]:
                    self.violation(
                        "watches",
                        f"watcher of {key} last saw {seen[-1:]}, final version {final[key][1]}",
                    )
                sessions = self.watch_sessions[key]
                for i in range(1, len(seen)):
                    if sessions[i] == sessions[i - 1] and seen[i] < seen[i - 1]:
                        self.violation(
                            "watches",
                            f"watcher of {key} saw version {seen[i]} after {seen[i - 1]}",
                        )
        verdict("watches", start)

    def member_trees(self) -> list[dict[str, Any] | None]:
        trees: list[dict[str, Any] | None] = []
        for index in range(len(self.cluster.members)):
            client = self.kazoo(self.cluster.member_address(index), timeout=10.0)
            try:
                client.start(timeout=30)
                client.sync(self.prefix)
                tree: dict[str, Any] = {}
                for path in self.registers:
                    data, stat = client.get(path)
                    tree[path] = (data, stat.version)
                for child in client.get_children(self.seq_parent):
                    tree[f"{self.seq_parent}/{child}"] = True
                trees.append(tree)
            except Exception as error:
                _log.warning("reading member %d failed: %r", index, error)
                trees.append(None)
            finally:
                with contextlib.suppress(Exception):
                    client.stop()
                    client.close()
        return trees

    def ephemerals_left(self) -> list[set[str]]:
        left: list[set[str]] = []
        for index in range(len(self.cluster.members)):
            client = self.kazoo(self.cluster.member_address(index), timeout=10.0)
            try:
                client.start(timeout=30)
                client.sync(self.eph_parent)
                left.append(set(client.get_children(self.eph_parent)))
            except Exception:
                left.append({"<unreadable>"})
            finally:
                with contextlib.suppress(Exception):
                    client.stop()
                    client.close()
        return left


def run_chaos(
    cluster: Cluster,
    config: ChaosConfig | None = None,
    *,
    target: str = "cluster",
    progress: Callable[[str], None] | None = None,
) -> ChaosResult:
    """Run the workload against ``cluster`` while injecting ``config.faults``, then check.

    Args:
        cluster: A started ensemble (e.g. :class:`coord.testing.ZooKeeperEnsemble`).
        config: The run's parameters (defaults: every fault once, about 50 s).
        target: The name to report.
        progress: Called with one line per event (fault injected, repaired, checking).

    Returns:
        The result; ``result.ok`` is true when nothing was lost or violated.
    """
    return _Run(cluster, config or ChaosConfig(), target).run(progress or _log.info)


def render_markdown(results: Sequence[ChaosResult]) -> str:
    """Render results side by side as a markdown table, one column per result.

    Args:
        results: E.g. ``[zookeeper_result, coord_result]``.

    Returns:
        The table (rows: lost writes, violations per check, outage per fault, op counts).
    """

    def row(label: str, cells: Iterator[str] | list[str]) -> str:
        return "| " + " | ".join([label, *cells]) + " |"

    lines = [
        row("", [r.target for r in results]),
        row("---", ["---:" for _ in results]),
        row("acknowledged writes", [str(r.acknowledged_writes) for r in results]),
        row("**acknowledged writes lost**", [f"**{r.acknowledged_writes_lost}**" for r in results]),
        row("**violations**", [f"**{len(r.violations)}**" for r in results]),
    ]
    names = list(dict.fromkeys(name for r in results for name in r.checks))
    for name in names:
        lines.append(row(f"check: {name}", [r.checks.get(name, "-") for r in results]))
    faults = list(dict.fromkeys(report.fault for r in results for report in r.faults))
    for fault in faults:
        cells = []
        for r in results:
            outages = [f.write_outage for f in r.faults if f.fault is fault]
            if not outages:
                cells.append("-")
            elif any(o is None for o in outages):
                cells.append("no write")
            else:
                cells.append(f"{max(o for o in outages if o is not None):.2f} s")
        lines.append(row(f"longest write outage: {fault.value}", cells))
    kinds = sorted({k for r in results for k in r.counts})
    for kind in kinds:
        lines.append(row(f"ops: {kind}", [str(r.counts.get(kind, 0)) for r in results]))
    lines.append(row("workload duration", [f"{r.duration:.0f} s" for r in results]))
    return "\n".join(lines) + "\n"
