"""Every operation of the async client, against coord and Apache ZooKeeper, on asyncio and
trio: results are typed, errors are the CoordError classes, chroots are invisible."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest

import coord
from coord import (
    BadArgumentsError,
    BadVersionError,
    ConnectionState,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    SessionExpiredError,
)
from coord.client import (
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    CheckResult,
    ClientClosedError,
    CreateResult,
    DeleteResult,
    GetChildren,
    GetData,
    SetResult,
    TransactionFailed,
    digest_acl,
)
from coord.protocol import (
    AuthFailedError,
    CreateMode,
    CreateRequest,
    OpCode,
    Perm,
    RolledBackError,
    RuntimeInconsistencyError,
    Stat,
)

pytestmark = pytest.mark.anyio


def client(target: Any, suffix: str = "", **kwargs: Any) -> coord.Client:
    return coord.connect(target.address + suffix, session_timeout=5, **kwargs)


async def test_Client_create_get_set_delete_round_trip(target: Any, root: str) -> None:
    """The basic operations return typed results: paths, (bytes, Stat) and Stat."""
    async with client(target) as zk:
        assert zk.state is ConnectionState.CONNECTED
        assert zk.session_id != 0
        assert await zk.create(root, b"v0") == root
        data, stat = await zk.get(root)
        assert (data, stat.version, stat.data_length) == (b"v0", 0, 2)
        assert isinstance(stat, Stat)
        stat = await zk.set(root, b"v1", version=0)
        assert stat.version == 1
        assert (await zk.get(root))[0] == b"v1"
        assert (await zk.exists(root)) == stat
        await zk.delete(root, version=1)
        assert await zk.exists(root) is None


async def test_Client_errors_are_the_coord_error_classes(target: Any, root: str) -> None:
    """Each ZooKeeper error code surfaces as its exception, naming the path."""
    async with client(target) as zk:
        with pytest.raises(NoNodeError) as excinfo:
            await zk.get(root)
        assert excinfo.value.path == root
        await zk.create(root)
        with pytest.raises(NodeExistsError):
            await zk.create(root)
        with pytest.raises(BadVersionError):
            await zk.set(root, b"x", version=7)
        await zk.create(f"{root}/child")
        with pytest.raises(NotEmptyError):
            await zk.delete(root)
        with pytest.raises(NoNodeError):
            await zk.create(f"{root}/missing/child")
        with pytest.raises(BadArgumentsError):
            await zk.get("relative/path")
        with pytest.raises(BadArgumentsError):
            await zk.get(f"{root}/")
        await zk.delete(root, recursive=True)


async def test_Client_create_node_types(target: Any, root: str) -> None:
    """Ephemeral, sequential (protected by default), container and TTL nodes."""
    async with client(target) as zk:
        await zk.create(root)
        ephemeral = await zk.create(f"{root}/eph", ephemeral=True)
        assert (await zk.exists(ephemeral)).ephemeral_owner == zk.session_id  # type: ignore[union-attr]
        assert await zk.ephemerals(root) == [ephemeral]

        first = await zk.create(f"{root}/job-", b"1", sequential=True)
        assert re.fullmatch(rf"{root}/_c_[0-9a-f-]{{36}}-job-\d{{10}}", first)
        plain = await zk.create(f"{root}/job-", b"2", sequential=True, protected=False)
        assert re.fullmatch(rf"{root}/job-\d{{10}}", plain)
        assert int(plain[-10:]) == int(first[-10:]) + 1

        path, stat = await zk.create_with_stat(f"{root}/box", container=True)
        assert path == f"{root}/box" and stat.version == 0
        path, stat = await zk.create_with_stat(f"{root}/ttl", b"t", ttl=60)
        assert (path, await zk.get(path)) == (f"{root}/ttl", (b"t", stat))
        with pytest.raises(BadArgumentsError):
            await zk.create(f"{root}/bad", ephemeral=True, ttl=5)
        with pytest.raises(BadArgumentsError):
            await zk.create(f"{root}/bad", container=True, sequential=True)
        await zk.delete(root, recursive=True)


async def test_Client_create_makepath_and_ensure_path(target: Any, root: str) -> None:
    """makepath creates missing ancestors; ensure_path is idempotent."""
    async with client(target) as zk:
        assert await zk.create(f"{root}/a/b/c", b"leaf", makepath=True) == f"{root}/a/b/c"
        assert (await zk.get(f"{root}/a/b"))[0] == b""
        await zk.ensure_path(f"{root}/a/b/c")
        await zk.ensure_path(f"{root}/x/y")
        assert sorted(await zk.children(root)) == ["a", "x"]
        await zk.delete(root, recursive=True)
        assert await zk.exists(root) is None


async def test_Client_sequential_create_at_the_root_names_a_child(target: Any) -> None:
    """``/`` with sequential is the root's next sequential child (only ``/`` itself
    exists)."""
    async with client(target) as zk:
        path = await zk.create("/", b"", sequential=True, protected=False, ephemeral=True)
        assert re.fullmatch(r"/\d{10}", path), path
        assert path[1:] in await zk.children("/")
        await zk.delete(path)
        with pytest.raises(NodeExistsError):
            await zk.create("/", b"")


async def test_Client_children_and_counts(target: Any, root: str) -> None:
    """children, children_with_stat and all_children_number agree."""
    async with client(target) as zk:
        await zk.create(root)
        for name in ("a", "b", "c"):
            await zk.create(f"{root}/{name}")
        await zk.create(f"{root}/a/deep")
        assert sorted(await zk.children(root)) == ["a", "b", "c"]
        names, stat = await zk.children_with_stat(root)
        assert sorted(names) == ["a", "b", "c"] and stat.num_children == 3
        assert await zk.all_children_number(root) == 4
        await zk.delete(root, recursive=True)


async def test_Client_null_data_reads_as_empty_bytes(target: Any, root: str) -> None:
    """A node created with null data (as other clients can) reads as b""."""
    async with client(target) as zk:
        reply = await zk._call(
            OpCode.CREATE, CreateRequest(root, None, OPEN_ACL_UNSAFE, CreateMode.PERSISTENT)
        )
        assert reply.err == 0
        data, stat = await zk.get(root)
        assert data == b"" and stat.data_length == 0
        (result,) = await zk.multi_read(GetData(root))
        assert result[0] == b""  # type: ignore[index]
        await zk.delete(root)


async def test_Client_acl_and_digest_auth(target: Any, root: str) -> None:
    """ACLs are read and written; digest credentials grant access and show in whoami."""
    async with client(target, auth=[("digest", b"alice:secret")]) as alice:
        infos = await alice.whoami()
        assert ("digest", "alice") in {(i.auth_scheme, i.user) for i in infos}
        await alice.create(root, b"private", acl=CREATOR_ALL_ACL)
        acl, stat = await alice.get_acl(root)
        assert acl == [digest_acl("alice", "secret")]
        async with client(target) as bob:
            with pytest.raises(NoAuthError):
                await bob.get(root)
            await bob.add_auth("digest", "alice:secret")
            assert (await bob.get(root))[0] == b"private"
        stat = await alice.set_acl(root, [digest_acl("alice", "secret", Perm.ALL)], version=0)
        assert stat.aversion == 1
        with pytest.raises(BadVersionError):
            await alice.set_acl(root, OPEN_ACL_UNSAFE, version=0)
        await alice.delete(root)


async def test_Client_rejected_credentials_fail_the_connect(target: Any) -> None:
    """Credentials of an unknown scheme make entering the client raise AuthFailedError."""
    with pytest.raises(AuthFailedError):
        async with client(target, auth=[("no-such-scheme", b"x")]):
            pass


async def test_Client_transaction_commits_with_typed_results(target: Any, root: str) -> None:
    """A transaction returns one typed result per op."""
    async with client(target) as zk:
        await zk.create(root, b"0")
        txn = zk.transaction()
        txn.check(root, 0).set(root, b"1", version=0)
        txn.create(f"{root}/seq-", b"s", sequential=True).create(f"{root}/tmp")
        txn.delete(f"{root}/tmp")
        results = await txn.commit()
        assert [type(r) for r in results] == [
            CheckResult,
            SetResult,
            CreateResult,
            CreateResult,
            DeleteResult,
        ]
        assert isinstance(results[1], SetResult) and results[1].stat.version == 1
        created = results[2]
        assert isinstance(created, CreateResult)
        assert created.path == f"{root}/seq-0000000000"
        assert await zk.exists(f"{root}/tmp") is None
        await zk.delete(root, recursive=True)


async def test_Client_failed_transaction_reports_every_op(target: Any, root: str) -> None:
    """A failed transaction applies nothing and says which op failed and why."""
    async with client(target) as zk:
        await zk.create(root, b"0")
        txn = zk.transaction().create(f"{root}/a").set(root, b"x", version=5).delete(root)
        with pytest.raises(TransactionFailed) as excinfo:
            await txn.commit()
        failure = excinfo.value
        assert failure.index == 1 and isinstance(failure.error, BadVersionError)
        assert [type(e) for e in failure.results] == [
            RolledBackError,
            BadVersionError,
            RuntimeInconsistencyError,
        ]
        assert await zk.exists(f"{root}/a") is None
        assert await zk.transaction().commit() == []
        await zk.delete(root)


async def test_Client_multi_read_returns_values_and_errors(target: Any, root: str) -> None:
    """multi_read reads several nodes at once; a failed read is an error in its slot."""
    async with client(target) as zk:
        await zk.create(root, b"r")
        await zk.create(f"{root}/k")
        results = await zk.multi_read(GetData(root), GetChildren(root), GetData(f"{root}/nope"))
        assert results[0][0] == b"r"  # type: ignore[index]
        assert results[1] == ["k"]
        assert isinstance(results[2], NoNodeError)
        await zk.delete(root, recursive=True)


async def test_Client_sync_and_whoami(target: Any, root: str) -> None:
    """sync returns once the server caught up; whoami lists the session's identities."""
    async with client(target) as zk:
        await zk.sync("/")
        assert all(info.auth_scheme for info in await zk.whoami())


