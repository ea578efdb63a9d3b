"""Server configuration: one frozen :class:`ServerConfig`, loaded from defaults, a TOML file,
``COORD_*`` environment variables and command-line overrides.

Theory of operation
-------------------
:class:`ServerConfig` is the single source of truth for server settings (CONVENTIONS.md
item 11): the CLI's flags, the environment variables and the TOML keys are all derived from
its fields, so none of them can drift from the others. Each field's documentation lives in
its ``metadata["doc"]``; the class docstring's table and ``coord server --help`` are built
from it.

:func:`load_config` merges the sources with the precedence (highest first) overrides
(command line) > environment > file > defaults. Every key must name a field: an unknown
key is an error naming the key, where it came from and the closest valid key, never a
silently ignored setting (hypercorn's silent unknown keys are the counter-example).
Values are converted to the field's type (strings from the environment or the command
line are parsed; TOML values are checked), then the dataclass validates itself in
``__post_init__``, so a config built directly in Python is checked the same way.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import inspect
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = [
    "ENV_PREFIX",
    "EXPLICIT_FOUR_LETTER_WORDS",
    "FOUR_LETTER_WORDS",
    "ConfigError",
    "ServerConfig",
    "convert_value",
    "load_config",
]

#: Every four-letter word the server knows (ZooKeeper's ``4lw.commands.whitelist`` names).
FOUR_LETTER_WORDS: Final[frozenset[str]] = frozenset(
    {"ruok", "srvr", "stat", "mntr", "envi", "conf", "cons", "wchs"}
    | {"wchc", "wchp", "isro", "dump", "crst", "srst", "dirs", "snap"}
)
#: Words ``"*"`` does not enable: each must be named. ``snap`` streams the whole store to
#: whoever asks, ACLs notwithstanding (coord/server/_snapshot.py).
EXPLICIT_FOUR_LETTER_WORDS: Final[frozenset[str]] = frozenset({"snap"})

#: Environment variables ``COORD_<FIELD NAME IN UPPER CASE>`` set :class:`ServerConfig` fields.
ENV_PREFIX: Final = "COORD_"

_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOG_FORMATS: Final = ("human", "json")
#: The ``log_levels`` keys besides logger names (coord/server/_logging.py).
LOG_CONCERNS: Final = ("server", "access", "audit", "replication")
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


class ConfigError(ValueError):
    """A configuration value or key is invalid.

    Raised by :class:`ServerConfig` (validation) and :func:`load_config` (unknown keys,
    unconvertible values, unreadable files). The CLI prints it and exits with status 2.

    Args:
        message: the full, human-readable explanation.
        key: the field (or unknown key) concerned, when there is one.
        source: where the value came from (``"config file x.toml"``, ``"environment"``, ...).
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None):
        super().__init__(message)
        self.key = key
        self.source = source


