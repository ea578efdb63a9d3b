"""``coord shell -c ...`` against coord and Apache ZooKeeper: output, JSON, errors, exit
statuses, watches, and the command itself reading stdin."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from shell_support import ShellRun

import coord
from coord.client import digest_id
from coord.shell import Shell

Run = Callable[..., ShellRun]


def _masked(text: str) -> str:
    """Output with the zxid and time lines of Stats masked."""
    lines = []
    for line in text.splitlines():
        name = line.split(" = ", 1)[0]
        if name in ("cZxid", "mZxid", "pZxid", "ctime", "mtime"):
            line = f"{name} = *"
        lines.append(line)
    return "\n".join(lines)


def test_Shell_reads_and_writes_print_zkclis_text(target, root: str, shell: Run) -> None:
    """create/get/set/ls/stat/delete print what zkCli.sh prints, creates on stderr."""
    result = shell(
        target.address,
        f"create {root} 'hello world'",
        f"create {root}/empty",
        f"create -s {root}/seq- x",
        f"create -e {root}/eph",
        f"get {root}",
        f"get {root}/empty",
        f"set -s -v 0 {root} v2",
        f"ls {root}",
        f"ls -R {root}",
        f"stat {root}/empty",
        f"getAllChildrenNumber {root}",
        f"getEphemerals {root}",
        f"sync {root}",
        f"delete {root}/empty",
        f"ls {root}",
    )
    assert result.status == 0, result.err
    assert result.err.splitlines() == [
        f"Created {root}",
        f"Created {root}/empty",
        f"Created {root}/seq-0000000001",
        f"Created {root}/eph",
    ]
    assert _masked(result.out).splitlines() == [
        "hello world",
        "null",  # no data given: null data, as zkCli creates it
        "cZxid = *",
        "ctime = *",
        "mZxid = *",
        "mtime = *",
        "pZxid = *",
        "cversion = 3",
        "dataVersion = 1",
        "aclVersion = 0",
        "ephemeralOwner = 0x0",
        "dataLength = 2",
        "numChildren = 3",
        "[empty, eph, seq-0000000001]",
        root,
        f"{root}/empty",
        f"{root}/eph",
        f"{root}/seq-0000000001",
        "cZxid = *",
        "ctime = *",
        "mZxid = *",
        "mtime = *",
        "pZxid = *",
        "cversion = 0",
        "dataVersion = 0",
        "aclVersion = 0",
        "ephemeralOwner = 0x0",
        "dataLength = 0",
        "numChildren = 0",
        "3",
        f"[{root}/eph]",
        "Sync is OK",
        "[eph, seq-0000000001]",
    ]
    shell(target.address, f"deleteall {root}")


def test_Shell_errors_print_zkclis_messages_and_set_the_exit_status(
    target, root: str, shell: Run
) -> None:
    """A failed operation prints zkCli's message on stderr and exits 1; a malformed line
    prints the usage and exits 2; an unknown command exits 127; the others still run."""
    failed = shell(
        target.address,
        f"create {root} a",
        f"create {root}/c b",
        f"get {root}/nope",
        f"create {root} again",
        f"delete {root}",
        f"set -v 7 {root} x",
        f"create {root}/locked x world:anyone:r",
        f"create {root}/locked/child",
        f"ls {root}/nope",
        "reconfig -remove 9",
    )
    assert failed.status == 1
    assert failed.err.splitlines()[2:] == [
        f"Node does not exist: {root}/nope",
        f"Node already exists: {root}",
        f"Node not empty: {root}",
        f"version No is not valid : {root}",
        f"Created {root}/locked",
        f"Insufficient permission : {root}/locked/child",
        f"Node does not exist: {root}/nope",
        "KeeperErrorCode = Reconfig is disabled",
    ]
    usage = shell(target.address, "get", f"ls {root}")
    assert usage.status == 2
    assert usage.err == "get [-s] [-w] path\n" and usage.out == "[c, locked]\n"
    unknown = shell(target.address, "frobnicate /x")
    assert unknown.status == 127 and "Command not found: frobnicate" in unknown.err
    stopped = shell(target.address, f"get {root}/nope", f"get {root}", exit_on_error=True)
    assert stopped.status == 1 and stopped.out == ""
    assert shell(target.address, f"deleteall {root}", f"ls {root}").status == 1


def test_Shell_json_mode_prints_one_object_per_command(target, root: str, shell: Run) -> None:
    result = shell(
        target.address,
        f"create {root} '{{\"k\": 1}}'",
        f"create {root}/b x digest:u:Fmh+mP5XaVpMvnvw3n8q2JtR9+I=:cdrwa,world:anyone:r",
        f"get -s {root}",
        f"ls {root}",
        f"getAcl {root}/b",
        f"get {root}/nope",
        "whoami",
        f"tree {root}",
        "bogus",
        json_mode=True,
    )
    assert result.status == 127 and result.err == ""
    created, created_b, got, listed, acl, missing, whoami, tree, bogus = result.objects
    assert created == {"command": "create", "ok": True, "path": root}
    assert created_b["path"] == f"{root}/b"
    assert got["data"] == '{"k": 1}' and got["stat"]["version"] == 0
    assert got["stat"]["num_children"] == 1 and got["stat"]["data_length"] == 8
    assert listed == {"command": "ls", "ok": True, "path": root, "children": ["b"]}
    # Servers show another user's digest hash as "x".
    assert acl["acl"] == [
        {"scheme": "digest", "id": "u:x", "perms": "cdrwa"},
        {"scheme": "world", "id": "anyone", "perms": "r"},
    ]
    assert missing == {
        "command": "get",
        "ok": False,
        "error": "NoNodeError",
        "code": -101,
        "path": f"{root}/nope",
        "message": f"Node does not exist: {root}/nope",
    }
    assert {"scheme": "ip", "user": "127.0.0.1"} in whoami["identities"]
    assert tree["tree"]["children"] == [{"name": "b", "path": f"{root}/b", "children": []}]
    assert bogus["ok"] is False and bogus["error"] == "UnknownCommand"
    shell(target.address, f"deleteall {root}")


def test_Shell_acls_and_authentication(target, root: str, shell: Run) -> None:
    """setAcl (-R, -v), getAcl -s, addauth and whoami; auth:: grants the session's ids."""
    result = shell(
        target.address,
        f"create {root} x",
        f"create {root}/a y",
        "addauth digest alice:secret",
        "whoami",
        f"setAcl -R {root} auth::cdrwa",
        f"getAcl {root}/a",
        f"setAcl -v 7 {root} world:anyone:r",
        f"setAcl -v 1 {root} auth::cdrwa,world:anyone:r",
        f"getAcl -s {root}",
    )
    assert result.status == 1
    assert result.err.splitlines()[2:] == [f"version No is not valid : {root}"]
    lines = result.out.splitlines()
    alice = digest_id("alice", "secret").id
    assert lines[0] == "Auth scheme: User"
    assert sorted(lines[1:3]) == ["digest: alice", "ip: 127.0.0.1"]  # in the server's order
    assert lines[3:5] == [f"'digest,'{alice}", ": cdrwa"]
    assert lines[5:9] == [
        f"'digest,'{alice}",
        ": cdrwa",
        "'world,'anyone",
        ": r",
    ]
    assert "aclVersion = 2" in lines
    anonymous = shell(target.address, f"get {root}/a")
    assert anonymous.err == f"Insufficient permission : {root}/a\n"
    cleanup = shell(target.address, f"deleteall {root}", auth=[("digest", b"alice:secret")])
    assert cleanup.status == 0, cleanup.err


