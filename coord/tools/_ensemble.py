"""A local development ensemble: ``coord ensemble up|status|down --dir DIR``.

``up`` writes one TOML config per member (``DIR/member-N/coord.toml``), a shared peer
secret (``DIR/secret``, mode 0600), starts every member as a background ``coord server``
process (its log in ``DIR/member-N/server.log``), waits until a leader is elected, and
records what it started in ``DIR/ensemble.json``::

    {"members": [{"id": 1, "pid": 4242, "client": "127.0.0.1:2181",
                  "peer": "127.0.0.1:2888", "role": "participant",
                  "config": "...", "data_dir": "...", "log": "..."}, ...]}

``status`` asks every member for its mode (``srvr``); ``down`` stops them (SIGTERM, then
SIGKILL after a grace period). ``up`` again on the same directory restarts the members
with their data.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from coord.tools._common import ToolError

__all__ = [
    "EnsembleMember",
    "MemberStatus",
    "ensemble_down",
    "ensemble_status",
    "ensemble_up",
    "format_status",
    "read_ensemble",
    "srvr",
    "start_member",
    "write_member_configs",
]

STATE_FILE = "ensemble.json"


@dataclass
class EnsembleMember:
    """One member of a local ensemble, as ``ensemble.json`` records it."""

    id: int
    client: str
    peer: str
    role: str
    config: str
    data_dir: str
    log: str
    pid: int = 0

    @property
    def client_address(self) -> tuple[str, int]:
        host, _, port = self.client.rpartition(":")
        return host, int(port)


@dataclass
class MemberStatus:
    """What ``status`` found for one member."""

    member: EnsembleMember
    alive: bool
    mode: str
    zxid: str


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def srvr(address: tuple[str, int], timeout: float = 1.0) -> dict[str, str]:
    """A member's ``srvr`` answer as a dict (``{"Mode": "leader", "Zxid": ...}``).

    Raises:
        OSError: the member does not answer.
    """
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(b"srvr")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    fields: dict[str, str] = {}
    for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def write_member_configs(
    directory: Path,
    size: int,
    *,
    observers: int = 0,
    host: str = "127.0.0.1",
    peer_ports: dict[int, int] | None = None,
    peer_overrides: dict[int, dict[int, tuple[str, int]]] | None = None,
    extra: dict[str, object] | None = None,
) -> list[EnsembleMember]:
    """Write the secret and each member's config for a new ensemble of ``size`` voters
    and ``observers`` observers on free ports of ``host``.

    Args:
        peer_ports: the peer port of each member id (default: free ports).
        peer_overrides: per member id, peer addresses to use *for other members* in its
            config (tests route peer links through fault proxies this way).
        extra: more config keys for every member (e.g. ``{"tick_time": 500}``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    secret_file = directory / "secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32) + "\n")
        secret_file.chmod(0o600)
    members: list[EnsembleMember] = []
    for ident in range(1, size + observers + 1):
        base = directory / f"member-{ident}"
        base.mkdir(exist_ok=True)
        members.append(
            EnsembleMember(
                id=ident,
                client=f"{host}:{_free_port(host)}",
                peer=f"{host}:{(peer_ports or {}).get(ident) or _free_port(host)}",
                role="participant" if ident <= size else "observer",
                config=str((base / "coord.toml").resolve()),
                data_dir=str((base / "data").resolve()),
                log=str((base / "server.log").resolve()),
            )
        )
    for member in members:
        overrides = (peer_overrides or {}).get(member.id, {})
        specs = []
        for other in members:
            peer = None
            if other.id in overrides:
                h, p = overrides[other.id]
                peer = f"{h}:{p}"
            specs.append(member_spec(other, peer))
        write_member_config(member, specs, secret_file, extra)
    return members


def member_spec(member: EnsembleMember, peer: str | None = None) -> str:
    """``member`` as an entry of the ``members`` setting (``peer``: another address)."""
    role = ":observer" if member.role == "observer" else ""
    return f"{member.id}={peer or member.peer}{role};{member.client}"


def write_member_config(
    member: EnsembleMember,
    specs: list[str],
    secret_file: Path,
    extra: dict[str, object] | None = None,
) -> None:
    """Write ``member.config``: its own addresses and data directory, the ensemble
    (``specs``, as :func:`member_spec` gives them), the peer secret and ``extra`` keys."""
    host, _, port = member.client.rpartition(":")
    lines = [
        f"server_id = {member.id}",
        f"host = {json.dumps(host)}",
        f"port = {port}",
        f"data_dir = {json.dumps(member.data_dir)}",
        f"peer_secret_file = {json.dumps(str(secret_file.resolve()))}",
        'four_letter_words = ["*"]',
        "members = [",
        *(f"    {json.dumps(spec)}," for spec in specs),
        "]",
        *(f"{key} = {json.dumps(value)}" for key, value in (extra or {}).items()),
    ]
    Path(member.config).write_text("\n".join(lines) + "\n")


def start_member(member: EnsembleMember, *, env: dict[str, str] | None = None) -> int:
    """Start one member as a background process (its own session); returns its pid."""
    with open(member.log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "coord", "server", "--config", member.config],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    member.pid = process.pid
    return process.pid


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_ensemble(directory: Path) -> list[EnsembleMember]:
    """The members recorded in ``DIR/ensemble.json``.

    Raises:
        ToolError: there is no ensemble there.
    """
    path = directory / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ToolError(
            f"no ensemble in {directory} ({STATE_FILE} is missing); start one with "
            f"`coord ensemble up --dir {directory}`"
        ) from None
    except (OSError, ValueError) as exc:
        raise ToolError(f"{path} cannot be read: {exc}") from None
    return [EnsembleMember(**m) for m in data["members"]]


def _write_state(directory: Path, members: list[EnsembleMember]) -> None:
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps({"members": [asdict(m) for m in members]}, indent=2) + "\n")
    tmp.replace(directory / STATE_FILE)


