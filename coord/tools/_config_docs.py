"""The settings table of docs/configuration.md, generated from :class:`ServerConfig`.

The table between the markers :data:`BEGIN` and :data:`END` in docs/configuration.md is
written by this module from the fields of ``ServerConfig`` (name, type, default,
``metadata["doc"]``), so it cannot drift from the code; the rest of the page is prose.
``tests/tools/test_config_docs.py`` fails when the page is out of date.

Regenerate (after adding or changing a field)::

    python -m coord.tools._config_docs --write

``--check`` exits 1 and says so when the page is stale; without an option the table is
printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from coord.server._config import _FIELD_TYPES as FIELD_TYPES
from coord.server._config import (
    ENV_PREFIX,
    ServerConfig,
    _base,
    _is_optional,
    _is_str_map,
    _is_str_tuple,
    _is_table,
)

__all__ = ["BEGIN", "DOC_PATH", "END", "REGENERATE", "render_settings_table", "update_page"]

#: The command that rewrites the table (quoted in failure messages).
REGENERATE: Final = "python -m coord.tools._config_docs --write"
BEGIN: Final = f"<!-- BEGIN GENERATED settings table: edit ServerConfig, then run {REGENERATE} -->"
END: Final = "<!-- END GENERATED settings table -->"
#: docs/configuration.md of a source checkout.
DOC_PATH: Final = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

#: What the Meaning column shows as code: quoted values, [tables], field names with an
#: underscore, coord.* logger and plugin names, COORD_* variables, <placeholders>.
_CODE = re.compile(
    r'"[^"\s][^"]*"|\[[^\]\s]+\]|\bCOORD_\w+|\bcoord(?:[._]\w+)+|[\w.]*<[\w ]*>[\w.]*|\b(?:'
    + "|".join(
        sorted(
            (f.name for f in dataclasses.fields(ServerConfig) if "_" in f.name),
            key=len,
            reverse=True,
        )
    )
    + r")\b"
)


def _type(hint: Any) -> str:
    base = _base(hint)
    if _is_table(base):
        name = "table of tables"
    elif _is_str_map(base):
        name = "table of str"
    elif _is_str_tuple(base):
        name = "list of str"
    else:
        name = base.__name__
    return f"{name}, optional" if _is_optional(hint) else name


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    else:
        value = f.default_factory()  # type: ignore[operator]
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple):
        return "`[" + ", ".join(f'"{v}"' for v in value) + "]`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value!r}`"
    return f"`{value}`"


def _meaning(doc: str) -> str:
    """Field documentation as a table cell: quoted values in code spans, pipes escaped."""
    return _CODE.sub(lambda m: f"`{m.group(0)}`", doc).replace("|", "\\|")


def render_settings_table() -> str:
    """The markdown table of every :class:`ServerConfig` field, in declaration order.

    Returns:
        The table (header, separator, one row per field), ending with a newline.
    """
    rows = [
        "| TOML key | Type | Default | CLI flag | Environment variable | Meaning |",
        "|---|---|---|---|---|---|",
    ]
    for f in dataclasses.fields(ServerConfig):
        hint = FIELD_TYPES[f.name]
        flag = "--" + f.name.replace("_", "-")
        flags = f"`{flag}`"
        if _base(hint) is bool:
            flags += f", `--no-{flag[2:]}`"
        env = f"`{ENV_PREFIX}{f.name.upper()}`"
        rows.append(
            f"| `{f.name}` | {_type(hint)} | {_default(f)} | {flags} | {env} | "
            f"{_meaning(f.metadata['doc'])} |"
        )
    return "\n".join(rows) + "\n"


def update_page(text: str) -> str:
    """``text`` (a configuration page) with the table between the markers regenerated.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page has no {BEGIN!r} ... {END!r} markers")
    return text[: start + len(BEGIN)] + "\n" + render_settings_table() + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m coord.tools._config_docs [--write | --check] [--path FILE]``."""
    parser = argparse.ArgumentParser(
        prog="python -m coord.tools._config_docs",
        description="Print, check or rewrite the settings table of docs/configuration.md.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the page's table")
    action.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    parser.add_argument("--path", type=Path, default=DOC_PATH, help="the page [%(default)s]")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        sys.stdout.write(render_settings_table())
        return 0
    try:
        text = args.path.read_text(encoding="utf-8")
        new = update_page(text)
    except (OSError, ValueError) as exc:
        print(f"config_docs: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if new != text:
            print(f"{args.path} is out of date with ServerConfig; run {REGENERATE}")
            return 1
        print(f"{args.path} is up to date")
        return 0
    if new != text:
        args.path.write_text(new, encoding="utf-8")
        print(f"rewrote the settings table of {args.path}")
    else:
        print(f"{args.path} was up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
