"""docs/http-api.md stays true: its curl examples run against a real server, in order.

Blocks that start servers or need certificates (``make run``, ``coord ...``, https) are
skipped; the HTTPS example is covered by test_http_api_auth.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from http_support import http_address

from coord.testing._server import CoordServerThread

DOC = Path(__file__).resolve().parents[2] / "docs" / "http-api.md"
_SH_BLOCK = re.compile(r"^ *```sh\n(.*?)^ *```$", re.MULTILINE | re.DOTALL)


def _runnable_blocks() -> list[str]:
    blocks = [block for block in _SH_BLOCK.findall(DOC.read_text())]
    return [b for b in blocks if not re.search(r"make run|coord |https://", b)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_http_api_docs_curl_examples_run() -> None:
    blocks = _runnable_blocks()
    assert len(blocks) >= 10
    outputs = []
    with CoordServerThread(http_port=0, http_heartbeat=0.5) as server:
        host, port = http_address(server.server)
        for block in blocks:
            script = block.replace("localhost:8181", f"{host}:{port}")
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-e", "-c", script],
                capture_output=True,
                text=True,
                timeout=60,
            )
            # 28: curl --max-time ended an event stream, as the examples intend.
            assert done.returncode in (0, 28), (block, done.stdout, done.stderr)
            outputs.append(done.stdout)
    text = "\n".join(outputs)
    for unwanted in ('"error":"internal"', '"error":"unavailable"', '"error":"bad_request"'):
        assert unwanted not in text
    assert '"error":"bad_version"' in text  # the compare-and-set example that loses
    assert '"error":"no_auth"' in text  # alice:guess
    assert "event: ready" in text and "event: changed" not in text.split("event: ready")[0]
    assert '"path":"/app/history-' in text
    assert '"path":"/app/members/worker-1"' in text
