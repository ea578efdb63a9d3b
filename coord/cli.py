"""The ``coord`` command.

``coord server`` runs a server; each of its flags sets the :class:`ServerConfig` field of
the same name (``--data-dir`` sets ``data_dir``), over ``COORD_*`` environment variables,
over the ``--config`` TOML file, over the defaults. ``coord plugins list`` shows the loaded
plugins and where each comes from. ``coord config check|from-zoocfg`` check a config file and
convert a ZooKeeper zoo.cfg (docs/configuration.md). ``python -m coord`` is the same command.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import coord
from coord.server._config import (
    ENV_PREFIX,
    ConfigError,
    ServerConfig,
    convert_value,
    load_config,
)
from coord.server._logging import HUMAN_DATE_FORMAT, HUMAN_FORMAT

if TYPE_CHECKING:
    from coord.protocol import Id
    from coord.tools._zkclient import ZkClient

__all__ = ["build_parser", "configure_logging", "main", "parse_server_config"]

#: Log line format (human): time, level, logger (named by concern), message.
LOG_FORMAT = HUMAN_FORMAT
LOG_DATE_FORMAT = HUMAN_DATE_FORMAT

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
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if isinstance(default, tuple):
            shown = ",".join(default) or "none"
        elif isinstance(default, dict):
            shown = "{}"
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
    _add_tool_commands(commands)
    _add_certs_command(commands)
    _add_shell_command(commands)
    _add_config_command(commands)
    return parser


def _add_config_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``coord config check|from-zoocfg`` (:mod:`coord.tools._config_check`, ``_zoocfg``)."""
    config = commands.add_parser("config", help="check a config file, or convert a zoo.cfg")
    config.set_defaults(help_parser=config)
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND")
    check = config_commands.add_parser(
        "check",
        help="check a config file as the server would load it, and more",
        description="Load FILE with the server's loader (with the COORD_* environment and "
        "--set overrides over it), check plugins, the data directory, members and files, "
        "and print OK with the effective configuration and each value's source, or every "
        "problem with what to do. Exit status: 0 valid, 1 invalid, 2 usage error.",
    )
    check.add_argument("file", metavar="FILE", help="the TOML config file")
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    check.add_argument("--no-env", action="store_true", help="ignore COORD_* environment variables")
    check.add_argument(
        "--set",
        dest="set_values",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, as a command-line flag would (repeatable)",
    )
    convert = config_commands.add_parser(
        "from-zoocfg",
        help="convert an Apache ZooKeeper zoo.cfg into a coord config file",
        description="Convert a zoo.cfg (with its dynamicConfigFile and dataDir/myid) into "
        "coord's TOML. Every key is converted, or kept as a comment saying why it is "
        "ignored or that it was not understood. Exit status: 0, 1 malformed input, 2 usage.",
    )
    convert.add_argument("zoo_cfg", metavar="ZOO_CFG", help="the zoo.cfg file")
    convert.add_argument("-o", "--output", metavar="FILE", help="write here [default: stdout]")
    convert.add_argument("--force", action="store_true", help="replace FILE if it exists")
    convert.add_argument(
        "--peer-secret-file",
        metavar="FILE",
        help="for an ensemble: the members' shared secret file [default: a new random "
        "peer_secret in the output]",
    )


