"""Fault-injection shims for tests of coord (and of users' deployments of it).

``failsync.c`` is an ``LD_PRELOAD`` shim that makes ``fsync``, ``fdatasync``,
``sync_file_range`` and ``syncfs`` fail with ``EIO`` after N calls or while a trigger file
exists (its header documents the environment variables). :func:`build_failsync` compiles
it on demand, so nothing is built at install time.

``redirect.c`` is an ``LD_PRELOAD`` shim that rewrites ``connect`` calls to chosen
127.0.0.1 ports into connects to another loopback address (where a proxy listens);
:func:`build_redirect` compiles it. :class:`coord.testing.ZooKeeperEnsemble` uses it so
that every peer link of Apache ZooKeeper goes through its partition proxies.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = [
    "FAILSYNC_SOURCE",
    "REDIRECT_SOURCE",
    "FaultShimUnavailable",
    "build_failsync",
    "build_redirect",
]

#: The shim's C source.
FAILSYNC_SOURCE = Path(__file__).with_name("failsync.c")

#: The connect-redirecting shim's C source.
REDIRECT_SOURCE = Path(__file__).with_name("redirect.c")


class FaultShimUnavailable(RuntimeError):
    """The shim cannot be built here (no C compiler)."""


def build_failsync(directory: Path) -> Path:
    """Compile the failsync shim into ``directory``; returns the shared object's path.

    Raises:
        FaultShimUnavailable: neither ``gcc`` nor ``cc`` is on ``PATH``.
        subprocess.CalledProcessError: the compiler failed (its output is attached).
    """
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise FaultShimUnavailable("no C compiler (gcc or cc) on PATH to build failsync.so")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "failsync.so"
    command = [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(target)]
    subprocess.run(
        [*command, str(FAILSYNC_SOURCE), "-ldl"],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


def build_redirect(directory: Path) -> Path:
    """Compile the connect-redirecting shim into ``directory``; returns the ``.so`` path.

    Raises:
        FaultShimUnavailable: neither ``gcc`` nor ``cc`` is on ``PATH``.
        subprocess.CalledProcessError: the compiler failed (its output is attached).
    """
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise FaultShimUnavailable("no C compiler (gcc or cc) on PATH to build redirect.so")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "redirect.so"
    command = [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(target)]
    subprocess.run(
        [*command, str(REDIRECT_SOURCE), "-ldl", "-lpthread"],
        check=True,
        capture_output=True,
        text=True,
    )
    return target
