"""Which server to connect to next, and when to move: zones and read-only (pure: no I/O).

Theory of operation
-------------------
Every host of the connect string may carry a *zone* label (``connect(..., zones={...},
zone="eu-1")``). :class:`HostPolicy` orders the servers for each round of connection
attempts: the hosts of the client's own zone first, shuffled, then every other host,
shuffled (hosts without a label count as "other"). With no zone configured it is
ZooKeeper's ``StaticHostProvider``: all hosts, shuffled. A round is recomputed after every
connection that was established and then lost, so a client always tries its own zone
first again.

While connected to a *less preferred* server, the driver probes the better ones in the
background and moves the session there at a quiet moment (no request in flight) by
reconnecting with the same session id and password -- the session, its ephemeral nodes and
its watches are kept, ``lastZxidSeen`` guarantees the new server is not behind. Two
reasons make a server less preferred:

* it is in another zone than the client's (probe: a TCP connect to a local host -- the
  cheapest sign the server is back; if its handshake then fails, the client falls back and
  probes again an interval later);
* it is read-only (``read_only=True`` clients only; probe: the ``isro`` four-letter word,
  answered ``rw`` by a server with a quorum -- the Java client's ``pingRwServer``).

:func:`probe_targets` says which hosts to probe; :func:`is_write` which opcodes a read-only
server would refuse, so the client rejects them locally with
:class:`~coord.NotReadOnlyError`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from coord.protocol import OpCode

from ._paths import HostPort, _parse_host

__all__ = [
    "HostPolicy",
    "Probe",
    "first_preferred",
    "is_write",
    "parse_isro",
    "parse_zones",
    "probe_targets",
]

#: Opcodes that change the tree: a read-only server answers them with NOT_READ_ONLY.
WRITE_OPS = frozenset(
    {
        OpCode.CREATE,
        OpCode.CREATE2,
        OpCode.CREATE_CONTAINER,
        OpCode.CREATE_TTL,
        OpCode.DELETE,
        OpCode.DELETE_CONTAINER,
        OpCode.SET_DATA,
        OpCode.SET_ACL,
        OpCode.CHECK,
        OpCode.MULTI,
        OpCode.RECONFIG,
    }
)


def is_write(op: int) -> bool:
    """Whether ``op`` is refused by a read-only server (``multi`` counts as a write)."""
    return op in WRITE_OPS


def parse_zones(zones: Mapping[str, str] | None) -> dict[HostPort, str]:
    """Normalise a ``{"host:port": "zone"}`` mapping (port 2181 by default).

    Raises:
        ValueError: a malformed host, or an empty zone label.
    """
    result: dict[HostPort, str] = {}
    for spec, zone in (zones or {}).items():
        if not isinstance(zone, str) or not zone:
            raise ValueError(f"zone of {spec!r} must be a non-empty str")
        result[_parse_host(spec)] = zone
    return result


@dataclass(frozen=True, slots=True)
class Probe:
    """A check to make on ``host``: ``"tcp"`` (does it accept?) or ``"isro"`` (is it rw?)."""

    host: HostPort
    kind: str


class HostPolicy:
    """The order in which to try servers, given zones (see the module docstring).

    Args:
        hosts: the servers of the connect string.
        zones: the zone of each server (servers not named have no zone).
        zone: the client's own zone; ``None`` disables zone preference.

    Raises:
        ValueError: ``zones`` names a server that is not in ``hosts``, or ``zone`` is set
            but no server is in it.
    """

    __slots__ = ("hosts", "zone", "zones")

    def __init__(
        self,
        hosts: Sequence[HostPort],
        zones: Mapping[HostPort, str] | None = None,
        zone: str | None = None,
    ) -> None:
        self.hosts = tuple(hosts)
        self.zones = dict(zones or {})
        self.zone = zone
        unknown = set(self.zones) - set(self.hosts)
        if unknown:
            names = ", ".join(sorted(str(h) for h in unknown))
            raise ValueError(f"zones names servers not in the connect string: {names}")
        if zone is not None and not self.local_hosts():
            raise ValueError(f"no server of the connect string is in zone {zone!r}")

    def is_local(self, host: HostPort) -> bool:
        """``host`` is in the client's zone (every host is, when no zone is set)."""
        return self.zone is None or self.zones.get(host) == self.zone

    def local_hosts(self) -> tuple[HostPort, ...]:
        """The hosts of the client's zone, in connect-string order."""
        return tuple(h for h in self.hosts if self.is_local(h))

    def round(self, rng: random.Random) -> list[HostPort]:
        """One round of connection attempts: local hosts shuffled, then the others shuffled."""
        local = [h for h in self.hosts if self.is_local(h)]
        remote = [h for h in self.hosts if not self.is_local(h)]
        rng.shuffle(local)
        rng.shuffle(remote)
        return local + remote


def probe_targets(
    policy: HostPolicy,
    current: HostPort,
    *,
    read_only: bool,
    rng: random.Random,
    accept_read_only: bool = False,
) -> list[Probe]:
    """What to probe while connected to ``current``: nothing if it is the best kind.

    Args:
        policy: the host policy.
        current: the server the client is connected to.
        read_only: ``current`` is a read-only server.
        rng: shuffles the candidates.
        accept_read_only: the client accepts read-only servers; then a local server must
            also say it is read-write (``isro``) before the client moves back to it, or a
            client could bounce between a read-only local and a read-write remote server.

    Returns:
        When ``current`` is read-only: an ``isro`` probe of every other host, local zone
        first. Else, when ``current`` is outside the client's zone: a probe of every local
        host (``tcp``, or ``isro`` with ``accept_read_only``). Else nothing.
    """
    if read_only:
        return [Probe(h, "isro") for h in policy.round(rng) if h != current]
    if not policy.is_local(current):
        local = list(policy.local_hosts())
        rng.shuffle(local)
        kind = "isro" if accept_read_only else "tcp"
        return [Probe(h, kind) for h in local]
    return []


def parse_isro(reply: bytes) -> bool | None:
    """The answer to ``isro``: True for a read-write server, False for a read-only one.

    Returns ``None`` when the reply is neither (the command is not allowed, or the server
    closed the connection).
    """
    text = reply.strip()
    if text == b"rw":
        return True
    if text == b"ro":
        return False
    return None


def first_preferred(round_: Iterable[HostPort], preferred: HostPort | None) -> list[HostPort]:
    """``round_`` with ``preferred`` moved to the front (the server a probe found)."""
    hosts = list(round_)
    if preferred is not None and preferred in hosts:
        hosts.remove(preferred)
        hosts.insert(0, preferred)
    return hosts