async def test_Client_chroot_applies_to_paths_in_and_out(target: Any, root: str) -> None:
    """Under a chroot, paths, created names, ephemerals and events are relative to it."""
    async with client(target) as outer:
        await outer.create(root)
        async with client(target, root) as zk:
            assert zk.chroot == root
            assert await zk.create("/node", b"x") == "/node"
            seq = await zk.create("/s-", sequential=True, protected=False, ephemeral=True)
            assert seq.startswith("/s-")
            assert await zk.ephemerals() == [seq]
            assert sorted(await zk.children("/")) == sorted(["node", seq[1:]])
            _, _, watch = await zk.get("/node", watch=True)
            await outer.set(f"{root}/node", b"y")
            event = await watch.wait()
            assert event.path == "/node"
            result = await zk.transaction().create("/t").commit()
            assert result == [CreateResult("/t", None)]
        assert (await outer.get(f"{root}/node"))[0] == b"y"
        await outer.delete(root, recursive=True)


async def test_Client_states_listeners_and_close(target: Any) -> None:
    """states() yields the current state then changes; close ends in CLOSED for good."""
    seen: list[ConnectionState] = []
    zk = client(target)
    async with zk:
        zk.add_listener(seen.append)
        states = zk.states()
        assert await states.__anext__() is ConnectionState.CONNECTED
        await zk.wait_connected()
        ephemeral = await zk.create("/eph-close-", ephemeral=True, sequential=True)
    assert zk.state is ConnectionState.CLOSED
    assert seen == [ConnectionState.CLOSED]
    assert [state async for state in states] == [ConnectionState.CLOSED]
    with pytest.raises(ClientClosedError):
        await zk.get("/")
    with pytest.raises(ClientClosedError):
        await zk.wait_connected()
    async with client(target) as other:
        assert await other.exists(ephemeral) is None  # the session was closed


