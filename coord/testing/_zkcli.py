"""Run Apache ZooKeeper's command-line client (``zkCli.sh``) non-interactively.

Theory of operation: ``zkCli.sh -server ADDR cmd args...`` runs exactly one command per JVM
(~0.5 s each) in its own session. To run several commands in one JVM and one session we
start ``org.apache.zookeeper.ZooKeeperMain -server ADDR`` ourselves and feed the commands on
stdin: Debian ships no ``jline``, so ZooKeeperMain falls back to reading lines from stdin
(printing no prompt) and runs each through the same code path as the interactive shell.

The shell prints no delimiter between commands, so we insert two marker commands after
each one, chosen because they touch neither the server nor the session:

* ``printwatches`` (no argument) prints ``printwatches is on|off`` on **stdout**;
* ``redo -1`` prints ``Command index out of range`` on **stderr**.

Each stream is ordered, so splitting stdout and stderr at their markers gives each
command's output on each stream. Watch notifications (``WATCHER::`` / ``WatchedEvent ...``)
are printed asynchronously by the event thread, so they are lifted out of the text into
:attr:`ZkCliResult.events`. ``quit`` ends the run: it closes the session (so ephemerals
go at once) and exits with the exit status of the command before it.

Quirks of the 3.8 shell worth knowing: ``create`` reports ``Created /path`` on stderr, not
stdout; errors (``Node does not exist: /x``) go to stderr; the exit status is 0 on success,
1 for a failed operation and 127 for an unknown command, but only the last command's status
survives a multi-command run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from coord.testing._zookeeper import (
    FAST_JVM_OPTIONS,
    zookeeper_available,
    zookeeper_classpath,
)

__all__ = ["ZKCLI_SCRIPT", "ZkCliCommandOutput", "ZkCliResult", "run_zkcli"]

#: The packaged shell script.
ZKCLI_SCRIPT = Path("/usr/share/zookeeper/bin/zkCli.sh")

_CLI_MAIN = "org.apache.zookeeper.ZooKeeperMain"
_STDOUT_MARKER = "printwatches"
_STDERR_MARKER = "redo -1"
_STDOUT_MARKER_RE = re.compile(r"^printwatches is (?:on|off)$")
_STDERR_MARKER_LINE = "Command index out of range"
# Printed once before the first command.
_STDOUT_PREAMBLE_RE = re.compile(
    r"^(?:Connecting to \S+|Welcome to ZooKeeper!|JLine support is (?:en|dis)abled"
    r"|Secure connection is enabled)$"
)
# JVM and logging-framework noise; never command output.
_STDERR_NOISE_RE = re.compile(
    r"^(?:SLF4J: |log4j:(?:WARN|ERROR) |Picked up (?:_JAVA_OPTIONS|JAVA_TOOL_OPTIONS): "
    r"|OpenJDK \S+ (?:Server|Client) VM warning: )"
)
_CLIENT_JVM_OPTIONS = ("-Xmx128m", *(o for o in FAST_JVM_OPTIONS if not o.startswith("-Xmx")))
_LOG4J = """\
log4j.rootLogger=WARN, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=${coord.zkcli.log}
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n
"""


@dataclass(frozen=True, slots=True)
class ZkCliCommandOutput:
    """What one zkCli command printed.

    Attributes:
        command: The command line as given.
        stdout: Its standard output, without JVM/log noise and watch notifications, lines
            joined by ``\\n`` with no trailing newline.
        stderr: Its standard error, likewise (note that ``create`` reports success here).
        returncode: Its exit status when known: always with ``script=True``; otherwise only
            for the last command (the shell keeps no per-command status).
    """

    command: str
    stdout: str
    stderr: str
    returncode: int | None


@dataclass(frozen=True, slots=True)
class ZkCliResult:
    """The outcome of :func:`run_zkcli`.

    Attributes:
        outputs: One entry per command, in order.
        returncode: The exit status of the (last) JVM, i.e. of the last command.
        events: The ``WatchedEvent state:... type:... path:...`` lines printed by the watcher,
            in order (including the initial ``SyncConnected`` and the final ``Closed``).
        raw_stdout: Everything the JVM(s) wrote to stdout.
        raw_stderr: Everything the JVM(s) wrote to stderr.
        log: The client's log4j output at WARN and above (empty with ``script=True``).
    """

    outputs: tuple[ZkCliCommandOutput, ...]
    returncode: int
    events: tuple[str, ...]
    raw_stdout: str
    raw_stderr: str
    log: str

    @property
    def stdout(self) -> str:
        """All commands' cleaned stdout, one command's output per line block."""
        return "\n".join(o.stdout for o in self.outputs if o.stdout)

    @property
    def stderr(self) -> str:
        """All commands' cleaned stderr."""
        return "\n".join(o.stderr for o in self.outputs if o.stderr)

    def __getitem__(self, index: int) -> ZkCliCommandOutput:
        return self.outputs[index]

    def __len__(self) -> int:
        return len(self.outputs)


