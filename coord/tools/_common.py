"""What the operator tools share: their error type, progress reporting, number formatting.

Progress goes to stderr, stdout keeps the command's result. On a terminal a status line
is rewritten in place (``\\r``), at most :data:`PROGRESS_INTERVAL` apart -- a few updates
a second, however fast the work goes; when stderr is not a terminal (a pipe, a log file,
CI) nothing is written until the end. Either way the operation ends with one summary
line, so a log shows what happened.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Final, TextIO

__all__ = [
    "PROGRESS_INTERVAL",
    "Progress",
    "ToolError",
    "human_bytes",
    "parse_address",
]

#: Seconds between two progress updates on a terminal.
PROGRESS_INTERVAL: Final = 0.25


class ToolError(Exception):
    """An operator tool cannot do what it was asked; the message says why and what to do.

    Raised by every function of :mod:`coord.tools`; ``coord`` prints it as
    ``coord: <message>`` and exits with status 2.
    """


def human_bytes(n: int) -> str:
    """``n`` bytes for people: ``"512 B"``, ``"1.5 KiB"``, ``"12.3 MiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_address(address: str, default_port: int = 2181) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT``; the port may be omitted).

    Raises:
        ToolError: the port is not a number in 1..65535.
    """
    host, port_text = address, ""
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ToolError(f"bad server address {address!r}: missing ']'")
        host, rest = address[1:end], address[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else rest
    elif address.count(":") == 1:
        host, port_text = address.split(":")
    if not port_text:
        return host or "127.0.0.1", default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ToolError(f"bad server address {address!r}: the port must be 1..65535")
    return host or "127.0.0.1", int(port_text)


class Progress:
    """Progress of one long operation, on stderr (see the module docs).

    Args:
        label: what is going on, the start of every line (``"snapshot"``).
        stream: where to write; ``sys.stderr`` (at the time of each write) when None.
        interval: seconds between two updates on a terminal.
        clock: a monotonic clock in seconds (tests pass a fake one).
    """

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self.started = clock()
        self._next = self.started + interval
        self._shown = False

    @property
    def stream(self) -> TextIO:
        """The stream written to."""
        return self._stream if self._stream is not None else sys.stderr

    @property
    def elapsed(self) -> float:
        """Seconds since the operation started."""
        return self._clock() - self.started

    @property
    def interactive(self) -> bool:
        """Whether updates are shown (the stream is a terminal)."""
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def update(self, render: Callable[[], str]) -> None:
        """Show ``render()`` if an update is due; cheap to call for every record.

        Args:
            render: builds the status text (called only when it is shown).
        """
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval
        if not self.interactive:
            return
        stream = self.stream
        stream.write(f"\r{self.label}: {render()}\x1b[K")
        stream.flush()
        self._shown = True

    def reporter(self, render: Callable[[int], str]) -> Callable[[int], None]:
        """A callback taking a count (bytes, records) that shows ``render(count)`` when
        an update is due: what a ``progress=`` argument of a long operation wants."""

        def report(count: int) -> None:
            self.update(lambda: render(count))

        return report

    def done(self, summary: str) -> None:
        """End the operation with ``summary`` (always written, on its own line)."""
        stream = self.stream
        prefix = "\r\x1b[K" if self._shown else ""
        stream.write(f"{prefix}{self.label}: {summary}\n")
        stream.flush()
        self._shown = False

    def abandon(self) -> None:
        """Clear the status line (the operation failed; its error is printed next)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