def wait_for_leader(
    members: list[EnsembleMember], timeout: float, progress: Callable[[str], None]
) -> int:
    """Wait until every member answers and one of them leads; returns the leader's id.

    Raises:
        ToolError: not within ``timeout`` seconds (the message names the member logs).
    """
    deadline = time.monotonic() + timeout
    reported: set[int] = set()
    while time.monotonic() < deadline:
        leader = 0
        answering = 0
        for member in members:
            try:
                mode = srvr(member.client_address).get("Mode", "")
            except OSError:
                if member.pid and not _alive(member.pid):
                    raise ToolError(
                        f"member {member.id} exited during start-up; see {member.log}"
                    ) from None
                continue
            answering += 1
            if member.id not in reported:
                reported.add(member.id)
                progress(f"member {member.id} answers on {member.client}")
            if mode in ("leader", "standalone"):  # --size 1 is a standalone server
                leader = member.id
        if leader and answering == len(members):
            return leader
        time.sleep(0.1)
    logs = ", ".join(m.log for m in members)
    raise ToolError(f"no leader elected within {timeout:.0f} s; see the member logs: {logs}")


def ensemble_up(
    directory: Path,
    size: int = 3,
    *,
    observers: int = 0,
    timeout: float = 30.0,
    progress: Callable[[str], None] = lambda line: None,
) -> list[EnsembleMember]:
    """Start (or restart) a local ensemble in ``directory``; see the module docs.

    Raises:
        ToolError: members are already running there, or no leader was elected.
    """
    if size < 1 or size % 2 == 0:
        raise ToolError(f"--size must be an odd number of voters (1, 3, 5...), not {size}")
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / STATE_FILE).exists():
        members = read_ensemble(directory)
        running = [m.id for m in members if _alive(m.pid)]
        if running:
            raise ToolError(
                f"members {running} of the ensemble in {directory} are running; "
                f"`coord ensemble down --dir {directory}` first"
            )
        progress(f"restarting the {len(members)} members recorded in {directory}")
    else:
        members = write_member_configs(directory, size, observers=observers)
    for member in members:
        start_member(member)
        progress(f"started member {member.id} ({member.role}, pid {member.pid})")
    _write_state(directory, members)
    leader = wait_for_leader(members, timeout, progress)
    progress(f"ensemble up: member {leader} leads")
    return members


def ensemble_status(directory: Path) -> list[MemberStatus]:
    """Ask every recorded member for its mode and zxid."""
    rows = []
    for member in read_ensemble(directory):
        alive = _alive(member.pid)
        mode, zxid = "down", "-"
        if alive:
            try:
                fields = srvr(member.client_address)
                mode, zxid = fields.get("Mode", "?"), fields.get("Zxid", "?")
            except OSError:
                mode = "not answering"
        rows.append(MemberStatus(member, alive, mode, zxid))
    return rows


def format_status(rows: list[MemberStatus]) -> str:
    """``status`` rows as an aligned table."""
    header = ("id", "role", "pid", "mode", "zxid", "client", "peer")
    table = [header] + [
        (
            str(r.member.id),
            r.member.role,
            str(r.member.pid) if r.alive else "-",
            r.mode,
            r.zxid,
            r.member.client,
            r.member.peer,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


def ensemble_down(
    directory: Path,
    *,
    grace: float = 15.0,
    progress: Callable[[str], None] = lambda line: None,
) -> int:
    """Stop every recorded member (SIGTERM; SIGKILL after ``grace`` s); returns how many
    were running."""
    members = read_ensemble(directory)
    running = [m for m in members if _alive(m.pid)]
    for member in running:
        os.kill(member.pid, signal.SIGTERM)
        progress(f"stopping member {member.id} (pid {member.pid})")
    deadline = time.monotonic() + grace
    for member in running:
        while _alive(member.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(member.pid):
            progress(f"member {member.id} did not stop in {grace:.0f} s; killing it")
            os.kill(member.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(member.pid, os.WNOHANG)
    return len(running)
