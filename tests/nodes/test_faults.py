"""Faults of a deployment of three nodes (issue 11, docs/architecture.md "Several nodes"): a node
killed, a node frozen, Redis restarted, a node's bus subscription cut. Chat clients keep talking
through each fault as the snippet and the console would (tests/nodes/resuming.py); afterwards
every acknowledged message is in PostgreSQL exactly once and was shown to the other side exactly
once. Each test prints what it measured (``pytest -s``): lost and duplicated messages and, for
a killed node, the time from the kill to the resumed session.

Calls and co-browse across a dead, frozen or drained home node: tests/nodes/test_home_faults.py."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import asyncpg
import pytest

from signaling import background
from tests.nodes.cluster import ORIGIN, Cluster, running_cluster
from tests.nodes.resuming import ResumingParty
from tests.support import CONTEXT, Client

RESUME_BOUND = 30.0
"""A generous ceiling on one resume (the tests print the real figures, they never assert them)."""
CHAT_EVERY = 0.1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("faults")) as running:
        yield running


@dataclass
class Parties:
    cluster: Cluster
    everyone: list[ResumingParty] = field(default_factory=list)
    chatter: list[asyncio.Task[None]] = field(default_factory=list)

    async def customer(self, node: int | None) -> ResumingParty:
        hello = {"v": 2, "role": "customer", "site": self.cluster.site_key}
        party = ResumingParty(f"c{len(self.everyone)}", self.cluster.proxy_url, hello, ORIGIN)
        await party.connect(None if node is None else self.cluster.nodes[node].url)
        self.everyone.append(party)
        party.start(await party.call("help.request", {"context": CONTEXT}))
        return party

    async def agent(self, who: str, node: int | None, ticket_id: str) -> ResumingParty:
        live = next(i for i, n in enumerate(self.cluster.nodes) if n.process.poll() is None)
        token = await self.cluster.token(f"{who}@tandem.test", live)
        hello = {"v": 2, "role": "agent", "token": token}
        party = ResumingParty(f"a{len(self.everyone)}", self.cluster.proxy_url, hello)
        await party.connect(None if node is None else self.cluster.nodes[node].url)
        self.everyone.append(party)
        party.start(await party.call("session.accept", {"ticketId": ticket_id}))
        return party

    async def session(
        self, customer_node: int | None, agent_node: int | None, who: str = "alice"
    ) -> tuple[ResumingParty, ResumingParty]:
        customer = await self.customer(customer_node)
        assert customer.ticket_id is not None
        agent = await self.agent(who, agent_node, customer.ticket_id)
        return customer, agent

    def talk(self, *parties: ResumingParty) -> None:
        for party in parties:
            self.chatter.append(asyncio.get_running_loop().create_task(party.chatter(CHAT_EVERY)))

    async def hush(self) -> None:
        # Cancelled until they end: on Python 3.11 a cancellation that meets python-socketio's
        # ``call`` (asyncio.wait_for) as its ack arrives is swallowed, and the chatter goes on
        # (seen once in CI: the drain test then waited out its whole bound).
        await background.stop(*self.chatter)
        self.chatter = []

    async def close(self) -> None:
        await self.hush()
        for party in self.everyone:
            await party.close()


@pytest.fixture
async def parties(cluster: Cluster) -> AsyncIterator[Parties]:
    running = Parties(cluster)
    try:
        yield running
    finally:
        # What the nodes logged, shown by pytest only for a test that failed: the logs are in
        # pytest's temporary directory, which later runs clear.
        print(cluster.logs(tail=20_000))
        await running.close()
        # Leave the cluster whole for the next test.
        for index, node in enumerate(cluster.nodes):
            if node.process.poll() is None:
                cluster.thaw(index)
            else:
                cluster.restart(index)
        if not cluster.redis.process:
            cluster.redis.start()


# ---------------------------------------------------------------------- what was lost


@dataclass
class Tally:
    acked: int = 0
    lost: int = 0
    duplicated: int = 0
    stored_twice: int = 0
    details: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.acked += other.acked
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.stored_twice += other.stored_twice
        self.details += other.details


async def stored_messages(cluster: Cluster, ticket_id: str) -> list[asyncpg.Record]:
    conn = await asyncio.wait_for(asyncpg.connect(cluster.database_url), 5)
    try:
        return list(
            await conn.fetch(
                "SELECT id, author_id, client_msg_id, text FROM messages"
                " WHERE ticket_id = $1 ORDER BY id",
                ticket_id,
            )
        )
    finally:
        await conn.close()


async def settle(cluster: Cluster, customer: ResumingParty, agent: ResumingParty) -> Tally:
    """Once the chatter stopped: every message resent until acknowledged, and each side given
    the time to receive the other's; then the store and both screens are compared."""
    async with asyncio.timeout(RESUME_BOUND):
        while customer.outbox or agent.outbox:
            for party in (customer, agent):
                await party.ready.wait()
                await party.flush()
            await asyncio.sleep(0.1)
    assert customer.ticket_id is not None
    tally = Tally()
    deadline = time.monotonic() + 10
    while True:
        rows = await stored_messages(cluster, customer.ticket_id)
        missing = {
            party.name: [r["client_msg_id"] for r in rows if r["id"] not in party.shown]
            for party in (customer, agent)
        }
        if not any(missing.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    by_cid: dict[str, int] = {}
    for row in rows:
        by_cid[row["client_msg_id"]] = by_cid.get(row["client_msg_id"], 0) + 1
    for party in (customer, agent):
        tally.acked += len(party.acked)
        for client_msg_id, message_id in party.acked.items():
            count = by_cid.get(client_msg_id, 0)
            if count != 1:
                tally.stored_twice += max(count - 1, 0)
                tally.lost += count == 0
                tally.details.append(f"{client_msg_id} (id {message_id}) stored {count} times")
        tally.duplicated += len(party.duplicates)
        if party.duplicates:
            tally.details.append(f"{party.name} was shown twice: {party.duplicates}")
        tally.lost += len(missing[party.name])
        if missing[party.name]:
            tally.details.append(
                f"{party.name} never got {missing[party.name]} (last seq {party.last},"
                f" held {sorted(party.held)}, {party.snapshots} snapshots,"
                f" {party.gap_resumes} gap resumes, {party.resyncs} resyncs,"
                f" {len(party.resumed_at)} reconnects)"
            )
            print("\n".join(party.trace[-80:]))
    return tally


def report(what: str, tally: Tally, resumes: list[float] | None = None) -> None:
    line = (
        f"\n[faults] {what}: {tally.acked} acknowledged, {tally.lost} lost,"
        f" {tally.duplicated} shown twice, {tally.stored_twice} stored twice"
    )
    if resumes:
        ordered = sorted(resumes)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        line += (
            f"; resume after the fault (n={len(ordered)}): p50 {statistics.median(ordered):.2f} s,"
            f" p95 {p95:.2f} s, max {ordered[-1]:.2f} s"
        )
    print(line)
    for detail in tally.details:
        print(f"[faults]   {detail}")


def assert_nothing_lost(tally: Tally) -> None:
    assert (tally.lost, tally.duplicated, tally.stored_twice) == (0, 0, 0), tally.details
    assert tally.acked > 0


async def resumed(party: ResumingParty, count: int) -> float:
    """When the party's ``count``-th reconnect was resumed."""
    async with asyncio.timeout(RESUME_BOUND):
        while len(party.resumed_at) < count:
            await asyncio.sleep(0.02)
    return party.resumed_at[count - 1]


# ---------------------------------------------------------------------- kill -9


async def test_a_killed_nodes_clients_resume_elsewhere_and_lose_nothing(
    cluster: Cluster, parties: Parties
) -> None:
    total = Tally()
    resumes: list[float] = []
    for round_ in range(6):
        victim = round_ % 3
        other = (victim + 1) % 3
        # Odd rounds kill the agent's node, even ones the customer's.
        customer_node, agent_node = (victim, other) if round_ % 2 == 0 else (other, victim)
        customer, agent = await parties.session(customer_node, agent_node)
        moving = customer if customer_node == victim else agent
        parties.talk(customer, agent)
        await asyncio.sleep(1.0)
        killed_at = time.monotonic()
        cluster.kill(victim)
        resumes.append(await resumed(moving, 1) - killed_at)
        await asyncio.sleep(1.0)  # chatting on, across the nodes left
        await parties.hush()
        tally = await settle(cluster, customer, agent)
        total.add(tally)
        await customer.close()
        await agent.close()
        cluster.restart(victim)
    report("kill -9 of a node, 6 rounds", total, resumes)
    assert_nothing_lost(total)
    assert max(resumes) < RESUME_BOUND


async def test_the_queue_outlives_a_killed_node(cluster: Cluster, parties: Parties) -> None:
    waiting = [await parties.customer(node=2) for _ in range(2)]
    tickets = [c.ticket_id for c in waiting]
    token = await cluster.token("bob@tandem.test", 0)

    bob = Client()
    await bob.connect(cluster.nodes[0].url, {"v": 2, "role": "agent", "token": token})
    try:
        cluster.kill(2)
        # The store still has them waiting, and every live node lists them.
        async with asyncio.timeout(10):
            while True:
                listed = await bob.call("queue.list", {})
                if set(tickets) <= {e["ticketId"] for e in listed["entries"]}:
                    break
                await asyncio.sleep(0.2)
        conn = await asyncpg.connect(cluster.database_url)
        try:
            statuses = await conn.fetch(
                "SELECT status FROM tickets WHERE id = ANY($1::text[])", tickets
            )
        finally:
            await conn.close()
        assert [r["status"] for r in statuses] == ["queued", "queued"]
        # The customers come back through HAProxy and still wait, in order.
        for customer in waiting:
            await resumed(customer, 1)
        state = await waiting[0].call("session.resume", {})
        assert state["ticket"]["status"] == "queued" and state["position"] >= 1, state
        # And an agent on another node takes one.
        accepted = await bob.call("session.accept", {"ticketId": tickets[0]})
        assert accepted["ok"], accepted
    finally:
        await bob.close()


# ---------------------------------------------------------------------- SIGSTOP


async def test_a_frozen_nodes_clients_move_and_it_wakes_without_stale_writes(
    cluster: Cluster, parties: Parties
) -> None:
    sessions = [
        await parties.session(None, None, who)
        for who in ("alice", "bob", "sam", "alice", "bob", "sam")
    ]
    everyone = [party for pair in sessions for party in pair]
    parties.talk(*everyone)
    await asyncio.sleep(1.0)
    frozen_at = time.monotonic()
    cluster.freeze(1)
    try:
        # HAProxy marks it down (1 s checks, fall 2) and cuts its websockets.
        async with asyncio.timeout(15):
            while not any(party.lost_at for party in everyone):
                await asyncio.sleep(0.05)
        moved = [party for party in everyone if party.lost_at]
        resumes = [await resumed(party, 1) - frozen_at for party in moved]
        await asyncio.sleep(3.0)  # frozen a while longer, the chat going on elsewhere
    finally:
        cluster.thaw(1)
    await asyncio.sleep(3.0)  # awake, its sockets found dead
    await parties.hush()
    total = Tally()
    for customer, agent in sessions:
        total.add(await settle(cluster, customer, agent))
    report(f"SIGSTOP of a node ({len(moved)} clients moved)", total, resumes)
    assert_nothing_lost(total)
    # The woken node brought no accepted ticket back into the queue, and took no agent out of
    # a session or out of presence (its sockets' disconnects are its own, late, ones).
    tickets = {customer.ticket_id for customer, _ in sessions}
    assert not tickets & set(queued_in_redis(cluster))
    assert not tickets & await queued_in_store(cluster)
    assert not await live_matches_store(cluster, {"alice", "bob", "sam"})


def queued_in_redis(cluster: Cluster) -> list[str]:
    return cluster.redis.cli("ZRANGE", "tandem:q", "0", "-1").split()


async def queued_in_store(cluster: Cluster) -> set[str]:
    conn = await asyncpg.connect(cluster.database_url)
    try:
        rows = await conn.fetch("SELECT id FROM tickets WHERE status = 'queued'")
    finally:
        await conn.close()
    return {r["id"] for r in rows}


# ---------------------------------------------------------------------- Redis restart


async def live_matches_store(cluster: Cluster, agents_online: set[str]) -> list[str]:
    """What differs between Redis and the store (queue, session members) and the agents that
    hold sockets (presence); empty when they agree."""
    conn = await asyncpg.connect(cluster.database_url)
    try:
        queued = {r["id"] for r in await conn.fetch("SELECT id FROM tickets WHERE status='queued'")}
        members = await conn.fetch(
            "SELECT a.ticket_id, a.agent_id FROM ticket_agents a"
            " JOIN tickets t ON t.id = a.ticket_id WHERE t.status = 'active'"
        )
        ids = {r["email"]: r["id"] for r in await conn.fetch("SELECT id, email FROM agents")}
    finally:
        await conn.close()
    differences = []
    in_redis = set(queued_in_redis(cluster))
    if in_redis != queued:
        differences.append(f"queue: redis {sorted(in_redis)} store {sorted(queued)}")
    for row in members:
        held = set(cluster.redis.cli("SMEMBERS", f"tandem:m:{row['ticket_id']}").split())
        if row["agent_id"] not in held:
            differences.append(f"members of {row['ticket_id']}: {held} lacks {row['agent_id']}")
    online = set(cluster.redis.cli("SMEMBERS", "tandem:online").split())
    wanted = {ids[f"{who}@tandem.test"] for who in agents_online}
    if not wanted <= online:
        differences.append(f"presence: online {online} lacks {wanted - online}")
    return differences


async def test_redis_restarted_live_state_is_rebuilt_and_chat_loses_nothing(
    cluster: Cluster, parties: Parties
) -> None:
    sessions = [await parties.session(0, 1, "alice"), await parties.session(2, 0, "bob")]
    waiting = await parties.customer(node=1)
    everyone = [party for pair in sessions for party in pair]
    parties.talk(*everyone)
    await asyncio.sleep(1.0)
    cluster.redis.kill()
    await asyncio.sleep(3.0)  # chatting on without Redis
    cluster.redis.start()
    back_at = time.monotonic()
    async with asyncio.timeout(10):
        while differences := await live_matches_store(cluster, {"alice", "bob"}):
            await asyncio.sleep(0.2)
    rebuilt = time.monotonic() - back_at
    await asyncio.sleep(2.0)
    await parties.hush()
    total = Tally()
    for customer, agent in sessions:
        total.add(await settle(cluster, customer, agent))
    report(f"Redis killed for 3 s (live state rebuilt in {rebuilt:.1f} s)", total)
    assert not differences
    assert_nothing_lost(total)
    assert waiting.ticket_id in queued_in_redis(cluster)


# ---------------------------------------------------------------------- pubsub killed


async def test_a_cut_bus_subscription_loses_no_message(cluster: Cluster, parties: Parties) -> None:
    sessions = [await parties.session(0, 1, "alice"), await parties.session(1, 2, "bob")]
    everyone = [party for pair in sessions for party in pair]
    parties.talk(*everyone)
    await asyncio.sleep(1.0)
    for _ in range(3):
        killed = cluster.redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
        assert int(killed or 0) >= 3
        async with asyncio.timeout(15):
            while not all(party.resyncs for party in everyone):
                await asyncio.sleep(0.05)
        for party in everyone:
            party.resyncs = 0
        await asyncio.sleep(0.5)
    await parties.hush()
    total = Tally()
    for customer, agent in sessions:
        total.add(await settle(cluster, customer, agent))
    report("bus subscriptions cut 3 times", total)
    assert_nothing_lost(total)
