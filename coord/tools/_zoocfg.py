"""``coord config from-zoocfg``: an Apache ZooKeeper ``zoo.cfg`` as a coord TOML file.

Every key of the ``zoo.cfg`` (and of its ``dynamicConfigFile``) ends up in the output: as a
coord setting when coord has one, as a comment saying why it is ignored when coord has no
use for it, or as a commented-out line saying it was not understood. Nothing is dropped
silently. ``dataDir/myid``, when present, gives ``server_id``.

The membership lines ``server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]``
become ``members`` entries ``"N=host:quorumPort[:observer];clientHost:clientPort"``
(coord/server/_members.py): coord's peers use one port, so the election port is dropped;
a client address without a host (or with a wildcard host) takes the member's host.

What coord does differently is left as a comment to act on: the data directory has
coord's own format (copy the data with ``coord export`` / ``coord import``); TLS wants PEM
files instead of Java keystores (the conversion commands are written out, and the TLS
settings stay commented out until the files exist); an ensemble needs a peer secret.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from coord.server._config import FOUR_LETTER_WORDS, ServerConfig, load_config
from coord.tools._common import ToolError

__all__ = ["ZooCfgConversion", "ZooCfgError", "convert_zoocfg", "parse_properties"]


class ZooCfgError(ToolError):
    """The zoo.cfg (or its dynamic file, or myid) cannot be read or is malformed."""


@dataclass(slots=True)
class ZooCfgConversion:
    """The result of :func:`convert_zoocfg`.

    Attributes:
        toml: the coord configuration file's text.
        settings: the coord settings it sets (field -> value).
        ignored: zoo.cfg keys coord has no use for, with why.
        unknown: zoo.cfg keys not understood (left in the output as comments).
    """

    toml: str
    settings: dict[str, object] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)


def parse_properties(text: str, source: str) -> list[tuple[int, str, str]]:
    """``key=value`` lines of a Java properties file as ZooKeeper writes them.

    Blank lines and comments (``#`` or ``!``) are skipped; keys and values are stripped.

    Returns:
        ``(line number, key, value)`` in file order.

    Raises:
        ZooCfgError: a line has no ``=`` or an empty key, or a key repeats.
    """
    out: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ZooCfgError(f"{source}:{number}: expected key=value, got {raw.strip()!r}")
        if key in seen:
            raise ZooCfgError(f"{source}:{number}: {key} is set twice (first on line {seen[key]})")
        seen[key] = number
        out.append((number, key, value.strip()))
    return out


#: zoo.cfg keys coord has no use for, and why (written as ``# ignored: ...`` comments).
_IGNORED: Final[dict[str, str]] = {
    "initLimit": "coord members catch up by log or snapshot transfer without a fixed limit; "
    "see election_timeout",
    "syncLimit": "coord's equivalent is election_timeout (a leader steps down without a "
    "majority for that long)",
    "dataLogDir": "coord keeps its log in data_dir",
    "autopurge.snapRetainCount": "coord compacts its own log (log_retain); no snapshots "
    "files to purge",
    "autopurge.purgeInterval": "coord compacts its own log (log_retain)",
    "preAllocSize": "coord's store (RocksDB) manages its own files",
    "snapCount": "coord has no snapshot files; the store is the snapshot (log_retain)",
    "snapSizeLimitInKb": "coord has no snapshot files",
    "electionAlg": "coord elects leaders with its Raft-family core",
    "electionPortBindRetry": "coord has no election port",
    "quorumListenOnAllIPs": "a member listens on its own peer address (members)",
    "standaloneEnabled": "one member or an empty members list is standalone",
    "syncEnabled": "observers in coord always persist what they receive",
    "leaderServes": "the leader always serves clients",
    "cnxTimeout": "peer connection timeouts are built in",
    "maxCnxns": "coord limits connections per client address (max_client_connections)",
    "globalOutstandingLimit": "coord limits outstanding requests per connection "
    "(max_outstanding_requests)",
    "forceSync": "coord always syncs before acknowledging a write",
    "skipACL": "coord always checks ACLs",
    "localSessionsEnabled": "coord has no local sessions",
    "localSessionsUpgradingEnabled": "coord has no local sessions",
    "serverCnxnFactory": "coord's transports are plugins (builtin.tcp, builtin.tls)",
    "clientCnxnSocket": "a client-side setting",
    "metricsProvider.className": "coord's metrics are not configured by class name",
    "metricsProvider.httpPort": "coord's metrics are not configured by class name",
    "metricsProvider.exportJvmInfo": "coord does not run on a JVM",
    "admin.commandURL": "coord's admin endpoint has fixed paths",
    "jvm.pause.info-threshold.ms": "coord does not run on a JVM",
    "jvm.pause.warn-threshold.ms": "coord does not run on a JVM",
    "jvm.pause.sleep.time.ms": "coord does not run on a JVM",
    "snapshot.trust.empty": "coord's store has no separate snapshot files",
    "connectToLearnerMasterLimit": "coord members catch up without a fixed limit",
    "multiAddress.enabled": "a coord member has one peer address",
    "sslQuorum": "coord's peer TLS is peer_tls (see the TLS comments)",
    "portUnification": "coord serves TLS on secure_port only",
    "dynamicConfigFile": "read: its server.N lines are the members",
    "version": "the dynamic config version: coord versions membership in its log",
}
#: Prefixes of ignored key families.
_IGNORED_PREFIXES: Final[dict[str, str]] = {
    "quorum.auth.": "coord members authenticate each other with a shared secret "
    "(peer_secret) or peer_tls",
    "ssl.quorum.": "coord's peer TLS (peer_tls) uses the same PEM files as the client port",
    "authProvider.": "coord's auth schemes are plugins (coord plugins list); digest, ip, "
    "x509 and sasl are built in",
    "group.": "coord has no hierarchical quorums",
    "weight.": "coord has no hierarchical quorums",
    "metricsProvider.": "coord's metrics are not configured by class name",
}
_SUPER_DIGEST_KEYS: Final = (
    "superDigest",
    "DigestAuthenticationProvider.superDigest",
    "zookeeper.DigestAuthenticationProvider.superDigest",
)
_FIELD_NAMES: Final = frozenset(f.name for f in dataclasses.fields(ServerConfig))


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return str(value)


def _int(key: str, value: str, source: str, number: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise ZooCfgError(f"{source}:{number}: {key} must be an integer, not {value!r}") from None


def _bool(key: str, value: str, source: str, number: int) -> bool:
    if value.lower() in ("true", "yes", "1"):
        return True
    if value.lower() in ("false", "no", "0"):
        return False
    raise ZooCfgError(f"{source}:{number}: {key} must be true or false, not {value!r}")


def _split_host_port(text: str) -> tuple[str, str]:
    """``host:port`` or ``[v6]:port`` -> (host, port); no colon -> ("", text)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest.removeprefix(":")
    host, sep, port = text.rpartition(":")
    return (host, port) if sep else ("", text)


def _member(
    sid: int, value: str, source: str, number: int, client_port: int | None
) -> tuple[str, bool]:
    """One ``server.N`` value as a coord member spec, and whether its client port was
    assumed (the line has no ``;clientPort``: this file's ``clientPort`` is used)."""
    form = "host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]"
    addresses, _, client = value.partition(";")
    if "|" in addresses:
        raise ZooCfgError(
            f"{source}:{number}: server.{sid} has several addresses (multiAddress); a coord "
            "member has one peer address: keep one"
        )
    if addresses.startswith("["):
        host, _, rest = addresses[1:].partition("]")
        parts = [host, *rest.removeprefix(":").split(":")]
    else:
        parts = addresses.split(":")
    role = "participant"
    if len(parts) == 4:
        role = parts.pop().strip().lower()
    if len(parts) != 3 or role not in ("participant", "observer"):
        raise ZooCfgError(f"{source}:{number}: server.{sid}={value!r} is not of the form {form}")
    host, quorum_port, _election_port = (p.strip() for p in parts)
    if not host or not quorum_port.isdigit() or not _election_port.isdigit():
        raise ZooCfgError(f"{source}:{number}: server.{sid}={value!r} is not of the form {form}")
    if client.strip():
        chost, cport = _split_host_port(client.strip())
        if not cport.isdigit():
            raise ZooCfgError(
                f"{source}:{number}: server.{sid} has a bad client address {client!r}"
            )
        port = int(cport)
    else:
        if client_port is None:
            raise ZooCfgError(
                f"{source}:{number}: server.{sid} has no client port (';clientPort') and "
                "the file sets no clientPort"
            )
        chost, port = "", client_port
    if chost in ("", "0.0.0.0", "::", "0:0:0:0:0:0:0:0"):
        chost = host
    shown = f"[{host}]" if ":" in host else host
    cshown = f"[{chost}]" if ":" in chost else chost
    role_part = ":observer" if role == "observer" else ""
    return f"{sid}={shown}:{quorum_port}{role_part};{cshown}:{port}", not client.strip()


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ZooCfgError(f"{what} {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ZooCfgError(f"cannot read {what} {str(path)!r}: {exc}") from None


def convert_zoocfg(zoo_cfg: str | Path, *, peer_secret_file: str | None = None) -> ZooCfgConversion:
    """Convert a ``zoo.cfg`` (with its dynamic file and ``dataDir/myid``) to coord's TOML.

    Args:
        zoo_cfg: the ZooKeeper configuration file.
        peer_secret_file: for an ensemble, the file every member will read the shared
            peer secret from; None writes a new random ``peer_secret`` instead (copy it
            to every member).

    Returns:
        The TOML text and what was set, ignored and not understood.

    Raises:
        ZooCfgError: a file cannot be read, a line is not ``key=value``, a key repeats,
            or a value coord needs (a port, a ``server.N`` line, myid) is malformed.
    """
    path = Path(zoo_cfg)
    source = str(path)
    entries = parse_properties(_read(path, "zoo.cfg"), source)
    values = {key: (number, value) for number, key, value in entries}
    lines: list[str] = [f"# converted from {source} by: coord config from-zoocfg"]
    settings: dict[str, object] = {}
    ignored: dict[str, str] = {}
    unknown: list[str] = []
    notes: list[str] = []
    handled: set[str] = set()

    def put(key: str, value: object, comment: str = "") -> None:
        settings[key] = value
        lines.append(f"{key} = {_toml(value)}" + (f"  # {comment}" if comment else ""))

    def take(key: str) -> tuple[int, str] | None:
        handled.add(key)
        return values.get(key)

    # --- client port ------------------------------------------------------------------
    client_port: int | None = None
    if (got := take("clientPort")) is not None:
        client_port = _int("clientPort", got[1], source, got[0])
        put("port", client_port, "clientPort")
    client_host = ""
    if (got := take("clientPortAddress")) is not None:
        client_host = got[1]
        put("host", "" if client_host in ("0.0.0.0", "::") else client_host, "clientPortAddress")
    for zk_key, coord_key in (
        ("tickTime", "tick_time"),
        ("minSessionTimeout", "min_session_timeout"),
        ("maxSessionTimeout", "max_session_timeout"),
        ("maxClientCnxns", "max_client_connections"),
    ):
        if (got := take(zk_key)) is not None:
            amount = _int(zk_key, got[1], source, got[0])
            if zk_key.endswith("SessionTimeout") and amount <= 0:
                lines.append(f"# ignored: {zk_key}={got[1]} (ZooKeeper's 'use the default')")
                continue
            put(coord_key, amount, zk_key)
    if (got := take("4lw.commands.whitelist")) is not None:
        words = [w.strip() for w in got[1].split(",") if w.strip()]
        known = [w for w in words if w == "*" or w in FOUR_LETTER_WORDS]
        dropped = [w for w in words if w not in known]
        put("four_letter_words", known, "4lw.commands.whitelist")
        if dropped:
            lines.append(f"# ignored four-letter words coord does not have: {', '.join(dropped)}")
    for zk_key, coord_key in (
        ("readonlymode.enabled", "read_only_mode"),
        ("zookeeper.extendedTypesEnabled", "extended_types"),
        ("extendedTypesEnabled", "extended_types"),
        ("zookeeper.enforceQuota", "enforce_quota"),
        ("enforceQuota", "enforce_quota"),
    ):
        if (got := take(zk_key)) is not None:
            put(coord_key, _bool(zk_key, got[1], source, got[0]), zk_key)
    if (got := take("jute.maxbuffer")) is not None:
        put("max_frame", _int("jute.maxbuffer", got[1], source, got[0]), "jute.maxbuffer")
    for zk_key in _SUPER_DIGEST_KEYS:
        if (got := take(zk_key)) is not None:
            put("super_digest", got[1], zk_key)

    # --- reconfig and admin server: only when this coord has the settings ---------------
    if (got := take("reconfigEnabled")) is not None:
        enabled = _bool("reconfigEnabled", got[1], source, got[0])
        if "reconfig_enabled" in _FIELD_NAMES:
            put("reconfig_enabled", enabled, "reconfigEnabled")
        else:
            lines.append(f"# ignored: reconfigEnabled={got[1]} (this coord has no reconfig)")
            ignored["reconfigEnabled"] = "this coord has no reconfig_enabled setting"
    admin_enable = take("admin.enableServer")
    admin_port = take("admin.serverPort")
    if admin_enable is not None or admin_port is not None:
        enabled = admin_enable is None or _bool(
            "admin.enableServer", admin_enable[1], source, admin_enable[0]
        )
        port = (
            8080
            if admin_port is None
            else _int("admin.serverPort", admin_port[1], source, admin_port[0])
        )
        if "admin_port" not in _FIELD_NAMES:
            lines.append(
                "# ignored: admin.enableServer/admin.serverPort (this coord has no admin_port)"
            )
            ignored["admin.serverPort"] = "this coord has no admin_port setting"
        elif enabled:
            present = (("admin.enableServer", admin_enable), ("admin.serverPort", admin_port))
            put("admin_port", port, ", ".join(key for key, got in present if got is not None))
        else:
            lines.append("# admin.enableServer=false: admin_port left unset (no admin endpoint)")
    if (got := take("admin.serverAddress")) is not None:
        if "admin_host" in _FIELD_NAMES:
            put("admin_host", got[1], "admin.serverAddress")
        else:
            lines.append(f"# ignored: admin.serverAddress={got[1]} (this coord has no admin_host)")
            ignored["admin.serverAddress"] = "this coord has no admin_host setting"

    # --- dataDir and myid ----------------------------------------------------------------
    data_dir = take("dataDir")
    server_id: int | None = None
    if data_dir is not None:
        zk_dir = Path(data_dir[1])
        if not zk_dir.is_absolute():
            zk_dir = path.parent / zk_dir
        lines += [
            f"# dataDir={data_dir[1]}: coord's data directory has its own format and cannot",
            "# use ZooKeeper's snapshot and log files. Choose a new data_dir, then copy the",
            "# data over with:  coord export --server ZK_HOST:PORT --output tree.json",
            "#                  coord import --server COORD_HOST:PORT --input tree.json",
            '# data_dir = "/var/lib/coord"',
        ]
        myid = zk_dir / "myid"
        if myid.exists():
            text = _read(myid, "myid file").strip()
            if not text.isdigit() or not 1 <= int(text) <= 255:
                raise ZooCfgError(f"{myid}: myid must be a number 1..255, not {text!r}")
            server_id = int(text)

    # --- members -------------------------------------------------------------------------
    member_entries = [(n, k, v) for n, k, v in entries if k.startswith("server.")]
    member_source = source
    if (got := take("dynamicConfigFile")) is not None:
        dynamic = Path(got[1])
        if not dynamic.is_absolute():
            dynamic = path.parent / dynamic
        if not dynamic.exists() and (path.parent / dynamic.name).exists():
            dynamic = path.parent / dynamic.name  # written on another host's path
        member_source = str(dynamic)
        dynamic_entries = parse_properties(_read(dynamic, "dynamicConfigFile"), member_source)
        lines.append(f"# members from dynamicConfigFile={got[1]}")
        for number, key, value in dynamic_entries:
            if key == "version":
                lines.append(f"# ignored: version={value} ({_IGNORED['version']})")
                continue
            if key.startswith("server."):
                continue
            handled_elsewhere = key in values
            if not handled_elsewhere:
                entries.append((number, key, value))
                values[key] = (number, value)
        member_entries += [(n, k, v) for n, k, v in dynamic_entries if k.startswith("server.")]
    members: list[str] = []
    assumed_ports = False
    seen_ids: set[int] = set()
    for number, key, value in member_entries:
        handled.add(key)
        sid_text = key.removeprefix("server.")
        if not sid_text.isdigit() or not 1 <= int(sid_text) <= 255:
            raise ZooCfgError(f"{member_source}:{number}: {key}: the id must be 1..255")
        sid = int(sid_text)
        if sid in seen_ids:
            raise ZooCfgError(f"{member_source}:{number}: {key} appears twice")
        seen_ids.add(sid)
        spec, assumed = _member(sid, value, member_source, number, client_port)
        members.append(spec)
        assumed_ports = assumed_ports or assumed
    if (got := take("peerType")) is not None and got[1].strip().lower() == "observer":
        lines.append("# peerType=observer: this server's members entry carries :observer")
    if server_id is not None:
        put("server_id", server_id, "myid")
    elif members:
        notes.append(
            "no dataDir/myid was found: set server_id to this server's N of server.N "
            "(coord config check fails until it names a members entry)"
        )
    if len(members) > 1:
        if assumed_ports:
            lines.append(
                f"# server.N lines without ';clientPort': their members are assumed to serve "
                f"clients on clientPort ({client_port}) at their peer host; correct if not"
            )
        lines.append("members = [")
        lines += [f"    {json.dumps(m)}," for m in members]
        lines.append("]")
        settings["members"] = members
        if peer_secret_file is not None:
            put("peer_secret_file", peer_secret_file, "the same secret on every member")
        else:
            lines.append(
                "# Members prove to each other that they know a shared secret. This one is new"
            )
            lines.append(
                "# and random: put the SAME value on every member (or use peer_secret_file)."
            )
            put("peer_secret", secrets.token_urlsafe(24))
    elif members:
        lines.append(f"# one server.N line: standalone ({members[0]})")

    # --- TLS -----------------------------------------------------------------------------
    secure = take("secureClientPort")
    ssl_keys = [
        k for _n, k, _v in entries if k.startswith("ssl.") and not k.startswith("ssl.quorum.")
    ]
    handled.update(ssl_keys)
    if secure is not None or ssl_keys:
        lines += [
            "# TLS: coord reads PEM files, not Java keystores. Convert them, then uncomment:",
            "#   keytool -importkeystore -srckeystore keystore.jks -destkeystore server.p12 "
            "-deststoretype PKCS12",
            "#   openssl pkcs12 -in server.p12 -nokeys -out server.pem",
            "#   openssl pkcs12 -in server.p12 -nocerts -nodes -out server-key.pem",
            "#   keytool -exportcert -rfc -keystore truststore.jks -alias CA_ALIAS -file ca.pem",
        ]
        if secure is not None:
            lines.append(
                f"# secure_port = {_int('secureClientPort', secure[1], source, secure[0])}"
                "  # secureClientPort"
            )
        for key in ssl_keys:
            value = values[key][1]
            if key == "ssl.keyStore.location":
                lines.append(f'# tls_cert = "server.pem"  # from {key}={value}')
                lines.append('# tls_key = "server-key.pem"')
            elif key == "ssl.trustStore.location":
                lines.append(f'# tls_ca = "ca.pem"  # from {key}={value}')
            elif key == "ssl.clientAuth":
                mode = value.lower()
                mode = mode if mode in ("need", "want", "none") else "need"
                lines.append(f'# tls_client_auth = "{mode}"  # ssl.clientAuth={value}')
            elif key in ("ssl.protocol", "ssl.enabledProtocols"):
                lines.append(f'# tls_min_version = "1.2"  # {key}={value}')
            elif key.endswith("Password") or key.endswith(".password"):
                lines.append(
                    f"# ignored: {key} (the keystore password; PEM keys: tls_key_password)"
                )
            else:
                lines.append(f"# ignored: {key}={value} (no coord equivalent)")
            ignored.setdefault(key, "TLS: see the comments in the output")

    # --- everything else: ignored or not understood --------------------------------------
    rest = [(n, k, v) for n, k, v in entries if k not in handled]
    for _number, key, value in rest:
        why = _IGNORED.get(key) or next(
            (w for prefix, w in _IGNORED_PREFIXES.items() if key.startswith(prefix)), None
        )
        if why is not None:
            ignored[key] = why
            lines.append(f"# ignored: {key}={value} ({why})")
        else:
            unknown.append(key)
            lines.append(f"# not understood, left out: {key}={value}")
    for note in notes:
        lines.append(f"# NOTE: {note}")
    text = "\n".join(lines) + "\n"
    _self_check(text)
    return ZooCfgConversion(text, settings, ignored, unknown)


def _self_check(text: str) -> None:
    """The output must load as a coord config (up to a missing server_id)."""
    import tempfile

    from coord.server._config import ConfigError

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "coord.toml"
        target.write_text(text, encoding="utf-8")
        try:
            load_config(file=target)
        except ConfigError as exc:
            if exc.key in ("members", "server_id"):
                return  # no myid: said in a NOTE
            raise ZooCfgError(f"the converted configuration is invalid: {exc}") from None