def _doc(default: Any, doc: str) -> Any:
    """A dataclass field with its documentation in ``metadata["doc"]``."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a coord server is configured with (every field is listed below).

    Every field can be set by a TOML key of the same name (``data_dir`` or ``data-dir``),
    an environment variable ``COORD_<NAME>`` (``COORD_DATA_DIR``) and a command-line flag
    ``--<name>`` (``--data-dir``); see :func:`load_config`.

    Raises:
        ConfigError: a field has the wrong type or an invalid value (checked on
            construction, so a config built in Python is validated too).
    """

    host: str = _doc(
        "127.0.0.1",
        "Address the client port binds to; an empty string binds every interface.",
    )
    port: int = _doc(2181, "Client port (0 picks a free port; the bound one is reported).")
    data_dir: str = _doc("coord-data", "Directory of the durable storage backend's files.")
    storage: str = _doc(
        "rocksdb",
        'Storage backend name, as a plugin registers it (built-in: "rocksdb", durable, '
        'in data_dir; "memory", nothing survives a restart).',
    )
    tick_time: int = _doc(
        2000, "Basic time unit in milliseconds (ZooKeeper's tickTime); sessions expire on it."
    )
    min_session_timeout: int | None = _doc(
        None, "Lowest session timeout granted, in ms (unset: 2 x tick_time)."
    )
    max_session_timeout: int | None = _doc(
        None, "Highest session timeout granted, in ms (unset: 20 x tick_time)."
    )
    max_frame: int = _doc(
        0xFFFFF, "Largest frame accepted or sent, in bytes (ZooKeeper's jute.maxbuffer)."
    )
    max_client_connections: int = _doc(
        60, "Concurrent connections allowed per client IP address (0: unlimited)."
    )
    handshake_timeout: float = _doc(
        10.0, "Seconds a new connection has to complete its handshake before it is closed."
    )
    four_letter_words: tuple[str, ...] = _doc(
        ("srvr", "ruok", "isro"),
        'Four-letter words answered on the client port ("*": all of them but snap, which '
        "must be named: it streams the whole store to whoever asks, ACLs notwithstanding).",
    )
    extended_types: bool = _doc(True, "Enable TTL nodes (ZooKeeper's extendedTypesEnabled).")
    # --- TLS, x509, quotas, throttling (coord/server/_tls.py, _quota.py) -------------------
    secure_port: int | None = _doc(
        None,
        "TLS client port (ZooKeeper's secureClientPort), served by the tls transport beside "
        "the plain port (unset: no TLS listener; 0 picks a free port). To serve TLS only, "
        'disable the plain port with plugins_disabled = ["builtin.tcp"].',
    )
    tls_cert: str | None = _doc(
        None, "PEM file with the server's certificate chain (required with secure_port)."
    )
    tls_key: str | None = _doc(
        None, "PEM file with the server certificate's private key (unset: it is in tls_cert)."
    )
    tls_key_password: str | None = _doc(None, "Password of an encrypted tls_key.")
    tls_ca: str | None = _doc(
        None,
        "PEM bundle of the certificate authorities whose client certificates are accepted "
        '(required unless tls_client_auth is "none").',
    )
    tls_client_auth: str = _doc(
        "need",
        'Client certificates (ZooKeeper\'s ssl.clientAuth): "need" (required), "want" '
        '(verified when presented) or "none" (not asked for).',
    )
    tls_min_version: str = _doc("1.2", 'Lowest TLS version accepted: "1.2" or "1.3".')
    tls_reload_interval: float = _doc(
        5.0,
        "Seconds between checks of the certificate files for changes; a changed set is "
        "loaded for new connections (0: never reload).",
    )
    x509_identity: str = _doc(
        "dn",
        'What a client certificate\'s x509 identity is: "dn" (the subject DN, RFC 2253, as '
        'ZooKeeper\'s X509AuthenticationProvider), "cn" (its common name), or the first '
        'subject alternative name of a kind: "san-dns", "san-uri", "san-email", "san-ip".',
    )
    x509_superuser: str | None = _doc(
        None,
        "An x509 identity that is superuser (ZooKeeper's X509AuthenticationProvider.superUser).",
    )
    enforce_quota: bool = _doc(
        False,
        "Refuse creates and setData past a quota's hard limits with QuotaExceeded "
        "(ZooKeeper's zookeeper.enforceQuota); otherwise exceeding a quota is only logged.",
    )
    max_outstanding_requests: int = _doc(
        1000,
        "Unanswered requests one connection may have; past it the server stops reading from "
        "that connection until replies go out (0: unlimited).",
    )
    requests_per_turn: int = _doc(
        16,
        "Requests handled from one connection before other connections get a turn (fair "
        "scheduling; 0: everything that arrived in one read).",
    )
    busy_poll_us: int = _doc(
        200,
        "After answering, keep polling for the next request for this many microseconds "
        "instead of sleeping at once (0: off). An idle CPU is slow to wake -- on virtual "
        "machines that halt idle vCPUs at once, tens of microseconds per request -- and a "
        "client with one request in flight pays that on every round trip. Costs at most "
        "this much CPU after each burst of requests, as Linux's halt-polling does.",
    )
    container_check_interval: int = _doc(
        60000, "How often empty container and expired TTL nodes are reaped, in ms."
    )
    super_digest: str | None = _doc(
        None, 'Superuser digest id, "super:<base64 sha1>" (as DigestAuthenticationProvider).'
    )
    server_id: int = _doc(1, "This server's id in the ensemble (ZooKeeper's myid), >= 1.")
    log_retain: int = _doc(
        50_000,
        "Log entries kept behind the applied state (for catching up); compaction drops "
        "older ones once twice as many have accumulated.",
    )
    members: tuple[str, ...] = _doc(
        (),
        "The ensemble, one string per member: "
        '"<id>=<peer host>:<peer port>[:observer];<client host>:<client port>" (empty: '
        "standalone). server_id names this server's entry; all members list the same set.",
    )
    reconfig_enabled: bool = _doc(
        False,
        "Allow the reconfig operation (ZooKeeper's reconfigEnabled): add, remove and change "
        "the roles of ensemble members at runtime, one member per request. Only a superuser "
        "or an identity /zookeeper/config's ACL grants WRITE may reconfigure. Off: reconfig "
        "answers ReconfigDisabled.",
    )
    peer_secret: str | None = _doc(
        None,
        "Shared secret every member proves it knows when peers connect (required with "
        "members). Prefer peer_secret_file or COORD_PEER_SECRET to a secret in a file "
        "others can read.",
    )
    peer_secret_file: str | None = _doc(
        None, "File holding the peer secret (its first line), instead of peer_secret."
    )
    peer_tls: bool = _doc(
        False,
        "Ensemble: run peer links inside mutual TLS with tls_cert/tls_key, each member "
        "verifying the other's certificate against tls_ca (the certificates need both the "
        "serverAuth and clientAuth usages, as coord certs issues them).",
    )
    heartbeat_interval: int = _doc(
        50, "Ensemble: the leader's heartbeat period in ms (the consensus clock tick)."
    )
    election_timeout: int = _doc(
        500,
        "Ensemble: ms without hearing from a leader before a member campaigns (randomized "
        "up to twice this); a leader that cannot reach a majority for this long steps down.",
    )
    read_only_mode: bool = _doc(
        False,
        "Ensemble: while cut off from a majority, serve reads to clients that allow a "
        "read-only server (ZooKeeper's readonlymode.enabled); writes get NotReadOnly.",
    )
    plugins_disabled: tuple[str, ...] = _doc(
        (), "Names of plugins not to load (built-in or from the coord.plugins entry points)."
    )
    plugins_enabled: tuple[str, ...] = _doc(
        ("*",),
        'Entry-point plugins to load ("*": every installed one); others are not imported. '
        "Built-in plugins are always loaded unless disabled. In TOML also [plugins] enabled.",
    )
    plugin_settings: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={
            "doc": "Each plugin's settings, by plugin name, validated by the plugin; in TOML "
            "a [plugins.<name>] table, in the environment or on the command line a JSON "
            "object."
        },
    )
    audit: bool = _doc(
        False,
        "Write an audit line per state-changing request and per authentication attempt to "
        "the coord.audit logger, and deliver it to the coord_audit_event plugin hooks.",
    )
    sasl_users: tuple[str, ...] = _doc(
        (),
        'SASL DIGEST-MD5 users as "name=password" (ZooKeeper\'s JAAS user_<name>); when '
        "set, the sasl scheme is enabled and a client authenticated as name has the "
        "identity sasl:name.",
    )
    sasl_super_user: str | None = _doc(
        None,
        "A SASL user who is superuser once logged in (ZooKeeper's zookeeper.superUser).",
    )
    log_level: str = _doc(
        "INFO",
        "Level of every coord logger (DEBUG, INFO, WARNING, ERROR or CRITICAL); "
        "log_levels overrides it per concern.",
    )
    log_format: str = _doc(
        "human",
        'Log line format: "human" (time level logger: message) or "json" (one object per '
        "line: ts, level, logger, message and the record's fields).",
    )
    log_levels: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "doc": "Levels per concern, overriding log_level: keys are server, access, "
            "audit, replication or a logger name (coord.client), values levels; in TOML a "
            "table, on the command line and in the environment access=DEBUG,replication=INFO "
            "or a JSON object."
        },
    )
    log_file: str | None = _doc(None, "File the log is appended to (unset: standard error).")
    admin_port: int | None = _doc(
        None,
        "Admin HTTP port: ZooKeeper's AdminServer commands as JSON, /health, /ready, "
        "Prometheus /metrics and a read-only web page at /ui/ (unset: off; 0 picks a free "
        "port, logged). See docs/admin.md.",
    )
    admin_host: str = _doc(
        "127.0.0.1",
        "Address the admin port binds to; an empty string binds every interface.",
    )
    # --- the HTTP API (coord/server/http_api/, docs/http-api.md) -----------------------------
    http_port: int | None = _doc(
        None,
        "Port of the HTTP API (JSON over HTTP/1.1, watches as Server-Sent Events), served "
        "by the http transport on host (unset: off; 0 picks a free port).",
    )
    http_tls: bool = _doc(
        False,
        "Serve the HTTP API over TLS (HTTPS) with the tls_* certificate settings; a verified "
        "client certificate gives the request the x509 identity.",
    )
    http_max_sessions: int = _doc(
        256,
        "ZooKeeper sessions the HTTP API holds for its clients (pooled per client address "
        "and credentials, plus the sessions clients create); past it the least recently "
        "used idle pooled session is closed, and with none idle requests get 503.",
    )
    http_idle_timeout: float = _doc(
        60.0, "Seconds a pooled HTTP API session may stay unused before it is closed."
    )
    http_watch_history: int = _doc(
        10_000,
        "Watch events the HTTP API keeps in memory so that event streams can resume from a "
        "zxid (Last-Event-ID); resuming from an older one gets 410 Gone.",
    )
    http_heartbeat: float = _doc(
        15.0, "Seconds between heartbeat comments on an idle HTTP API event stream."
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            hint = _FIELD_TYPES[f.name]
            if isinstance(value, list) and _is_str_tuple(hint):
                value = tuple(value)
                object.__setattr__(self, f.name, value)
            if not _has_type(value, hint):
                raise ConfigError(
                    f"{f.name} must be {_type_name(hint)}, not {type(value).__name__} ({value!r})",
                    key=f.name,
                )
        if isinstance(self.handshake_timeout, int):
            object.__setattr__(self, "handshake_timeout", float(self.handshake_timeout))
        if isinstance(self.tls_reload_interval, int):
            object.__setattr__(self, "tls_reload_interval", float(self.tls_reload_interval))
        for key in ("http_idle_timeout", "http_heartbeat"):
            if isinstance(getattr(self, key), int):
                object.__setattr__(self, key, float(getattr(self, key)))
        object.__setattr__(self, "log_level", self.log_level.upper())
        object.__setattr__(self, "log_levels", {k: v.upper() for k, v in self.log_levels.items()})
        self._validate()

    def _validate(self) -> None:
        def fail(key: str, message: str) -> None:
            raise ConfigError(f"{key} {message}", key=key)

        if not 0 <= self.port <= 65535:
            fail("port", f"must be between 0 and 65535, not {self.port}")
        if not self.storage:
            fail("storage", "must name a storage backend")
        if self.tick_time <= 0:
            fail("tick_time", f"must be a positive number of milliseconds, not {self.tick_time}")
        if self.log_retain < 1:
            fail("log_retain", f"must be a positive number of entries, not {self.log_retain}")
        for key in ("min_session_timeout", "max_session_timeout"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                fail(key, f"must be a positive number of milliseconds, not {value}")
        low, high = self.effective_min_session_timeout, self.effective_max_session_timeout
        if low > high:
            raise ConfigError(
                f"min_session_timeout ({low} ms) must not exceed max_session_timeout "
                f"({high} ms); unset values default to 2 and 20 x tick_time",
                key="min_session_timeout" if self.min_session_timeout is not None else None,
            )
        if not 0 < self.max_frame < 2**31:
            fail("max_frame", f"must be a positive 32-bit size in bytes, not {self.max_frame}")
        if self.max_client_connections < 0:
            fail(
                "max_client_connections",
                f"must be 0 (unlimited) or positive, not {self.max_client_connections}",
            )
        if not self.handshake_timeout > 0:
            fail("handshake_timeout", f"must be positive seconds, not {self.handshake_timeout}")
        unknown = [w for w in self.four_letter_words if w != "*" and w not in FOUR_LETTER_WORDS]
        if unknown:
            hints = "".join(
                f" ({w!r}: did you mean {m[0]!r}?)"
                for w in unknown
                if (m := difflib.get_close_matches(w, FOUR_LETTER_WORDS, n=1))
            )
            fail(
                "four_letter_words",
                f"names unknown words {', '.join(map(repr, unknown))}{hints}; valid: "
                f"{' '.join(sorted(FOUR_LETTER_WORDS))} or * for all",
            )
        if self.container_check_interval <= 0:
            fail(
                "container_check_interval",
                f"must be a positive number of milliseconds, not {self.container_check_interval}",
            )
        if self.super_digest is not None and not _is_digest_id(self.super_digest):
            fail(
                "super_digest",
                'must have the form "super:<base64 of a SHA-1>" (a digest id, as '
                "coord.server digest_id('super', password) gives), not "
                f"{self.super_digest!r}",
            )
        _validate_tls_and_limits(self, fail)
        _validate_http(self, fail)
        if self.server_id < 1:
            fail("server_id", f"must be at least 1, not {self.server_id}")
        if self.members:
            from ._members import MemberSpecError, parse_members

            try:
                members = parse_members(self.members)
            except MemberSpecError as exc:
                fail("members", f"is invalid: {exc}")
            if self.server_id not in members:
                fail(
                    "members",
                    f"has no entry for this server (server_id {self.server_id}); ids listed: "
                    f"{', '.join(map(str, sorted(members)))}",
                )
            if self.peer_tls and not (self.tls_cert and self.tls_ca):
                fail("peer_tls", "needs tls_cert (and tls_key) and tls_ca: peers verify each other")
            if (
                len(members) > 1
                and self.peer_secret is None
                and self.peer_secret_file is None
                and not self.peer_tls
            ):
                fail(
                    "members",
                    "lists other members but no peer_secret (or peer_secret_file) is set and "
                    "peer_tls is off; members must authenticate each other: set the same "
                    "secret on all, or peer_tls with certificates from one CA",
                )
        if self.heartbeat_interval <= 0:
            fail("heartbeat_interval", f"must be positive ms, not {self.heartbeat_interval}")
        if self.election_timeout < 2 * self.heartbeat_interval:
            fail(
                "election_timeout",
                f"must be at least twice heartbeat_interval ({self.heartbeat_interval} ms), "
                f"not {self.election_timeout}",
            )
        if any(not name for name in self.plugins_disabled):
            fail("plugins_disabled", "must not contain an empty plugin name")
        if any(not name for name in self.plugins_enabled):
            fail("plugins_enabled", "must not contain an empty plugin name")
        both = sorted(set(self.plugins_enabled) & set(self.plugins_disabled))
        if both:
            fail("plugins_enabled", f"and plugins_disabled both name {', '.join(both)}")
        for name, table in self.plugin_settings.items():
            if not name:
                fail("plugin_settings", "must not have an empty plugin name")
            if not all(isinstance(k, str) for k in table):
                fail("plugin_settings", f"[plugins.{name}] keys must be strings")
        users: set[str] = set()
        for entry in self.sasl_users:
            user, sep, _password = entry.partition("=")
            if not sep or not user:
                fail("sasl_users", f'entries must be "name=password", not {entry!r}')
            if user in users:
                fail("sasl_users", f"names user {user!r} twice")
            users.add(user)
        if self.sasl_super_user is not None and self.sasl_super_user not in users:
            fail(
                "sasl_super_user",
                f"names {self.sasl_super_user!r}, who is not one of sasl_users",
            )
        if self.log_level not in _LOG_LEVELS:
            fail("log_level", f"must be one of {', '.join(_LOG_LEVELS)}, not {self.log_level!r}")
        if self.log_format not in _LOG_FORMATS:
            fail("log_format", f'must be "human" or "json", not {self.log_format!r}')
        for concern, level in self.log_levels.items():
            if concern not in LOG_CONCERNS and not (
                concern.startswith("coord.")
                and all(part.isidentifier() for part in concern.split("."))
            ):
                match = difflib.get_close_matches(concern, LOG_CONCERNS, n=1)
                hint = f" (did you mean {match[0]!r}?)" if match else ""
                fail(
                    "log_levels",
                    f"names unknown concern {concern!r}{hint}; concerns: "
                    f"{', '.join(LOG_CONCERNS)}, or a logger name coord.<name>",
                )
            if level not in _LOG_LEVELS:
                fail(
                    "log_levels",
                    f"[{concern}] must be one of {', '.join(_LOG_LEVELS)}, not {level!r}",
                )
        if self.log_file is not None and not self.log_file:
            fail("log_file", "must name a file (leave it unset for standard error)")

    @property
    def ensemble(self) -> bool:
        """Whether this server is one member of several (``members`` lists others)."""
        return len(self.members) > 1

    def read_peer_secret(self) -> bytes:
        """The peer secret, from ``peer_secret`` or the first line of ``peer_secret_file``.

        Raises:
            ConfigError: the file cannot be read or is empty.
        """
        if self.peer_secret is not None:
            secret = self.peer_secret
        elif self.peer_secret_file is not None:
            try:
                secret = Path(self.peer_secret_file).read_text().splitlines()[0].strip()
            except (OSError, IndexError) as exc:
                raise ConfigError(
                    f"peer_secret_file {self.peer_secret_file!r} cannot be read or is empty "
                    f"({exc})",
                    key="peer_secret_file",
                ) from None
        else:
            secret = ""
        if self.ensemble and not secret and not self.peer_tls:
            raise ConfigError("the peer secret is empty", key="peer_secret")
        return secret.encode()

    @property
    def sasl_credentials(self) -> dict[str, str]:
        """``sasl_users`` as a mapping of user name to password."""
        return dict(entry.partition("=")[::2] for entry in self.sasl_users)

    @property
    def effective_min_session_timeout(self) -> int:
        """The lowest session timeout granted, in ms: the field, or 2 x ``tick_time``."""
        if self.min_session_timeout is not None:
            return self.min_session_timeout
        return 2 * self.tick_time

    @property
    def effective_max_session_timeout(self) -> int:
        """The highest session timeout granted, in ms: the field, or 20 x ``tick_time``."""
        if self.max_session_timeout is not None:
            return self.max_session_timeout
        return 20 * self.tick_time

    @property
    def enabled_four_letter_words(self) -> frozenset[str]:
        """The four-letter words to answer, with ``"*"`` expanded to all of them except
        :data:`EXPLICIT_FOUR_LETTER_WORDS` (``snap``), which are enabled only by name."""
        named = frozenset(self.four_letter_words) - {"*"}
        if "*" in self.four_letter_words:
            return (FOUR_LETTER_WORDS - EXPLICIT_FOUR_LETTER_WORDS) | named
        return named


_TLS_CLIENT_AUTH: Final = ("need", "want", "none")
_TLS_VERSIONS: Final = ("1.2", "1.3")
_X509_IDENTITIES: Final = ("dn", "cn", "san-dns", "san-uri", "san-email", "san-ip")


def _validate_http(config: ServerConfig, fail: Any) -> None:
    """The HTTP API's settings."""
    if config.http_port is not None:
        if not 0 <= config.http_port <= 65535:
            fail("http_port", f"must be between 0 and 65535, not {config.http_port}")
        if config.http_port and config.http_port in (
            config.port,
            config.secure_port,
            config.admin_port,
        ):
            fail("http_port", "must differ from port, secure_port and admin_port")
    if config.http_tls and not config.tls_cert:
        fail("tls_cert", "must name the server certificate's PEM file when http_tls is set")
    if config.http_max_sessions < 1:
        fail("http_max_sessions", f"must be at least 1, not {config.http_max_sessions}")
    for key in ("http_idle_timeout", "http_heartbeat"):
        if not getattr(config, key) > 0:
            fail(key, f"must be positive seconds, not {getattr(config, key)}")
    if config.http_watch_history < 1:
        fail("http_watch_history", f"must be at least 1, not {config.http_watch_history}")


def _validate_tls_and_limits(config: ServerConfig, fail: Any) -> None:
    """The TLS, x509 and throttling settings (kept apart: they are one feature)."""
    if config.secure_port is not None:
        if not 0 <= config.secure_port <= 65535:
            fail("secure_port", f"must be between 0 and 65535, not {config.secure_port}")
        if config.secure_port and config.secure_port == config.port:
            fail("secure_port", f"must differ from port ({config.port})")
        if not config.tls_cert:
            fail("tls_cert", "must name the server certificate's PEM file when secure_port is set")
        if config.tls_client_auth != "none" and not config.tls_ca:
            fail(
                "tls_ca",
                f"must name a PEM bundle of client CAs when tls_client_auth is "
                f'{config.tls_client_auth!r} (or set tls_client_auth = "none")',
            )
    if config.tls_client_auth not in _TLS_CLIENT_AUTH:
        fail(
            "tls_client_auth",
            f"must be one of {', '.join(_TLS_CLIENT_AUTH)}, not {config.tls_client_auth!r}",
        )
    if config.tls_min_version not in _TLS_VERSIONS:
        fail(
            "tls_min_version",
            f"must be one of {', '.join(_TLS_VERSIONS)}, not {config.tls_min_version!r}",
        )
    if config.tls_reload_interval < 0:
        fail(
            "tls_reload_interval",
            f"must be 0 (never) or positive seconds, not {config.tls_reload_interval}",
        )
    if config.x509_identity not in _X509_IDENTITIES:
        fail(
            "x509_identity",
            f"must be one of {', '.join(_X509_IDENTITIES)}, not {config.x509_identity!r}",
        )
    if config.admin_port is not None:
        if not 0 <= config.admin_port <= 65535:
            fail("admin_port", f"must be between 0 and 65535, not {config.admin_port}")
        if config.admin_port and config.admin_port in (config.port, config.secure_port):
            fail("admin_port", f"must differ from the client ports ({config.admin_port})")
    if config.max_outstanding_requests < 0:
        fail(
            "max_outstanding_requests",
            f"must be 0 (unlimited) or positive, not {config.max_outstanding_requests}",
        )
    if not 0 <= config.busy_poll_us <= 100_000:
        fail("busy_poll_us", f"must be between 0 (off) and 100000, not {config.busy_poll_us}")
    if config.requests_per_turn < 0:
        fail(
            "requests_per_turn",
            f"must be 0 (unlimited) or positive, not {config.requests_per_turn}",
        )


_FIELD_TYPES: Final[dict[str, Any]] = typing.get_type_hints(ServerConfig)
_FIELDS: Final[dict[str, dataclasses.Field[Any]]] = {
    f.name: f for f in dataclasses.fields(ServerConfig)
}


def _is_optional(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def _base(hint: Any) -> Any:
    """``int`` for ``int | None``; the hint itself otherwise."""
    if _is_optional(hint):
        (base,) = (a for a in typing.get_args(hint) if a is not type(None))
        return base
    return hint


def _is_str_tuple(hint: Any) -> bool:
    return typing.get_origin(_base(hint)) is tuple


def _is_table(hint: Any) -> bool:
    """A table of tables (``dict[str, dict[str, Any]]``: plugin_settings)."""
    base = _base(hint)
    return typing.get_origin(base) is dict and typing.get_args(base)[1] is not str


def _is_str_map(hint: Any) -> bool:
    """A table of strings (``dict[str, str]``: log_levels)."""
    base = _base(hint)
    return typing.get_origin(base) is dict and typing.get_args(base)[1] is str


def _type_name(hint: Any) -> str:
    base = _base(hint)
    if _is_table(base):
        name = "a table of tables (plugin name -> settings)"
    elif _is_str_map(base):
        name = "a table of strings"
    elif _is_str_tuple(base):
        name = "a list of strings"
    else:
        name = {int: "an integer", float: "a number", bool: "a boolean", str: "a string"}[base]
    return f"{name} or unset" if _is_optional(hint) else name


def _has_type(value: Any, hint: Any) -> bool:
    if value is None:
        return _is_optional(hint)
    base = _base(hint)
    if _is_table(base):
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, dict) for k, v in value.items()
        )
    if _is_str_map(base):
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    if _is_str_tuple(base):
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    if base is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, base)


