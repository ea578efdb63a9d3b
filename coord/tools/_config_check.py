"""``coord config check FILE``: would a server start with this configuration?

The file is read by the server's own loader (:mod:`coord.server._config`): the same TOML
reading, key normalisation, conversions and validation, merged with the ``COORD_*``
environment and overrides in the same precedence. Unlike the server, which stops at the
first error, the check goes on and reports every problem it can find: each key of each
source is converted on its own, and a value the configuration rejects is reported and
replaced by its default so that the checks after it still run.

Then what the server would only learn at start-up: the plugins load and accept their
settings, the storage backend exists, the data directory can be created or written, the
members list is consistent (this server's id listed; ids, peer addresses and client
addresses distinct), and the TLS, secret and log files can be read or written.

Nothing is created or changed by the check.
"""

from __future__ import annotations

import dataclasses
import json
import os
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coord.server._config import (
    _FIELDS,
    ENV_NOT_CONFIG,
    ENV_PREFIX,
    ConfigError,
    ServerConfig,
    _plugins_table,
    _unknown_key,
    convert_value,
    load_config,
)

__all__ = ["ConfigCheck", "ConfigProblem", "check_config", "format_check"]

#: How many rejected values the check replaces by their defaults before it gives up.
_MAX_ROUNDS = 64


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a configuration.

    Attributes:
        message: what is wrong, naming the setting and where its value came from.
        fix: what to do about it.
        key: the setting concerned ("" when none).
    """

    message: str
    fix: str
    key: str = ""


@dataclass(slots=True)
class ConfigCheck:
    """The outcome of :func:`check_config`.

    Attributes:
        config: the effective configuration (None when it cannot be built at all);
            with problems, rejected values are replaced by their defaults.
        sources: each field's origin: ``default``, ``file``, ``env`` (``COORD_<NAME>``)
            or ``override``.
        problems: everything found wrong; empty when the configuration is valid.
    """

    config: ServerConfig | None
    sources: dict[str, str] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary: ``ok``, ``config`` (field -> value), ``sources``,
        ``problems`` (``key``, ``message``, ``fix``)."""
        config = None
        if self.config is not None:
            config = {
                f.name: _jsonable(getattr(self.config, f.name))
                for f in dataclasses.fields(ServerConfig)
            }
            for name in _SECRETS:
                if config.get(name):
                    config[name] = "***"
        return {
            "ok": self.ok,
            "config": config,
            "sources": self.sources,
            "problems": [dataclasses.asdict(p) for p in self.problems],
        }


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


_FIX_VALUE = "correct the value (docs/configuration.md lists every setting and its format)"


def _problem(exc: ConfigError, fix: str = _FIX_VALUE) -> ConfigProblem:
    return ConfigProblem(str(exc), fix, exc.key or "")


