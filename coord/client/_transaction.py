"""Transactions (ZooKeeper ``multi``) and batched reads (``multiRead``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from coord.protocol import (
    ACL,
    CheckVersionRequest,
    CoordError,
    Create2Response,
    CreateMode,
    CreateRequest,
    CreateResponse,
    CreateTTLRequest,
    DeleteRequest,
    ErrorResponse,
    MultiOp,
    MultiResponse,
    OpCode,
    SetDataRequest,
    SetDataResponse,
    error_for_code,
)

from ._paths import validate_path
from ._types import (
    CheckResult,
    CreateResult,
    DeleteResult,
    OpResult,
    SetResult,
    TransactionFailed,
)

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["GetChildren", "GetData", "ReadOp", "ReadResult", "Transaction"]


def create_op(
    spath: str,
    data: bytes,
    acl: tuple[ACL, ...],
    *,
    ephemeral: bool,
    sequential: bool,
    container: bool,
    ttl: float | None,
    with_stat: bool,
) -> tuple[int, CreateRequest | CreateTTLRequest]:
    """The opcode and request record of a create with these options.

    Raises:
        BadArgumentsError: a container that is also ephemeral, sequential or has a TTL; a
            TTL on an ephemeral node, or a TTL that is not positive.
    """
    from coord.protocol import BadArgumentsError

    if container:
        if ephemeral or sequential or ttl is not None:
            raise BadArgumentsError("a container node cannot be ephemeral, sequential or TTL")
        return OpCode.CREATE_CONTAINER, CreateRequest(spath, data, acl, CreateMode.CONTAINER)
    if ttl is not None:
        if ephemeral:
            raise BadArgumentsError("an ephemeral node cannot have a TTL")
        ttl_ms = round(ttl * 1000)
        if ttl_ms <= 0:
            raise BadArgumentsError("ttl must be positive")
        mode = (
            CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL
            if sequential
            else CreateMode.PERSISTENT_WITH_TTL
        )
        return OpCode.CREATE_TTL, CreateTTLRequest(spath, data, acl, mode, ttl_ms)
    if ephemeral:
        mode = CreateMode.EPHEMERAL_SEQUENTIAL if sequential else CreateMode.EPHEMERAL
    else:
        mode = CreateMode.PERSISTENT_SEQUENTIAL if sequential else CreateMode.PERSISTENT
    op = OpCode.CREATE2 if with_stat else OpCode.CREATE
    return op, CreateRequest(spath, data, acl, mode)


class Transaction:
    """Ops applied atomically: all of them or none (ZooKeeper's ``multi``).

    Build it with :meth:`create`, :meth:`set`, :meth:`delete` and :meth:`check`, which
    return the transaction so calls can be chained, then ``await txn.commit()``::

        txn = client.transaction()
        txn.check("/app/config", version=3)
        txn.set("/app/config", b"v4", version=3)
        txn.create("/app/log/entry-", b"v4", sequential=True)
        results = await txn.commit()

    A transaction is never retried by the client: after
    :class:`~coord.ConnectionLossError` it may or may not have been applied.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._ops: list[MultiOp] = []
        self._paths: list[str] = []
        self._committed = False

    def __len__(self) -> int:
        return len(self._ops)

    def _add(self, op: int, request: object, path: str) -> Transaction:
        if self._committed:
            raise RuntimeError("the transaction was already committed")
        self._ops.append(MultiOp(op, request))  # type: ignore[arg-type]
        self._paths.append(path)
        return self

    def create(
        self,
        path: str,
        data: bytes = b"",
        *,
        acl: Iterable[ACL] | None = None,
        ephemeral: bool = False,
        sequential: bool = False,
        container: bool = False,
        ttl: float | None = None,
    ) -> Transaction:
        """Add a create (options as :meth:`Client.create`; no ``makepath``)."""
        client = self._client
        validate_path(path, sequential=sequential)
        op, request = create_op(
            client._chroot.to_server(path),
            bytes(data),
            client._acl(acl),
            ephemeral=ephemeral,
            sequential=sequential,
            container=container,
            ttl=ttl,
            with_stat=False,
        )
        return self._add(op, request, path)

    def set(self, path: str, data: bytes, version: int = -1) -> Transaction:
        """Add a set of ``path``'s data, if its version is ``version`` (-1: any)."""
        validate_path(path)
        spath = self._client._chroot.to_server(path)
        return self._add(OpCode.SET_DATA, SetDataRequest(spath, bytes(data), version), path)

    def delete(self, path: str, version: int = -1) -> Transaction:
        """Add a delete of ``path``, if its version is ``version`` (-1: any)."""
        validate_path(path)
        spath = self._client._chroot.to_server(path)
        return self._add(OpCode.DELETE, DeleteRequest(spath, version), path)

    def check(self, path: str, version: int) -> Transaction:
        """Add a check that ``path`` exists with version ``version``."""
        validate_path(path)
        spath = self._client._chroot.to_server(path)
        return self._add(OpCode.CHECK, CheckVersionRequest(spath, version), path)

    async def commit(self) -> list[OpResult]:
        """Apply the ops atomically.

        Returns:
            One result per op, in order: :class:`CreateResult` (the created path and its
            Stat), :class:`SetResult`, :class:`DeleteResult`, :class:`CheckResult`.

        Raises:
            TransactionFailed: an op failed, so nothing was applied; it carries every op's
                error.
            ConnectionLossError: the outcome is unknown.
            SessionExpiredError, ClientClosedError: the client cannot send.
        """
        if self._committed:
            raise RuntimeError("the transaction was already committed")
        self._committed = True
        if not self._ops:
            return []
        response = await self._client._multi(tuple(self._ops), self._paths[0])
        return self._results(response)

    def _results(self, response: MultiResponse) -> list[OpResult]:
        results = response.results
        chroot = self._client._chroot
        if any(r.err != 0 or r.type == OpCode.ERROR for r in results):
            errors: list[CoordError] = []
            failed = -1
            for index, result in enumerate(results):
                code = result.err
                if isinstance(result.body, ErrorResponse):
                    code = result.body.err
                if code != 0 and failed < 0:
                    failed = index
                path = self._paths[index] if index < len(self._paths) else None
                errors.append(error_for_code(code, path))
            raise TransactionFailed(tuple(errors), max(failed, 0))
        out: list[OpResult] = []
        for result in results:
            body = result.body
            if isinstance(body, Create2Response):
                out.append(CreateResult(chroot.to_client(body.path), body.stat))
            elif isinstance(body, CreateResponse):
                out.append(CreateResult(chroot.to_client(body.path), None))
            elif isinstance(body, SetDataResponse):
                out.append(SetResult(body.stat))
            elif result.type in (OpCode.DELETE, OpCode.DELETE_CONTAINER):
                out.append(DeleteResult())
            else:
                out.append(CheckResult())
        return out


# --- multiRead -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetData:
    """A ``get`` in :meth:`Client.multi_read`: yields ``(data, stat)``."""

    path: str


@dataclass(frozen=True, slots=True)
class GetChildren:
    """A ``children`` in :meth:`Client.multi_read`: yields the list of child names."""

    path: str


ReadOp: TypeAlias = GetData | GetChildren
#: One result of :meth:`Client.multi_read`: the read's value, or the error it got.
ReadResult: TypeAlias = "tuple[bytes, Stat] | list[str] | CoordError"


def read_ops(ops: Sequence[ReadOp]) -> list[str]:
    """Validate the paths of read ops and return them."""
    paths = []
    for op in ops:
        if not isinstance(op, (GetData, GetChildren)):
            raise TypeError(f"multi_read takes GetData and GetChildren ops, not {op!r}")
        paths.append(validate_path(op.path))
    return paths


if TYPE_CHECKING:
    from coord.protocol import Stat
