"""Public names are exported on purpose (CONVENTIONS.md 12): every package's ``__all__``
names exist, once each, and every public module-level name a package defines or imports
from its private modules is listed."""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = [
    "coord",
    "coord.protocol",
    "coord.server",
    "coord.client",
    "coord.plugins",
    "coord.testing",
    "coord.tools",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_PublicAPI_all_names_resolve_once(name: str) -> None:
    """Each name in __all__ is importable from the package and listed only once."""
    package = importlib.import_module(name)
    exported = package.__all__
    assert len(exported) == len(set(exported)), name
    for attribute in exported:
        assert getattr(package, attribute) is not None, f"{name}.{attribute}"


@pytest.mark.parametrize("name", PACKAGES)
def test_PublicAPI_no_public_name_left_out(name: str) -> None:
    """A public class or function visible on the package is in its __all__."""
    package = importlib.import_module(name)
    missing = [
        attribute
        for attribute, value in vars(package).items()
        if not attribute.startswith("_")
        and isinstance(value, type | types.FunctionType)
        and getattr(value, "__module__", "").startswith("coord")
        and attribute not in package.__all__
    ]
    assert missing == [], f"{name} exposes {missing} without listing them in __all__"
