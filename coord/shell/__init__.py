"""``coord shell``: a ZooKeeper shell with zkCli.sh's commands and output, on coord's SDK.

Works against coord and Apache ZooKeeper. Interactive (tab completion of commands and
paths), one-shot (``-c "get /x"``), from stdin, or in JSON (``--json``). See docs/shell.md.
"""

from coord.shell._format import UsageError, parse_acl, split_command
from coord.shell._repl import Completer, run_shell
from coord.shell._shell import COMMANDS, Shell, ShellCommand

__all__ = [
    "COMMANDS",
    "Completer",
    "Shell",
    "ShellCommand",
    "UsageError",
    "parse_acl",
    "run_shell",
    "split_command",
]
