"""Ensemble membership as configured: ``members = ["1=host:peer_port;host:client_port", ...]``.

One string per member, in the spirit of ZooKeeper's ``server.N=host:port:port[:role];port``::

    <id>=<peer host>:<peer port>[:participant|:observer];<client host>:<client port>

``participant`` (the default) members vote and can lead; ``observer`` members receive the
committed log and serve clients but never vote (ZooKeeper's observers, Raft's learners).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Member", "MemberSpecError", "parse_member", "parse_members"]

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
        return f"{self.id}={self.peer[0]}:{self.peer[1]}{role};{self.client[0]}:{self.client[1]}"


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