async def test_Client_close_inside_the_block_does_not_cancel_the_block(target: Any) -> None:
    """close() ends the session, not the code of the `async with` block around it."""
    reached = False
    async with client(target) as zk:
        await zk.close()
        await anyio.sleep(0.01)
        with pytest.raises(ClientClosedError):
            await zk.exists("/")
        reached = True
    assert reached


async def test_Client_errors_in_the_block_propagate_unwrapped(target: Any) -> None:
    """An exception raised in the block comes out as itself, not in an ExceptionGroup."""
    with pytest.raises(KeyError):
        async with client(target):
            raise KeyError("mine")


async def test_Client_connect_fails_when_no_server_answers() -> None:
    """Entering a client of unreachable servers raises ConnectionLossError in bounded time."""
    with anyio.fail_after(10):
        with pytest.raises(coord.ConnectionLossError):
            async with coord.connect("127.0.0.1:1,127.0.0.1:2", session_timeout=0.5):
                pass


async def test_Client_cancellation_leaves_the_connection_usable(target: Any, root: str) -> None:
    """A cancelled operation does not disturb the replies of the following ones."""
    async with client(target) as zk:
        await zk.create(root, b"x")
        with anyio.move_on_after(0):
            await zk.get(root)
        for _ in range(3):
            assert (await zk.get(root))[0] == b"x"
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(zk.create, f"{root}/c{i}")
        assert len(await zk.children(root)) == 20
        await zk.delete(root, recursive=True)


def test_connect_rejects_malformed_connect_strings() -> None:
    with pytest.raises(ValueError):
        coord.connect("")
    with pytest.raises(ValueError):
        coord.connect("host:notaport")
    with pytest.raises(ValueError):
        coord.connect("host:1", session_timeout=0)
    assert isinstance(SessionExpiredError(), coord.CoordError)