def _is_digest_id(text: str) -> bool:
    user, sep, digest = text.partition(":")
    if not (user and sep) or ":" in digest:
        return False
    try:
        return len(base64.b64decode(digest, validate=True)) == 20
    except (binascii.Error, ValueError):
        return False


def convert_value(key: str, value: object, *, source: str) -> object:
    """Convert ``value`` for the :class:`ServerConfig` field ``key``.

    Strings (environment variables, command-line flags) are parsed: integers in decimal
    (or ``0x`` hex), booleans from ``true/false/1/0/yes/no/on/off``, lists as
    comma-separated names, and an empty string unsets an optional field. Other values
    (TOML, Python) must already have the field's type; TOML arrays become tuples.

    Args:
        key: a field name.
        value: the raw value.
        source: where it came from, for error messages.

    Returns:
        The value, of the field's type (range checks are left to :class:`ServerConfig`).

    Raises:
        ConfigError: ``key`` names no field, or ``value`` cannot be converted.
    """
    if key not in _FIELD_TYPES:
        raise _unknown_key(key, key, source)
    hint = _FIELD_TYPES[key]
    base = _base(hint)

    def bad(expected: str) -> ConfigError:
        return ConfigError(
            f"{key} must be {expected}, not {value!r} (from {source})", key=key, source=source
        )

    if isinstance(value, Path) and base is str:
        return str(value)
    if isinstance(value, list) and _is_str_tuple(base):
        value = tuple(value)
    if not isinstance(value, str) or base is str:
        if not _has_type(value, hint):
            raise bad(_type_name(hint))
        return value
    text = value.strip()
    if text == "" and _is_optional(hint):
        return None
    if base is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise bad("a boolean (true/false, 1/0, yes/no, on/off)")
    if base is int:
        try:
            return int(text, 0) if text.lower().startswith(("0x", "0o", "0b")) else int(text)
        except ValueError:
            raise bad("an integer") from None
    if base is float:
        try:
            return float(text)
        except ValueError:
            raise bad("a number") from None
    if _is_str_tuple(base):
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if _is_str_map(base):
        return _parse_str_map(text, bad)
    if _is_table(base):
        try:
            parsed = json.loads(text) if text else {}
        except ValueError:
            raise bad('a JSON object of objects ({"plugin": {"key": value}})') from None
        if not _has_type(parsed, hint):
            raise bad('a JSON object of objects ({"plugin": {"key": value}})')
        return parsed
    raise AssertionError(f"unhandled field type {hint!r}")  # pragma: no cover


