"""A replicated Apache ZooKeeper 3.8 ensemble of real server processes on 127.0.0.1.

Theory of operation: each member is a ``QuorumPeerMain`` JVM launched like
:class:`coord.testing.ZooKeeperProcess` launches a standalone one (same class path, log4j
set-up and fast-start JVM options), with its own directory (``data/`` holding ``myid``,
``zoo.cfg``, logs) and its own client, quorum and election ports, all bound on 127.0.0.1.

Partitions without touching the kernel: every peer link goes through a
:class:`coord.testing.TcpProxy`, and :meth:`ZooKeeperEnsemble.partition` stalls every
proxy from and to the isolated member (bytes are held, not dropped or reset, like a dead
link); :meth:`ZooKeeperEnsemble.heal` lets them flow again, in order.

Each member has a loopback address of its own for its outgoing peer links (127.0.0.11 for
member 0, 127.0.0.12 for member 1, ...) where its proxies to the other members listen, on
the other members' real port numbers, forwarding to their real ports on 127.0.0.1. Two
mechanisms make a member dial its proxies:

* the configuration names members by host name (``server.2=zk2:QPORT:EPORT``) and each
  JVM resolves those names through its own hosts file (``-Djdk.net.hosts.file``): its own
  name is 127.0.0.1, where it binds its real ports, every other name its proxy address;
* that covers the configured addresses but not all links: when a lower server id opens an
  election connection to a higher one, the higher one drops it and dials back the address
  the lower one *announced*, an IP (127.0.0.1 and the real port). So each JVM also runs
  with the ``redirect`` ``LD_PRELOAD`` shim (:mod:`coord.testing._faults`, compiled on
  first use), which rewrites its connects to the other members' real ports on 127.0.0.1
  into connects to its proxy address. Without a C compiler the shim is skipped
  (:attr:`ZooKeeperEnsemble.complete_partitions` is then false): a partition then cuts
  the data path (a follower dials the leader's configured address) but election
  messages may still pass, so an isolated old leader can still rejoin.

The quorum-port proxies retry their upstream connect for two seconds: a follower whose
connect to a leader that is only starting to listen is *refused* retries, but one that is
accepted and then reset gives up and starts a new election, which a plain proxy would turn
into multi-second failovers.

Everything runs with ``forceSync=yes`` by default (a write is acknowledged after its log
fsync) since these ensembles exist to test durability under faults.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from coord.testing._faults import FaultShimUnavailable, build_redirect
from coord.testing._proxy import SyncTcpProxy
from coord.testing._zookeeper import (
    FAST_JVM_OPTIONS,
    _free_port,
    _java,
    _tail,
    _terminate,
    four_letter_word,
    write_log4j_config,
    zookeeper_available,
    zookeeper_classpath,
)

__all__ = ["ZooKeeperEnsemble", "ZooKeeperEnsembleError"]

_log = logging.getLogger("coord.testing.zookeeper_ensemble")
_HOST = "127.0.0.1"
_SERVER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
_SERVING_MODES = ("leader", "follower", "observer", "standalone")


class ZooKeeperEnsembleError(RuntimeError):
    """Raised when an ensemble (or a member) does not start or serve within its timeout.

    The message ends with the tail of the members' logs.
    """


@dataclass(eq=False)
class _Member:
    index: int
    directory: Path
    client_port: int
    quorum_port: int
    election_port: int
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    # this member's proxies to each other member: index -> (quorum proxy, election proxy)
    proxies: dict[int, tuple[SyncTcpProxy, SyncTcpProxy]] = field(default_factory=dict)

    @property
    def sid(self) -> int:
        return self.index + 1

    @property
    def hostname(self) -> str:
        """The name other members know this one by (resolved by their hosts files)."""
        return f"zk{self.sid}"

    @property
    def proxy_host(self) -> str:
        """The loopback address where this member's proxies to the others listen."""
        return f"127.0.0.{11 + self.index}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class _State:
    """What the finalizer cleans up; holds no reference to the ensemble."""

    __slots__ = ("members", "tmpdir")

    def __init__(self) -> None:
        self.members: list[_Member] = []
        self.tmpdir: Path | None = None


def _kill(member: _Member) -> None:
    process = member.process
    if process is not None and process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if member.paused:
                process.send_signal(signal.SIGCONT)
            process.kill()
        process.wait()
    member.paused = False


