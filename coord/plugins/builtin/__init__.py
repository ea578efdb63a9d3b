"""The plugins coord ships with, registered like any third-party plugin.

- ``builtin.memory_store``: the storage backend ``memory`` (:mod:`.memory_store`);
- ``builtin.rocksdb_store``: the storage backend ``rocksdb`` (:mod:`.rocksdb_store`);
- ``builtin.auth``: the auth schemes ``world``, ``digest`` and ``ip`` (:mod:`.auth`);
- ``builtin.tcp``: the transport ``tcp`` (:mod:`.tcp`);
- ``builtin.tls``: the transport ``tls`` (idle unless ``secure_port`` is set) and the auth
  scheme ``x509`` (:mod:`.tls`);
- ``builtin.http_api``: the transport ``http``, the HTTP API (idle unless ``http_port`` is
  set; :mod:`.http_api`).

Each can be turned off with ``plugins_disabled`` (for instance to replace the TCP transport
by a TLS-only one).
"""

__all__ = ["BUILTIN_PLUGINS"]

#: ``(plugin name, module)`` of every built-in plugin, in registration order.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("builtin.memory_store", "coord.plugins.builtin.memory_store"),
    ("builtin.rocksdb_store", "coord.plugins.builtin.rocksdb_store"),
    ("builtin.auth", "coord.plugins.builtin.auth"),
    ("builtin.tcp", "coord.plugins.builtin.tcp"),
    ("builtin.tls", "coord.plugins.builtin.tls"),
    ("builtin.http_api", "coord.plugins.builtin.http_api"),
)