def _config_check(args: argparse.Namespace) -> int:
    import json

    from coord.tools._config_check import check_config, format_check

    if not os.path.isfile(args.file):
        return _error(f"config check: {args.file!r} is not a file")
    overrides: dict[str, object] = {}
    for item in args.set_values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            return _error(f"config check: --set {item!r}: expected KEY=VALUE")
        overrides[key.strip().replace("-", "_")] = value
    result = check_config(
        args.file, env=None if args.no_env else os.environ, overrides=overrides or None
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        print(format_check(result, args.file), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def _config_from_zoocfg(args: argparse.Namespace) -> int:
    from coord.tools._zoocfg import ZooCfgError, convert_zoocfg

    if not os.path.isfile(args.zoo_cfg):
        return _error(f"config from-zoocfg: {args.zoo_cfg!r} is not a file")
    if args.output and os.path.exists(args.output) and not args.force:
        return _error(f"config from-zoocfg: {args.output!r} exists; use --force to replace it")
    try:
        result = convert_zoocfg(args.zoo_cfg, peer_secret_file=args.peer_secret_file)
    except ZooCfgError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 1
    if not args.output:
        sys.stdout.write(result.toml)
    else:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(result.toml)
        print(
            f"wrote {args.output}: {len(result.settings)} settings, {len(result.ignored)} "
            f"ignored, {len(result.unknown)} not understood (see its comments); check it "
            f"with: coord config check {args.output}",
            file=sys.stderr,
        )
    return 0


def _add_auth_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--auth",
        metavar="SCHEME:CREDENTIALS",
        action="append",
        default=[],
        help="addauth after connecting, e.g. digest:USER:PASSWORD (repeatable)",
    )


def _add_tool_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``snapshot save|restore``, ``store inspect``, ``export``, ``import``
    (docs/operations.md; implemented in :mod:`coord.tools`)."""
    snapshot = commands.add_parser(
        "snapshot", help="save a running server's store to a file, or restore one"
    )
    snapshot.set_defaults(help_parser=snapshot)
    snapshot_commands = snapshot.add_subparsers(dest="snapshot_command", metavar="COMMAND")
    save = snapshot_commands.add_parser(
        "save",
        help="save a consistent copy of a running server's store",
        description="Save a consistent point-in-time copy of a running coord server's "
        "store (a tar archive), through the `snap` four-letter word, which the server "
        "must whitelist: it hands out all data regardless of ACLs.",
    )
    save.add_argument("file", metavar="FILE", help="the archive to write")
    save.add_argument("--server", required=True, metavar="HOST:PORT", help="client port")
    save.add_argument("--force", action="store_true", help="replace FILE if it exists")
    save.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="per read [default: 60]"
    )
    restore = snapshot_commands.add_parser(
        "restore",
        help="unpack a snapshot into a data directory and verify it",
        description="Unpack a snapshot archive into a data directory, verify every "
        "checksum, and print what it holds. The directory must not be in use by a server.",
    )
    restore.add_argument("file", metavar="FILE", help="the archive to restore")
    restore.add_argument("--data-dir", required=True, metavar="DIR", help="where to restore")
    restore.add_argument(
        "--force", action="store_true", help="replace the store of a non-empty DIR"
    )

    store = commands.add_parser("store", help="look into a data directory")
    store.set_defaults(help_parser=store)
    store_commands = store.add_subparsers(dest="store_command", metavar="COMMAND")
    inspect = store_commands.add_parser(
        "inspect",
        help="describe a data directory's store (safe while its server runs)",
        description="Describe the store in a data directory: indexes, term, node and "
        "session counts, log range, size on disk. Opens it read-only.",
    )
    inspect.add_argument("--data-dir", required=True, metavar="DIR", help="data directory")
    inspect.add_argument(
        "--verify", action="store_true", help="also read every record and check its checksum"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")

    ensemble = commands.add_parser("ensemble", help="run a local development ensemble")
    ensemble.set_defaults(help_parser=ensemble)
    ensemble_commands = ensemble.add_subparsers(dest="ensemble_command", metavar="COMMAND")
    up = ensemble_commands.add_parser(
        "up",
        help="start N members in the background and wait for a leader",
        description="Start a local ensemble: one background `coord server` per member, "
        "configs, logs and data under DIR, recorded in DIR/ensemble.json. Run again on "
        "the same DIR (after down) to restart it with its data.",
    )
    up.add_argument("--dir", required=True, metavar="DIR", help="ensemble directory")
    up.add_argument("--size", type=int, default=3, help="voting members [default: 3]")
    up.add_argument("--observers", type=int, default=0, help="observers [default: 0]")
    up.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for a leader [default: 30]"
    )
    for name, text in (
        ("status", "show each member's pid, mode and zxid"),
        ("down", "stop every member (SIGTERM, then SIGKILL after 15 s)"),
    ):
        sub = ensemble_commands.add_parser(name, help=text, description=text)
        sub.add_argument("--dir", required=True, metavar="DIR", help="ensemble directory")

    export = commands.add_parser(
        "export",
        help="write a subtree as JSON (from coord or Apache ZooKeeper)",
        description="Read a subtree through the client protocol (coord or Apache "
        "ZooKeeper) and write it as JSON: path, data (base64), ACL, node type.",
    )
    export.add_argument("--server", required=True, metavar="HOST:PORT[,...]", help="server(s)")
    export.add_argument("--path", default="/", help="the subtree's root [default: /]")
    export.add_argument("--output", required=True, metavar="FILE", help='"-" for stdout')
    export.add_argument(
        "--skip-ephemeral",
        action="store_true",
        help="leave ephemeral nodes out (default: write them as persistent, with a note)",
    )
    _add_auth_argument(export)

    import_ = commands.add_parser(
        "import",
        help="create the nodes of a JSON export (on coord or Apache ZooKeeper)",
        description="Create the nodes of a `coord export` file, parents first. Fails "
        "before writing anything if a node exists, unless --overwrite.",
    )
    import_.add_argument("--server", required=True, metavar="HOST:PORT[,...]", help="server(s)")
    import_.add_argument("--input", required=True, metavar="FILE", help='"-" for stdin')
    import_.add_argument(
        "--path", default=None, help="where the export's root goes [default: its own path]"
    )
    import_.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the data and ACL of existing nodes (none is deleted)",
    )
    _add_auth_argument(import_)


def _add_certs_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``coord certs``: a development CA and certificates (:mod:`coord.tools._certs`)."""
    certs = commands.add_parser(
        "certs",
        help="create a development CA and server/client TLS certificates (PEM)",
        description="Create a development certificate authority in DIR (or reuse the one "
        "there) and issue a server certificate and client certificates from it, as PEM "
        "files, then print the settings for coord, kazoo, the SDK and zkCli.sh. For local "
        "use only: the CA key is stored unencrypted beside the certificates.",
    )
    certs.add_argument("--dir", required=True, metavar="DIR", help="where the files go")
    certs.add_argument(
        "--server",
        default="server",
        metavar="NAME",
        help="file name of the server certificate [default: server]",
    )
    certs.add_argument(
        "--no-server", action="store_true", help="issue no server certificate this time"
    )
    certs.add_argument(
        "--host",
        action="append",
        metavar="HOST",
        help="a name or address for the server certificate (repeatable) "
        "[default: localhost, 127.0.0.1, ::1]",
    )
    certs.add_argument(
        "--client",
        action="append",
        metavar="NAME",
        help="issue a client certificate with subject CN=NAME (repeatable) [default: client]",
    )
    certs.add_argument("--org", default=None, help="organisation (O=) of client subjects")
    certs.add_argument("--days", type=int, default=365, help="validity in days [default: 365]")


def _add_shell_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``coord shell``: zkCli.sh's commands and more (:mod:`coord.shell`, docs/shell.md)."""
    shell = commands.add_parser(
        "shell",
        help="an interactive ZooKeeper shell (zkCli.sh's commands, tree, watch, JSON)",
        description="A shell for coord and Apache ZooKeeper with zkCli.sh's commands and "
        "output, tab completion, `tree` and `watch`. With -c it runs commands and exits; "
        "when stdin is not a terminal it runs stdin's lines. Exit status: 0, or that of "
        "the last failed command (1 failed operation, 2 bad command line, 127 unknown).",
    )
    shell.add_argument(
        "server",
        nargs="?",
        default="127.0.0.1:2181",
        metavar="HOST:PORT[,...][/chroot]",
        help="connect string [default: 127.0.0.1:2181]",
    )
    shell.add_argument(
        "-c",
        dest="shell_commands",
        action="append",
        default=[],
        metavar="COMMAND",
        help='run this command and exit (repeatable), e.g. -c "get /x"',
    )
    shell.add_argument("--json", action="store_true", help="one JSON object per command")
    shell.add_argument(
        "--exit-on-error", action="store_true", help="stop at the first command that fails"
    )
    shell.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="per operation [30]"
    )
    shell.add_argument(
        "--session-timeout", type=float, default=30.0, metavar="SECONDS", help="[default: 30]"
    )
    _add_auth_argument(shell)
    tls = shell.add_argument_group("TLS", "for a server's secure port (any option turns TLS on)")
    tls.add_argument("--tls", action="store_true", help="TLS, trusting the system's CAs")
    tls.add_argument("--tls-ca", metavar="FILE", help="PEM file of the CAs to trust")
    tls.add_argument("--tls-cert", metavar="FILE", help="PEM client certificate")
    tls.add_argument("--tls-key", metavar="FILE", help="its key, if not in --tls-cert")


