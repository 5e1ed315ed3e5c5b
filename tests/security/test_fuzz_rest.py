"""Property-based fuzz of the REST surface (issue 8) with what schemathesis does not send: any
method, bodies that are not what the route reads (random bytes, JSON nested thousands deep,
5,000-digit numbers, lone surrogates), odd content types, and credentials of the wrong kind.

The property, for every request: no 5xx; on a REST path every refusal is an ``ApiError`` JSON
body with a known code (a 405 also names the allowed methods); and the server logged no error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from signaling.protocol import ErrorCode
from tests.security.background import NO_LIMITS, BackgroundServer, database
from tests.security.payloads import ErrorLog, Raw, encode, json_values, nested
from tests.support import CONTEXT, STORES

ERROR_CODES = frozenset(get_args(ErrorCode)) - {"internal"}
SERVER_LOGGERS = ("tandem", "aiohttp", "asyncio")
PATHS = (
    "/healthz",
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/auth/logout",
    "/api/me",
    "/api/tickets",
    "/api/tickets/{ticket}",
    "/api/tickets/{ticket}/attachments/at_nothing",
    "/api/uploads",
    "/api/openapi.json",
    "/api/",
    "/api/tickets/",
    "/api/nothing",
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
AGENT_ONLY = {
    "/api/auth/refresh": "POST",
    "/api/auth/logout": "POST",
    "/api/me": "GET",
    "/api/tickets": "GET",
    "/api/tickets/{ticket}": "GET",
    "/api/tickets/{ticket}/attachments/at_nothing": "GET",
}
"""Routes that need a live agent token, and their method."""
CONTENT_TYPES = (
    None,
    "application/json",
    "application/json; charset=utf-16",
    "image/png",
    "video/webm",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    body: bytes | None
    content_type: str | None
    credential: str
    """none, agent, customer, garbage, or ended (an agent token whose sign-in was logged out)."""


class World(BackgroundServer):
    def __init__(self, data_dir: Path, store: dict[str, Any]) -> None:
        super().__init__(data_dir, **NO_LIMITS, **store)
        self.errors = ErrorLog()
        for name in SERVER_LOGGERS:
            logging.getLogger(name).addHandler(self.errors)
        self.tokens: dict[str, str] = self.run(self._credentials())

    async def _credentials(self) -> dict[str, str]:
        server = self.server
        agent = await server.token("alice")
        customer = await server.customer()
        ack = await customer.call("help.request", {"context": CONTEXT})
        self.ticket_id = str(ack["ticket"]["id"])
        ended = await server.token("alice")
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                f"{server.base_url}/api/auth/logout", headers={"Authorization": f"Bearer {ended}"}
            )
            assert response.status == 204, await response.text()
        return {
            "none": "",
            "agent": agent,
            "customer": str(ack["token"]),
            "garbage": "v1.\u00e9\u00e9.%%%",
            "ended": ended,
        }

    def stop(self) -> None:
        for name in SERVER_LOGGERS:
            logging.getLogger(name).removeHandler(self.errors)
        super().stop()

    async def send(self, request: Request) -> tuple[int, str, dict[str, str], bytes]:
        headers: dict[str, str] = {}
        token = self.tokens[request.credential]
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if request.content_type is not None:
            headers["Content-Type"] = request.content_type
        path = request.path.replace("{ticket}", self.ticket_id)
        url = f"{self.base_url}{path}{request.query}"
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method,
                url,
                data=request.body,
                headers=headers,
                skip_auto_headers=["Content-Type"],
            ) as response,
        ):
            body = await response.read()
            answer = response.status, response.content_type, dict(response.headers), body
        if request.path == "/api/auth/logout" and request.credential == "agent":
            # That sign-in just ended: the next requests get a live one again.
            self.tokens["agent"] = await self.server.token("alice")
        return answer


def _json_body(value: Any) -> bytes:
    return encode(value).encode("utf-8", "surrogatepass")


bodies = st.one_of(
    st.none(),
    st.binary(max_size=2048),
    json_values.map(_json_body),
    st.builds(nested, st.sampled_from([999, 1000, 5000]), st.sampled_from(["list", "obj"])).map(
        _json_body
    ),
    st.fixed_dictionaries(
        {"email": st.one_of(st.text(max_size=30), json_values), "password": json_values}
    ).map(_json_body),
    st.just(_json_body({"email": Raw("9" * 5000), "password": "x"})),
)
queries = st.one_of(
    st.just(""),
    st.sampled_from(
        [
            "?limit=501",
            "?limit=0",
            "?limit=-1",
            "?limit=%ff",
            "?status=open",
            "?q=%ed%a0%80",
            "?q=a%00b",
        ]
    ),
    st.text(alphabet="abcdefgh=&%0123456789?", max_size=30).map(lambda q: "?" + q),
)
requests = st.builds(
    Request,
    method=st.sampled_from(METHODS),
    path=st.sampled_from(PATHS),
    query=queries,
    body=bodies,
    content_type=st.sampled_from(CONTENT_TYPES),
    credential=st.sampled_from(("none", "agent", "customer", "garbage", "ended")),
)


@pytest.fixture(scope="module", params=STORES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with database(request.param) as store:
        started = World(tmp_path_factory.mktemp("rest"), store)
        try:
            yield started
        finally:
            started.stop()


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(
    request=Request(
        "POST", "/api/auth/login", "", b"[" * 5000 + b"]" * 5000, "application/json", "none"
    )
)
@example(request=Request("GET", "/api/uploads", "", None, None, "customer"))
@example(request=Request("GET", "/api/tickets", "?limit=501", None, None, "agent"))
@example(request=Request("GET", "/api/tickets", "?q=a%00b", None, None, "agent"))
@example(request=Request("POST", "/api/uploads", "", b"\x89PNG\r\n", "image/png", "agent"))
@given(request=requests)
def test_any_request_gets_a_clean_answer(world: World, request: Request) -> None:
    start = len(world.errors.records)
    status, content_type, headers, body = world.run(asyncio.wait_for(world.send(request), 10))
    note(f"{status} {content_type} {body[:300]!r}")
    logged = world.errors.since(start)
    assert not logged, f"the server logged errors: {logged}"
    assert status < 500, (status, body[:300])
    served = AGENT_ONLY.get(request.path)
    if served and request.method in (served, "HEAD" if served == "GET" else served):
        # No other credential (none, garbage, a customer's, a logged-out one) gets past.
        assert (status == 401) == (request.credential != "agent"), (status, body[:300])
    rest = request.path.startswith("/api/") or request.path == "/healthz"
    if not rest or status < 400 or request.method == "HEAD":
        return
    assert content_type == "application/json", (status, content_type, body[:300])
    error = json.loads(body)["error"]
    assert error["code"] in ERROR_CODES and isinstance(error["message"], str), error
    if status == 405:
        assert headers.get("Allow"), headers
