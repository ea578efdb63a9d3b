"""Hypothesis strategies for every record of :mod:`coord.protocol`, shared by its tests.

Strategies are derived from each record's dataclass fields and type hints, so a new record
made of known field types gets one for free; a field type the builder does not know makes
:func:`records` raise ``TypeError`` (and the coverage test in test_protocol_records fail).

Integer widths are not visible in the type hints (jute ``int`` and ``long`` are both
``int``), so they are written out here from ``zookeeper.jute``: every ``int`` field not in
:data:`LONG_FIELDS` is a jute ``int`` (32 bits).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from hypothesis import strategies as st

from coord.protocol import (
    CheckVersionRequest,
    ConnectRequest,
    ConnectResponse,
    Create2Response,
    CreateRequest,
    CreateResponse,
    CreateTTLRequest,
    DeleteRequest,
    ErrorResponse,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    MultiOp,
    MultiResult,
    OpCode,
    ReconfigRequest,
    Record,
    ReplyHeader,
    SetDataRequest,
    SetDataResponse,
    SetWatches,
    SetWatches2,
    Stat,
)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

int32s = st.integers(INT32_MIN, INT32_MAX)
int64s = st.integers(INT64_MIN, INT64_MAX)
#: Any unicode text (hypothesis never draws lone surrogates, which UTF-8 cannot encode).
texts = st.text(max_size=12)
binaries = st.binary(max_size=32)

#: The jute ``long`` fields of each record (``zookeeper.jute``); every other int is ``int``.
#: Stat is the STAT struct ``q q q q i i i q i i q``.
LONG_FIELDS: dict[type[Record], frozenset[str]] = {
    Stat: frozenset({"czxid", "mzxid", "ctime", "mtime", "ephemeral_owner", "pzxid"}),
    ConnectRequest: frozenset({"last_zxid_seen", "session_id"}),
    ConnectResponse: frozenset({"session_id"}),
    ReplyHeader: frozenset({"zxid"}),
    ReconfigRequest: frozenset({"cur_config_id"}),
    CreateTTLRequest: frozenset({"ttl"}),
    SetWatches: frozenset({"relative_zxid"}),
    SetWatches2: frozenset({"relative_zxid"}),
}

#: The request record of each op a multi may carry (``MultiOperationRecord``).
MULTI_OP_RECORDS: dict[int, type[Record]] = {
    OpCode.CREATE: CreateRequest,
    OpCode.CREATE2: CreateRequest,
    OpCode.CREATE_CONTAINER: CreateRequest,
    OpCode.CREATE_TTL: CreateTTLRequest,
    OpCode.DELETE: DeleteRequest,
    OpCode.DELETE_CONTAINER: DeleteRequest,
    OpCode.SET_DATA: SetDataRequest,
    OpCode.CHECK: CheckVersionRequest,
    OpCode.GET_CHILDREN: GetChildrenRequest,
    OpCode.GET_DATA: GetDataRequest,
}

#: The body of each result type of a multi response (``MultiResponse``); ``None``: no body.
MULTI_RESULT_BODIES: dict[int, type[Record] | None] = {
    OpCode.CREATE: CreateResponse,
    OpCode.CREATE2: Create2Response,
    OpCode.CREATE_TTL: Create2Response,
    OpCode.CREATE_CONTAINER: Create2Response,
    OpCode.DELETE: None,
    OpCode.DELETE_CONTAINER: None,
    OpCode.CHECK: None,
    OpCode.SET_DATA: SetDataResponse,
    OpCode.GET_CHILDREN: GetChildrenResponse,
    OpCode.GET_DATA: GetDataResponse,
}


def int_fields(cls: type[Record]) -> list[tuple[str, bool]]:
    """``(name, is_long)`` for every ``int`` field of ``cls``."""
    if not dataclasses.is_dataclass(cls):
        return []
    hints = typing.get_type_hints(cls)
    longs = LONG_FIELDS.get(cls, frozenset())
    return [(f.name, f.name in longs) for f in dataclasses.fields(cls) if hints[f.name] is int]


def _multi_ops() -> st.SearchStrategy[MultiOp]:
    return st.one_of(
        [st.builds(MultiOp, st.just(op), records(rec)) for op, rec in MULTI_OP_RECORDS.items()]
    )


def _multi_results() -> st.SearchStrategy[MultiResult]:
    options: list[st.SearchStrategy[MultiResult]] = [
        # A failed (or rolled-back) op: type -1 and an ErrorResponse body repeating the code.
        int32s.map(lambda err: MultiResult(OpCode.ERROR, err, ErrorResponse(err)))
    ]
    for op, body in MULTI_RESULT_BODIES.items():
        options.append(
            st.builds(
                MultiResult, st.just(op), int32s, st.none() if body is None else records(body)
            )
        )
    return st.one_of(options)


def _for_hint(owner: type, name: str, hint: Any) -> st.SearchStrategy[Any]:
    if hint is bool:
        return st.booleans()
    if hint is int:
        return int64s if name in LONG_FIELDS.get(owner, ()) else int32s
    if hint is str:
        return texts
    if hint is bytes:
        return binaries
    if isinstance(hint, types.UnionType) and set(typing.get_args(hint)) == {bytes, type(None)}:
        return st.none() | binaries
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            element = _for_hint(owner, name, args[0])
            return st.lists(element, max_size=3).map(tuple)
    if hint is MultiOp:
        return _multi_ops()
    if hint is MultiResult:
        return _multi_results()
    if isinstance(hint, type) and issubclass(hint, Record):
        return records(hint)
    raise TypeError(f"no strategy for {owner.__name__}.{name}: {hint!r}")


_RECORDS: dict[type[Record], st.SearchStrategy[Any]] = {}


def records(cls: type[Record]) -> st.SearchStrategy[Any]:
    """Every value of record class ``cls``, built from its fields' type hints.

    Raises:
        TypeError: a field has a type this builder does not know.
    """
    if cls not in _RECORDS:
        if dataclasses.is_dataclass(cls):
            hints = typing.get_type_hints(cls)
            fields = {
                f.name: _for_hint(cls, f.name, hints[f.name]) for f in dataclasses.fields(cls)
            }
            _RECORDS[cls] = st.builds(cls, **fields)
        else:
            # Records without fields (_Empty subclasses: PingRequest, EmptyResponse, ...).
            _RECORDS[cls] = st.builds(cls)
    return _RECORDS[cls]
