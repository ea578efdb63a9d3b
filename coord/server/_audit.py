"""The audit log: who did what to which path, and whether it was allowed.

Theory of operation
-------------------
When ``ServerConfig.audit`` is on, the server reports every state-changing request (once
its result is known: after apply), every authentication attempt (``addauth`` and SASL)
and its own start and stop as an :class:`AuditEvent`. :class:`Auditor` writes each one as
a single line to the logger ``coord.audit`` (a logger of its own, so operators route it to
its own file) and then hands it to every ``coord_audit_event`` hook implementation.

The result is ``allowed`` (the request succeeded), ``denied`` (NoAuth, or a failed
authentication) or ``error`` (any other error code; ``error`` names it). Reads are not
audited (as in ZooKeeper's audit log), nor are requests that never reach the pipeline.

The line is ``key=value`` pairs separated by spaces, values quoted (JSON string syntax)
when they contain a space, a quote or ``=``; ``ids`` is a comma-separated list of the
session's ``scheme:id`` identities::

    session=0x1000000a3f20000 client=127.0.0.1:50122 ids=ip:127.0.0.1,digest:alice:Xh...=
    operation=create path=/app/config result=allowed
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from coord.plugins._manager import notify_audit_event
from coord.protocol import ErrorCode, Id, OpCode

if TYPE_CHECKING:
    import pluggy

__all__ = ["AUDIT_LOGGER", "AuditEvent", "Auditor"]

#: The name of the audit logger.
AUDIT_LOGGER: Final = "coord.audit"

audit_log = logging.getLogger(AUDIT_LOGGER)

#: Operation names, as ZooKeeper's audit log and ``zookeeper.jute`` spell them.
OPERATION_NAMES: Final[dict[int, str]] = {
    OpCode.CREATE: "create",
    OpCode.CREATE2: "create",
    OpCode.CREATE_CONTAINER: "createContainer",
    OpCode.CREATE_TTL: "createTTL",
    OpCode.DELETE: "delete",
    OpCode.SET_DATA: "setData",
    OpCode.SET_ACL: "setAcl",
    OpCode.CHECK: "check",
    OpCode.MULTI: "multi",
    OpCode.CLOSE_SESSION: "closeSession",
    OpCode.RECONFIG: "reconfig",
    OpCode.AUTH: "addauth",
    OpCode.SASL: "sasl",
}

ALLOWED: Final = "allowed"
DENIED: Final = "denied"
ERROR: Final = "error"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited event (what ``coord_audit_event`` receives).

    Attributes:
        time: wall-clock time of the event, seconds since the epoch.
        operation: ``create``, ``delete``, ``setData``, ``setAcl``, ``multi``,
            ``closeSession``, ``expireSession``, ``addauth``, ``sasl``, ``serverStart``,
            ``serverStop`` ...
        result: ``allowed``, ``denied`` or ``error``.
        session: the session id (0 before a session exists, and for server events).
        client: the client's ``host:port`` ("" for server events).
        ids: the session's identities as ``scheme:id`` (for ``addauth``/``sasl``: after
            the attempt).
        path: the znode path ("" when none; for a multi, its ops' paths joined by ``,``).
        error: the ZooKeeper error name when the result is not ``allowed`` (``NO_AUTH``,
            ``AUTH_FAILED``, ``NO_NODE`` ...), else "".
        detail: extra text (the scheme of an ``addauth``), else "".
    """

    time: float
    operation: str
    result: str
    session: int = 0
    client: str = ""
    ids: tuple[str, ...] = ()
    path: str = ""
    error: str = ""
    detail: str = ""

    def fields(self) -> dict[str, object]:
        """The event as log record fields (the JSON log format's keys)."""
        return {
            "session": f"0x{self.session:x}",
            "client": self.client,
            "ids": list(self.ids),
            "operation": self.operation,
            "path": self.path,
            "result": self.result,
            "error": self.error,
            "detail": self.detail,
        }

    def line(self) -> str:
        """The event as one ``key=value`` log line."""
        fields: list[tuple[str, str]] = [
            ("session", f"0x{self.session:x}"),
            ("client", self.client),
            ("ids", ",".join(self.ids)),
            ("operation", self.operation),
            ("path", self.path),
            ("result", self.result),
        ]
        if self.error:
            fields.append(("error", self.error))
        if self.detail:
            fields.append(("detail", self.detail))
        return " ".join(f"{key}={_quote(value)}" for key, value in fields)


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' "=\\') and value.isprintable():
        return value
    return json.dumps(value, ensure_ascii=False)


