"""Running the shell: interactively (readline, tab completion), one-shot, or from stdin.

``coord shell HOST:PORT`` on a terminal reads commands with GNU readline: Tab completes
command names and, in the words that are paths, node paths (listing the parent on the
server); history is kept in ``~/.coord_shell_history``. With ``-c CMD`` (repeatable) it
runs those commands and exits; when stdin is not a terminal it runs each line of stdin.
Either way the exit status is that of the last command that failed (0 if none did), and
``--exit-on-error`` stops at the first failure.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import TextIO

from coord.client import TlsOptions
from coord.protocol import AuthFailedError, ConnectionLossError, CoordError

from ._shell import COMMANDS, FAILED, OK, Shell

__all__ = ["Completer", "run_shell"]

HISTORY_FILE = "~/.coord_shell_history"


class Completer:
    """Readline completion of command names and node paths.

    Args:
        shell: the shell whose session lists the children.
    """

    def __init__(self, shell: Shell) -> None:
        self._shell = shell
        self._matches: list[str] = []

    def candidates(self, line: str, word: str) -> list[str]:
        """The completions of ``word``, the last (partial) word of ``line``.

        The first word completes to command names; a later word that starts with ``/``
        completes to the paths of existing nodes whose parent is the typed prefix's.
        """
        before = line[: len(line) - len(word)]
        if not before.strip():
            lowered = word.lower()
            return sorted(n + " " for n in COMMANDS if n.lower().startswith(lowered))
        if not word.startswith("/"):
            return []
        parent, _, partial = word.rpartition("/")
        names = self._shell.children(parent or "/")
        return [f"{parent}/{name}" for name in names if name.startswith(partial)]

    def complete(self, text: str, state: int) -> str | None:
        """The readline completer function."""
        import readline

        if state == 0:
            try:
                self._matches = self.candidates(
                    readline.get_line_buffer()[: readline.get_endidx()], text
                )
            except Exception:  # a completer must never raise into readline
                self._matches = []
        return self._matches[state] if state < len(self._matches) else None


def _setup_readline(shell: Shell) -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - no readline on this platform
        return
    completer = Completer(shell)
    readline.set_completer(completer.complete)
    readline.set_completer_delims(" \t\n\"'")
    readline.parse_and_bind("tab: complete")
    history = os.path.expanduser(HISTORY_FILE)
    with contextlib.suppress(OSError):
        readline.read_history_file(history)
    readline.set_history_length(1000)
    import atexit

    atexit.register(lambda: _save_history(history))


def _save_history(path: str) -> None:
    import readline

    with contextlib.suppress(OSError):
        readline.write_history_file(path)


def _interactive(shell: Shell) -> int:
    _setup_readline(shell)
    if not shell.json_mode:
        shell.write(f"Connected to {shell.hosts}. Type help for the commands, quit to leave.")
    status = OK
    prompt = ""
    waiting = threading.Event()  # set while input() waits for a line

    def redraw() -> None:
        if waiting.is_set():
            with contextlib.suppress(Exception):
                import readline

                sys.stdout.write(prompt + readline.get_line_buffer())
                sys.stdout.flush()

    shell.redraw = redraw
    while not shell.quitting:
        prompt = f"[coord: {shell.hosts}({shell.state}) {len(shell.history)}] "
        waiting.set()
        try:
            line = input(prompt)
        except EOFError:
            print()
            break
        except KeyboardInterrupt:
            print()
            continue
        finally:
            waiting.clear()
        try:
            status = shell.execute(line)
        except KeyboardInterrupt:
            print()
    return status


def _batch(shell: Shell, lines: Iterable[str], exit_on_error: bool) -> int:
    status = OK
    for line in lines:
        code = shell.execute(line)
        if code != OK:
            status = code
            if exit_on_error:
                break
        if shell.quitting:
            break
    return status


def run_shell(
    hosts: str,
    *,
    commands: Sequence[str] = (),
    json_mode: bool = False,
    session_timeout: float = 30.0,
    timeout: float = 30.0,
    auth: Sequence[tuple[str, bytes]] = (),
    exit_on_error: bool = False,
    tls: TlsOptions | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``coord shell``: connect, then run ``commands``, stdin's lines or a prompt.

    Args:
        hosts: the connect string.
        commands: run these and exit (``-c``); empty: read stdin (a prompt on a terminal).
        json_mode: one JSON object per command on stdout.
        session_timeout: seconds, asked of the server.
        timeout: seconds allowed for each operation.
        auth: ``(scheme, credentials)`` pairs to authenticate with.
        exit_on_error: stop at the first command that fails.
        tls: connect with TLS (a server's secure port) with these settings.
        stdin: where commands come from (default ``sys.stdin``).
        stdout: where results go (default ``sys.stdout``).
        stderr: where errors go (default ``sys.stderr``).

    Returns:
        The exit status: 0 if every command succeeded; otherwise the status of the last
        command that failed (1 for a failed operation, 2 for a malformed command, 127 for
        an unknown one); 1 if no connection could be made.
    """
    stdin = stdin or sys.stdin
    shell = Shell(
        hosts,
        out=stdout or sys.stdout,
        err=stderr or sys.stderr,
        json_mode=json_mode,
        session_timeout=session_timeout,
        timeout=timeout,
        auth=auth,
        tls=tls,
    )
    try:
        shell.connect()
    except (ConnectionLossError, AuthFailedError) as exc:
        shell.write(f"coord shell: cannot connect to {hosts}: {exc}", error=True)
        return FAILED
    except CoordError as exc:
        shell.write(f"coord shell: {exc}", error=True)
        return FAILED
    try:
        if commands:
            return _batch(shell, commands, exit_on_error)
        if stdin.isatty():
            return _interactive(shell)
        return _batch(shell, (line.rstrip("\n") for line in stdin), exit_on_error)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`| head`)
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return FAILED
    finally:
        shell.close()
