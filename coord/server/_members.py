"""Ensemble membership as configured: ``members = ["1=host:peer_port;host:client_port", ...]``.

One string per member, in the spirit of ZooKeeper's ``server.N=host:port:port[:role];port``::

    <id>=<peer host>:<peer port>[:participant|:observer];<client host>:<client port>

``participant`` (the default) members vote and can lead; ``observer`` members receive the
committed log and serve clients but never vote (ZooKeeper's observers, Raft's learners).

ZooKeeper's form of the same thing is what ``/zookeeper/config`` holds and what the
reconfig opcode takes (:func:`format_config`, :func:`parse_server`)::

    server.<id>=<peer host>:<port>:<port 2>[:participant|:observer];[<client host>:]<port>

A coord member has one peer port (elections and replication share its links) where a
ZooKeeper server has two, so the second port is written as 0 ("none"):
``server.2=10.0.0.2:2888:0:participant;10.0.0.2:2181``. Repeating the peer port would
read more naturally, but ZooKeeper's own parser (``QuorumPeer.QuorumServer``, used by
zkCli's ``config -c`` and Curator's ``EnsembleTracker``) rejects a line whose two ports
are equal. When parsing, the second port must be a port number (0 allowed) and is
otherwise ignored. :func:`plan_change` works out what a reconfig request changes; it is
pure (the driver applies the result).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Change",
    "Member",
    "MemberSpecError",
    "format_config",
    "parse_config",
    "parse_member",
    "parse_members",
    "parse_server",
    "plan_change",
]

Role = Literal["participant", "observer"]


class MemberSpecError(ValueError):
    """A ``members`` entry cannot be parsed; the message shows the expected form."""


@dataclass(frozen=True, slots=True)
class Member:
    """One configured member of the ensemble."""

    id: int
    peer: tuple[str, int]
    client: tuple[str, int]
    role: Role = "participant"

    @property
    def voter(self) -> bool:
        return self.role == "participant"

    def spec(self) -> str:
        """The member's configuration string (inverse of :func:`parse_member`)."""
        role = "" if self.role == "participant" else ":observer"
        peer, client = _host(self.peer[0]), _host(self.client[0])
        return f"{self.id}={peer}:{self.peer[1]}{role};{client}:{self.client[1]}"

    def zk_line(self) -> str:
        """The member as a line of ZooKeeper's dynamic configuration: the peer port, then
        0 for the election port coord does not have (see the module docs)."""
        peer, client = _host(self.peer[0]), _host(self.client[0])
        port = self.peer[1]
        return f"server.{self.id}={peer}:{port}:0:{self.role};{client}:{self.client[1]}"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


_FORM = "<id>=<peer host>:<peer port>[:observer];<client host>:<client port>"


