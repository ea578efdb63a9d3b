"""TLS options of the client: how to verify the server, and which certificate to present.

A ZooKeeper server with ``secureClientPort`` (Netty) speaks the same protocol inside TLS;
the client wraps each TCP connection with :mod:`ssl` before the handshake. coord's own
server does the same on ``secure_port`` (:mod:`coord.plugins.builtin.tls`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from os import PathLike

__all__ = ["TlsOptions"]

_Path = str | PathLike[str]


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS settings for :func:`coord.connect` (``tls=TlsOptions(...)``).

    Attributes:
        ca: a PEM file of the certificate authorities to trust; ``None`` trusts the
            system's default CAs.
        cert: a PEM file with the client certificate (chain), for servers that require
            client authentication (``ssl.clientAuth=need``).
        key: the client certificate's private key (PEM); ``None`` if it is in ``cert``.
        key_password: the password of an encrypted ``key``.
        check_hostname: check that the server's certificate names the host connected to
            (or ``server_hostname``). Turning it off still verifies the chain.
        verify: verify the server's certificate at all. ``False`` is for experiments
            only: anyone in the middle can then read and change the traffic.
        server_hostname: the name to check the certificate against (and to send as SNI)
            instead of the connect string's host -- for servers reached by IP address.
    """

    ca: _Path | None = None
    cert: _Path | None = None
    key: _Path | None = None
    key_password: str | None = None
    check_hostname: bool = True
    verify: bool = True
    server_hostname: str | None = None

    def context(self) -> ssl.SSLContext:
        """A client-side :class:`ssl.SSLContext` for these options (TLS 1.2 or later).

        Raises:
            OSError: a file cannot be read.
            ssl.SSLError: a file is not valid PEM, or the key does not match ``cert``.
            ValueError: ``key`` without ``cert``.
        """
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context.check_hostname = self.check_hostname
        if self.cert is not None:
            context.load_cert_chain(self.cert, self.key, self.key_password)
        elif self.key is not None:
            raise ValueError("TlsOptions: key given without cert")
        return context


def tls_context(tls: TlsOptions | ssl.SSLContext | bool | None) -> ssl.SSLContext | None:
    """The :class:`ssl.SSLContext` of a ``tls=`` argument (``True``: system defaults)."""
    if tls is None or tls is False:
        return None
    if tls is True:
        return TlsOptions().context()
    if isinstance(tls, ssl.SSLContext):
        return tls
    if isinstance(tls, TlsOptions):
        return tls.context()
    kind = type(tls).__name__
    raise TypeError(f"tls must be TlsOptions, an ssl.SSLContext or a bool, not {kind}")