def _read_layer(
    items: Mapping[str, Any], source: str, *, env: bool, problems: list[ConfigProblem]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for raw_key, raw_value in items.items():
        if env:
            if not raw_key.startswith(ENV_PREFIX) or raw_key in ENV_NOT_CONFIG:
                continue
            key = raw_key[len(ENV_PREFIX) :].lower()
            where = f"environment variable {raw_key}"
            known = key in _FIELDS and raw_key == ENV_PREFIX + key.upper()
        else:
            key = raw_key.replace("-", "_")
            where = source
            known = key in _FIELDS
        if not known:
            error = _unknown_key(raw_key, key, "the environment" if env else source, env=env)
            fix = "unset the variable" if env else "rename the key or remove it"
            problems.append(ConfigProblem(str(error), fix, raw_key))
            continue
        if key in spelled:
            problems.append(
                ConfigProblem(
                    f"{source} sets {key!r} twice (as {spelled[key]!r} and {raw_key!r})",
                    "keep one of them",
                    key,
                )
            )
            continue
        spelled[key] = raw_key
        try:
            values[key] = convert_value(key, raw_value, source=where)
        except ConfigError as exc:
            problems.append(_problem(exc))
    return values


def _read_file_layer(path: Path, problems: list[ConfigProblem]) -> dict[str, Any]:
    source = f"config file {str(path)!r}"
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        problems.append(
            ConfigProblem(f"cannot read {source}: {exc.strerror or exc}", "check the path")
        )
        return {}
    except tomllib.TOMLDecodeError as exc:
        problems.append(
            ConfigProblem(f"{source} is not valid TOML: {exc}", "fix the TOML syntax there")
        )
        return {}
    try:
        data = _plugins_table(data, source)
    except ConfigError as exc:
        problems.append(_problem(exc, "see docs/plugins.md#configuration for the table's form"))
        data = {k: v for k, v in data.items() if k != "plugins"}
    return _read_layer(data, source, env=False, problems=problems)


def _build(
    merged: dict[str, Any], origin: dict[str, str], problems: list[ConfigProblem]
) -> ServerConfig | None:
    """ServerConfig(**merged), dropping (and reporting) each value it rejects."""
    for _ in range(_MAX_ROUNDS):
        try:
            return ServerConfig(**merged)
        except ConfigError as exc:
            key = exc.key
            where = origin.get(key or "")
            message = f"{exc} (from {where})" if where else str(exc)
            problems.append(ConfigProblem(message, _FIX_VALUE, key or ""))
            if key is None or key not in merged:
                # A rule between settings, neither of them set (or not attributable).
                return None
            del merged[key]
            origin.pop(key, None)
    return None


def check_config(
    file: str | os.PathLike[str] | None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> ConfigCheck:
    """Check a configuration as ``coord server --config FILE`` would load it, and more.

    Args:
        file: the TOML file (None: defaults, environment and overrides only).
        env: environment variables (``COORD_*`` are read); None reads none.
        overrides: field values over everything (as command-line flags).

    Returns:
        The effective configuration, each value's source and every problem found.
    """
    problems: list[ConfigProblem] = []
    layers: list[tuple[str, dict[str, Any]]] = []
    if file is not None:
        layers.append(("file", _read_file_layer(Path(file), problems)))
    if env is not None:
        layers.append(("env", _read_layer(env, "the environment", env=True, problems=problems)))
    if overrides is not None:
        layers.append(
            ("override", _read_layer(overrides, "overrides", env=False, problems=problems))
        )
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    described = {
        "file": f"config file {os.fspath(file)!r}" if file is not None else "file",
        "env": "the environment",
        "override": "overrides",
    }
    sources = {name: "default" for name in _FIELDS}
    for kind, values in layers:
        merged.update(values)
        for key in values:
            origin[key] = (
                f"environment variable {ENV_PREFIX}{key.upper()}"
                if kind == "env"
                else described[kind]
            )
            sources[key] = f"env ({ENV_PREFIX}{key.upper()})" if kind == "env" else kind
    config = _build(merged, origin, problems)
    if config is None:
        return ConfigCheck(None, sources, problems)
    for key in _FIELDS:
        if key not in merged:
            sources[key] = "default"
    if not problems:
        # The server's own loader must agree (it is the one that runs).
        try:
            config = load_config(file=file, env=env, overrides=overrides)
        except ConfigError as exc:  # pragma: no cover - the layers above mirror it
            problems.append(_problem(exc))
    problems.extend(_check_plugins(config))
    problems.extend(_check_data_dir(config))
    problems.extend(_check_members(config))
    problems.extend(_check_files(config))
    return ConfigCheck(config, sources, problems)


def _check_plugins(config: ServerConfig) -> list[ConfigProblem]:
    from coord.plugins import PluginError, load_plugins
    from coord.plugins._manager import storage_backend

    try:
        pm = load_plugins(config)
        storage_backend(pm, config.storage)
    except PluginError as exc:
        return [ConfigProblem(str(exc), "coord plugins list shows the plugins installed")]
    return []


def _check_data_dir(config: ServerConfig) -> list[ConfigProblem]:
    if config.storage == "memory":
        return []
    path = Path(config.data_dir).absolute()
    if path.exists():
        if not path.is_dir():
            return [
                ConfigProblem(
                    f"data_dir {config.data_dir!r} exists and is not a directory",
                    "choose another data_dir, or move that file away",
                    "data_dir",
                )
            ]
        if not os.access(path, os.W_OK | os.X_OK):
            return [
                ConfigProblem(
                    f"data_dir {config.data_dir!r} is not writable by this user",
                    f"run the server as the directory's owner or: chmod u+rwx {path}",
                    "data_dir",
                )
            ]
        return []
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return [
            ConfigProblem(
                f"data_dir {config.data_dir!r} does not exist and cannot be created: "
                f"{parent} is not a writable directory",
                f"create it beforehand (mkdir -p {path}) as a user who may, and give it to "
                "the server's user, or choose another data_dir",
                "data_dir",
            )
        ]
    return []


def _check_members(config: ServerConfig) -> list[ConfigProblem]:
    if not config.members:
        return []
    from coord.server._members import MemberSpecError, parse_members

    try:
        members = parse_members(config.members)
    except MemberSpecError as exc:  # pragma: no cover - ServerConfig checked it
        return [ConfigProblem(f"members: {exc}", "fix the entry", "members")]
    problems = []
    for what in ("peer", "client"):
        seen: dict[tuple[str, int], int] = {}
        for member in members.values():
            address = getattr(member, what)
            if address in seen:
                problems.append(
                    ConfigProblem(
                        f"members {seen[address]} and {member.id} have the same {what} "
                        f"address {address[0]}:{address[1]}",
                        f"give each member its own {what} host:port",
                        "members",
                    )
                )
            seen[address] = member.id
    own = members.get(config.server_id)
    if own is not None and config.port and own.client[1] != config.port:
        problems.append(
            ConfigProblem(
                f"this server's members entry ({own.spec()}) gives client port "
                f"{own.client[1]}, but port is {config.port}",
                "make the entry's client port and port the same",
                "members",
            )
        )
    return problems


def _readable(path: str, key: str, what: str) -> ConfigProblem | None:
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return ConfigProblem(
            f"{key} {path!r} cannot be read: {exc.strerror or exc}",
            f"check the path and its permissions ({what})",
            key,
        )


def _check_files(config: ServerConfig) -> list[ConfigProblem]:
    problems = []
    tls_files = [
        ("tls_cert", config.tls_cert),
        ("tls_key", config.tls_key),
        ("tls_ca", config.tls_ca),
    ]
    hint = "PEM files; coord certs --dir DIR makes development ones"
    for key, value in tls_files:
        if value:
            problem = _readable(value, key, hint)
            if problem is not None:
                problems.append(problem)
    if config.tls_cert and not problems:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(config.tls_cert, config.tls_key, config.tls_key_password)
            if config.tls_ca:
                context.load_verify_locations(cafile=config.tls_ca)
        except (ssl.SSLError, OSError) as exc:
            problems.append(
                ConfigProblem(
                    f"the TLS files do not load: {getattr(exc, 'reason', None) or exc}",
                    "tls_cert must hold a PEM certificate chain, tls_key (or tls_cert) its "
                    "private key (with tls_key_password if encrypted), tls_ca PEM CA "
                    "certificates",
                    "tls_cert",
                )
            )
    if config.peer_secret_file:
        problem = _readable(config.peer_secret_file, "peer_secret_file", "one line: the secret")
        if problem is not None:
            problems.append(problem)
        else:
            try:
                config.read_peer_secret()
            except ConfigError as exc:
                problems.append(_problem(exc, "write the secret on the file's first line"))
    if config.log_file:
        parent = Path(config.log_file).absolute().parent
        target = Path(config.log_file)
        if (target.exists() and not os.access(target, os.W_OK)) or (
            not target.exists() and not (parent.is_dir() and os.access(parent, os.W_OK))
        ):
            problems.append(
                ConfigProblem(
                    f"log_file {config.log_file!r} cannot be written",
                    "create its directory or fix its permissions, or leave log_file unset "
                    "to log to standard error",
                    "log_file",
                )
            )
    return problems


def _toml_value(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


_SECRETS = frozenset({"peer_secret", "tls_key_password", "sasl_users"})


def format_check(check: ConfigCheck, name: str) -> str:
    """The text ``coord config check`` prints: ``OK`` and the effective configuration
    (``key = value  # source``; secrets masked), or each problem with its fix."""
    if not check.ok:
        count = len(check.problems)
        lines = [f"{name}: {count} problem{'s' if count != 1 else ''}"]
        for problem in check.problems:
            lines.append(f"- {problem.message}")
            lines.append(f"  fix: {problem.fix}")
        return "\n".join(lines)
    assert check.config is not None
    lines = [f"OK: {name}", ""]
    width = max(len(f.name) for f in dataclasses.fields(ServerConfig))
    for f in dataclasses.fields(ServerConfig):
        value = getattr(check.config, f.name)
        shown = _toml_value(value)
        if f.name in _SECRETS and value:
            shown = '"***"'
        lines.append(f"{f.name.ljust(width)} = {shown}  # {check.sources.get(f.name, 'default')}")
    return "\n".join(lines)
