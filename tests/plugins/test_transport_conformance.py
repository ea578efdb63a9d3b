"""The built-in tcp transport keeps the transport contract (coord.testing's suite)."""

from __future__ import annotations

import pytest

from coord.plugins.builtin.tcp import TcpTransport
from coord.testing import TransportConformance


class TestTcpTransport(TransportConformance):
    @pytest.fixture
    def transport(self) -> TcpTransport:
        return TcpTransport()
