"""Busy polling (``busy_poll_us``): after replies the server keeps its event loop polling
for a while instead of sleeping at once, and stops when requests stop.

Measured as the CPU time of the thread running the in-process server (and the client):
spinning uses the CPU for the whole window, an idle server almost none of it.
"""

from __future__ import annotations

import time

import anyio
import pytest

import coord
from coord.testing import running_server

pytestmark = pytest.mark.anyio

WINDOW_US = 60_000


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _address(server: object) -> str:
    host, port = server.addresses[0][:2]  # type: ignore[attr-defined]
    return f"{host}:{port}"


async def _cpu_during(seconds: float) -> float:
    started = time.thread_time()
    await anyio.sleep(seconds)
    return time.thread_time() - started


async def test_the_server_polls_for_busy_poll_us_after_a_reply_then_parks() -> None:
    async with (
        running_server(busy_poll_us=WINDOW_US) as server,
        coord.connect(_address(server), session_timeout=30.0) as client,
    ):
        await client.create("/polled", b"")
        spinning = await _cpu_during(0.04)  # within the 60 ms window
        await anyio.sleep(0.05)  # the window is over
        parked = await _cpu_during(0.2)
        await client.set("/polled", b"again")  # a write (the commit loop) polls too
        spinning_again = await _cpu_during(0.04)
    assert spinning > 0.25 * 0.04, f"no polling after a read reply: {spinning:.4f} s CPU"
    assert spinning_again > 0.25 * 0.04, f"no polling after a write: {spinning_again:.4f} s"
    assert parked < 0.1 * 0.2, f"still polling when idle: {parked:.4f} s CPU in 0.2 s"


async def test_busy_poll_us_0_sleeps_right_after_replies() -> None:
    async with (
        running_server(busy_poll_us=0) as server,
        coord.connect(_address(server), session_timeout=30.0) as client,
    ):
        await client.create("/not-polled", b"")
        idle = await _cpu_during(0.04)
    assert idle < 0.25 * 0.04, f"polling although busy_poll_us = 0: {idle:.4f} s CPU"
