"""The error hierarchy shared by the server and the SDK.

Every ZooKeeper result code has exactly one exception class; :func:`error_for_code` and the
``code`` attribute map between them both ways. :class:`ProtocolError` is what the codec
raises for bytes that are not a valid record or frame -- and the only thing it raises.
"""

from __future__ import annotations

from typing import ClassVar

from ._codes import ErrorCode

__all__ = [
    "APIError",
    "AuthFailedError",
    "BadArgumentsError",
    "BadVersionError",
    "ConnectionLossError",
    "CoordError",
    "DataInconsistencyError",
    "EphemeralOnLocalSessionError",
    "InvalidACLError",
    "InvalidCallbackError",
    "MarshallingError",
    "NewConfigNoQuorumError",
    "NoAuthError",
    "NoChildrenForEphemeralsError",
    "NoNodeError",
    "NoWatcherError",
    "NodeExistsError",
    "NotEmptyError",
    "NotReadOnlyError",
    "OperationTimeoutError",
    "ProtocolError",
    "QuotaExceededError",
    "ReconfigDisabledError",
    "ReconfigInProgressError",
    "RequestTimeoutError",
    "RolledBackError",
    "RuntimeInconsistencyError",
    "SessionClosedRequireSaslAuthError",
    "SessionExpiredError",
    "SessionMovedError",
    "SystemZooKeeperError",
    "ThrottledOpError",
    "UnimplementedError",
    "UnknownSessionError",
    "error_for_code",
]


class CoordError(Exception):
    """Root of every error coord raises on purpose.

    ``code`` is the ZooKeeper result code the error stands for (``None`` for errors that
    have no wire representation).
    """

    code: ClassVar[ErrorCode | None] = None

    def __init__(self, message: str = "", *, path: str | None = None) -> None:
        self.path = path
        if not message:
            doc = type(self).__doc__ or ""
            message = doc.splitlines()[0] if doc else ""
            if path is not None:
                message = f"{message.rstrip('.')}: {path}"
        super().__init__(message)


_REGISTRY: dict[int, type[CoordError]] = {}


def _register(cls: type[CoordError]) -> type[CoordError]:
    assert cls.code is not None
    assert cls.code not in _REGISTRY, cls
    _REGISTRY[cls.code] = cls
    return cls


def error_for_code(code: int, path: str | None = None) -> CoordError:
    """Build the exception for a ZooKeeper result code.

    Args:
        code: a result code from a reply header or a multi result (0 in a failed multi's
            results means the op was rolled back: :class:`RolledBackError`).
        path: the path the failed operation named, for the message.

    Returns:
        An instance of the class registered for ``code``; an unknown code gives a
        :class:`CoordError` whose message names the number.
    """
    cls = _REGISTRY.get(code)
    if cls is None:
        return CoordError(f"unknown ZooKeeper error code {code}", path=path)
    return cls(path=path)


# --- server-side failures -------------------------------------------------------------


@_register
class SystemZooKeeperError(CoordError):
    """The server failed in a way it cannot describe (ZooKeeper's SystemError)."""

    code = ErrorCode.SYSTEM_ERROR


@_register
class RuntimeInconsistencyError(CoordError):
    """A runtime inconsistency; in a failed multi, marks the ops after the failing one."""

    code = ErrorCode.RUNTIME_INCONSISTENCY


@_register
class DataInconsistencyError(CoordError):
    """The server found its data inconsistent."""

    code = ErrorCode.DATA_INCONSISTENCY


@_register
class ConnectionLossError(CoordError):
    """The connection to the server was lost before the reply arrived (raised by the SDK).

    The operation may or may not have been applied.
    """

    code = ErrorCode.CONNECTION_LOSS


@_register
class MarshallingError(CoordError):
    """A request or reply could not be encoded or decoded."""

    code = ErrorCode.MARSHALLING_ERROR


class ProtocolError(MarshallingError):
    """Bytes that are not a valid frame or record (raised by :mod:`coord.protocol`).

    The codec raises this and nothing else for malformed input; a server that gets it
    closes the offending connection.
    """


@_register
class UnimplementedError(CoordError):
    """The server does not implement this operation or node type."""

    code = ErrorCode.UNIMPLEMENTED


