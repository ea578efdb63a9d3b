"""The shell's pure parts: command-line parsing, zkCli's text formats, error messages."""

from __future__ import annotations

import pytest

import coord
from coord.protocol import ACL, Id, Perm, Stat
from coord.shell import COMMANDS, UsageError, parse_acl, split_command
from coord.shell._format import (
    error_message,
    event_line,
    format_acl,
    format_children,
    format_data,
    format_stat,
    parse_options,
)


def test_split_command_honours_quotes() -> None:
    assert split_command("create /a 'hello world'") == ["create", "/a", "hello world"]
    assert split_command('set /a "x y"  ') == ["set", "/a", "x y"]
    assert split_command("create /a ''") == ["create", "/a", ""]


def test_split_command_rejects_an_unbalanced_quote() -> None:
    with pytest.raises(UsageError, match="cannot parse"):
        split_command("create /a 'oops")


def test_parse_options_anywhere_and_bundled() -> None:
    options = parse_options(["/a", "-s", "-v", "3", "data"], "s", "v")
    assert options.flags == {"s"} and options.values == {"v": "3"}
    assert options.args == ["/a", "data"]
    assert parse_options(["-sw", "/x"], "sw").flags == {"s", "w"}
    # Negative numbers and words after -- are arguments, not options.
    assert parse_options(["-1"], "").args == ["-1"]
    assert parse_options(["--", "-s"], "s").args == ["-s"]


def test_parse_options_rejects_unknown_options_and_missing_values() -> None:
    with pytest.raises(UsageError, match="unknown option: -x"):
        parse_options(["-x", "/a"], "s")
    with pytest.raises(UsageError, match="needs a value"):
        parse_options(["/a", "-v"], "", "v")


def test_parse_options_long_options_accumulate() -> None:
    options = parse_options(["-add", "a", "-add", "b"], "", "", long=("add",))
    assert options.values == {"add": "a,b"}


def test_parse_acl_scheme_id_perms() -> None:
    assert parse_acl("world:anyone:cdrwa") == [ACL(Perm.ALL, Id("world", "anyone"))]
    # The id may contain colons: the scheme ends at the first, the perms start after the last.
    assert parse_acl("digest:u:h4sh=:r,ip:10.0.0.0/8:rw") == [
        ACL(Perm.READ, Id("digest", "u:h4sh=")),
        ACL(Perm.READ | Perm.WRITE, Id("ip", "10.0.0.0/8")),
    ]
    assert parse_acl("auth::cdrwa") == [ACL(Perm.ALL, Id("auth", ""))]


@pytest.mark.parametrize("text", ["world", "world:anyone", ":x:r", "world:anyone:rx"])
def test_parse_acl_rejects_malformed_entries(text: str) -> None:
    with pytest.raises(UsageError):
        parse_acl(text)


def test_format_stat_is_zkclis() -> None:
    stat = Stat(2, 11, 0, 0, 2, 3, 0, 0x10000ABC, 5, 3, 6)
    lines = format_stat(stat)
    assert lines[0] == "cZxid = 0x2" and lines[2] == "mZxid = 0xb" and lines[4] == "pZxid = 0x6"
    assert lines[5:] == [
        "cversion = 3",
        "dataVersion = 2",
        "aclVersion = 0",
        "ephemeralOwner = 0x10000abc",
        "dataLength = 5",
        "numChildren = 3",
    ]
    assert lines[1].startswith("ctime = ") and lines[1].endswith("1970")


def test_lists_acls_data_and_events_are_zkclis() -> None:
    assert format_children(["a", "b"]) == "[a, b]" and format_children([]) == "[]"
    assert format_acl([ACL(Perm.ALL, Id("world", "anyone"))]) == ["'world,'anyone", ": cdrwa"]
    assert format_data(None) == "null" and format_data(b"h\xc3\xa9") == "hé"
    assert (
        event_line(coord.EventType.NODE_DATA_CHANGED, "/a")
        == "WatchedEvent state:SyncConnected type:NodeDataChanged path:/a"
    )


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (coord.NoNodeError(path="/x"), "Node does not exist: /x"),
        (coord.NodeExistsError(path="/x"), "Node already exists: /x"),
        (coord.NotEmptyError(path="/x"), "Node not empty: /x"),
        (coord.BadVersionError(path="/x"), "version No is not valid : /x"),
        (coord.NoAuthError(path="/x"), "Insufficient permission : /x"),
        (coord.ReconfigDisabledError(), "KeeperErrorCode = Reconfig is disabled"),
        (coord.SessionExpiredError(path="/x"), "KeeperErrorCode = Session expired for /x"),
    ],
)
def test_error_message_is_zkclis(error: coord.CoordError, message: str) -> None:
    assert error_message(error) == message


def test_every_command_has_a_handler() -> None:
    from coord.shell import Shell

    for name in COMMANDS:
        assert callable(getattr(Shell, "_cmd_" + name)), name