def run_zkcli(
    address: str,
    *commands: str,
    timeout: float = 60.0,
    script: bool = False,
    jvm_options: Sequence[str] = (),
) -> ZkCliResult:
    """Run zkCli commands against ``address`` and return each command's output.

    By default all commands run in one JVM and one session, in order (so ``addauth``
    applies to the commands after it and ``create -e`` nodes live until the end). With
    ``script=True`` each command runs through the packaged ``zkCli.sh`` in its own JVM and
    session, exactly as a user would type ``zkCli.sh -server ADDR cmd args`` (the command
    is split with :func:`shlex.split`).

    Args:
        address: Connect string, e.g. ``"127.0.0.1:2181"``.
        *commands: Command lines, e.g. ``"create -e /e data"``, ``"get -s /x"``. Avoid
            ``printwatches`` and ``redo`` without ``script=True``: they are the delimiters.
        timeout: Seconds allowed for the whole run (for each JVM with ``script=True``).
        script: Run each command through ``zkCli.sh`` in its own JVM.
        jvm_options: Extra JVM options (e.g. ``-Djava.security.auth.login.config=...``
            for SASL); with ``script=True`` they go into ``CLIENT_JVMFLAGS``.

    Returns:
        The per-command output, watch events and exit status.

    Raises:
        ValueError: No command, or a command contains a newline.
        RuntimeError: Java or the ZooKeeper jars (or ``zkCli.sh``) are missing.
        subprocess.TimeoutExpired: The run took longer than ``timeout``; the JVM is killed.
    """
    if not commands:
        raise ValueError("run_zkcli needs at least one command")
    for command in commands:
        if "\n" in command or "\r" in command:
            raise ValueError(f"zkCli command contains a newline: {command!r}")
    reason = zookeeper_available()
    if reason is not None:
        raise RuntimeError(f"Apache ZooKeeper unavailable: {reason}")
    if script:
        return _run_script(address, commands, timeout, tuple(jvm_options))
    return _run_session(address, commands, timeout, tuple(jvm_options))


