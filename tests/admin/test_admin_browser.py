"""The read-only web page in headless Chromium (Debian's ``chromium`` package), against a
real server: the DOM shows the tree, the node's data, Stat and ACL and the ensemble, a node
the browser may not read shows "not authorized", and a screenshot is a real rendering."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from coord.testing._server import CoordServerThread

WIDTH, HEIGHT = 1280, 800


def chromium() -> str:
    """The Chromium binary; skips the test without one (fails it under ``CI=true``)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    reason = "headless Chromium is unavailable (apt-get install chromium)"
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"{reason}; it is required on CI", pytrace=False)
    pytest.skip(reason)


def run_chromium(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Load ``url`` headless, letting its scripts and fetches finish (virtual time)."""
    with tempfile.TemporaryDirectory(prefix="coord-chromium-") as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                *args,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        )


@pytest.fixture(scope="module")
def page_server() -> Iterator[CoordServerThread]:
    with CoordServerThread(admin_port=0) as server:
        client = KazooClient(hosts=server.address, timeout=5)
        client.start(timeout=10)
        try:
            client.create("/app/config", b'{"db": "primary", "pool": 8}', makepath=True)
            client.create("/app/workers/w1", b"alive", makepath=True)
            acl = make_digest_acl("alice", "secret", all=True)
            client.create("/app/private", b"top secret", acl=[acl])
        finally:
            client.stop()
            client.close()
        yield server


def test_page_shows_tree_node_stat_acl_and_ensemble(page_server: CoordServerThread) -> None:
    url = f"http://{page_server.admin_address}/ui/#/app/config"
    dom = run_chromium(url, "--dump-dom").stdout
    # The tree, expanded down to the selected node.
    for path in ('data-path="/app"', 'data-path="/app/config" class="selected"',
                 'data-path="/app/workers"', 'data-path="/zookeeper"'):  # fmt: skip
        assert path in dom, path
    # The node: JSON pretty-printed, its Stat and its ACL.
    assert '<h2 id="node-path">/app/config</h2>' in dom
    assert '{\n  "db": "primary",\n  "pool": 8\n}' in dom
    assert "(json, 28 bytes)" in dom
    assert "<th>dataLength</th><td>28</td>" in dom
    assert "<th>version</th><td>0</td>" in dom
    assert "<td>world</td><td>anyone</td><td>rwcda</td>" in dom
    # The ensemble view.
    assert "standalone" in dom and "1 (this)" in dom
    assert "ready" in dom


def test_page_says_not_authorized_for_a_node_it_may_not_read(
    page_server: CoordServerThread,
) -> None:
    url = f"http://{page_server.admin_address}/ui/#/app/private"
    dom = run_chromium(url, "--dump-dom").stdout
    assert '<h2 id="node-path">/app/private</h2>' in dom
    assert "not authorized" in dom
    assert "top secret" not in dom


def test_screenshot_is_a_rendered_page(page_server: CoordServerThread, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "admin.png"
    url = f"http://{page_server.admin_address}/ui/#/app/config"
    run_chromium(url, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
                 "--hide-scrollbars")  # fmt: skip
    with Image.open(shot) as image:
        assert image.format == "PNG"
        assert image.size == (WIDTH, HEIGHT)
        pixels = image.convert("RGB")
        colors = pixels.getcolors(maxcolors=WIDTH * HEIGHT)
    assert colors is not None
    background = max(colors)[0]
    drawn = WIDTH * HEIGHT - background
    # Panels, text and the header bar cover a good part of the page, in many colours.
    assert drawn > 0.3 * WIDTH * HEIGHT, drawn
    assert len(colors) > 50
    # The header bar (dark blue) is painted across the top.
    r, g, b = pixels.getpixel((WIDTH // 2, 5))
    assert b > r and b > 80 and r < 80, (r, g, b)