def _address(text: str, what: str, spec: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MemberSpecError(f"bad {what} address {text!r} in member {spec!r}; expected {_FORM}")
    return host.strip("[]"), int(port)


def parse_member(spec: str) -> Member:
    """Parse one member string.

    Raises:
        MemberSpecError: it is not of the form shown in the module docs.
    """
    ident, sep, rest = spec.partition("=")
    if not sep or not ident.strip().isdigit() or int(ident) < 1 or int(ident) > 255:
        raise MemberSpecError(f"member {spec!r} needs an id 1..255 before '='; expected {_FORM}")
    peer_part, sep, client_part = rest.partition(";")
    if not sep:
        raise MemberSpecError(f"member {spec!r} has no ';<client address>'; expected {_FORM}")
    role: Role = "participant"
    for name in ("observer", "participant"):
        if peer_part.endswith(":" + name):
            role = "observer" if name == "observer" else "participant"
            peer_part = peer_part[: -len(name) - 1]
    return Member(
        int(ident),
        _address(peer_part, "peer", spec),
        _address(client_part, "client", spec),
        role,
    )


def parse_members(specs: tuple[str, ...]) -> dict[int, Member]:
    """Parse every member string; ids must be distinct and at least one must vote.

    Raises:
        MemberSpecError: a string is malformed, an id repeats, or nobody votes.
    """
    members: dict[int, Member] = {}
    for spec in specs:
        member = parse_member(spec)
        if member.id in members:
            raise MemberSpecError(f"member id {member.id} appears twice")
        members[member.id] = member
    if members and not any(m.voter for m in members.values()):
        raise MemberSpecError("at least one member must be a participant (a voter)")
    return members


_ZK_FORM = (
    "server.<id>=<host>:<port>:<port>[:participant|:observer];[<client host>:]<client port> "
    f"or {_FORM}"
)


def parse_server(spec: str) -> Member:
    """Parse one server of a reconfig request or of ``/zookeeper/config``: ZooKeeper's
    form (``server.4=127.0.0.1:2890:3890:participant;127.0.0.1:2184``; the second port
    is checked and ignored; a client address without a host listens on ``0.0.0.0``) or
    coord's member form (``4=127.0.0.1:2890;127.0.0.1:2184``).

    Raises:
        MemberSpecError: the string is neither.
    """
    text = spec.strip()
    key, sep, value = text.partition("=")
    key = key.strip()
    if key.startswith("server."):
        key = key[len("server.") :]
    if not sep or not key.isdigit() or not 1 <= int(key) <= 255:
        raise MemberSpecError(f"server {spec!r} needs an id 1..255 before '='; expected {_ZK_FORM}")
    peer_part, sep, client_part = value.partition(";")
    if not sep or not client_part.strip():
        raise MemberSpecError(f"server {spec!r} has no ';<client address>'; expected {_ZK_FORM}")
    role: Role = "participant"
    peer_part = peer_part.strip()
    for name in ("observer", "participant"):
        if peer_part.endswith(":" + name):
            role = "observer" if name == "observer" else "participant"
            peer_part = peer_part[: -len(name) - 1]
    host, sep, last = peer_part.rpartition(":")
    if sep and host and last.isdigit():
        # host:port:port (ZooKeeper) or host:port (coord): the last port is the election
        # port when what precedes it still ends with a port.
        inner_host, sep2, first = host.rpartition(":")
        if sep2 and inner_host and first.isdigit() and not host.endswith("]"):
            if not 0 <= int(last) < 65536:
                raise MemberSpecError(f"bad election port {last!r} in server {spec!r}")
            peer_part = host
    client_part = client_part.strip()
    if client_part.isdigit():
        client_part = f"0.0.0.0:{client_part}"
    return Member(
        int(key),
        _address(peer_part, "peer", spec),
        _address(client_part, "client", spec),
        role,
    )


def format_config(members: dict[int, Member], version: int) -> bytes:
    """``/zookeeper/config``'s data: one ``server.N=`` line per member by id, then
    ``version=<hex>`` (the zxid of the reconfig that made it; 0 before any)."""
    lines = [members[i].zk_line() for i in sorted(members)]
    lines.append(f"version={version:x}")
    return "\n".join(lines).encode("utf-8")


def parse_config(data: bytes) -> tuple[dict[int, Member], int]:
    """Inverse of :func:`format_config`: the members and the version.

    Raises:
        MemberSpecError: a line is not a server or a version.
    """
    members: dict[int, Member] = {}
    version = 0
    for line in data.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("version="):
            try:
                version = int(line[len("version=") :], 16)
            except ValueError:
                raise MemberSpecError(f"bad config version line {line!r}") from None
            continue
        member = parse_server(line)
        members[member.id] = member
    return members, version


@dataclass(frozen=True, slots=True)
class Change:
    """The one membership change a reconfig request makes.

    ``kind`` is ``add`` (a participant), ``add-observer``, ``remove``, ``promote``
    (observer -> participant) or ``demote`` (participant -> observer).
    """

    kind: Literal["add", "add-observer", "remove", "promote", "demote"]
    member: int


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def plan_change(
    current: dict[int, Member], joining: str, leaving: str, new_members: str
) -> tuple[dict[int, Member], Change]:
    """What a reconfig request asks for, as ZooKeeper reads it: the incremental form
    (``joining`` servers, added or replacing the same id; ``leaving`` ids) or the
    non-incremental form (``new_members``: the whole new set). Servers are separated by
    commas (a non-incremental list may also use newlines).

    Returns:
        the new members and the one change that leads there.

    Raises:
        MemberSpecError: a server cannot be parsed, both forms are used, the request
            changes nothing, changes more than one member (coord changes the membership
            one member at a time: Raft's single-server changes), or changes a member's
            addresses (remove it and add it again instead).
    """
    new_members = new_members.replace("\n", ",")
    if new_members.strip() and (joining.strip() or leaving.strip()):
        raise MemberSpecError("use either joining/leaving or new members, not both")
    if new_members.strip():
        target: dict[int, Member] = {}
        for spec in _split(new_members):
            if spec.startswith("version="):
                continue
            member = parse_server(spec)
            if member.id in target:
                raise MemberSpecError(f"server {member.id} appears twice")
            target[member.id] = member
    else:
        target = dict(current)
        for spec in _split(leaving):
            key = spec.removeprefix("server.")
            if not key.isdigit():
                raise MemberSpecError(f"leaving servers are ids (e.g. 3), not {spec!r}")
            if int(key) not in target:
                raise MemberSpecError(f"server {key} is not a member")
            del target[int(key)]
        for spec in _split(joining):
            member = parse_server(spec)
            target[member.id] = member
    changes: list[Change] = []
    for ident in sorted(set(current) | set(target)):
        old, new = current.get(ident), target.get(ident)
        if old is None and new is not None:
            changes.append(Change("add" if new.voter else "add-observer", ident))
        elif new is None and old is not None:
            changes.append(Change("remove", ident))
        elif old is not None and new is not None:
            if old.peer != new.peer or old.client != new.client:
                raise MemberSpecError(
                    f"server {ident} would change address ({old.spec()} -> {new.spec()}); "
                    "coord cannot move a member: remove it, then add it again"
                )
            if old.role != new.role:
                changes.append(Change("promote" if new.voter else "demote", ident))
    if not changes:
        raise MemberSpecError("the request does not change the membership")
    if len(changes) > 1:
        raise MemberSpecError(
            "the request changes "
            + ", ".join(f"{c.kind} {c.member}" for c in changes)
            + "; coord changes the membership one member at a time (send one reconfig each)"
        )
    if not any(m.voter for m in target.values()):
        raise MemberSpecError("at least one member must remain a participant (a voter)")
    return target, changes[0]