def _parse_str_map(text: str, bad: Any) -> dict[str, str]:
    """``a=x,b=y`` or a JSON object of strings (environment and command line)."""
    expected = 'a JSON object of strings or comma-separated name=value pairs ("access=DEBUG")'
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise bad(expected) from None
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise bad(expected)
        return parsed
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise bad(expected)
        out[name.strip()] = value.strip()
    return out


def _unknown_key(shown: str, key: str, source: str, *, env: bool = False) -> ConfigError:
    candidates = [ENV_PREFIX + n.upper() for n in _FIELDS] if env else list(_FIELDS)
    probe = shown if env else key
    match = difflib.get_close_matches(probe, candidates, n=1, cutoff=0.6)
    if match:
        hint = f"; did you mean {match[0]!r}?"
    else:
        hint = f"; valid keys: {', '.join(candidates)}"
    return ConfigError(f"unknown config key {shown!r} in {source}{hint}", key=shown, source=source)


def _read_file(path: Path) -> dict[str, Any]:
    source = f"config file {str(path)!r}"
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{source} does not exist", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}", source=source) from None
    values: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for raw_key, raw_value in _plugins_table(data, source).items():
        key = raw_key.replace("-", "_")
        if key not in _FIELDS:
            raise _unknown_key(raw_key, key, source)
        if key in spelled:
            raise ConfigError(
                f"{source} sets {key!r} twice (as {spelled[key]!r} and {raw_key!r})",
                key=key,
                source=source,
            )
        spelled[key] = raw_key
        values[key] = convert_value(key, raw_value, source=source)
    return values


