"""Identities over the HTTP API: requests run with the ZooKeeper identities of their sender.

Rules under test: HTTP Basic credentials act as ``addauth digest user:password`` (the ACL
of a digest-protected node admits the right user only); the client address is the ``ip``
identity; over HTTPS a verified client certificate is the ``x509`` identity; the ``auth``
ACL scheme expands to the sender's identities; a denied request is 403 ``no_auth`` and
changes nothing.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from http_support import Api, b64, basic, http_address

from coord.client import digest_id
from coord.plugins.hookspecs import hookimpl
from coord.testing._server import CoordServerThread
from coord.tools._certs import DevPki, create_dev_pki


def _acl(scheme: str, ident: str, perms: str = "rwcda") -> list[dict[str, str]]:
    return [{"perms": perms, "scheme": scheme, "id": ident}]


def test_http_api_basic_credentials_are_the_digest_identity(api: Api, root: str) -> None:
    alice = api.with_headers(**basic("alice", "secret"))
    who = alice.get("/v1/whoami").body["identities"]
    assert {"scheme": "digest", "id": "alice"} in who
    acl = _acl("digest", digest_id("alice", "secret").id)
    assert api.post(f"/v1/node{root}/private", {"data": b64(b"s3"), "acl": acl}).status == 201
    assert alice.get(f"/v1/node{root}/private").status == 200
    for caller in (api, api.with_headers(**basic("alice", "wrong")),
                   api.with_headers(**basic("bob", "secret"))):  # fmt: skip
        denied = caller.get(f"/v1/node{root}/private")
        assert (denied.status, denied.body["error"], denied.body["zookeeper"]) == (
            403, "no_auth", "NoAuth",
        )  # fmt: skip
        assert caller.put(f"/v1/node{root}/private", {"data": ""}).status == 403
        assert caller.post(f"/v1/node{root}/private/child").status == 403
    assert alice.get(f"/v1/node{root}/private").body["stat"]["version"] == 0


def test_http_api_auth_acl_scheme_expands_to_the_sender(api: Api, root: str) -> None:
    carol = api.with_headers(**basic("carol", "pw"))
    created = carol.post(f"/v1/node{root}/mine", {"acl": _acl("auth", "")})
    assert created.status == 201
    acl = carol.get(f"/v1/acl{root}/mine").body["acl"]
    assert acl == _acl("digest", digest_id("carol", "pw").id)
    assert api.get(f"/v1/node{root}/mine").status == 403
    anonymous = api.post(f"/v1/node{root}/x", {"acl": _acl("auth", "")})
    assert (anonymous.status, anonymous.body["error"]) == (400, "invalid_acl")


def test_http_api_malformed_basic_credentials_are_refused(api: Api) -> None:
    bad = api.get("/v1/whoami", headers={"Authorization": "Basic !!!"})
    assert bad.status == 400
    no_colon = api.get("/v1/whoami", headers={"Authorization": "Basic YWxpY2U="})
    assert no_colon.status == 400
    bearer = api.get("/v1/whoami", headers={"Authorization": "Bearer abc"})
    assert (bearer.status, bearer.body["error"]) == (401, "auth_failed")
    assert bearer.headers["www-authenticate"] == 'Basic realm="coord"'


def test_http_api_client_address_is_the_ip_identity(api: Api, root: str) -> None:
    assert api.post(f"/v1/node{root}/local", {"acl": _acl("ip", "127.0.0.1")}).status == 201
    assert api.get(f"/v1/node{root}/local").status == 200
    assert api.post(f"/v1/node{root}/net", {"acl": _acl("ip", "127.0.0.0/8", "r")}).status == 201
    assert api.get(f"/v1/node{root}/net").status == 200
    assert api.put(f"/v1/node{root}/net", {"data": ""}).status == 403
    assert api.post(f"/v1/node{root}/far", {"acl": _acl("ip", "10.1.2.3")}).status == 201
    assert api.get(f"/v1/node{root}/far").status == 403


# --- x509 over HTTPS -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return create_dev_pki(
        tmp_path_factory.mktemp("pki"), clients=("alice", "bob"), org="Example", days=2
    )


@pytest.fixture(scope="module")
def https_server(pki: DevPki) -> Iterator[CoordServerThread]:
    assert pki.server is not None
    config: dict[str, Any] = {
        "http_port": 0,
        "http_tls": True,
        "tls_cert": str(pki.server.cert),
        "tls_key": str(pki.server.key),
        "tls_ca": str(pki.ca),
        "tls_client_auth": "want",
    }
    with CoordServerThread(**config) as server:
        yield server


def _https(server: CoordServerThread, pki: DevPki, name: str | None) -> Api:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if name is not None:
        (files,) = [c for c in pki.clients if c.name == name]
        context.load_cert_chain(str(files.cert), str(files.key))
    return Api(*http_address(server.server), context=context)


def test_http_api_client_certificate_is_the_x509_identity(
    https_server: CoordServerThread, pki: DevPki
) -> None:
    alice, bob = _https(https_server, pki, "alice"), _https(https_server, pki, "bob")
    anonymous = _https(https_server, pki, None)
    who = alice.get("/v1/whoami").body["identities"]
    dn = next(i["id"] for i in who if i["scheme"] == "x509")
    assert "CN=alice" in dn
    assert alice.post("/v1/node/x509-owned", {"acl": _acl("x509", dn)}).status == 201
    assert alice.get("/v1/node/x509-owned").status == 200
    assert bob.get("/v1/node/x509-owned").status == 403
    assert anonymous.get("/v1/node/x509-owned").status == 403
    assert all(i["scheme"] != "x509" for i in anonymous.get("/v1/whoami").body["identities"])


def test_http_api_https_refuses_plain_http(https_server: CoordServerThread) -> None:
    plain = Api(*http_address(https_server.server))
    with pytest.raises((http.client.HTTPException, OSError)):
        plain.get("/v1/whoami")


# --- audit ---------------------------------------------------------------------------------


class AuditCollector:
    """A plugin recording audit events."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def coord_audit_event(self, event: Any) -> None:
        self.events.append(event)


def test_http_api_requests_are_audited_as_their_sender() -> None:
    collector = AuditCollector()
    with CoordServerThread(plugins=[collector], audit=True, http_port=0) as server:
        api = Api(*http_address(server.server))
        alice = api.with_headers(**basic("alice", "pw"))
        assert alice.post("/v1/node/audited", {"acl": _acl("auth", "")}).status == 201
        assert api.put("/v1/node/audited", {"data": ""}).status == 403
        events = server.call(lambda: list(collector.events))
    creates = [e for e in events if e.operation == "create" and e.path == "/audited"]
    assert len(creates) == 1
    assert creates[0].result == "allowed"
    assert creates[0].client.startswith("127.0.0.1:")
    assert digest_id("alice", "pw").scheme + ":" + digest_id("alice", "pw").id in creates[0].ids
    denied = [e for e in events if e.operation == "setData" and e.path == "/audited"]
    assert [(e.result, e.error) for e in denied] == [("denied", "NO_AUTH")]
