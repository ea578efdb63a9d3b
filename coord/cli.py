"""The ``coord`` command.

``coord server`` runs a server; each of its flags sets the :class:`ServerConfig` field of
the same name (``--data-dir`` sets ``data_dir``), over ``COORD_*`` environment variables,
over the ``--config`` TOML file, over the defaults. ``coord plugins list`` shows the loaded
plugins and where each comes from. ``python -m coord`` is the same command.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

import coord
from coord.server._config import (
    ENV_PREFIX,
    ConfigError,
    ServerConfig,
    convert_value,
    load_config,
)

__all__ = ["build_parser", "configure_logging", "main", "parse_server_config"]

#: Log line format: time, level, logger (named by concern), message.
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-8s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"

_PROG = "coord"


def _field_type(name: str) -> Callable[[str], object]:
    def convert(text: str) -> object:
        try:
            return convert_value(name, text, source="the command line")
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the type in some messages
    return convert


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        dest="config_file",
        default=None,
        help="TOML file of ServerConfig fields (env COORD_* and flags override it)",
    )


def _add_field_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`ServerConfig` field; absent flags leave the field alone."""
    group = parser.add_argument_group(
        "server settings", f"each also settable as {ENV_PREFIX}<NAME> or in the --config file"
    )
    for f in dataclasses.fields(ServerConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, tuple):
            shown = ",".join(default) or "none"
        else:
            shown = "unset" if default is None else str(default)
        doc = f.metadata["doc"]
        if isinstance(default, tuple):
            doc += " Comma-separated."
        doc = f"{doc} [default: {shown}]".replace("%", "%%")
        if isinstance(default, bool):
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=doc,
            )
        else:
            group.add_argument(
                flag,
                dest=f.name,
                metavar="LIST" if isinstance(default, tuple) else f.name.upper(),
                type=_field_type(f.name),
                default=argparse.SUPPRESS,
                help=doc,
            )


def build_parser() -> argparse.ArgumentParser:
    """The ``coord`` argument parser, with its ``server`` and ``plugins list`` commands.

    Returns:
        A parser whose namespace has ``command`` (and ``plugins_command``), ``config_file``
        and, for ``server``, an attribute per flag actually given, named as the field.
    """
    parser = argparse.ArgumentParser(
        prog=_PROG, description="coord: a coordination service speaking ZooKeeper's protocol"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {coord.__version__}")
    parser.set_defaults(help_parser=parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    server = commands.add_parser(
        "server",
        help="run a server until SIGINT/SIGTERM",
        description="Run a coord server. The first SIGINT/SIGTERM drains, a second exits.",
    )
    _add_config_arguments(server)
    _add_field_arguments(server)

    plugins = commands.add_parser("plugins", help="inspect plugins")
    plugins.set_defaults(help_parser=plugins)
    plugin_commands = plugins.add_subparsers(dest="plugins_command", metavar="COMMAND")
    plugins_list = plugin_commands.add_parser(
        "list", help="list the loaded plugins and where each comes from"
    )
    _add_config_arguments(plugins_list)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(ServerConfig)
        if hasattr(args, f.name)
    }


def _config_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> ServerConfig:
    return load_config(file=args.config_file, env=env, overrides=_overrides(args))


def parse_server_config(argv: Sequence[str], env: Mapping[str, str]) -> ServerConfig:
    """The configuration ``coord <argv>`` would run a server with (``argv[0] == "server"``).

    Args:
        argv: the command line after the program name, e.g.
            ``["server", "--port", "0", "--data-dir", "/tmp/x"]``.
        env: the environment (``COORD_*`` variables are read).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file, the environment or the merged configuration is invalid.
        SystemExit: the command line is malformed (argparse prints the usage).
    """
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.command != "server":
        parser.error("expected the server command")
    return _config_from_args(args, env)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure_logging(level: str) -> None:
    """Send log records at ``level`` and above to stderr, one line each.

    The server logs under loggers named by concern: ``coord.server`` (lifecycle,
    connections), ``coord.access`` (one line per request, usually DEBUG),
    ``coord.audit`` (session and ACL changes), ``coord.replication``. Calling this again
    changes the level without adding a second handler.

    Args:
        level: a :mod:`logging` level name (``ServerConfig.log_level``).
    """
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
        root.addHandler(handler)
    root.setLevel(level)


def _error(message: object) -> int:
    print(f"{_PROG}: {message}", file=sys.stderr)
    return 2


def _run_server(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from coord.plugins import PluginError

    config = _config_from_args(args, env)
    configure_logging(config.log_level)
    from coord.server import StoreError, run

    try:
        return run(config)
    except (PluginError, ConfigError, StoreError) as exc:
        return _error(exc)
    except BaseExceptionGroup as group:  # raised from inside the server's task group
        leaf = _sole_startup_error(group)
        if leaf is None:
            raise
        return _error(leaf)


def _sole_startup_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The error, if ``group`` holds nothing but one start-up (plugin/config) error."""
    from coord.plugins import PluginError

    errors: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            errors.append(exc)
    from coord.server import StoreError

    if len(errors) == 1 and isinstance(errors[0], PluginError | ConfigError | StoreError):
        return errors[0]
    return None


def _list_plugins(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from coord.plugins import PluginError, list_plugins, load_plugins

    config = load_config(file=args.config_file, env=env)
    try:
        rows = list_plugins(load_plugins(config))
    except PluginError as exc:
        return _error(exc)
    width = max((len(name) for name, _ in rows), default=0)
    for name, source in rows:
        print(f"{name:<{width}}  {source}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``coord`` command.

    Args:
        argv: the arguments after the program name; None reads ``sys.argv``.

    Returns:
        The exit status: 0 on success, 2 for a usage or configuration error (printed as
        ``coord: <message>``), otherwise what the command returns.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else 2
    env: Mapping[str, str] = os.environ
    try:
        if args.command == "server":
            return _run_server(args, env)
        if args.command == "plugins" and args.plugins_command == "list":
            return _list_plugins(args, env)
    except ConfigError as exc:
        return _error(exc)
    args.help_parser.print_help(sys.stderr)
    return 2