_PLUGINS_TABLE_KEYS: Final = {"enabled": "plugins_enabled", "disabled": "plugins_disabled"}


def _plugins_table(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Unfold a TOML ``[plugins]`` table into the fields it stands for.

    ``[plugins] enabled = [...]`` / ``disabled = [...]`` set ``plugins_enabled`` /
    ``plugins_disabled``; each sub-table ``[plugins.<name>]`` is that plugin's entry in
    ``plugin_settings``.
    """
    table = data.get("plugins")
    if table is None:
        return data
    out = {k: v for k, v in data.items() if k != "plugins"}
    if not isinstance(table, dict):
        raise ConfigError(
            f"plugins in {source} must be a table ([plugins]), not {table!r}",
            key="plugins",
            source=source,
        )
    settings: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            settings[key] = value
            continue
        field_name = _PLUGINS_TABLE_KEYS.get(key.replace("-", "_"))
        if field_name is None:
            match = difflib.get_close_matches(key, list(_PLUGINS_TABLE_KEYS), n=1)
            hint = f"did you mean {match[0]!r}? " if match else ""
            raise ConfigError(
                f"unknown key {key!r} in the [plugins] table of {source}; {hint}valid: "
                "enabled, disabled, and a [plugins.<name>] table per plugin",
                key=f"plugins.{key}",
                source=source,
            )
        if field_name in out:
            raise ConfigError(
                f"{source} sets {field_name!r} twice (as {field_name!r} and plugins.{key})",
                key=field_name,
                source=source,
            )
        out[field_name] = value
    if settings:
        if "plugin_settings" in out:
            raise ConfigError(
                f"{source} sets plugin settings twice (plugin_settings and [plugins.<name>])",
                key="plugin_settings",
                source=source,
            )
        out["plugin_settings"] = settings
    return out


#: ``COORD_*`` variables that are not settings (they configure test machinery).
ENV_NOT_CONFIG: Final[frozenset[str]] = frozenset({"COORD_FAILPOINTS"})


def _read_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, raw_value in env.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_CONFIG:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        source = f"environment variable {name}"
        if key not in _FIELDS or name != ENV_PREFIX + key.upper():
            raise _unknown_key(name, key, "the environment", env=True)
        values[key] = convert_value(key, raw_value, source=source)
    return values


def load_config(
    *,
    file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> ServerConfig:
    """Build a :class:`ServerConfig` from a TOML file, environment variables and overrides.

    Precedence, highest first: ``overrides`` (the command line) > ``env`` (variables
    ``COORD_<FIELD>``, e.g. ``COORD_PORT``, ``COORD_DATA_DIR``) > ``file`` (top-level keys
    named as the fields, ``snake_case`` or ``kebab-case``) > the field defaults.

    Args:
        file: a TOML file, or None for none.
        env: environment variables (pass ``os.environ``); only ``COORD_*`` ones are read.
            None reads none.
        overrides: field values that win over every other source (the CLI's flags).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file is missing or not TOML; a file key, ``COORD_*`` variable or
            override names no field (the message names the key, its source and the closest
            valid key); a value cannot be converted to its field's type; or the merged
            configuration is invalid.
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    if file is not None:
        layers.append((f"config file {os.fspath(file)!r}", _read_file(Path(file))))
    if env is not None:
        layers.append(("the environment", _read_env(env)))
    if overrides is not None:
        source = "overrides"
        converted = {}
        for key, value in overrides.items():
            if key not in _FIELDS:
                raise _unknown_key(key, key, source)
            converted[key] = convert_value(key, value, source=source)
        layers.append((source, converted))

    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source, values in layers:
        merged.update(values)
        origin.update(dict.fromkeys(values, source))
    try:
        return ServerConfig(**merged)
    except ConfigError as exc:
        if exc.key is None or exc.key not in origin:
            raise
        source = origin[exc.key]
        raise ConfigError(f"{exc} (from {source})", key=exc.key, source=source) from None


def _field_table() -> str:
    rows = []
    for f in dataclasses.fields(ServerConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        rows.append(
            f"    ``{f.name}`` ({_type_name(_FIELD_TYPES[f.name])}, default "
            f"``{default!r}``)\n        {f.metadata['doc']}"
        )
    return "\n\nFields:\n\n" + "\n".join(rows) + "\n"


ServerConfig.__doc__ = inspect.cleandoc(ServerConfig.__doc__ or "") + _field_table()
