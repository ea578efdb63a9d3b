"""docs/admin.md stays true: its curl examples answer as shown, its metrics exist."""

from __future__ import annotations

import re
from pathlib import Path

from admin_support import exported_names, get
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from coord.testing._server import CoordServerThread

ADMIN_DOC = Path(__file__).parents[2] / "docs" / "admin.md"
_CURL = re.compile(r"^\$ curl (?P<options>[^']*?)'?http://127\.0\.0\.1:808\d(?P<path>/[^' ]*)'?")


def test_every_curl_example_answers_as_documented() -> None:
    """Each ``$ curl`` line of the page, run against a server holding the nodes it
    mentions: 2xx, except the refused snapshot (403) and the partitioned follower's
    /ready (200 here: this server is ready)."""
    examples = [m for line in ADMIN_DOC.read_text().splitlines() if (m := _CURL.match(line))]
    assert len(examples) >= 10
    with CoordServerThread(admin_port=0) as server:
        client = KazooClient(hosts=server.address, timeout=5)
        client.start(timeout=10)
        client.create("/app/config", b'{"a": 2}', makepath=True)
        client.create("/private", b"x", acl=[make_digest_acl("alice", "secret", all=True)])
        client.set("/app/config", b'{"a": 2}')
        client.stop()
        client.close()
        for example in examples:
            path = example["path"]
            auth = ("alice", "secret") if "-u alice:secret" in example["options"] else None
            status, _, body = get(server.admin_address, path, auth=auth)
            expected = 403 if path == "/commands/snapshot" else 200
            assert status == expected, (path, status, body[:200])
            if path.startswith("/api/node") and auth is not None:
                assert b'"authorized":true' in body


def test_every_metric_in_the_table_is_exported() -> None:
    text = ADMIN_DOC.read_text()
    table = text[text.index("| Metric | Type | Meaning |") :]
    table = table[: table.index("\n\n")]
    named = set(re.findall(r"`((?:coord|process)_[a-z_]+)", table))
    assert len(named) >= 30
    with CoordServerThread(admin_port=0) as server:
        status, _, body = get(server.admin_address, "/metrics")
    assert status == 200
    missing = named - exported_names(body.decode())
    assert not missing, f"docs/admin.md names metrics that are not exported: {sorted(missing)}"