def test_Shell_one_shot_watches_print_like_zkcli(target, root: str, shell: Run) -> None:
    """get -w, ls -w, stat -w and addWatch print WATCHER:: blocks; removewatches
    reports the removal; printwatches off silences events."""
    result = shell(
        target.address,
        f"create {root} a",
        f"get -w {root}",
        f"set {root} b",
        f"ls -w {root}",
        f"create {root}/c",
        f"get -w {root}/gone",
        f"removewatches {root}/gone",
        f"stat -w {root}/nope",
        f"removewatches {root}/nope",
        f"removewatches {root}",
        f"addWatch {root}",
        f"create {root}/c/d",
        f"removewatches {root}",
        "printwatches",
        "printwatches off",
        f"get -w {root}",
        f"set {root} c",
        "printwatches",
    )
    assert result.status == 1
    # A watch the server refused (get -w on a missing node) is not there to remove.
    assert result.err.splitlines()[:4] == [
        f"Created {root}",
        f"Created {root}/c",
        f"Node does not exist: {root}/gone",
        f"KeeperErrorCode = No such watcher for {root}/gone",
    ]
    assert f"KeeperErrorCode = No such watcher for {root}" in result.err.splitlines()
    events = [line for line in result.out.splitlines() if line.startswith("WatchedEvent")]
    # The stat -w watch on a missing node stays until removewatches removes it.
    assert events[:3] == [
        f"WatchedEvent state:SyncConnected type:NodeDataChanged path:{root}",
        f"WatchedEvent state:SyncConnected type:NodeChildrenChanged path:{root}",
        f"WatchedEvent state:SyncConnected type:DataWatchRemoved path:{root}/nope",
    ]
    assert f"WatchedEvent state:SyncConnected type:NodeCreated path:{root}/c/d" in events
    assert events[-1] == (
        f"WatchedEvent state:SyncConnected type:PersistentWatchRemoved path:{root}"
    )
    assert "WATCHER::" in result.out
    # With printwatches off, the last set fires the get -w watch silently.
    assert result.out.splitlines()[-3:] == ["printwatches is on", "b", "printwatches is off"]
    shell(target.address, f"deleteall {root}")


