"""A full disk stops the server (fail-stop) and loses no acknowledged write.

The rule under test (``LogStore.write``, ``Server._write``): when the store cannot write a
batch, the server logs a critical "storage failure" naming the cause and exits with a
non-zero status, without acknowledging that batch or anything after it; a restart on a
disk with room recovers every acknowledged write.

The data directory is a tmpfs of 8 MiB (``mount -t tmpfs``; needs root and
CAP_SYS_ADMIN -- skipped otherwise, except under ``CI=true`` where a process that has
CAP_SYS_ADMIN must be able to mount).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from durability_support import (
    LeanClient,
    NumberedWrites,
    Pipeline,
    ServerGone,
    ServerProcess,
    seed_for,
    store_info,
)

SMALL = "8m"


def _has_cap_sys_admin() -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 21))
    except OSError:
        pass
    return False


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` for the duration (or a skip/fail)."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        reason = "no mount command"
        result = None
    else:
        result = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
        reason = f"mount -t tmpfs failed: {result.stderr.strip() or result.returncode}"
    if result is None or result.returncode != 0:
        if os.environ.get("CI") == "true" and os.geteuid() == 0 and _has_cap_sys_admin():
            pytest.fail(f"{reason} although this process has CAP_SYS_ADMIN")
        pytest.skip(f"cannot make a small file system for the full-disk test: {reason}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.slow
def test_Server_full_disk_stops_the_server_and_loses_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    seed = seed_for("disk-full")
    rng = random.Random(seed)
    ctx = f"[seed={seed} disk-full]"
    sizes = [rng.choice([16, 2_000, 20_000, 60_000]) for _ in range(5000)]
    writes = NumberedWrites(lambda j: sizes[j % len(sizes)])
    window = rng.choice([1, 8, 32])
    with tmpfs(tmp_path / "small", SMALL) as small:
        data_dir = small / "data"
        server = ServerProcess(data_dir, tmp_path / "full.log").start()
        try:
            server.wait_ready()
            with LeanClient.connect(server.port) as client:
                writes.setup(client)
                with pytest.raises(ServerGone):
                    Pipeline(client, window).run(writes.requests(5000), writes.on_reply)
                    pytest.fail(f"{ctx} 5000 large writes fit in {SMALL}")
            status = server.wait_exit(30)
        finally:
            server.kill()
        output = server.output()
        # Fail-stop: a clean exit with a non-zero status (not a crash, not a hang) ...
        assert status > 0, f"{ctx} exit status {status}:\n{output}"
        # ... saying why.
        assert "storage failure" in output, f"{ctx} no storage failure logged:\n{output}"
        assert "no space left on device" in output.lower(), f"{ctx} cause not named:\n{output}"
        assert "Traceback" not in output, f"{ctx} the server crashed:\n{output}"
        print(f"{ctx} {len(writes.acked)} of {writes.sent} writes acknowledged (window {window})")
        assert writes.acked, f"{ctx} nothing was acknowledged before the disk filled"

        # Restart on a copy in a directory with room: every acknowledged write is there.
        copy = tmp_path / "copy"
        shutil.copytree(data_dir, copy)
        print(f"{ctx} store on the full disk: {store_info(copy)}")
        with ServerProcess(copy, tmp_path / "copy.log") as restarted:
            restarted.wait_ready()
            with LeanClient.connect(restarted.port) as client:
                count = writes.check(client, f"{ctx} (copy)")
                # The server writes again now that there is room.
                j = writes.sent
                op, record = writes.request(j)
                assert client.call(op, record).err == 0
            assert restarted.terminate() == 0, restarted.output()

        # And on the original directory, once the file system has grown.
        grown = _mount("-o", "remount,size=64m", str(small))
        assert grown.returncode == 0, f"{ctx} remount failed: {grown.stderr}"
        with ServerProcess(data_dir, tmp_path / "grown.log") as restarted:
            restarted.wait_ready()
            with LeanClient.connect(restarted.port) as client:
                assert writes.check(client, f"{ctx} (grown)") == count
            assert restarted.terminate() == 0, restarted.output()
