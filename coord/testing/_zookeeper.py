"""Run a real Apache ZooKeeper (Debian's ``zookeeper`` package) for differential tests.

Theory of operation: Debian bookworm ships ZooKeeper 3.8.0 as ``/usr/share/java/zookeeper.jar``
whose manifest ``Class-Path`` already names its runtime dependencies (netty, jackson,
commons-cli, snappy, metrics-core, slf4j-api, zookeeper-jute). It names no SLF4J *binding*,
so we add ``slf4j-log4j12`` and ``log4j-1.2`` ourselves and point log4j at a config written
into the instance's temp directory (a file appender), which also keeps the packaged
``/etc/zookeeper/conf/log4j.properties`` out of the picture. We do not put
``/etc/zookeeper/conf`` on the class path at all: the only things read from it would be that
log4j config and ``configuration.xsl``; ``zoo.cfg`` is passed explicitly.

The server runs standalone (``QuorumPeerMain`` with a config without ``server.N`` lines
delegates to ``ZooKeeperServerMain``) on 127.0.0.1 at a port picked by binding port 0. A
short-lived JVM starts in well under a second with C1 only (``-XX:TieredStopAtLevel=1``),
the serial GC and class-data sharing. Readiness is "``ruok`` answers ``imok`` and ``srvr``
reports a ``Mode:``", polled over the four-letter-word interface.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

__all__ = [
    "FAST_JVM_OPTIONS",
    "JAVA_DIR",
    "ZooKeeperProcess",
    "ZooKeeperStartError",
    "four_letter_word",
    "require_zookeeper",
    "write_log4j_config",
    "zookeeper_available",
    "zookeeper_classpath",
]

#: Where Debian installs Java libraries.
JAVA_DIR = Path("/usr/share/java")

# Without these the server cannot start (or cannot log, which we need for diagnostics).
_REQUIRED_JARS = (
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
    "slf4j-log4j12.jar",
    "log4j-1.2.jar",
)
# Already reachable through zookeeper.jar's manifest Class-Path on Debian; listed explicitly
# (when present) so the class path does not depend on that manifest.
_OPTIONAL_JARS = (
    "netty-buffer.jar",
    "netty-codec.jar",
    "netty-common.jar",
    "netty-handler.jar",
    "netty-resolver.jar",
    "netty-transport.jar",
    "netty-transport-native-epoll.jar",
    "netty-transport-native-unix-common.jar",
    "commons-cli.jar",
    "commons-io.jar",
    "jackson-annotations.jar",
    "jackson-core.jar",
    "jackson-databind.jar",
    "metrics-core.jar",
    "snappy-java.jar",
    "jline.jar",
)

#: JVM options that make a short-lived test JVM start fast and stay small.
FAST_JVM_OPTIONS = (
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Djava.awt.headless=true",
)

_SERVER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
_LOG4J_TEMPLATE = """\
log4j.rootLogger={level}, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File={path}
log4j.appender.FILE.Append=true
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{{ISO8601}} %-5p [%t:%C{{1}}@%L] - %m%n
"""


def _java() -> str | None:
    return shutil.which("java")


def zookeeper_available() -> str | None:
    """Tell whether Apache ZooKeeper can be run here.

    Returns:
        ``None`` when Java and the Debian ZooKeeper jars are present, otherwise a
        human-readable reason (naming what is missing and the package that provides it).
    """
    if _java() is None:
        return "no `java` on PATH (apt-get install default-jre-headless)"
    missing = [name for name in _REQUIRED_JARS if not (JAVA_DIR / name).is_file()]
    if missing:
        return (
            f"missing {', '.join(str(JAVA_DIR / m) for m in missing)} "
            "(apt-get install zookeeper zookeeper-bin)"
        )
    return None


def require_zookeeper() -> None:
    """Skip the calling test when Apache ZooKeeper is unavailable; fail it on CI.

    On a developer machine without Java or the ZooKeeper package the test is skipped with
    the reason. When the environment variable ``CI`` is ``true`` (or ``1``/``yes``) a missing
    ZooKeeper is a broken CI image, so the test fails instead.

    Raises:
        pytest.skip.Exception: ZooKeeper is unavailable and ``CI`` is not set.
        pytest.fail.Exception: ZooKeeper is unavailable and ``CI`` is set.
    """
    reason = zookeeper_available()
    if reason is None:
        return
    import pytest  # only needed here; coord.testing must import without pytest

    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"Apache ZooKeeper is required on CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"Apache ZooKeeper unavailable: {reason}")


def zookeeper_classpath() -> str:
    """Return the Java class path for the Debian ZooKeeper server and its CLI.

    Returns:
        A ``:``-separated class path of the required jars and those optional ones present.
    """
    jars = [JAVA_DIR / name for name in _REQUIRED_JARS]
    jars += [JAVA_DIR / name for name in _OPTIONAL_JARS if (JAVA_DIR / name).is_file()]
    return os.pathsep.join(str(j) for j in jars)


def write_log4j_config(path: Path, log_file: Path, level: str = "INFO") -> None:
    """Write a log4j 1.2 configuration that sends everything at ``level`` to ``log_file``.

    Args:
        path: Where to write the ``.properties`` file.
        log_file: The file the appender writes to.
        level: The root logger level (``INFO``, ``WARN``, ...).
    """
    path.write_text(_LOG4J_TEMPLATE.format(level=level, path=log_file), encoding="utf-8")


def four_letter_word(host: str, port: int, command: str, timeout: float = 5.0) -> str:
    """Send a four-letter-word command and return the whole answer.

    Args:
        host: Server host.
        port: Server client port.
        command: The command, e.g. ``"ruok"``, ``"srvr"``, ``"mntr"``, ``"dump"``.
        timeout: Socket timeout in seconds for connecting and for each read.

    Returns:
        The server's answer, decoded as UTF-8 (the server closes the connection after it).

    Raises:
        OSError: The connection failed or timed out.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(command.encode("ascii"))
        chunks: list[bytes] = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _terminate(process: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


def _cleanup(state: _State) -> None:
    """Finalizer: also runs at interpreter exit, so no JVM outlives the test run."""
    _terminate(state.process)
    state.process = None
    if state.tmpdir is not None:
        shutil.rmtree(state.tmpdir, ignore_errors=True)
        state.tmpdir = None


class _State:
    """What the finalizer must clean up; kept apart so it holds no reference to the owner."""

    __slots__ = ("process", "tmpdir")

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.tmpdir: Path | None = None


class ZooKeeperStartError(RuntimeError):
    """Raised by :meth:`ZooKeeperProcess.start` when the server exits or is not ready in time.

    The message ends with the tail of ZooKeeper's log.
    """


class ZooKeeperProcess:
    """A standalone Apache ZooKeeper 3.8 server in a child JVM, on 127.0.0.1.

    Each instance has its own temporary directory (``dataDir``, ``zoo.cfg``, log4j config,
    logs), removed by :meth:`stop`. Use it as a context manager or call :meth:`start` and
    :meth:`stop`::

        with ZooKeeperProcess() as zk:
            client = KazooClient(hosts=zk.address)

    Args:
        tick_time: ``tickTime`` in milliseconds; session timeouts are clamped to
            ``[2, 20] * tick_time`` unless ``minSessionTimeout``/``maxSessionTimeout`` are
            given in ``extra_config``.
        max_client_cnxns: ``maxClientCnxns`` (0 means unlimited).
        extended_types: Pass ``-Dzookeeper.extendedTypesEnabled=true`` (TTL nodes).
        extra_config: More ``zoo.cfg`` entries; they override the defaults of the same key.
        system_properties: More ``-D`` properties for the JVM (e.g.
            ``{"zookeeper.DigestAuthenticationProvider.superDigest": "super:..."}``); they
            override the defaults of the same key. The default includes
            ``zookeeper.forceSync=no`` (no fsync per write; semantics are unchanged).
        port: Client port; ``None`` picks a free one.
        startup_timeout: Seconds :meth:`start` waits for the server to answer.
        log_level: Root log4j level for the server's log file.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        tick_time: int = 2000,
        max_client_cnxns: int = 0,
        extended_types: bool = True,
        extra_config: Mapping[str, object] | None = None,
        system_properties: Mapping[str, object] | None = None,
        port: int | None = None,
        startup_timeout: float = 30.0,
        log_level: str = "INFO",
    ) -> None:
        self._tick_time = tick_time
        self._max_client_cnxns = max_client_cnxns
        self._extended_types = extended_types
        self._extra_config = dict(extra_config or {})
        self._system_properties = dict(system_properties or {})
        self._requested_port = port
        self._port: int | None = port
        self._startup_timeout = startup_timeout
        self._log_level = log_level
        self._state = _State()
        self._finalizer = weakref.finalize(self, _cleanup, self._state)
        self.start_duration: float | None = None
        """Seconds the last :meth:`start`/:meth:`restart` took until the server answered."""

    # -- properties ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The client port.

        Raises:
            RuntimeError: The server was never started and no port was given.
        """
        if self._port is None:
            raise RuntimeError("ZooKeeperProcess has no port before start()")
        return self._port

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``, the connect string for clients."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the JVM is alive."""
        process = self._state.process
        return process is not None and process.poll() is None

    @property
    def pid(self) -> int | None:
        """The JVM's process id while it runs."""
        process = self._state.process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def directory(self) -> Path:
        """The instance's temporary directory (``data/``, ``zoo.cfg``, logs).

        Raises:
            RuntimeError: The server is not started.
        """
        if self._state.tmpdir is None:
            raise RuntimeError("ZooKeeperProcess is not started")
        return self._state.tmpdir

    @property
    def log_path(self) -> Path:
        """ZooKeeper's log file (log4j output).

        Raises:
            RuntimeError: The server is not started.
        """
        return self.directory / "zookeeper.log"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Create the temp directory, launch the JVM and wait until the server answers.

        Raises:
            RuntimeError: Already started, or ZooKeeper is unavailable on this machine.
            ZooKeeperStartError: The server exited or did not answer within
                ``startup_timeout``; the message holds the tail of its log.
        """
        if self._state.tmpdir is not None:
            raise RuntimeError("ZooKeeperProcess is already started")
        reason = zookeeper_available()
        if reason is not None:
            raise RuntimeError(f"Apache ZooKeeper unavailable: {reason}")
        tmpdir = Path(tempfile.mkdtemp(prefix="coord-zookeeper-"))
        self._state.tmpdir = tmpdir
        (tmpdir / "data").mkdir()
        write_log4j_config(tmpdir / "log4j.properties", tmpdir / "zookeeper.log", self._log_level)
        try:
            self._launch_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the JVM (SIGTERM, then SIGKILL after 10 s) and remove the temp directory.

        Idempotent; also done automatically when the object is collected or at exit.
        """
        _cleanup(self._state)
        if self._requested_port is None:
            self._port = None

    def restart(self) -> None:
        """Stop the JVM and start it again on the same port with the same data directory.

        Raises:
            RuntimeError: The server is not started.
            ZooKeeperStartError: The server did not come back in time.
        """
        if self._state.tmpdir is None:
            raise RuntimeError("ZooKeeperProcess is not started")
        _terminate(self._state.process)
        self._state.process = None
        self._launch_until_ready(keep_port=True)

    def __enter__(self) -> Self:
        if self._state.tmpdir is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- introspection ----------------------------------------------------------------------

    def four_letter_word(self, command: str, timeout: float = 5.0) -> str:
        """Send a four-letter-word command (all are whitelisted) and return the answer.

        Args:
            command: E.g. ``"ruok"``, ``"srvr"``, ``"mntr"``, ``"cons"``, ``"dump"``.
            timeout: Socket timeout in seconds.

        Returns:
            The server's answer.

        Raises:
            OSError: The server is not reachable.
        """
        return four_letter_word(self.host, self.port, command, timeout)

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of ZooKeeper's log and of the JVM's console output.

        Args:
            lines: How many lines of each to return.

        Returns:
            The text (empty when nothing was logged or the server is stopped).
        """
        tmpdir = self._state.tmpdir
        if tmpdir is None:
            return ""
        parts = []
        for name in ("zookeeper.log", "console.log"):
            tail = _tail(tmpdir / name, lines)
            if tail:
                parts.append(f"--- {name} ---\n{tail}")
        return "\n".join(parts)

    # -- internals --------------------------------------------------------------------------

    def _config_lines(self, port: int, tmpdir: Path) -> list[str]:
        config: dict[str, object] = {
            "tickTime": self._tick_time,
            "clientPortAddress": self.host,
            "clientPort": port,
            "dataDir": tmpdir / "data",
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
            "maxClientCnxns": self._max_client_cnxns,
        }
        config.update(self._extra_config)
        return [f"{key}={value}" for key, value in config.items()]

    def _command(self, tmpdir: Path) -> list[str]:
        java = _java()
        assert java is not None  # checked in start()
        properties: dict[str, object] = {
            "log4j.configuration": (tmpdir / "log4j.properties").as_uri(),
            "zookeeper.jmx.log4j.disable": "true",
            "zookeeper.forceSync": "no",
        }
        if self._extended_types:
            properties["zookeeper.extendedTypesEnabled"] = "true"
        properties.update(self._system_properties)
        return [
            java,
            *FAST_JVM_OPTIONS,
            *(f"-D{key}={value}" for key, value in properties.items()),
            "-cp",
            zookeeper_classpath(),
            _SERVER_MAIN,
            str(tmpdir / "zoo.cfg"),
        ]

    def _launch_until_ready(self, keep_port: bool = False) -> None:
        tmpdir = self._state.tmpdir
        assert tmpdir is not None
        # A port picked by binding port 0 can be taken by someone else before the JVM binds
        # it; retry with a fresh port in that (rare) case.
        attempts = 1 if keep_port or self._requested_port is not None else 3
        for attempt in range(attempts):
            if not keep_port and self._requested_port is None:
                self._port = _free_port(self.host)
            port = self.port
            (tmpdir / "zoo.cfg").write_text(
                "\n".join(self._config_lines(port, tmpdir)) + "\n", encoding="utf-8"
            )
            started = time.monotonic()
            with open(tmpdir / "console.log", "ab") as console:
                self._state.process = subprocess.Popen(
                    self._command(tmpdir),
                    cwd=tmpdir,
                    stdin=subprocess.DEVNULL,
                    stdout=console,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a ^C in the terminal must not kill it first
                )
            try:
                self._wait_ready(self._state.process, port)
            except ZooKeeperStartError:
                if attempt + 1 < attempts and "Address already in use" in self.log_tail(200):
                    _terminate(self._state.process)
                    continue
                raise
            self.start_duration = time.monotonic() - started
            return

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            returncode = process.poll()
            if returncode is not None:
                self._fail(f"ZooKeeper exited with status {returncode} during start-up")
            try:
                if four_letter_word(
                    self.host, port, "ruok", timeout=1.0
                ) == "imok" and "Mode:" in four_letter_word(self.host, port, "srvr", timeout=1.0):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._fail(
                    f"ZooKeeper did not answer ruok on {self.host}:{port} "
                    f"within {self._startup_timeout} s"
                )
            time.sleep(0.02)

    def _fail(self, message: str) -> NoReturn:
        raise ZooKeeperStartError(f"{message}\n{self.log_tail()}")

    def __repr__(self) -> str:
        state = f"running at {self.address}" if self.running else "stopped"
        return f"<ZooKeeperProcess {state}>"