class _Signal(io.StringIO):
    """A stdout that sets ``started`` when the watch says it is registered."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()

    def write(self, text: str) -> int:
        if '"started": true' in text:
            self.started.set()
        return super().write(text)


@pytest.mark.parametrize("recursive", [True, False], ids=["subtree", "node"])
def test_Shell_watch_streams_events_until_the_count(target, root: str, recursive: bool) -> None:
    """``watch -n 3`` prints the node's changes -- its data, its children list; with
    ``-R`` the subtree's -- in order, then returns."""
    from coord.shell import run_shell

    out = _Signal()
    with coord.connect_sync(target.address) as other:
        other.create(root, b"0")

        def change() -> None:
            assert out.started.wait(10)
            other.set(root, b"1")
            other.create(f"{root}/x")
            other.delete(f"{root}/x")

        thread = threading.Thread(target=change)
        thread.start()
        status = run_shell(
            target.address,
            commands=[f"watch {'-R ' if recursive else ''}-n 3 -t 30 {root}", f"get {root}"],
            json_mode=True,
            stdout=out,
            stderr=io.StringIO(),
            timeout=10,
        )
        thread.join()
        other.delete(root)
    started, *events, got = [json.loads(line) for line in out.getvalue().splitlines()]
    assert status == 0 and started["started"] is True
    expected = (
        [("NodeDataChanged", root), ("NodeCreated", f"{root}/x"), ("NodeDeleted", f"{root}/x")]
        if recursive
        else [
            ("NodeDataChanged", root),
            ("NodeChildrenChanged", root),
            ("NodeChildrenChanged", root),
        ]
    )
    assert [(e["watch"]["event"], e["watch"]["path"]) for e in events] == expected
    assert got["data"] == "1"


