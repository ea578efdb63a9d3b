"""Zone-aware server choice against a real server: two TCP proxies in front of the same
server play a "local" and a "remote" host, so the session can move between them."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import coord
from coord import ConnectionState
from coord.testing import TcpProxy

pytestmark = pytest.mark.anyio


async def test_Client_zone_fails_over_to_remote_and_returns_to_local(
    target: Any, root: str
) -> None:
    """Local down: the session moves to the other zone; local back: it returns, same session,
    within the probe interval, without a SUSPENDED state for the planned move."""
    async with (
        TcpProxy(target.host, target.port) as local,
        TcpProxy(target.host, target.port) as remote,
    ):
        hosts = f"{local.address},{remote.address}"
        zones = {local.address: "eu-1", remote.address: "us-1"}
        async with coord.connect(
            hosts, session_timeout=6, zones=zones, zone="eu-1", probe_interval=0.2
        ) as zk:
            assert zk.zone == "eu-1"
            assert zk.server == local.address  # its own zone first
            session = zk.session_id
            await zk.create(root, b"x", ephemeral=True)
            states = zk.states()
            assert await states.__anext__() is ConnectionState.CONNECTED

            local.refuse()
            await local.cut()
            with anyio.fail_after(10):
                async for state in states:
                    if state is ConnectionState.RECONNECTED:
                        break
            assert zk.server == remote.address
            assert zk.session_id == session

            local.accept()
            with anyio.fail_after(10):
                while zk.server != local.address:  # noqa: ASYNC110 - polled on purpose
                    await anyio.sleep(0.02)
            assert zk.session_id == session
            data, stat = await zk.get(root)
            assert data == b"x" and stat.ephemeral_owner == session
            # The planned move is not a disconnection.
            seen: list[ConnectionState] = []
            with anyio.move_on_after(0.1):
                async for state in states:
                    seen.append(state)
            assert ConnectionState.SUSPENDED not in seen


async def test_Client_zone_prefers_local_hosts_on_connect(target: Any) -> None:
    """With several remote hosts listed first, the client still starts in its zone."""
    async with (
        TcpProxy(target.host, target.port) as local,
        TcpProxy(target.host, target.port) as remote1,
        TcpProxy(target.host, target.port) as remote2,
    ):
        hosts = f"{remote1.address},{remote2.address},{local.address}"
        zones = {local.address: "a", remote1.address: "b", remote2.address: "b"}
        for _ in range(3):
            async with coord.connect(hosts, zones=zones, zone="a") as zk:
                assert zk.server == local.address
        assert remote1.accepted_count == remote2.accepted_count == 0


async def test_Client_zone_names_must_match_the_connect_string() -> None:
    """A zone map naming a server that is not in the connect string is rejected."""
    with pytest.raises(ValueError, match="not in the connect string"):
        coord.connect("a:2181,b:2181", zones={"c:2181": "x"}, zone="x")
