"""The HTTP API's OpenAPI document: committed, served, and true (schemathesis).

Rules under test: the committed openapi.json is the generated document and the server
serves it; requests generated from it (schemathesis, a bounded number per operation) never
get a server error, and every response has a documented status, content type, headers
and body schema. The event stream (GET /v1/watch) never ends, so it is tested by
test_http_api_watch.py instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from http_support import Api, http_address
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

from coord.server.http_api import openapi_document
from coord.server.http_api._openapi import committed_path, render
from coord.testing._server import CoordServerThread


def test_http_api_committed_openapi_document_is_current() -> None:
    assert committed_path().read_text() == render(), (
        "regenerate: python -m coord.server.http_api._openapi"
    )


def test_http_api_serves_its_openapi_document(api: Api) -> None:
    reply = api.get("/v1/openapi.json")
    assert reply.status == 200
    assert reply.body == openapi_document()
    assert reply.body["openapi"].startswith("3.1")


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[CoordServerThread]:
    with CoordServerThread(http_port=0, http_max_sessions=64) as server:
        yield server


_SCHEMA = schemathesis.openapi.from_dict(openapi_document())
_OPERATIONS = [
    result.ok()
    for result in _SCHEMA.get_all_operations()
    if result.ok().definition.raw.get("operationId") != "watch"  # an endless stream
]


@pytest.mark.parametrize("operation", _OPERATIONS, ids=lambda op: op.label)
def test_http_api_conforms_to_its_openapi_document(operation: Any, fuzzed: Any) -> None:
    host, port = http_address(fuzzed.server)
    base_url = f"http://{host}:{port}"

    @given(case=operation.as_strategy())
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url,
            checks=[
                checks.not_a_server_error,
                checks.status_code_conformance,
                checks.content_type_conformance,
                checks.response_headers_conformance,
                checks.response_schema_conformance,
            ],
        )

    run()