def test_Shell_history_redo_close_and_connect(target, root: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    shell = Shell(target.address, out=out, err=err, timeout=10)
    shell.connect()
    try:
        assert shell.execute(f"create -e {root} a") == 0
        assert shell.execute(f"get {root}") == 0
        assert shell.execute("redo 1") == 0
        assert shell.execute("redo 9") == 1
        assert shell.execute("history") == 0
        assert shell.execute("close") == 0
        assert shell.state == "CLOSED"
        assert shell.execute(f"get {root}") == 1
        assert shell.execute(f"connect {target.address}") == 0
        assert shell.execute(f"stat {root}") == 1  # the ephemeral went with the session
        assert shell.execute("version") == 0
        assert shell.execute("quit") == 0 and shell.quitting
    finally:
        shell.close()
    assert out.getvalue().splitlines()[:6] == [
        "a",
        "a",
        f"0 - create -e {root} a",
        f"1 - get {root}",
        f"2 - get {root}",
        "3 - history",
    ]
    assert err.getvalue().splitlines() == [
        f"Created {root}",
        "Command index out of range",
        "Not connected (use: connect host:port)",
        f"Node does not exist: {root}",
    ]


def test_coord_shell_command_reads_stdin_and_exits_with_the_status(coord_session_server) -> None:
    """``coord shell ADDR`` runs stdin's lines when stdin is not a terminal; -c runs its
    commands; the exit status is the failed command's."""
    address = f"{coord_session_server.host}:{coord_session_server.port}"
    script = "create /stdin-test hi\n# a comment\n\nget /stdin-test\ndelete /stdin-test\n"
    proc = subprocess.run(
        [sys.executable, "-m", "coord", "shell", address],
        input=script,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "hi\n", "Created /stdin-test\n")
    proc = subprocess.run(
        [sys.executable, "-m", "coord", "shell", address, "-c", "get /nope", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["message"] == "Node does not exist: /nope"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "coord",
            "shell",
            "127.0.0.1:1",
            "--session-timeout",
            "1",
            "-c",
            "ls /",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1 and "cannot connect to 127.0.0.1:1" in proc.stderr


def test_Shell_reports_losing_and_regaining_the_connection(target) -> None:
    """As zkCli's watcher does: Disconnected, then SyncConnected with the same session."""
    from coord.client._testing import drop_connection

    out = io.StringIO()
    shell = Shell(target.address, out=out, err=io.StringIO(), timeout=10)
    shell.connect()
    try:
        session = shell.client.session_id
        shell.client.run(drop_connection, shell.client.client)
        assert shell.execute("sync /") == 0  # waits for the reconnection
        expected = [
            "WatchedEvent state:Disconnected type:None path:null",
            "WatchedEvent state:SyncConnected type:None path:null",
        ]
        deadline = time.monotonic() + 10  # listeners run on the client's callback thread
        while [x for x in out.getvalue().splitlines() if x.startswith("Watched")] != expected:
            assert time.monotonic() < deadline, out.getvalue()
            time.sleep(0.02)
        assert shell.client.session_id == session and shell.state == "CONNECTED"
    finally:
        shell.close()


def test_Completer_completes_commands_and_paths(target, root: str) -> None:
    """The first word completes to commands; a word starting with / to existing paths,
    listed from the parent on the server."""
    from coord.shell import Completer

    shell = Shell(target.address, out=io.StringIO(), err=io.StringIO(), timeout=10)
    shell.connect()
    try:
        shell.execute(f"create {root}")
        shell.execute(f"create {root}/apple")
        shell.execute(f"create {root}/apricot")
        shell.execute(f"create {root}/banana")
        completer = Completer(shell)
        assert completer.candidates("getA", "getA") == ["getAcl ", "getAllChildrenNumber "]
        assert completer.candidates("DELETEA", "DELETEA") == ["deleteall "]
        assert completer.candidates(f"ls {root}/ap", f"{root}/ap") == [
            f"{root}/apple",
            f"{root}/apricot",
        ]
        assert completer.candidates(f"get -s {root}/", f"{root}/") == [
            f"{root}/apple",
            f"{root}/apricot",
            f"{root}/banana",
        ]
        assert completer.candidates(f"get {root}/nope/", f"{root}/nope/") == []
        assert completer.candidates("get x", "x") == []
        assert f"{root}" in completer.candidates("ls /", "/")
        shell.execute(f"deleteall {root}")
    finally:
        shell.close()


def test_Shell_under_a_chroot_shows_paths_relative_to_it(target, root: str, shell: Run) -> None:
    assert shell(target.address, f"create {root}").status == 0
    result = shell(
        f"{target.address}{root}",
        "create -s /job- x",
        "create -e /eph",
        "ls /",
        "getEphemerals /",
        "get /job-0000000000",
    )
    assert (result.status, result.err) == (0, "Created /job-0000000000\nCreated /eph\n")
    assert result.out.splitlines() == ["[eph, job-0000000000]", "[/eph]", "x"]
    assert shell(target.address, f"deleteall {root}").status == 0