@_register
class OperationTimeoutError(CoordError):
    """The operation timed out on the server."""

    code = ErrorCode.OPERATION_TIMEOUT


@_register
class BadArgumentsError(CoordError):
    """Invalid arguments: a malformed path, a bad create mode or TTL, and the like."""

    code = ErrorCode.BAD_ARGUMENTS


@_register
class UnknownSessionError(CoordError):
    """The session is not known to the server."""

    code = ErrorCode.UNKNOWN_SESSION


@_register
class NewConfigNoQuorumError(CoordError):
    """A reconfiguration's new configuration has no connected quorum."""

    code = ErrorCode.NEW_CONFIG_NO_QUORUM


@_register
class ReconfigInProgressError(CoordError):
    """Another reconfiguration is in progress."""

    code = ErrorCode.RECONFIG_IN_PROGRESS


# --- API errors: the outcome of a well-formed request ---------------------------------


@_register
class APIError(CoordError):
    """Generic API error (ZooKeeper's APIError)."""

    code = ErrorCode.API_ERROR


@_register
class NoNodeError(CoordError):
    """The node does not exist (or, for create, its parent does not)."""

    code = ErrorCode.NO_NODE


@_register
class NoAuthError(CoordError):
    """The node's ACL does not grant the session the permission the operation needs."""

    code = ErrorCode.NO_AUTH


@_register
class BadVersionError(CoordError):
    """The expected version does not match the node's version."""

    code = ErrorCode.BAD_VERSION


@_register
class NoChildrenForEphemeralsError(CoordError):
    """Ephemeral nodes cannot have children."""

    code = ErrorCode.NO_CHILDREN_FOR_EPHEMERALS


@_register
class NodeExistsError(CoordError):
    """The node already exists."""

    code = ErrorCode.NODE_EXISTS


@_register
class NotEmptyError(CoordError):
    """The node has children, so it cannot be deleted."""

    code = ErrorCode.NOT_EMPTY


@_register
class SessionExpiredError(CoordError):
    """The session has expired; its ephemeral nodes are gone."""

    code = ErrorCode.SESSION_EXPIRED


@_register
class InvalidCallbackError(CoordError):
    """An invalid callback was given."""

    code = ErrorCode.INVALID_CALLBACK


@_register
class InvalidACLError(CoordError):
    """The ACL is empty, malformed, or uses the ``auth`` scheme without authentication."""

    code = ErrorCode.INVALID_ACL


@_register
class AuthFailedError(CoordError):
    """Authentication failed; the server closes the connection."""

    code = ErrorCode.AUTH_FAILED


@_register
class SessionMovedError(CoordError):
    """The session moved to another server."""

    code = ErrorCode.SESSION_MOVED


@_register
class NotReadOnlyError(CoordError):
    """A write was sent to a server in read-only mode."""

    code = ErrorCode.NOT_READ_ONLY


@_register
class EphemeralOnLocalSessionError(CoordError):
    """An ephemeral node cannot be created by a local session."""

    code = ErrorCode.EPHEMERAL_ON_LOCAL_SESSION


@_register
class NoWatcherError(CoordError):
    """No matching watch is registered (checkWatches/removeWatches)."""

    code = ErrorCode.NO_WATCHER


@_register
class RequestTimeoutError(CoordError):
    """The request timed out."""

    code = ErrorCode.REQUEST_TIMEOUT


@_register
class ReconfigDisabledError(CoordError):
    """Dynamic reconfiguration is disabled on this server."""

    code = ErrorCode.RECONFIG_DISABLED


@_register
class SessionClosedRequireSaslAuthError(CoordError):
    """The server requires SASL authentication and closed the session."""

    code = ErrorCode.SESSION_CLOSED_REQUIRE_SASL_AUTH


@_register
class QuotaExceededError(CoordError):
    """The write would exceed a hard quota on the subtree."""

    code = ErrorCode.QUOTA_EXCEEDED


@_register
class ThrottledOpError(CoordError):
    """The server is overloaded and throttled the request; retry later."""

    code = ErrorCode.THROTTLED_OP


@_register
class RolledBackError(CoordError):
    """In a failed multi: this op was valid but rolled back because another op failed."""

    code = ErrorCode.OK