def _run_session(
    address: str, commands: tuple[str, ...], timeout: float, jvm_options: tuple[str, ...] = ()
) -> ZkCliResult:
    lines: list[str] = []
    for i, command in enumerate(commands):
        lines.append(command)
        if i + 1 < len(commands):
            lines += [_STDOUT_MARKER, _STDERR_MARKER]
    lines.append("quit")
    with tempfile.TemporaryDirectory(prefix="coord-zkcli-") as tmp:
        config = Path(tmp) / "log4j.properties"
        config.write_text(_LOG4J, encoding="utf-8")
        log_file = Path(tmp) / "zkcli.log"
        proc = subprocess.run(
            [
                _java_or_raise(),
                *_CLIENT_JVM_OPTIONS,
                *jvm_options,
                f"-Dlog4j.configuration={config.as_uri()}",
                f"-Dcoord.zkcli.log={log_file}",
                "-cp",
                zookeeper_classpath(),
                _CLI_MAIN,
                "-server",
                address,
            ],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        log = log_file.read_text(encoding="utf-8", errors="replace") if log_file.exists() else ""
    stdout_sections, events = _clean_stdout(proc.stdout)
    stderr_sections = _clean_stderr(proc.stderr)
    outputs = []
    for i, command in enumerate(commands):
        last = i + 1 == len(commands)
        outputs.append(
            ZkCliCommandOutput(
                command=command,
                stdout=_section(stdout_sections, i, last),
                stderr=_section(stderr_sections, i, last),
                returncode=proc.returncode if last else None,
            )
        )
    return ZkCliResult(
        outputs=tuple(outputs),
        returncode=proc.returncode,
        events=tuple(events),
        raw_stdout=proc.stdout,
        raw_stderr=proc.stderr,
        log=log,
    )


def _run_script(
    address: str, commands: tuple[str, ...], timeout: float, jvm_options: tuple[str, ...] = ()
) -> ZkCliResult:
    if not ZKCLI_SCRIPT.is_file():
        raise RuntimeError(f"{ZKCLI_SCRIPT} is missing (apt-get install zookeeper)")
    env = dict(os.environ)
    # zkCli.sh passes $CLIENT_JVMFLAGS to java; its class path has no SLF4J binding, so
    # SLF4J prints a NOP warning on stderr, which we strip.
    env["CLIENT_JVMFLAGS"] = " ".join((*_CLIENT_JVM_OPTIONS, *jvm_options))
    outputs: list[ZkCliCommandOutput] = []
    events: list[str] = []
    raw_stdout: list[str] = []
    raw_stderr: list[str] = []
    returncode = 0
    for command in commands:
        proc = subprocess.run(
            [str(ZKCLI_SCRIPT), "-server", address, *shlex.split(command)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
        stdout_sections, command_events = _clean_stdout(proc.stdout)
        stderr_sections = _clean_stderr(proc.stderr)
        outputs.append(
            ZkCliCommandOutput(
                command=command,
                stdout="\n".join("\n".join(s) for s in stdout_sections),
                stderr="\n".join("\n".join(s) for s in stderr_sections),
                returncode=proc.returncode,
            )
        )
        events += command_events
        raw_stdout.append(proc.stdout)
        raw_stderr.append(proc.stderr)
        returncode = proc.returncode
    return ZkCliResult(
        outputs=tuple(outputs),
        returncode=returncode,
        events=tuple(events),
        raw_stdout="".join(raw_stdout),
        raw_stderr="".join(raw_stderr),
        log="",
    )


def _java_or_raise() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("no `java` on PATH")
    return java


def _clean_stdout(text: str) -> tuple[list[list[str]], list[str]]:
    """Split stdout at the markers, dropping the preamble and lifting out watch events.

    The watcher prints each of ``"\\nWATCHER::"`` and ``"\\nWatchedEvent ..."`` with one
    ``println``, so a notification is always a blank line directly followed by its line,
    even when it lands in the middle of a command's output.
    """
    lines = text.splitlines()
    kept: list[str] = []
    events: list[str] = []
    for line in lines:
        if line == "WATCHER::" or line.startswith("WatchedEvent "):
            if kept and kept[-1] == "":
                kept.pop()
            if line.startswith("WatchedEvent "):
                events.append(line)
            continue
        kept.append(line)
    while kept and _STDOUT_PREAMBLE_RE.match(kept[0]):
        kept.pop(0)
    return _split(kept, lambda line: _STDOUT_MARKER_RE.match(line) is not None), events


def _clean_stderr(text: str) -> list[list[str]]:
    kept = [line for line in text.splitlines() if not _STDERR_NOISE_RE.match(line)]
    return _split(kept, lambda line: line == _STDERR_MARKER_LINE)


def _split(lines: list[str], is_marker: Callable[[str], bool]) -> list[list[str]]:
    sections: list[list[str]] = [[]]
    for line in lines:
        if is_marker(line):
            sections.append([])
        else:
            sections[-1].append(line)
    return sections


def _section(sections: list[list[str]], index: int, last: bool) -> str:
    """The text of command ``index``; the last command also takes any stray sections."""
    if index >= len(sections):
        return ""  # the JVM died before reaching this command
    chosen = sections[index:] if last else [sections[index]]
    return "\n".join("\n".join(s) for s in chosen)
