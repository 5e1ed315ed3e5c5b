#!/usr/bin/env python
"""One push-routing pass (``Router.dispatch``) over a long queue: its CPU time.

```
.venv/bin/python bench/routing.py                       # 1,000 waiting, 100 agents of capacity 3
.venv/bin/python bench/routing.py --waiting 5000 --agents 300
```

A ``Router`` on the memory live state (no sockets, no store: agents are read from a dict), every
agent Available and online. Two rows:

- `one agent with room`: every agent holds as many sessions as their capacity but one, who has
  room for one more: each pass offers them the first session in serving order (the offer is then
  taken back, so every pass makes the same decision);
- `nobody with room`: every agent is at capacity: the pass decides nothing.

Push routing runs a pass for every request, accept, decline and end, so under load its cost per
pass is most of routing's CPU (``bench/signaling.py --only push`` measures the whole server).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from signaling.desk.offers import Router, RoutingConfig  # noqa: E402
from signaling.live import MemoryLiveState  # noqa: E402
from signaling.protocol import Message  # noqa: E402
from signaling.store import AgentRecord  # noqa: E402

ENTRY: dict[str, Any] = {
    "site": "Bench shop",
    "customer": {"id": "c", "verified": False},
    "context": {
        "url": "https://shop.bench.example/",
        "device": {
            "browser": "Firefox",
            "browserVersion": "1",
            "os": "Linux",
            "osVersion": "",
            "type": "desktop",
        },
    },
    "createdAt": "2026-01-01T00:00:00.000Z",
}


class Agents:
    """What the router reads of the store: agents by id."""

    def __init__(self, count: int) -> None:
        self.records = {
            f"a{i}": AgentRecord(f"a{i}", f"a{i}@bench.test", f"Agent {i}", "", "agent", ())
            for i in range(count)
        }

    async def agent(self, agent_id: str) -> AgentRecord | None:
        return self.records.get(agent_id)


async def nothing(event: Message, rooms: list[str]) -> None:
    """Offers are made into the void: the pass is what is timed."""


async def measure(waiting: int, agents: int, capacity: int, passes: int) -> list[str]:
    live = MemoryLiveState()
    router = Router(
        live,
        Agents(agents),  # type: ignore[arg-type]
        nothing,
        RoutingConfig(capacity=capacity, wrap_up_seconds=0),
        time.time,
    )
    now = time.time()
    for i in range(agents):
        await live.agent_online(f"a{i}", f"s{i}")
        await live.choose_status(f"a{i}", "available", None, now)
        held = capacity - 1 if i == agents - 1 else capacity
        for k in range(held):
            await live.join(f"held-{i}-{k}", f"a{i}")
    for i in range(waiting):
        ticket_id = f"tk{i}"
        await live.enqueue(ticket_id, now + i, {"ticketId": ticket_id, **ENTRY})
        await live.set_routing(
            ticket_id, {"queue": "bench:default", "skills": [], "priority": 0, "since": now + i}
        )

    async def offer_and_take_back() -> None:
        made = await router.dispatch()
        if made != 1:
            raise SystemExit(f"a pass made {made} offers, not 1")
        for offer in await live.offers():
            await live.take_offer(offer.ticket_id)

    rows = []
    for _ in range(20):
        await offer_and_take_back()
    cpu = time.process_time()
    for _ in range(passes):
        await offer_and_take_back()
    per_pass = (time.process_time() - cpu) / passes
    rows.append(f"| one agent with room | {waiting:,} | {agents} | {per_pass * 1e3:.3f} ms |")

    await live.join("held-last", f"a{agents - 1}")
    cpu = time.process_time()
    for _ in range(passes):
        if await router.dispatch() != 0:
            raise SystemExit("a pass made an offer with nobody free")
    per_pass = (time.process_time() - cpu) / passes
    rows.append(f"| nobody with room | {waiting:,} | {agents} | {per_pass * 1e3:.3f} ms |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiting", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--capacity", type=int, default=3)
    parser.add_argument("--passes", type=int, default=300)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.waiting, args.agents, args.capacity, args.passes))
    print("| pass | waiting | agents | CPU per pass |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
