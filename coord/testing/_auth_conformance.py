"""The contract every auth scheme must keep, as a reusable pytest suite.

A scheme's tests subclass :class:`AuthSchemeConformance` (the class name must start with
``Test`` for pytest to collect it), provide a ``scheme`` fixture and describe the scheme
with a few class attributes::

    from coord.testing import AuthSchemeConformance

    class TestTokenScheme(AuthSchemeConformance):
        valid_credentials = [b"token-for-alice"]      # addauth succeeds
        invalid_credentials = [b"forged", b""]        # addauth fails (AuthFailed)
        valid_ids = ["alice"]                         # accepted in an ACL
        invalid_ids = ["", "a:b"]                     # InvalidACL
        matching = [("alice", "alice", True), ("bob", "alice", False)]

        @pytest.fixture
        def scheme(self):
            return TokenScheme(public_key=...)

        @pytest.fixture
        def server_config(self):                      # optional: ServerConfig overrides
            return {"plugin_settings": {"token": {...}}}

The unit half calls the scheme directly and through :class:`~coord.server._acl.AclPolicy`
(the code the server's apply runs): the Protocol is implemented; every identity a scheme
grants (``connection_ids``, ``authenticate``) is a valid ACL id of its scheme that matches
itself (so the ``auth`` pseudo-scheme expands to ACL entries that admit the caller); bad
credentials fail with ``AuthFailedError`` and nothing else; ids validate as declared and
match as declared; garbage input (empty, non-UTF-8, NUL, huge) never raises anything but
``AuthFailedError`` and never crashes ``is_valid``/``matches``; answers are deterministic
(every replica must agree).

The live half starts a real coord server (in this process, memory storage, on a free
loopback port) with the scheme's plugin loaded (through the ``coord.plugins`` entry
points, plus ``extra_plugins``) and talks to it with coord's own client: ``addauth``
with good and bad credentials (a bad one is ``AuthFailed`` and ends the connection),
``create``/``setACL`` with valid and invalid ids (``InvalidACL``), and ACL enforcement:
a node whose ACL is ``auth`` (the caller's identities) is readable by a second session
holding the same credentials and not by an anonymous one.

The suite is async (anyio; ``anyio_backend`` defaults to ``"asyncio"``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any, ClassVar

import anyio
import pytest

from coord.protocol import ACL, AuthFailedError, Id, InvalidACLError, NoAuthError, Perm
from coord.server._acl import AclPolicy, AuthScheme, PeerInfo, WorldScheme

__all__ = ["AuthSchemeConformance"]

PEERS = (
    PeerInfo("127.0.0.1", 40000),
    PeerInfo("10.1.2.3", 50000),
    PeerInfo("::1", 40001),
    PeerInfo("2001:db8::7", 40002),
)
GARBAGE_BYTES = (b"", b"\x00", b"\xff\xfe\xfd", b":", b"a" * 100_000, "é日本".encode())
GARBAGE_TEXT = ("", "\x00", ":", "::", "/", "@", "a" * 10_000, "é日本", "\ud800", " ")


class AuthSchemeConformance:
    """The auth scheme contract; subclass it with a ``scheme`` fixture (module docs).

    Attributes:
        valid_credentials: ``addauth`` payloads that must succeed.
        invalid_credentials: payloads that must fail with ``AuthFailedError``.
        valid_ids: ACL ids the scheme must accept.
        invalid_ids: ACL ids it must reject (InvalidACL).
        matching: ``(caller id, ACL id, expected)`` triples for :meth:`matches`.
        live: whether to run the live half (needs the scheme loadable in a server).
    """

    valid_credentials: ClassVar[list[bytes]] = []
    invalid_credentials: ClassVar[list[bytes]] = []
    valid_ids: ClassVar[list[str]] = []
    invalid_ids: ClassVar[list[str]] = []
    matching: ClassVar[list[tuple[str, str, bool]]] = []
    live: ClassVar[bool] = True

    @pytest.fixture
    def anyio_backend(self) -> str:
        """The async backend the live tests run on; override to parametrise."""
        return "asyncio"

    @pytest.fixture
    def scheme(self) -> AuthScheme:
        """The scheme under test (override)."""
        raise NotImplementedError("subclass AuthSchemeConformance with a scheme fixture")

    @pytest.fixture
    def server_config(self) -> dict[str, Any]:
        """ServerConfig overrides for the live server (plugin settings, sasl_users...)."""
        return {}

    @pytest.fixture
    def extra_plugins(self) -> list[object]:
        """Plugin objects to register in the live server besides the entry points."""
        return []

    # --- helpers -----------------------------------------------------------------------

    @staticmethod
    def _granted(scheme: AuthScheme, credentials: bytes) -> list[Id]:
        ids = scheme.authenticate(PEERS[0], credentials)
        assert isinstance(ids, list), f"authenticate must return a list, not {ids!r}"
        assert all(isinstance(i, Id) for i in ids), ids
        return ids

    @staticmethod
    def _policy(scheme: AuthScheme) -> AclPolicy:
        schemes: dict[str, AuthScheme] = {"world": WorldScheme()}
        schemes[scheme.name] = scheme
        return AclPolicy(schemes)

    # --- the Protocol ------------------------------------------------------------------

    def test_scheme_implements_the_protocol(self, scheme: AuthScheme) -> None:
        assert isinstance(scheme, AuthScheme)
        assert isinstance(scheme.name, str) and scheme.name
        assert scheme.name not in ("auth", "super"), "auth and super are reserved"
        assert isinstance(scheme.is_authenticated, bool)

    def test_connection_ids_are_valid_ids_that_match_themselves(self, scheme: AuthScheme) -> None:
        for peer in PEERS:
            ids = scheme.connection_ids(peer)
            assert isinstance(ids, list)
            for ident in ids:
                assert isinstance(ident, Id)
                if ident.scheme == scheme.name:
                    assert scheme.is_valid(ident.id), ident
                    assert scheme.matches(ident.id, ident.id), ident

    # --- credentials -------------------------------------------------------------------

    def test_valid_credentials_grant_identities(self, scheme: AuthScheme) -> None:
        for credentials in self.valid_credentials:
            ids = self._granted(scheme, credentials)
            assert ids, f"authenticate({credentials!r}) granted no identity"
            own = [i for i in ids if i.scheme == scheme.name]
            for ident in own:
                assert scheme.is_valid(ident.id), f"granted id {ident} is not a valid ACL id"
                assert scheme.matches(ident.id, ident.id), f"{ident} does not match itself"
                assert isinstance(scheme.user_name(ident.id), str)

    def test_valid_credentials_are_deterministic(self, scheme: AuthScheme) -> None:
        for credentials in self.valid_credentials:
            assert self._granted(scheme, credentials) == self._granted(scheme, credentials)

    def test_invalid_credentials_fail_with_auth_failed(self, scheme: AuthScheme) -> None:
        for credentials in self.invalid_credentials:
            with pytest.raises(AuthFailedError):
                scheme.authenticate(PEERS[0], credentials)

    def test_garbage_credentials_grant_or_fail_cleanly(self, scheme: AuthScheme) -> None:
        """Bad input is AuthFailed or accepted; never another exception."""
        for credentials in GARBAGE_BYTES:
            for peer in PEERS:
                try:
                    ids = scheme.authenticate(peer, credentials)
                except AuthFailedError:
                    continue
                assert isinstance(ids, list)
                assert all(isinstance(i, Id) for i in ids)

    # --- ACL ids -----------------------------------------------------------------------

    def test_id_validation(self, scheme: AuthScheme) -> None:
        for acl_id in self.valid_ids:
            assert scheme.is_valid(acl_id) is True, f"{acl_id!r} should be valid"
        for acl_id in self.invalid_ids:
            assert scheme.is_valid(acl_id) is False, f"{acl_id!r} should be invalid"

    def test_id_matching(self, scheme: AuthScheme) -> None:
        for caller, acl_id, expected in self.matching:
            assert scheme.matches(caller, acl_id) is expected, (caller, acl_id)
            assert scheme.matches(caller, acl_id) is expected, "matches must be deterministic"

    def test_garbage_ids_never_raise(self, scheme: AuthScheme) -> None:
        for text in GARBAGE_TEXT:
            assert isinstance(scheme.is_valid(text), bool)
            for other in (*GARBAGE_TEXT[:4], *self.valid_ids[:2]):
                assert isinstance(scheme.matches(text, other), bool)
                assert isinstance(scheme.matches(other, text), bool)

    def test_acl_policy_fixup_accepts_valid_and_rejects_invalid_ids(
        self, scheme: AuthScheme
    ) -> None:
        """What setACL/create do with an ACL naming the scheme (ZooKeeper's fixupACL)."""
        policy = self._policy(scheme)
        for acl_id in self.valid_ids:
            entry = ACL(Perm.ALL, Id(scheme.name, acl_id))
            assert policy.fixup((entry,), (), "/n") == (entry,)
        for acl_id in self.invalid_ids:
            with pytest.raises(InvalidACLError):
                policy.fixup((ACL(Perm.ALL, Id(scheme.name, acl_id)),), (), "/n")

    def test_acl_policy_auth_entry_expands_to_granted_ids_that_pass_checks(
        self, scheme: AuthScheme
    ) -> None:
        policy = self._policy(scheme)
        for credentials in self.valid_credentials:
            ids = tuple(self._granted(scheme, credentials))
            auth_acl = (ACL(Perm.READ, Id("auth", "")),)
            if not scheme.is_authenticated:
                if not any(
                    (s := policy.schemes.get(i.scheme)) is not None and s.is_authenticated
                    for i in ids
                ):
                    with pytest.raises(InvalidACLError):
                        policy.fixup(auth_acl, ids, "/n")
                continue
            expanded = policy.fixup(auth_acl, ids, "/n")
            assert expanded, "auth expanded to nothing"
            policy.check(expanded, Perm.READ, ids, "/n")
            with pytest.raises(NoAuthError):
                policy.check(expanded, Perm.WRITE, ids, "/n")

    def test_acl_policy_matching_decides_checks(self, scheme: AuthScheme) -> None:
        policy = self._policy(scheme)
        for caller, acl_id, expected in self.matching:
            if not scheme.is_valid(acl_id):
                continue
            acl = (ACL(Perm.READ, Id(scheme.name, acl_id)),)
            assert policy.allows(acl, Perm.READ, (Id(scheme.name, caller),)) is expected

    # --- live: a real server and coord's client -----------------------------------------

    @pytest.fixture
    async def live_server(
        self,
        scheme: AuthScheme,
        server_config: dict[str, Any],
        extra_plugins: list[object],
        anyio_backend: str,
    ) -> AsyncIterator[str]:
        """A running server with the scheme loaded; yields its ``host:port``."""
        if not self.live:
            pytest.skip("the live half is switched off (live = False)")
        from coord.plugins import load_plugins
        from coord.server import Server
        from coord.testing._server import _config

        config = _config(**server_config)
        plugins = load_plugins(config, plugins=extra_plugins)
        server = Server(config, plugins=plugins)
        assert scheme.name in server.acl.schemes, (
            f"the live server did not load scheme {scheme.name!r}; install the plugin, "
            "or provide extra_plugins / server_config"
        )
        async with anyio.create_task_group() as tg:
            addresses = await tg.start(server.serve)
            host, port = addresses[0]
            try:
                yield f"{host}:{port}"
            finally:
                tg.cancel_scope.cancel()

    @pytest.fixture
    async def connect(self, live_server: str) -> AsyncIterator[Callable[..., Any]]:
        from coord.client import Client

        async with AsyncExitStack() as stack:

            async def make(**kwargs: Any) -> Client:
                return await stack.enter_async_context(Client(live_server, **kwargs))

            yield make

    @pytest.mark.anyio
    async def test_live_add_auth_valid_then_invalid(
        self, scheme: AuthScheme, connect: Callable[..., Any]
    ) -> None:
        for credentials in self.valid_credentials:
            client = await connect()
            await client.add_auth(scheme.name, credentials)
            shown = {(info.auth_scheme, info.user) for info in await client.whoami()}
            granted = self._granted(scheme, credentials)
            for ident in granted:
                if ident.scheme == scheme.name:
                    assert (ident.scheme, scheme.user_name(ident.id)) in shown
        for credentials in self.invalid_credentials:
            client = await connect()
            with pytest.raises(AuthFailedError):
                await client.add_auth(scheme.name, credentials)

    @pytest.mark.anyio
    async def test_live_acl_ids_validated_on_create_and_set_acl(
        self, scheme: AuthScheme, connect: Callable[..., Any]
    ) -> None:
        client = await connect()
        root = "/conformance-ids"
        await client.create(root)
        for n, acl_id in enumerate(self.valid_ids):
            entry = ACL(Perm.ALL, Id(scheme.name, acl_id))
            await client.create(f"{root}/v{n}", acl=[entry, ACL(Perm.ADMIN, Id("world", "anyone"))])
            await client.set_acl(f"{root}/v{n}", [entry, ACL(Perm.ALL, Id("world", "anyone"))])
        for n, acl_id in enumerate(self.invalid_ids):
            entry = ACL(Perm.ALL, Id(scheme.name, acl_id))
            with pytest.raises(InvalidACLError):
                await client.create(f"{root}/i{n}", acl=[entry])
            assert await client.exists(f"{root}/i{n}") is None
            with pytest.raises(InvalidACLError):
                await client.set_acl(root, [entry])
        acl, _ = await client.get_acl(root)
        assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(Perm.ALL, "world", "anyone")]

    @pytest.mark.anyio
    async def test_live_auth_acl_is_enforced(
        self, scheme: AuthScheme, connect: Callable[..., Any]
    ) -> None:
        """A node with the ``auth`` ACL admits a session with the same credentials only."""
        if not scheme.is_authenticated or not self.valid_credentials:
            pytest.skip("the scheme grants no authenticated identity")
        credentials = self.valid_credentials[0]
        owner = await connect(auth=[(scheme.name, credentials)])
        path = "/conformance-acl"
        await owner.create(path, b"secret", acl=[ACL(Perm.READ | Perm.ADMIN, Id("auth", ""))])
        same = await connect(auth=[(scheme.name, credentials)])
        assert (await same.get(path))[0] == b"secret"
        with pytest.raises(NoAuthError):
            await same.set(path, b"x")
        anonymous = await connect()
        anonymous_ids = set(scheme.connection_ids(PeerInfo("127.0.0.1", 0)))
        granted = set(self._granted(scheme, credentials))
        if not granted & anonymous_ids:
            with pytest.raises(NoAuthError):
                await anonymous.get(path)
