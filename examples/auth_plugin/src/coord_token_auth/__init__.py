"""coord-token-auth: a coord plugin adding the ``token`` auth scheme.

A token is an identity and an expiry signed with an Ed25519 private key::

    <base64url(JSON {"sub": "alice", "exp": 1767225600})>.<base64url(signature)>

The server is configured with the public keys it trusts; a client authenticates with
``addauth token <token>`` (kazoo: ``client.add_auth("token", token)``; coord's SDK:
``Client(hosts, auth=[("token", token)])``) and its session gains the identity
``token:alice``, which ACLs name as ``Id("token", "alice")``.
"""

from coord_token_auth._token import (
    SCHEME,
    TokenError,
    TokenScheme,
    generate_key,
    mint,
    public_key_of,
    verify,
)

__version__ = "0.1.0"

__all__ = [
    "SCHEME",
    "TokenError",
    "TokenScheme",
    "__version__",
    "generate_key",
    "mint",
    "public_key_of",
    "verify",
]
