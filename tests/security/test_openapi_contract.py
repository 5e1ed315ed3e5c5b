"""schemathesis against ``/api/openapi.json`` of the real running server (issue 8).

Every documented operation gets generated requests, valid and invalid, with real credentials
(an agent's bearer token; a customer's session token for uploads; a fresh sign-in for each
logout, which ends it). Each response must not be a server error, and must conform to the
document: a documented status code, a documented content type, a body of the documented shape,
the documented headers. A wrong method on each path must answer 405 with ``Allow``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from signaling.edge.openapi import openapi_document
from tests.security.background import NO_LIMITS, BackgroundServer
from tests.support import CONTEXT

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    unsupported_method,
]


class Live(BackgroundServer):
    agent_token: str
    customer_token: str

    async def sign_in(self) -> None:
        self.agent_token = await self.server.token("alice")
        customer = await self.server.customer()
        ack = await customer.call("help.request", {"context": CONTEXT})
        self.customer_token = ack["token"]

    def headers_for(self, path: str) -> dict[str, str]:
        if path == "/api/uploads":
            token = self.customer_token
        elif path == "/api/auth/logout":
            # Logout ends the sign-in it is called with: it gets one of its own.
            token = self.run(self.server.token("alice"))
        else:
            token = self.agent_token
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    world = Live(tmp_path_factory.mktemp("contract"), **NO_LIMITS)
    try:
        world.run(world.sign_in())
        yield world
    finally:
        world.stop()


# The document the server serves (test_served_document_is_the_generated_one checks that), loaded
# at collection so each operation is its own test.
schema = schemathesis.openapi.from_dict(openapi_document())


def test_served_document_is_the_generated_one(live: Live) -> None:
    status, served = live.run(live.server.get("/api/openapi.json", None))
    assert status == 200 and served == openapi_document()


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_conforms(case: Any, live: Live) -> None:
    response = case.call(base_url=live.base_url, headers=live.headers_for(case.path))
    case.validate_response(response, checks=CHECKS)
