"""A coord ensemble of real member processes on 127.0.0.1, with faults, for tests.

Every peer link goes through a :class:`~coord.testing.SyncTcpProxy` (member *i*'s config
names member *j* at the address of the proxy for the link i -> j), so a test can cut a
member off from the others (:meth:`CoordEnsemble.partition`) while clients still reach it.
Member processes are ``coord server`` processes started as ``coord ensemble up`` starts
them (coord/tools/_ensemble.py).

The fault methods (``kill``, ``pause``, ``resume``, ``restart``, ``partition``, ``heal``,
``kill_all``, ``start_all``) take member ids (1-based) and return once the fault is in
place; they do not wait for the ensemble to recover (use :meth:`wait_for_leader`).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from coord.testing._proxy import SyncTcpProxy
from coord.tools._ensemble import (
    EnsembleMember,
    _alive,
    _free_port,
    member_spec,
    srvr,
    start_member,
    write_member_config,
    write_member_configs,
)

__all__ = ["CoordEnsemble"]


class CoordEnsemble:
    """``size`` voting members (and ``observers``) as child processes.

    Args:
        size: voting members.
        observers: non-voting members.
        directory: where configs, data and logs go (a temporary directory, removed by
            :meth:`stop`, when omitted).
        config: more server settings for every member (``{"tick_time": 500}``).
        env: environment of the member processes (default: this process's).
        proxies: route peer links through fault proxies (needed by :meth:`partition`).
    """

    host = "127.0.0.1"

    def __init__(
        self,
        size: int = 3,
        *,
        observers: int = 0,
        directory: str | Path | None = None,
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        proxies: bool = True,
    ) -> None:
        self.size = size
        self.observers = observers
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="coord-ensemble-"))
        self._config = dict(config or {})
        self._env = env
        self._use_proxies = proxies
        self.members: dict[int, EnsembleMember] = {}
        #: (from, to) -> the proxy member ``from`` dials ``to`` through.
        self.proxies: dict[tuple[int, int], SyncTcpProxy] = {}
        self._paused: set[int] = set()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> CoordEnsemble:
        """Write the configs, start every member, wait for a leader."""
        count = self.size + self.observers
        overrides: dict[int, dict[int, tuple[str, int]]] | None = None
        # Peer ports are chosen first so the proxies can point at them.
        peer_ports = {i: _free_port(self.host) for i in range(1, count + 1)}
        if self._use_proxies:
            overrides = {}
            for a in peer_ports:
                for b in peer_ports:
                    if a != b:
                        proxy = SyncTcpProxy(self.host, peer_ports[b])
                        proxy.start()
                        self.proxies[(a, b)] = proxy
                        overrides.setdefault(a, {})[b] = (self.host, proxy.port)
        members = write_member_configs(
            self.directory,
            self.size,
            observers=self.observers,
            host=self.host,
            peer_ports=peer_ports,
            peer_overrides=overrides,
            extra=self._config,
        )
        self.members = {m.id: m for m in members}
        for member in members:
            start_member(member, env=self._env)
        self.wait_for_leader(timeout)
        return self

    def stop(self) -> None:
        """Kill every member, stop the proxies, remove a temporary directory."""
        for ident in list(self.members):
            if ident in self._paused:
                self.resume(ident)
            self.kill(ident)
        for proxy in self.proxies.values():
            proxy.stop()
        self.proxies.clear()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> CoordEnsemble:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses and state ---------------------------------------------------------------

    @property
    def connect_string(self) -> str:
        """Every member's client address, comma-separated (a client's host list)."""
        return ",".join(m.client for m in self.members.values())

    def member_address(self, ident: int) -> str:
        """Member ``ident``'s client address, ``host:port``."""
        return self.members[ident].client

    def mode(self, ident: int) -> str:
        """Member ``ident``'s mode (leader, follower, observer), or ``"down"``."""
        try:
            return srvr(self.members[ident].client_address).get("Mode", "?")
        except OSError:
            return "down"

    def srvr(self, ident: int) -> dict[str, str]:
        """Member ``ident``'s ``srvr`` answer, as a dict."""
        return srvr(self.members[ident].client_address)

    def leader(self) -> int | None:
        """The id of the member that says it leads (a running, unpaused one), or None."""
        for ident in self.members:
            if ident not in self._paused and self.alive(ident) and self.mode(ident) == "leader":
                return ident
        return None

    def followers(self) -> list[int]:
        leader = self.leader()
        return [i for i, m in self.members.items() if i != leader and m.role == "participant"]

    def alive(self, ident: int) -> bool:
        return _alive(self.members[ident].pid)

    def wait_for_leader(self, timeout: float = 30.0, *, exclude: int | None = None) -> int:
        """Wait until a member other than ``exclude`` leads and returns its id.

        Raises:
            TimeoutError: no leader within ``timeout`` s (member logs are in the message).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader != exclude:
                return leader
            time.sleep(0.05)
        logs = ", ".join(m.log for m in self.members.values())
        raise TimeoutError(f"no leader within {timeout} s; member logs: {logs}")

    # --- faults ----------------------------------------------------------------------------

    def kill(self, ident: int) -> None:
        """SIGKILL member ``ident`` (no-op if it is not running)."""
        member = self.members[ident]
        if _alive(member.pid):
            os.kill(member.pid, signal.SIGKILL)
            try:
                os.waitpid(member.pid, 0)
            except ChildProcessError:
                while _alive(member.pid):
                    time.sleep(0.01)
        self._paused.discard(ident)

    def terminate(self, ident: int, timeout: float = 15.0) -> None:
        """SIGTERM member ``ident`` and wait for it to exit."""
        member = self.members[ident]
        if _alive(member.pid):
            os.kill(member.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(member.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        self.kill(ident)

    def pause(self, ident: int) -> None:
        """SIGSTOP member ``ident``: it holds its sockets but does nothing."""
        os.kill(self.members[ident].pid, signal.SIGSTOP)
        self._paused.add(ident)

    def resume(self, ident: int) -> None:
        """SIGCONT a paused member."""
        os.kill(self.members[ident].pid, signal.SIGCONT)
        self._paused.discard(ident)

    def start_member(self, ident: int, timeout: float = 30.0) -> None:
        """Start member ``ident`` again (with its data) and wait until it answers on its
        client port; it must not be running."""
        member = self.members[ident]
        if _alive(member.pid):
            raise RuntimeError(f"member {ident} is running (pid {member.pid})")
        start_member(member, env=self._env)
        deadline = time.monotonic() + timeout
        while self.mode(ident) == "down":
            if not _alive(member.pid) or time.monotonic() > deadline:
                raise RuntimeError(f"member {ident} did not start; see {member.log}")
            time.sleep(0.02)

    def restart(self, ident: int) -> None:
        """Kill member ``ident`` and start it again with its data."""
        self.kill(ident)
        self.start_member(ident)

    def wipe(self, ident: int) -> None:
        """Delete a stopped member's data directory (it rejoins empty)."""
        if self.alive(ident):
            raise RuntimeError(f"member {ident} is running")
        shutil.rmtree(self.members[ident].data_dir, ignore_errors=True)

    def new_server(self, ident: int, *, role: str = "participant") -> EnsembleMember:
        """Write the config of a server meant to join the ensemble at runtime (its
        ``members``: every current member plus itself, no proxies) and start it; it is
        not a member until a reconfig adds it (``zk_spec(ident)`` or
        ``member_spec(ident)`` is the server to add). Returns it (now in :attr:`members`).
        Start the ensemble with ``proxies=False`` for reconfig tests: the configuration
        holds real peer addresses, which links to new members use."""
        if ident in self.members:
            raise ValueError(f"member {ident} exists")
        base = self.directory / f"member-{ident}"
        base.mkdir(parents=True, exist_ok=True)
        member = EnsembleMember(
            id=ident,
            client=f"{self.host}:{_free_port(self.host)}",
            peer=f"{self.host}:{_free_port(self.host)}",
            role=role,
            config=str((base / "coord.toml").resolve()),
            data_dir=str((base / "data").resolve()),
            log=str((base / "server.log").resolve()),
        )
        self.members[ident] = member
        specs = [member_spec(m) for m in self.members.values()]
        write_member_config(member, specs, self.directory / "secret", self._config)
        self.start_member(ident)
        return member

    def member_spec(self, ident: int) -> str:
        """Member ``ident`` in coord's member form (its real peer address, no proxy)."""
        return member_spec(self.members[ident])

    def zk_spec(self, ident: int, *, role: str | None = None) -> str:
        """Member ``ident`` in ZooKeeper's server form, as ``/zookeeper/config`` shows it
        (the election port coord does not have written as 0), for a reconfig request."""
        m = self.members[ident]
        return f"server.{m.id}={m.peer}:0:{role or m.role};{m.client}"

    def kill_all(self) -> None:
        for ident in self.members:
            self.kill(ident)

    def start_all(self) -> None:
        for ident in self.members:
            if not self.alive(ident):
                self.start_member(ident)

    def partition(self, ident: int) -> None:
        """Cut member ``ident``'s peer links both ways, silently (clients still reach it).

        As a dead network link: nothing arrives and nothing is refused, so the members
        notice only by their timeouts (what is held is delivered after :meth:`heal`).
        """
        if not self.proxies:
            raise RuntimeError("partition() needs the ensemble started with proxies=True")
        for (a, b), proxy in self.proxies.items():
            if ident in (a, b):
                proxy.stall()

    def heal(self) -> None:
        """Undo every :meth:`partition`."""
        for proxy in self.proxies.values():
            proxy.resume()