def _shell(args: argparse.Namespace) -> int:
    from coord.client import TlsOptions
    from coord.shell import run_shell

    pairs, _ids = _auth(args.auth)
    tls = None
    if args.tls or args.tls_ca or args.tls_cert or args.tls_key:
        tls = TlsOptions(ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key)
    return run_shell(
        args.server,
        commands=args.shell_commands,
        json_mode=args.json,
        session_timeout=args.session_timeout,
        timeout=args.timeout,
        auth=pairs,
        exit_on_error=args.exit_on_error,
        tls=tls,
    )


def _certs(args: argparse.Namespace) -> int:
    from coord.tools._certs import create_dev_pki, usage_text

    pki = create_dev_pki(
        args.dir,
        server=None if args.no_server else args.server,
        hosts=tuple(args.host or ("localhost", "127.0.0.1", "::1")),
        clients=tuple(args.client or ("client",)),
        org=args.org,
        days=args.days,
    )
    print(usage_text(pki))
    return 0


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


def configure_logging(config: ServerConfig | str) -> None:
    """Configure logging as ``config`` says (:func:`coord.server._logging.configure_logging`).

    The server logs under loggers named by concern: ``coord.server`` (lifecycle,
    connections), ``coord.access`` (one line per request, at DEBUG), ``coord.audit``
    (state changes and authentication, with ``audit``), ``coord.replication``. Calling
    this again replaces the handler and levels rather than adding a second handler.

    Args:
        config: the server's configuration (``log_level``, ``log_format``,
            ``log_levels``, ``log_file``), or just a level name.
    """
    from coord.server._logging import configure_logging as configure

    if isinstance(config, str):
        configure(config)
    else:
        configure(
            config.log_level,
            format=config.log_format,
            levels=config.log_levels,
            file=config.log_file,
        )


