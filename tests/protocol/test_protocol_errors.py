"""The error hierarchy and its code registry; coord.protocol stays sans-IO."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kazoo.exceptions import EXCEPTIONS as KAZOO_EXCEPTIONS

import coord.protocol
from coord.protocol import (
    CoordError,
    ErrorCode,
    FrameTooLargeError,
    MarshallingError,
    NoNodeError,
    ProtocolError,
    RolledBackError,
    error_for_code,
)

FAILURE_CODES = [code for code in ErrorCode if code is not ErrorCode.OK]

PROTOCOL_DIR = Path(coord.protocol.__file__).parent
#: Modules a sans-IO core must not import (CONVENTIONS item 1).
FORBIDDEN_MODULES = frozenset(
    {"anyio", "asyncio", "trio", "socket", "selectors", "ssl", "threading", "time", "random"}
)


def _exported_error_classes() -> list[type[CoordError]]:
    exported = (getattr(coord.protocol, name) for name in coord.protocol.__all__)
    return [obj for obj in exported if isinstance(obj, type) and issubclass(obj, CoordError)]


# --- registry --------------------------------------------------------------------------


@pytest.mark.parametrize("code", FAILURE_CODES, ids=lambda code: code.name)
def test_error_for_code_gives_the_class_owning_the_code(code: ErrorCode) -> None:
    """Every ErrorCode except OK gives an exception whose class declares that code."""
    exc = error_for_code(code)
    cls = type(exc)
    assert isinstance(exc, CoordError)
    assert cls is not CoordError
    assert cls.code == code
    assert cls.__dict__["code"] == code  # declared by the class itself, not inherited


def test_error_for_code_maps_codes_to_distinct_classes() -> None:
    """No two error codes share an exception class."""
    classes = {type(error_for_code(code)) for code in FAILURE_CODES}
    assert len(classes) == len(FAILURE_CODES)


def test_CoordError_each_code_is_declared_by_exactly_one_exported_class() -> None:
    """Among exported errors, each code is declared (not inherited) by exactly one class."""
    declared: dict[int, list[str]] = {}
    for cls in _exported_error_classes():
        if cls.__dict__.get("code") is not None:
            declared.setdefault(cls.__dict__["code"], []).append(cls.__name__)
    assert {code: names for code, names in declared.items() if len(names) > 1} == {}
    assert set(FAILURE_CODES) <= set(declared)


@pytest.mark.parametrize(
    "cls",
    [cls for cls in _exported_error_classes() if cls.code is not None],
    ids=lambda cls: cls.__name__,
)
def test_CoordError_subclass_with_a_code_is_registered(cls: type[CoordError]) -> None:
    """error_for_code(cls.code) gives cls (or, for a refinement such as ProtocolError that
    inherits its code, the base class declaring it)."""
    assert cls.code is not None
    registered = type(error_for_code(cls.code))
    if "code" in cls.__dict__:
        assert registered is cls
    else:
        assert issubclass(cls, registered)
        assert registered.__dict__["code"] == cls.code


def test_error_for_code_OK_in_a_multi_result_is_RolledBackError() -> None:
    """Code 0 in a failed multi's results marks a rolled-back op and maps to RolledBackError
    (ZooKeeper DataTree.processTxn writes ErrorTxn(OK) for ops before the failing one)."""
    assert RolledBackError.code == ErrorCode.OK
    assert type(error_for_code(ErrorCode.OK)) is RolledBackError


def test_error_for_code_unknown_code_gives_CoordError_naming_it() -> None:
    """An unknown code gives a plain CoordError whose message contains the number."""
    exc = error_for_code(-999, path="/x")
    assert type(exc) is CoordError
    assert "-999" in str(exc)
    assert exc.path == "/x"
    assert "4242" in str(error_for_code(4242))


def test_error_for_code_keeps_the_path() -> None:
    """The path given to error_for_code is kept on the exception and named in its message."""
    exc = error_for_code(ErrorCode.NO_NODE, "/a/b")
    assert isinstance(exc, NoNodeError)
    assert exc.path == "/a/b"
    assert "/a/b" in str(exc)


def test_ErrorCode_matches_kazoo_codes() -> None:
    """Our result codes are exactly the ones kazoo knows (ZooKeeper's KeeperException.Code)."""
    assert {int(code) for code in ErrorCode} == set(KAZOO_EXCEPTIONS)


# --- hierarchy -------------------------------------------------------------------------


def test_ProtocolError_is_a_MarshallingError() -> None:
    """Malformed bytes are ZooKeeper's marshalling error; FrameTooLargeError is one of them."""
    assert issubclass(ProtocolError, MarshallingError)
    assert ProtocolError.code == ErrorCode.MARSHALLING_ERROR
    assert issubclass(FrameTooLargeError, ProtocolError)
    assert isinstance(ProtocolError("bad"), CoordError)


@pytest.mark.parametrize("cls", _exported_error_classes(), ids=lambda cls: cls.__name__)
def test_CoordError_subclass_has_a_docstring_and_a_default_message(
    cls: type[CoordError],
) -> None:
    """Every exported error is documented, and without a message uses its docstring's first
    line."""
    assert cls.__doc__ and cls.__doc__.strip()
    assert str(cls()) == cls.__doc__.splitlines()[0]


# --- sans-IO ---------------------------------------------------------------------------


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(PROTOCOL_DIR.glob("*.py")), ids=lambda path: path.name)
def test_coord_protocol_module_imports_no_io(path: Path) -> None:
    """No coord.protocol module imports anyio, asyncio, trio, socket, threading, time or
    random."""
    assert _imported_modules(path) & FORBIDDEN_MODULES == set()


def test_coord_protocol_import_loads_no_io_modules() -> None:
    """Importing coord.protocol in a fresh interpreter loads no async or socket module."""
    code = (
        "import json, sys; before = set(sys.modules); import coord.protocol; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    root = str(PROTOCOL_DIR.parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert loaded & {"anyio", "asyncio", "trio", "socket", "selectors", "ssl"} == set()
