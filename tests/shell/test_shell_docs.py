"""docs/shell.md stays true: every command is documented, every ``$ coord shell`` line of
its console blocks prints what the page shows, and the example script runs."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import types
from pathlib import Path

from coord.shell import COMMANDS
from coord.testing._server import CoordServerThread

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "shell.md"
EXAMPLE = ROOT / "examples" / "shell_seed.sh"
_CONSOLE = re.compile(r"^```console\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _env() -> dict[str, str]:
    """The environment with this interpreter's ``coord`` first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _transcript() -> list[tuple[str, list[str]]]:
    """The page's ``$ command`` lines with the output shown under each, in order."""
    steps: list[tuple[str, list[str]]] = []
    for block in _CONSOLE.findall(PAGE.read_text(encoding="utf-8")):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
    return steps


def test_shell_docs_document_every_command() -> None:
    text = PAGE.read_text(encoding="utf-8")
    missing = [name for name in COMMANDS if f"| `{name}" not in text]
    assert missing == [], f"docs/shell.md does not document {missing}"


def test_shell_docs_console_examples_print_what_the_page_shows() -> None:
    steps = _transcript()
    assert len(steps) >= 8
    with CoordServerThread() as server:
        for command, expected in steps:
            proc = subprocess.run(
                ["bash", "-c", command.replace("SERVER", server.address)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # the shell flushes each line: order is kept
                text=True,
                timeout=30,
                env=_env(),
                check=False,
            )
            assert proc.stdout.splitlines() == expected, command


def test_shell_seed_example_runs_against_coord() -> None:
    with CoordServerThread() as server:
        proc = subprocess.run(
            ["bash", str(EXAMPLE), server.address],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
            check=False,
        )
        leftover = server.call(lambda: sorted(server.server.state.nodes))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "color=blue replicas=3",
        "workers: w-0000000000, w-0000000001",
        "/shell-demo",
        "├── config",
        "└── workers",
        "    ├── w-0000000000",
        "    └── w-0000000001",
    ]
    assert proc.stderr.splitlines()[0] == "Created /shell-demo"
    assert not [path for path in leftover if path.startswith("/shell-demo")]


def test_shell_package_exports_its_public_names() -> None:
    """CONVENTIONS.md 12: ``coord.shell.__all__`` lists what the package shows, once."""
    package = importlib.import_module("coord.shell")
    assert len(package.__all__) == len(set(package.__all__))
    for name in package.__all__:
        assert getattr(package, name) is not None
    shown = [
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and isinstance(value, type | types.FunctionType)
        and value.__module__.startswith("coord")
    ]
    assert sorted(set(shown) - set(package.__all__)) == []