def _error(message: object) -> int:
    print(f"{_PROG}: {message}", file=sys.stderr)
    return 2


def _run_server(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from coord.plugins import PluginError

    config = _config_from_args(args, env)
    try:
        configure_logging(config)
    except OSError as exc:
        return _error(f"cannot open log_file {config.log_file!r}: {exc.strerror or exc}")
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
    table = [("NAME", "VERSION", "STATE", "SOURCE", "HOOKS")]
    for info in rows:
        hooks = ",".join(h.removeprefix("coord_") for h in info.hooks) or "-"
        table.append((info.name, info.version or "-", info.state, info.source, hooks))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[4]]))
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
        tool = _TOOLS.get(
            (
                args.command,
                getattr(args, "snapshot_command", None)
                or getattr(args, "store_command", None)
                or getattr(args, "ensemble_command", None)
                or getattr(args, "config_command", None),
            )
        )
        if tool is not None:
            return _run_tool(tool, args)
    except ConfigError as exc:
        return _error(exc)
    args.help_parser.print_help(sys.stderr)
    return 2


# --- operator tools (coord.tools; docs/operations.md) ---------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _run_tool(tool: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    from coord.tools import ToolError

    try:
        return tool(args)
    except ToolError as exc:
        return _error(exc)


def _auth(values: Sequence[str]) -> tuple[list[tuple[str, bytes]], list[Id]]:
    """``--auth`` values as ``(scheme, credentials)`` pairs, and the digest ids they give."""
    from coord.protocol import Id
    from coord.server import digest_id
    from coord.tools import ToolError

    pairs: list[tuple[str, bytes]] = []
    ids: list[Id] = []
    for value in values:
        scheme, sep, credentials = value.partition(":")
        if not sep or not scheme or not credentials:
            raise ToolError(f"--auth {value!r}: expected SCHEME:CREDENTIALS")
        pairs.append((scheme, credentials.encode("utf-8")))
        if scheme == "digest":
            user, sep, password = credentials.partition(":")
            if not sep:
                raise ToolError(f"--auth {value!r}: expected digest:USER:PASSWORD")
            ids.append(Id("digest", digest_id(user, password)))
    return pairs, ids


