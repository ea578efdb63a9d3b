"""The HTTP API: JSON over HTTP to the tree, watches as Server-Sent Events (docs/http-api.md).

Served by the ``http`` transport (:mod:`coord.plugins.builtin.http_api`) when
``http_port`` is set. :mod:`._gateway` holds the ZooKeeper sessions requests run on,
:mod:`._app` the routes, :mod:`._events` the watch history, :mod:`._openapi` the OpenAPI
document (also committed as ``openapi.json`` beside this file).
"""

from ._app import HttpApi
from ._events import EventHistory
from ._gateway import Gateway, Identity
from ._openapi import openapi_document

__all__ = ["EventHistory", "Gateway", "HttpApi", "Identity", "openapi_document"]
