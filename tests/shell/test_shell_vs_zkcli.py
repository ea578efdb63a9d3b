"""Differential: the shell prints what Apache ZooKeeper's zkCli.sh prints, command by
command, on the same server (coord or ZooKeeper), stdout and stderr alike.

Each tool works under a root of its own; the root is then replaced by ``ROOT`` and the
zxid, time and ephemeral-owner values of Stats (which differ between two runs) are
masked. Everything else must be identical.
"""

from __future__ import annotations

import io
import re

import pytest

from coord.shell import Shell
from coord.testing import require_zookeeper, run_zkcli

pytestmark = pytest.mark.zookeeper

# The commands users script against most, including failing ones. {R} is the root.
COMMANDS = (
    "create {R} hello",
    "create {R}/b",
    "create {R}/c 'two words'",
    "create -e {R}/e eph",
    "create -s {R}/s- seq",
    "create {R}/ro data world:anyone:r",
    "ls {R}",
    "ls -s {R}",
    "ls -R {R}",
    "get {R}",
    "get -s {R}",
    "get {R}/b",
    "get {R}/c",
    "stat {R}",
    "stat {R}/e",
    "getAcl {R}/ro",
    "getAcl -s {R}",
    "set {R} again",
    "set -s {R} again2",
    "set -v 0 {R} stale",
    "create {R} x",
    "get {R}/nope",
    "ls {R}/nope",
    "stat {R}/nope",
    "delete {R}",
    "delete -v 5 {R}/b",
    "create {R}/ro/child",
    "create {R}/nope/child",
    "create -e {R}/e/child",
    "set {R}/ro denied",
    "getAllChildrenNumber {R}",
    "getEphemerals {R}",
    "sync {R}",
    "config",
    "reconfig -remove 9",
    "whoami",
    "addauth digest u:p",
    "whoami",
    "setAcl {R}/c world:anyone:cdrwa",
    "setAcl -s {R}/b world:anyone:cdrwa",
    "getAcl {R}/c",
    "delete {R}/b",
    "setquota -N 5 {R}",
    "setquota -b 100 {R}",
    "listquota {R}",
    "setquota -n 2 {R}/c",
    "delquota -N {R}",
    "listquota {R}",
    "delquota {R}",
    "listquota {R}",
    "delquota {R}",
    "deleteall {R}",
    "ls {R}",
)

_MASKED = re.compile(r"^(cZxid|mZxid|pZxid|ctime|mtime) = .*$", re.MULTILINE)
_OWNER = re.compile(r"^ephemeralOwner = 0x[0-9a-f]*[1-9a-f][0-9a-f]*$", re.MULTILINE)


def _normal(text: str, root: str) -> str:
    text = text.replace(root, "ROOT").rstrip("\n")
    text = _MASKED.sub(lambda m: f"{m.group(1)} = *", text)
    return _OWNER.sub("ephemeralOwner = <session>", text)


def test_Shell_prints_what_zkcli_prints(target, root: str) -> None:
    require_zookeeper()
    zk_root, our_root = f"{root}-zkcli", f"{root}-shell"
    expected = run_zkcli(target.address, *(c.format(R=zk_root) for c in COMMANDS))

    out, err = io.StringIO(), io.StringIO()
    shell = Shell(target.address, out=out, err=err, timeout=10)
    shell.connect()
    try:
        for command, theirs in zip(COMMANDS, expected.outputs, strict=True):
            out.seek(0), out.truncate()
            err.seek(0), err.truncate()
            shell.execute(command.format(R=our_root))
            ours = (_normal(out.getvalue(), our_root), _normal(err.getvalue(), our_root))
            assert ours == (
                _normal(theirs.stdout, zk_root),
                _normal(theirs.stderr, zk_root),
            ), command
    finally:
        shell.close()


WATCH_COMMANDS = (
    "create {R} a",
    "get -w {R}",
    "set {R} b",
    "ls -w {R}",
    "create {R}/c",
    "addWatch {R}",
    "create {R}/c/d",
    "set {R}/c/d x",
    "removewatches {R}",
    "stat -w {R}/nope",
    "removewatches {R}/nope",
    "removewatches {R}/nope",
    "addWatch -m persistent {R}",
    "create {R}/e",
    "removewatches -d {R}",
    "deleteall {R}",
)


def test_Shell_prints_the_watch_events_zkcli_prints(target, root: str) -> None:
    """The same watches, set and removed, fire the same events in the same order."""
    require_zookeeper()
    zk_root, our_root = f"{root}-zkcli", f"{root}-shell"
    expected = run_zkcli(target.address, *(c.format(R=zk_root) for c in WATCH_COMMANDS))
    theirs = [e for e in expected.events if "type:None" not in e]

    out, err = io.StringIO(), io.StringIO()
    shell = Shell(target.address, out=out, err=err, timeout=10)
    shell.connect()
    try:
        for command, their_output in zip(WATCH_COMMANDS, expected.outputs, strict=True):
            err.seek(0), err.truncate()
            shell.execute(command.format(R=our_root))
            assert _normal(err.getvalue(), our_root) == _normal(their_output.stderr, zk_root)
    finally:
        shell.close()
    ours = [line for line in out.getvalue().splitlines() if line.startswith("WatchedEvent")]
    assert len(theirs) >= 6
    assert [_normal(e, our_root) for e in ours] == [_normal(e, zk_root) for e in theirs]