def _connect(args: argparse.Namespace, pairs: list[tuple[str, bytes]]) -> ZkClient:
    from coord.tools import ToolError
    from coord.tools._zkclient import ZkClient, ZkClientError

    try:
        return ZkClient.connect(args.server, auth=pairs)
    except ZkClientError as exc:
        raise ToolError(str(exc)) from None


def _snapshot_save(args: argparse.Namespace) -> int:
    from coord.tools import Progress, human_bytes, save_snapshot

    progress = Progress("snapshot")
    try:
        result = save_snapshot(
            args.server, args.file, force=args.force, timeout=args.timeout, progress=progress
        )
    except BaseException:
        progress.abandon()
        raise
    rate = result.size / max(result.seconds, 1e-6)
    progress.done(
        f"{human_bytes(result.size)} received in {result.seconds:.2f} s "
        f"({human_bytes(int(rate))}/s)"
    )
    store = result.manifest.get("store", {})
    described = ""
    if store:
        described = (
            f"; log up to index {store['last_index']} (term {store['term']}), "
            f"{_count(store['nodes'], 'node')}, {_count(store['sessions'], 'session')}"
        )
    print(
        f"saved the store of {args.server} to {result.path}: {result.files} files, "
        f"{human_bytes(result.size)}{described}"
    )
    return 0


def _snapshot_restore(args: argparse.Namespace) -> int:
    from coord.tools import Progress, format_store_info, human_bytes, restore_snapshot

    progress = Progress("restore")
    try:
        result = restore_snapshot(args.file, args.data_dir, force=args.force, progress=progress)
    except BaseException:
        progress.abandon()
        raise
    progress.done(
        f"{result.files} files, {human_bytes(result.size)} unpacked and verified in "
        f"{result.seconds:.2f} s"
    )
    replaced = " (replacing its store)" if result.replaced else ""
    print(f"restored {args.file} into {result.data_dir}{replaced}")
    print(format_store_info(result.info))
    return 0


def _store_inspect(args: argparse.Namespace) -> int:
    import json

    from coord.tools import Progress, format_store_info, human_bytes, inspect_store

    progress = Progress("verify") if args.verify else None
    try:
        info = inspect_store(args.data_dir, verify=args.verify, progress=progress)
    except BaseException:
        if progress is not None:
            progress.abandon()
        raise
    if progress is not None:
        progress.done(
            f"{human_bytes(info['verified']['bytes'])} checked in {progress.elapsed:.2f} s"
        )
    print(json.dumps(info, indent=1) if args.json else format_store_info(info))
    return 0


