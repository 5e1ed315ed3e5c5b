"""The per-node request channel between two nodes sharing one Redis, and the node records."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from signaling.live.nodes import LocalNodes, RedisNodes
from signaling.live.rpc import LoopbackRpc, RedisRpc, RpcRefused, RpcUnavailable


class Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def test_a_request_reaches_the_other_node_and_its_answer_comes_back(
    redis: aioredis.Redis, prefix: str
) -> None:
    home = RedisRpc(redis, "home", prefix)
    away = RedisRpc(redis, "away", prefix)
    seen: list[dict[str, Any]] = []

    async def offer(params: dict[str, Any]) -> dict[str, Any]:
        seen.append(params)
        return {"answer": params["sdp"].upper(), "node": home.node}

    async def refuse(params: dict[str, Any]) -> dict[str, Any]:
        raise Refusal("invalid_state", "no call here")

    home.register("calls.offer", offer)
    home.register("calls.refuse", refuse)
    home.start()
    try:
        results = await asyncio.gather(
            *(away.call("home", "calls.offer", {"sdp": f"v=0 {i}"}) for i in range(5))
        )
        assert sorted(r["answer"] for r in results) == [f"V=0 {i}" for i in range(5)]
        assert {r["node"] for r in results} == {"home"}
        assert len(seen) == 5
        with pytest.raises(RpcRefused) as refused:
            await away.call("home", "calls.refuse", {})
        assert (refused.value.code, refused.value.message) == ("invalid_state", "no call here")
        with pytest.raises(RpcRefused) as unknown:
            await away.call("home", "calls.nothing", {})
        assert unknown.value.code == "unknown_event"
    finally:
        await home.close()


async def test_a_request_to_a_gone_node_times_out_and_is_not_run_late(
    redis: aioredis.Redis, prefix: str
) -> None:
    away = RedisRpc(redis, "away", prefix, timeout=0.3)
    with pytest.raises(RpcUnavailable):
        await away.call("gone", "calls.offer", {"sdp": "x"})
    # The node comes back after the caller gave up: the request past its deadline is dropped.
    ran: list[dict[str, Any]] = []

    async def offer(params: dict[str, Any]) -> dict[str, Any]:
        ran.append(params)
        return {}

    back = RedisRpc(redis, "gone", prefix)
    back.register("calls.offer", offer)
    back.start()
    try:
        assert await back.call("gone", "calls.offer", {"sdp": "fresh"}) == {}
        assert ran == [{"sdp": "fresh"}]
    finally:
        await back.close()


async def test_loopback_runs_its_own_node_only() -> None:
    rpc = LoopbackRpc("solo")

    async def echo(params: dict[str, Any]) -> dict[str, Any]:
        return dict(params)

    rpc.register("echo", echo)
    assert await rpc.call("solo", "echo", {"a": [1, 2]}) == {"a": [1, 2]}
    with pytest.raises(RpcUnavailable):
        await rpc.call("other", "echo", {})


async def test_nodes_advertise_their_media_addresses_and_expire(
    redis: aioredis.Redis, prefix: str
) -> None:
    one = RedisNodes(redis, "n1", prefix, media=("10.0.0.1",), load=lambda: 3)
    two = RedisNodes(redis, "n2", prefix)
    await one.advertise()
    record = await two.get("n1")
    assert record is not None
    assert (record.media, record.load, record.state) == (("10.0.0.1",), 3, "serving")
    one.state = "draining"
    await one.advertise()
    assert (await two.get("n1")).state == "draining"  # type: ignore[union-attr]
    assert 0 < await redis.ttl(f"{prefix}n:n1") <= 6
    await one.withdraw()
    assert await two.get("n1") is None
    assert await two.get("never") is None
    local = LocalNodes("solo", ("127.0.0.1",))
    assert (await local.get("solo")).media == ("127.0.0.1",)  # type: ignore[union-attr]