def _result(err: int) -> tuple[str, str]:
    if err == 0:
        return ALLOWED, ""
    try:
        name = ErrorCode(err).name
    except ValueError:
        name = str(err)
    if err in (ErrorCode.NO_AUTH, ErrorCode.AUTH_FAILED):
        return DENIED, name
    return ERROR, name


def _request_path(request: Any) -> str:
    path = getattr(request, "path", None)
    if isinstance(path, str):
        return path
    ops = getattr(request, "ops", None)
    if ops is not None:
        return ",".join(_request_path(getattr(op, "request", op)) for op in ops)
    return ""


class Auditor:
    """Writes audit events to ``coord.audit`` and the ``coord_audit_event`` hooks.

    Args:
        plugins: the plugin manager whose ``coord_audit_event`` implementations get
            every event.
        enabled: whether to audit at all (``ServerConfig.audit``); when off every method
            returns at once.
    """

    def __init__(self, plugins: pluggy.PluginManager | None, enabled: bool) -> None:
        self.plugins = plugins
        self.enabled = enabled

    def emit(self, event: AuditEvent) -> None:
        """Log ``event`` and deliver it to the hooks (a failing hook is logged only)."""
        if not self.enabled:
            return
        audit_log.info("%s", event.line(), extra=event.fields())
        if self.plugins is not None:
            notify_audit_event(self.plugins, event)

    def request(
        self,
        op: int,
        request: Any,
        err: int,
        *,
        session: int,
        client: str,
        ids: tuple[Id, ...],
    ) -> None:
        """A state-changing request finished with error code ``err`` (0: success)."""
        if not self.enabled:
            return
        result, error = _result(err)
        self.emit(
            AuditEvent(
                time=time.time(),
                operation=OPERATION_NAMES.get(op, f"op{op}"),
                result=result,
                session=session,
                client=client,
                ids=tuple(f"{i.scheme}:{i.id}" for i in ids),
                path=_request_path(request),
                error=error,
            )
        )

    def authentication(
        self,
        op: int,
        scheme: str,
        ok: bool,
        *,
        session: int,
        client: str,
        ids: tuple[Id, ...],
    ) -> None:
        """An ``addauth`` (``OpCode.AUTH``) or SASL exchange (``OpCode.SASL``) ended."""
        if not self.enabled:
            return
        self.emit(
            AuditEvent(
                time=time.time(),
                operation=OPERATION_NAMES.get(op, f"op{op}"),
                result=ALLOWED if ok else DENIED,
                session=session,
                client=client,
                ids=tuple(f"{i.scheme}:{i.id}" for i in ids),
                error="" if ok else "AUTH_FAILED",
                detail=scheme,
            )
        )

    def session_expired(self, session_id: int) -> None:
        """The server closes a session itself (expiry): its ephemeral nodes go."""
        if not self.enabled:
            return
        self.emit(
            AuditEvent(
                time=time.time(), operation="expireSession", result=ALLOWED, session=session_id
            )
        )

    def server(self, operation: str, addresses: list[tuple[str, int]] | None = None) -> None:
        """The server started (``serverStart``) or is stopping (``serverStop``)."""
        if not self.enabled:
            return
        detail = ",".join(f"{h}:{p}" for h, p in addresses or ())
        self.emit(AuditEvent(time=time.time(), operation=operation, result=ALLOWED, detail=detail))