def _export(args: argparse.Namespace) -> int:
    from coord.tools import Progress, ToolError, export_tree, human_bytes, write_document
    from coord.tools._transfer import normalize_path

    root = normalize_path(args.path)
    pairs, _ids = _auth(args.auth)
    progress = Progress("export")
    try:
        with _connect(args, pairs) as client:
            document, result = export_tree(
                client, root, skip_ephemeral=args.skip_ephemeral, progress=progress
            )
        if args.output == "-":
            write_document(document, sys.stdout)
            sys.stdout.flush()
        else:
            part = f"{args.output}.part"  # a FILE that exists is complete
            try:
                with open(part, "w", encoding="utf-8") as out:
                    write_document(document, out)
                os.replace(part, args.output)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(part)
                raise ToolError(f"cannot write {args.output}: {exc.strerror}") from None
    except BaseException:
        progress.abandon()
        raise
    progress.done(f"{result.nodes} nodes read in {result.seconds:.2f} s")
    notes = []
    if result.ephemeral:
        notes.append(f"{result.ephemeral} ephemeral written as persistent")
    if result.skipped_ephemeral:
        notes.append(f"{result.skipped_ephemeral} ephemeral left out")
    if result.vanished:
        notes.append(f"{result.vanished} deleted during the export")
    target = "stdout" if args.output == "-" else args.output
    print(
        f"exported {result.nodes} nodes ({human_bytes(result.data_bytes)} of data) under "
        f"{root} from {args.server} to {target}" + (f" ({'; '.join(notes)})" if notes else ""),
        file=sys.stderr if args.output == "-" else sys.stdout,
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    from coord.tools import Progress, ToolError, import_tree, read_document
    from coord.tools._transfer import normalize_path

    pairs, ids = _auth(args.auth)
    dest = None if args.path is None else normalize_path(args.path)
    if args.input == "-":
        document = read_document(sys.stdin, "stdin")
    else:
        try:
            with open(args.input, encoding="utf-8") as source:
                document = read_document(source, args.input)
        except OSError as exc:
            raise ToolError(f"cannot read {args.input}: {exc.strerror}") from None
    progress = Progress("import")
    try:
        with _connect(args, pairs) as client:
            result = import_tree(
                client,
                document,
                dest=dest,
                overwrite=args.overwrite,
                identities=ids,
                progress=progress,
            )
    except BaseException:
        progress.abandon()
        raise
    written = result.created + result.updated
    progress.done(f"{written} nodes written in {result.seconds:.2f} s")
    print(
        f"imported {args.input} under {dest or document['root']} on {args.server}: "
        f"{result.created} created, {result.updated} replaced, "
        f"{result.parents} missing parents created"
    )
    return 0


def _ensemble_up(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coord.tools._ensemble import ensemble_up

    members = ensemble_up(
        Path(args.dir),
        args.size,
        observers=args.observers,
        timeout=args.timeout,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(",".join(m.client for m in members))
    return 0


def _ensemble_status(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coord.tools._ensemble import ensemble_status, format_status

    rows = ensemble_status(Path(args.dir))
    print(format_status(rows))
    return 0 if all(r.alive for r in rows) else 1


def _ensemble_down(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coord.tools._ensemble import ensemble_down

    stopped = ensemble_down(
        Path(args.dir), progress=lambda line: print(line, file=sys.stderr, flush=True)
    )
    print(f"stopped {_count(stopped, 'member')}")
    return 0


_TOOLS: dict[tuple[str, str | None], Callable[[argparse.Namespace], int]] = {
    ("ensemble", "up"): _ensemble_up,
    ("ensemble", "status"): _ensemble_status,
    ("ensemble", "down"): _ensemble_down,
    ("snapshot", "save"): _snapshot_save,
    ("snapshot", "restore"): _snapshot_restore,
    ("store", "inspect"): _store_inspect,
    ("export", None): _export,
    ("import", None): _import,
    ("certs", None): _certs,
    ("shell", None): _shell,
    ("config", "check"): _config_check,
    ("config", "from-zoocfg"): _config_from_zoocfg,
}