def _wait_stopped(pid: int, *, stopped: bool, timeout: float = 5.0) -> None:
    """Wait until the kernel reports ``pid`` stopped (``T``) or not: a signal is delivered
    asynchronously, and a paused member must not answer anything after :meth:`pause`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return  # no procfs (or the process is gone): nothing to wait for
        state = stat.rpartition(")")[2].split()[0]
        if (state in ("T", "t")) == stopped:
            return
        time.sleep(0.005)


def _cleanup(state: _State) -> None:
    for member in state.members:
        _kill(member)
        member.process = None
        for quorum, election in member.proxies.values():
            quorum.stop()
            election.stop()
        member.proxies.clear()
    state.members = []
    if state.tmpdir is not None:
        shutil.rmtree(state.tmpdir, ignore_errors=True)
        state.tmpdir = None


class ZooKeeperEnsemble:
    """N Apache ZooKeeper 3.8 servers forming one ensemble on 127.0.0.1, with faults.

    Members are numbered from 0 (ZooKeeper's server id is the index plus one). Use it as a
    context manager or call :meth:`start` and :meth:`stop`::

        with ZooKeeperEnsemble(3) as zk:
            client = KazooClient(hosts=zk.connect_string)
            zk.kill(zk.leader())
            ...

    Args:
        size: Number of voting members (1 or more; 3 and 5 are the useful sizes).
        tick_time: ``tickTime`` in milliseconds.
        init_limit: ``initLimit`` in ticks (time a follower has to sync with a leader).
        sync_limit: ``syncLimit`` in ticks (how long a follower may lag before it is
            dropped; also how soon a leader cut off from its followers steps down).
        min_session_timeout: ``minSessionTimeout`` in milliseconds (``None``: ZooKeeper's
            default of two ticks).
        max_session_timeout: ``maxSessionTimeout`` in milliseconds (``None``: 20 ticks).
        force_sync: ``zookeeper.forceSync`` (fsync the transaction log before acking).
        proxied: Route peer links through per-member proxies so :meth:`partition` works
            (12 proxies for 3 members, 40 for 5; each member's proxies listen on a loopback
            address of its own, 127.0.0.11 and up).
        startup_timeout: Seconds :meth:`start`, :meth:`start_all` and :meth:`restart` wait
            for members to serve.
        log_level: Root log4j level of each member's log file.
        jvm_options: JVM options of each member (default: tuned for start-up speed, as
            the test suite wants; benchmarks pass ``zkServer.sh``'s).
        reconfig_enabled: ``reconfigEnabled=true`` and ``zookeeper.skipACL=yes``, so any
            client may send reconfig (dynamic reconfiguration tests).
    """

    host = _HOST

    def __init__(
        self,
        size: int = 3,
        *,
        tick_time: int = 500,
        init_limit: int = 10,
        sync_limit: int = 4,
        min_session_timeout: int | None = None,
        max_session_timeout: int | None = None,
        force_sync: bool = True,
        proxied: bool = True,
        startup_timeout: float = 60.0,
        log_level: str = "INFO",
        jvm_options: tuple[str, ...] = FAST_JVM_OPTIONS,
        reconfig_enabled: bool = False,
    ) -> None:
        if size < 1:
            raise ValueError(f"an ensemble needs at least one member, not {size}")
        self._size = size
        self._tick_time = tick_time
        self._init_limit = init_limit
        self._sync_limit = sync_limit
        self._min_session_timeout = min_session_timeout
        self._max_session_timeout = max_session_timeout
        self._force_sync = force_sync
        self._proxied = proxied
        self._startup_timeout = startup_timeout
        self._log_level = log_level
        self._jvm_options = tuple(jvm_options)
        self._reconfig_enabled = reconfig_enabled
        self._partitioned: set[int] = set()
        self._shim: Path | None = None
        self.shim_error: str | None = None
        """Why the connect-redirecting shim is not in use (``None`` when it is)."""
        self._state = _State()
        self._finalizer = weakref.finalize(self, _cleanup, self._state)

    # -- addresses ------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The number of members."""
        return self._size

    @property
    def members(self) -> list[str]:
        """Each member's client address, ``"127.0.0.1:PORT"``, by index.

        Raises:
            RuntimeError: The ensemble is not started.
        """
        return [f"{_HOST}:{m.client_port}" for m in self._members()]

    @property
    def connect_string(self) -> str:
        """All members' client addresses, comma separated (a client connect string)."""
        return ",".join(self.members)

    def member_address(self, index: int) -> str:
        """Member ``index``'s client address, ``"127.0.0.1:PORT"``.

        Raises:
            IndexError: No such member.
        """
        return self.members[self._check(index)]

    @property
    def directory(self) -> Path:
        """The ensemble's temporary directory (one ``member-N/`` per member).

        Raises:
            RuntimeError: The ensemble is not started.
        """
        if self._state.tmpdir is None:
            raise RuntimeError("ZooKeeperEnsemble is not started")
        return self._state.tmpdir

    def pid(self, index: int) -> int | None:
        """Member ``index``'s JVM process id while it runs."""
        member = self._members()[self._check(index)]
        return member.process.pid if member.running and member.process is not None else None

    def running(self, index: int) -> bool:
        """Whether member ``index``'s JVM is alive (paused counts as alive)."""
        return self._members()[self._check(index)].running

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Create the directories and proxies, launch every member, wait for a leader.

        Raises:
            RuntimeError: Already started, or ZooKeeper is unavailable here.
            ZooKeeperEnsembleError: No leader with all members serving within
                ``startup_timeout``.
        """
        if self._state.tmpdir is not None:
            raise RuntimeError("ZooKeeperEnsemble is already started")
        reason = zookeeper_available()
        if reason is not None:
            raise RuntimeError(f"Apache ZooKeeper unavailable: {reason}")
        tmpdir = Path(tempfile.mkdtemp(prefix="coord-zk-ensemble-"))
        self._state.tmpdir = tmpdir
        try:
            for index in range(self._size):
                directory = tmpdir / f"member-{index + 1}"
                (directory / "data").mkdir(parents=True)
                (directory / "data" / "myid").write_text(f"{index + 1}\n", encoding="ascii")
                write_log4j_config(
                    directory / "log4j.properties", directory / "zookeeper.log", self._log_level
                )
                ports = [self._peer_port() for _ in range(3)]
                self._state.members.append(_Member(index, directory, ports[0], ports[1], ports[2]))
            if self._proxied:
                try:
                    self._shim = build_redirect(tmpdir / "shim")
                except (FaultShimUnavailable, subprocess.CalledProcessError) as error:
                    self.shim_error = str(error)
                    _log.warning("partitions will be partial: %s", error)
                for member in self._state.members:
                    for other in self._state.members:
                        if other is not member:
                            quorum = SyncTcpProxy(
                                _HOST,
                                other.quorum_port,
                                connect_retry=2.0,
                                listen_host=member.proxy_host,
                                listen_port=other.quorum_port,
                            )
                            election = SyncTcpProxy(
                                _HOST,
                                other.election_port,
                                listen_host=member.proxy_host,
                                listen_port=other.election_port,
                            )
                            quorum.start()
                            election.start()
                            member.proxies[other.index] = (quorum, election)
            for member in self._state.members:
                self._write_config(member)
            self.start_all()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill every member (SIGKILL), stop the proxies, remove the directory. Idempotent."""
        _cleanup(self._state)
        self._partitioned.clear()

    def __enter__(self) -> Self:
        if self._state.tmpdir is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def complete_partitions(self) -> bool:
        """Whether :meth:`partition` cuts every peer link (the redirect shim is in use)."""
        return self._proxied and self._shim is not None

    # -- faults ---------------------------------------------------------------------------

    def kill(self, index: int) -> None:
        """SIGKILL member ``index`` (a crash: no shutdown, nothing flushed) and reap it."""
        _kill(self._members()[self._check(index)])

    def pause(self, index: int) -> None:
        """SIGSTOP member ``index``: it keeps its sockets but does nothing (a GC pause, a
        frozen VM). Its peers and clients time out on it."""
        member = self._members()[self._check(index)]
        if member.running and not member.paused:
            assert member.process is not None
            member.process.send_signal(signal.SIGSTOP)
            member.paused = True
            _wait_stopped(member.process.pid, stopped=True)

    def resume(self, index: int) -> None:
        """SIGCONT member ``index`` after :meth:`pause`."""
        member = self._members()[self._check(index)]
        if member.running and member.paused:
            assert member.process is not None
            member.process.send_signal(signal.SIGCONT)
            _wait_stopped(member.process.pid, stopped=False)
        member.paused = False

    def restart(self, index: int, *, wait: bool = True) -> None:
        """Stop member ``index`` (SIGTERM, if running) and start it again with its data.

        Args:
            index: The member.
            wait: Wait until it serves (needs a quorum of members running).

        Raises:
            ZooKeeperEnsembleError: ``wait`` and it did not serve within the timeout.
        """
        member = self._members()[self._check(index)]
        if member.paused:
            self.resume(index)
        _terminate(member.process, grace=10.0)
        member.process = None
        self._launch(member)
        if wait:
            self._wait_serving([member])

    def kill_all(self) -> None:
        """SIGKILL every member."""
        for member in self._members():
            _kill(member)

    def start_all(self) -> None:
        """Launch every member that is not running and wait until all serve with a leader.

        Raises:
            ZooKeeperEnsembleError: They did not within ``startup_timeout``.
        """
        members = self._members()
        for member in members:
            if not member.running:
                self._launch(member)
        self._wait_serving(members)

    def partition(self, index: int) -> None:
        """Isolate member ``index`` from the others: stall every peer link to and from it.

        Clients can still reach it (it is the peer links that are cut), as in a partition
        between servers where clients sit on both sides.

        Raises:
            RuntimeError: The ensemble was created with ``proxied=False``.
        """
        self._check(index)
        if not self._proxied:
            raise RuntimeError("partition() needs ZooKeeperEnsemble(proxied=True)")
        self._partitioned.add(index)
        for proxy in self._proxies_touching(index):
            proxy.stall()

    def heal(self) -> None:
        """Undo every :meth:`partition`: the held bytes flow again, in order."""
        for index in sorted(self._partitioned):
            for proxy in self._proxies_touching(index):
                proxy.resume()
        self._partitioned.clear()

    # -- introspection --------------------------------------------------------------------

    def mode(self, index: int, timeout: float = 2.0) -> str | None:
        """Member ``index``'s ``Mode:`` from ``srvr`` (``leader``, ``follower``, ...), or
        ``None`` when it does not answer or is not serving."""
        try:
            answer = self.four_letter_word(index, "srvr", timeout)
        except OSError:
            return None
        for line in answer.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def leader(self, timeout: float = 2.0) -> int | None:
        """The index of the member reporting ``Mode: leader`` (via ``srvr``), or ``None``.

        Paused members are not asked (they cannot answer).
        """
        for member in self._members():
            if (
                member.running
                and not member.paused
                and self.mode(member.index, timeout) == "leader"
            ):
                return member.index
        return None

    def wait_for_leader(self, timeout: float = 30.0, exclude: int | None = None) -> int:
        """Wait until a member (other than ``exclude``) reports ``Mode: leader``.

        Raises:
            ZooKeeperEnsembleError: None did within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            for member in self._members():
                if member.index == exclude or not member.running or member.paused:
                    continue
                if self.mode(member.index, 1.0) == "leader":
                    return member.index
            if time.monotonic() > deadline:
                raise ZooKeeperEnsembleError(f"no leader within {timeout} s\n{self.log_tail()}")
            time.sleep(0.05)

    def four_letter_word(self, index: int, command: str, timeout: float = 5.0) -> str:
        """Send a four-letter-word command to member ``index`` and return the answer.

        Raises:
            OSError: The member is not reachable.
        """
        member = self._members()[self._check(index)]
        return four_letter_word(_HOST, member.client_port, command, timeout)

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of each member's ZooKeeper log and console output."""
        parts = []
        for member in self._state.members:
            for name in ("zookeeper.log", "console.log"):
                tail = _tail(member.directory / name, lines)
                if tail:
                    parts.append(f"--- member {member.index} {name} ---\n{tail}")
        return "\n".join(parts)

    # -- internals --------------------------------------------------------------------------

    def _members(self) -> list[_Member]:
        if not self._state.members:
            raise RuntimeError("ZooKeeperEnsemble is not started")
        return self._state.members

    def _check(self, index: int) -> int:
        if not 0 <= index < self._size:
            raise IndexError(f"no member {index} in an ensemble of {self._size}")
        return index

    def _peer_port(self) -> int:
        """A port free on 127.0.0.1 and on every member's proxy address (another ensemble's
        proxies may hold it there)."""
        hosts = [f"127.0.0.{11 + i}" for i in range(self._size)] if self._proxied else []
        for _ in range(100):
            port = _free_port(_HOST)
            try:
                for host in hosts:
                    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                        probe.bind((host, port))
            except OSError:
                continue
            return port
        raise ZooKeeperEnsembleError("no port free on every loopback address")

    def _proxies_touching(self, index: int) -> list[SyncTcpProxy]:
        out: list[SyncTcpProxy] = []
        for member in self._members():
            for other, pair in member.proxies.items():
                if member.index == index or other == index:
                    out.extend(pair)
        return out

    def _write_config(self, member: _Member) -> None:
        config: dict[str, object] = {
            "tickTime": self._tick_time,
            "initLimit": self._init_limit,
            "syncLimit": self._sync_limit,
            "dataDir": member.directory / "data",
            "clientPortAddress": _HOST,
            "clientPort": member.client_port,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
            "maxClientCnxns": 0,
            "reconfigEnabled": "true" if self._reconfig_enabled else "false",
            "standaloneEnabled": "false",
            "electionPortBindRetry": 0,
        }
        if self._min_session_timeout is not None:
            config["minSessionTimeout"] = self._min_session_timeout
        if self._max_session_timeout is not None:
            config["maxSessionTimeout"] = self._max_session_timeout
        lines = [f"{key}={value}" for key, value in config.items()]
        hosts = []
        for other in self._state.members:
            lines.append(
                f"server.{other.sid}={other.hostname}:{other.quorum_port}:"
                f"{other.election_port}:participant"
            )
            address = _HOST if other is member or not self._proxied else member.proxy_host
            hosts.append(f"{address} {other.hostname}")
        (member.directory / "zoo.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (member.directory / "hosts").write_text("\n".join(hosts) + "\n", encoding="utf-8")

    def _command(self, member: _Member) -> list[str]:
        java = _java()
        assert java is not None  # checked in start()
        properties: dict[str, object] = {
            "log4j.configuration": (member.directory / "log4j.properties").as_uri(),
            "zookeeper.jmx.log4j.disable": "true",
            "zookeeper.forceSync": "yes" if self._force_sync else "no",
            "jdk.net.hosts.file": member.directory / "hosts",
        }
        if self._reconfig_enabled:
            # Whoever may reconfigure: skip ACL checks (as ZooKeeper's reconfig docs advise
            # for tests; a superuser would do too).
            properties["zookeeper.skipACL"] = "yes"
        return [
            java,
            *self._jvm_options,
            *(f"-D{key}={value}" for key, value in properties.items()),
            "-cp",
            zookeeper_classpath(),
            _SERVER_MAIN,
            str(member.directory / "zoo.cfg"),
        ]

    def _environment(self, member: _Member) -> dict[str, str]:
        env = {**os.environ, "ZOO_LOG_DIR": str(member.directory)}
        if self._shim is not None:
            ports = [
                port
                for other in self._state.members
                if other is not member
                for port in (other.quorum_port, other.election_port)
            ]
            preload = " ".join(filter(None, [str(self._shim), env.get("LD_PRELOAD", "")]))
            env.update(
                LD_PRELOAD=preload,
                REDIRECT_HOST=member.proxy_host,
                REDIRECT_PORTS=",".join(map(str, ports)),
            )
        return env

    def _launch(self, member: _Member) -> None:
        with open(member.directory / "console.log", "ab") as console:
            member.process = subprocess.Popen(
                self._command(member),
                cwd=member.directory,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self._environment(member),
            )
        member.paused = False

    def _wait_serving(self, members: list[_Member]) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            for member in members:
                if member.process is not None and member.process.poll() is not None:
                    raise ZooKeeperEnsembleError(
                        f"member {member.index} exited with status {member.process.returncode}"
                        f"\n{self.log_tail()}"
                    )
            modes = [self.mode(m.index, 1.0) for m in members]
            if all(mode in _SERVING_MODES for mode in modes) and (self.leader() is not None):
                return
            if time.monotonic() > deadline:
                raise ZooKeeperEnsembleError(
                    f"members {[m.index for m in members]} not serving within "
                    f"{self._startup_timeout} s (modes {modes})\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def __repr__(self) -> str:
        if not self._state.members:
            return f"<ZooKeeperEnsemble size={self._size} stopped>"
        return f"<ZooKeeperEnsemble size={self._size} at {self.connect_string}>"
