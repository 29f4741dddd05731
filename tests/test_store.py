"""One behavioural suite for every Store: memory, Redis (one server) and Redis Cluster (3 masters)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from bot.errors import StoreUnavailable
from bot.store import keys
from bot.store.base import Store
from bot.store.factory import make_store
from bot.store.memory import MemoryStore
from bot.store.redis import RedisStore
from bot.store.redis._connection import MAX_CONNECTIONS
from bot.types import Approval, ApprovalStatus, Conversation, Detail
from tests.support.peek import history_of
from tests.support.redis_server import RedisClusterServer, RedisServer
from tests.support.waiting import eventually

PENDING, APPROVED, DONE = ApprovalStatus.PENDING, ApprovalStatus.APPROVED, ApprovalStatus.DONE
CANCELLED, EXPIRED = ApprovalStatus.CANCELLED, ApprovalStatus.EXPIRED
CONVERSATION = Conversation(platform="slack", workspace="T1", channel="C1", thread="1700000000.000100")


@dataclass
class Backend:
    kind: str
    store: Store
    # Builds another store on its own connections, like a second bot process.
    peer: Callable[[], Store]
    server: RedisServer | RedisClusterServer | None = None
    opened: list[Store] = field(default_factory=list)

    def other(self) -> Store:
        store = self.peer()
        self.opened.append(store)
        return store


async def _backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    kind: str = request.param
    result: Backend
    if kind == "memory":
        memory = MemoryStore()
        result = Backend(kind, memory, lambda: memory)
    else:
        # Looked up lazily so the cluster is only started when its parameter runs.
        url: str = request.getfixturevalue("redis_url" if kind == "redis" else "redis_cluster_url")
        server_fixture = "redis_server" if kind == "redis" else "redis_cluster_server"
        server: RedisServer | RedisClusterServer = request.getfixturevalue(server_fixture)
        result = Backend(kind, RedisStore.from_url(url), lambda: RedisStore.from_url(url), server)
    yield result
    for store in [result.store, *result.opened]:
        await store.close()


@pytest.fixture(params=["memory", "redis", "cluster"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async for result in _backend(request):
        yield result


@pytest.fixture(params=["redis", "cluster"])
async def redis_backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """For behaviour only Redis has (outages, round trips); MemoryStore has no such thing to test."""
    async for result in _backend(request):
        yield result


def redis_only(backend: Backend) -> RedisStore:
    assert isinstance(backend.store, RedisStore)
    return backend.store


def new_approval(*, created_at: float | None = None, expires_in: float = 300.0, **extra: Any) -> Approval:
    created = time.time() if created_at is None else created_at
    return Approval(
        id=uuid.uuid4().hex,
        conversation=CONVERSATION,
        requested_by="slack:T1:U1",
        tool="create_work_order",
        tool_call_id="call_1",
        arguments={"unit": "4B", "tags": [], "nested": {"list": [1, 2.5, "x"], "empty": {}}},
        summary=[Detail(label="Unit", value="4B")],
        title="Create a work order",
        created_at=created,
        expires_at=created + expires_in,
        **extra,
    )


async def decide(
    store: Store,
    approval_id: str,
    new: ApprovalStatus,
    *,
    expected: ApprovalStatus = PENDING,
    now: float | None = None,
    **changes: Any,
) -> tuple[bool, Approval | None]:
    return await store.transition(approval_id, expected, new, time.time() if now is None else now, changes)


# -- delivery de-duplication ---------------------------------------------------------------------
async def test_first_delivery_then_duplicate_then_forget(backend: Backend) -> None:
    store = backend.store
    assert await store.first_delivery("Ev1", ttl=60)
    assert not await store.first_delivery("Ev1", ttl=60)
    assert not await backend.other().first_delivery("Ev1", ttl=60)
    assert await store.first_delivery("Ev2", ttl=60)
    await store.forget_delivery("Ev1")
    assert await store.first_delivery("Ev1", ttl=60)


async def test_delivery_memory_expires(backend: Backend) -> None:
    assert await backend.store.first_delivery("Ev-short", ttl=0.05)
    # Seen as new again once the mark expired (asked until then: each ask that finds the mark changes nothing).
    await eventually(lambda: backend.store.first_delivery("Ev-short", ttl=60))


# -- history -------------------------------------------------------------------------------------
async def append(store: Store, key: str, messages: list[dict[str, Any]], **finished: Any) -> Any:
    """Read, then append `messages` at the version read (what a turn does), recording `finished` if given."""
    loaded = await store.load_history(key)
    done = (finished["delivery"], finished["outcome"], 60.0) if finished else None
    return await store.append_history(key, [*loaded.history, *messages], loaded.version, done)


async def test_history_round_trip(backend: Backend) -> None:
    store = backend.store
    assert await history_of(store, CONVERSATION.key) == []
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Is 4B free? Ünïcode ✓"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"free": true}'},
    ]
    assert (await append(store, CONVERSATION.key, messages)).written
    loaded = await history_of(backend.other(), CONVERSATION.key)
    assert loaded == messages
    loaded[0]["content"] = "mutated"
    messages.append({"role": "user", "content": "mutated too"})
    assert (await history_of(store, CONVERSATION.key))[0]["content"] == "Is 4B free? Ünïcode ✓"
    assert len(await history_of(store, CONVERSATION.key)) == 3
    assert await history_of(store, "slack:T1:C2") == []


async def test_an_append_is_a_compare_and_set_on_the_version_it_read(backend: Backend) -> None:
    store, other, key = backend.store, backend.other(), CONVERSATION.key
    first, second = await store.load_history(key), await other.load_history(key)
    assert first.version == second.version == "0"
    mine = [{"role": "user", "content": "first"}]
    assert (await store.append_history(key, mine, first.version)).written
    # The other turn read the same version: its write would drop the first exchange, so nothing is written.
    stale = await other.append_history(key, [{"role": "user", "content": "second"}], second.version)
    assert not stale.written and stale.finished is None
    assert await history_of(store, key) == mine
    again = await other.load_history(key)
    assert again.version != first.version
    assert await other.append_history(key, [*again.history, {"role": "user", "content": "second"}], again.version)
    assert [m["content"] for m in await history_of(store, key)] == ["first", "second"]


async def test_a_turns_outcome_is_recorded_with_its_exchange_once(backend: Backend) -> None:
    store, key = backend.store, CONVERSATION.key
    assert (await append(store, key, [{"role": "user", "content": "hi"}], delivery="ev-1", outcome="s|[]")).written
    assert (await backend.other().load_history(key, "ev-1")).finished == "s|[]"
    # A second run of the same delivery (a worker thought dead) writes nothing and learns the first one's outcome.
    twice = await append(backend.other(), key, [{"role": "user", "content": "hi"}], delivery="ev-1", outcome="s|[1]")
    assert not twice.written and twice.finished == "s|[]"
    assert await history_of(store, key) == [{"role": "user", "content": "hi"}]
    assert (await store.load_history(key, "ev-2")).finished is None


async def test_history_expires_after_inactivity(backend: Backend) -> None:
    ttl = 3.0  # long enough that each check below has a second or more of margin on a busy machine
    store: Store
    if isinstance(backend.store, RedisStore):
        store = RedisStore(backend.store.client, history_ttl=ttl)
    else:
        store = MemoryStore(history_ttl=ttl)
    started = time.monotonic()
    await append(store, CONVERSATION.key, [{"role": "user", "content": "hi"}])
    await until(started + ttl / 3)
    await append(store, CONVERSATION.key, [{"role": "user", "content": "again"}])  # renews
    await until(started + ttl * 1.2)  # the first append's life is over; the second's is not
    assert [m["content"] for m in await history_of(store, CONVERSATION.key)] == ["hi", "again"]

    async def expired() -> bool:
        gone = await store.load_history(CONVERSATION.key)
        return gone.history == [] and gone.version == "0"  # the version expires with it: a new append starts over

    await eventually(expired, within=ttl * 3)
    assert (await append(store, CONVERSATION.key, [{"role": "user", "content": "new"}])).written


async def until(moment: float) -> None:
    """Wait until the monotonic clock reaches `moment` (a point in a TTL's life, not a guess at how long work takes)."""
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


# -- approvals -----------------------------------------------------------------------------------
async def test_create_and_get_approval(backend: Backend) -> None:
    approval = new_approval(created_at=1_732_212_345.123456)
    await backend.store.create_approval(approval, keep_for=3600)
    assert await backend.other().get_approval(approval.id) == approval
    assert await backend.store.get_approval("missing") is None


async def test_concurrent_approvals_have_exactly_one_winner(backend: Backend) -> None:
    approval = new_approval()
    await backend.store.create_approval(approval, keep_for=3600)
    stores = [backend.store, backend.other()]

    results = await asyncio.gather(
        *(decide(stores[i % 2], approval.id, APPROVED, decided_by=f"slack:T1:U{i}") for i in range(20))
    )
    winners = [after for won, after in results if won]
    assert len(winners) == 1
    winner = winners[0]
    assert winner is not None and winner.status is APPROVED
    for _won, after in results:
        assert after is not None
        assert after.status is APPROVED
        assert after.decided_by == winner.decided_by
    assert await backend.store.get_approval(approval.id) == winner
    assert await backend.store.pending_approvals() == []


async def test_expired_approval_cannot_be_approved(backend: Backend) -> None:
    approval = new_approval(expires_in=60)
    await backend.store.create_approval(approval, keep_for=3600)
    won, after = await decide(backend.store, approval.id, APPROVED, now=approval.expires_at + 1, decided_by="U")
    assert not won
    assert after is not None and after.status is EXPIRED and after.decided_by is None
    assert (await backend.store.get_approval(approval.id)) == after
    assert await backend.store.pending_approvals() == []
    # The sweeper's own move to expired, in time or not, is allowed.
    other = new_approval(expires_in=60)
    await backend.store.create_approval(other, keep_for=3600)
    won, after = await decide(backend.store, other.id, EXPIRED, now=other.expires_at + 1)
    assert won and after is not None and after.status is EXPIRED


async def test_cancelled_approval_cannot_be_approved(backend: Backend) -> None:
    approval = new_approval()
    await backend.store.create_approval(approval, keep_for=3600)
    won, after = await decide(backend.store, approval.id, CANCELLED, decided_by="slack:T1:U1")
    assert won and after is not None and after.status is CANCELLED
    won, after = await decide(backend.other(), approval.id, APPROVED, decided_by="slack:T1:U2")
    assert not won
    assert after is not None and after.status is CANCELLED and after.decided_by == "slack:T1:U1"
    assert await decide(backend.store, "missing", APPROVED) == (False, None)


async def test_approved_then_done_with_result(backend: Backend) -> None:
    approval = new_approval()
    await backend.store.create_approval(approval, keep_for=3600)
    assert (await decide(backend.store, approval.id, APPROVED))[0]
    # Approved -> done is not subject to the approval deadline.
    won, after = await decide(
        backend.store, approval.id, DONE, expected=APPROVED, now=approval.expires_at + 999,
        result={"ok": True, "ids": []},
    )  # fmt: skip
    assert won and after is not None
    assert after.status is DONE and after.result == {"ok": True, "ids": []}


async def test_update_approval_fields(backend: Backend) -> None:
    approval = new_approval()
    store = backend.store
    await store.create_approval(approval, keep_for=3600)
    await store.update_approval_fields(approval.id, {"card_ref": {"channel": "C1", "ts": "1.2"}, "summary": []})
    got = await backend.other().get_approval(approval.id)
    assert got is not None
    assert got.card_ref == {"channel": "C1", "ts": "1.2"}
    assert got.summary == []  # an empty list stays a list
    assert got.status is PENDING
    assert got.arguments == approval.arguments
    # Later changes merge with earlier ones instead of replacing the record.
    won, after = await decide(store, approval.id, APPROVED, decided_by="slack:T1:U9", decided_at=1_732_212_345.987654)
    assert won and after is not None
    assert after.card_ref == {"channel": "C1", "ts": "1.2"}
    assert after.decided_by == "slack:T1:U9" and after.decided_at == 1_732_212_345.987654
    with pytest.raises(ValueError):
        await store.update_approval_fields(approval.id, {"status": "pending"})
    with pytest.raises(ValueError):
        await store.update_approval_fields(approval.id, {"no_such_field": 1})
    with pytest.raises(ValueError):
        await store.update_approval_fields(approval.id, {"decided_at": "soon"})
    assert await store.get_approval(approval.id) == after
    await store.update_approval_fields("missing", {"card_ref": {}})
    assert await store.get_approval("missing") is None


async def test_moving_the_deadline_applies_to_the_expiry_check(backend: Backend) -> None:
    approval = new_approval(expires_in=10)
    await backend.store.create_approval(approval, keep_for=3600)
    await backend.store.update_approval_fields(approval.id, {"expires_at": approval.expires_at + 100})
    assert (await decide(backend.store, approval.id, APPROVED, now=approval.expires_at + 50))[0]


async def test_pending_approvals_lists_only_pending_oldest_first(backend: Backend) -> None:
    store = backend.store
    newest, oldest, middle, decided = (new_approval(created_at=1_700_000_000 + n) for n in (30, 10, 20, 5))
    for approval in (newest, oldest, middle, decided):
        await store.create_approval(approval, keep_for=3600)
    await decide(store, decided.id, CANCELLED)
    pending = await backend.other().pending_approvals()
    assert [a.id for a in pending] == [oldest.id, middle.id, newest.id]
    # Expired but not yet swept: still listed.
    assert all(a.expires_at < time.time() for a in pending)


async def test_stalled_approvals_are_claimed_ones_older_than_the_cut_off(backend: Backend) -> None:
    store = backend.store
    now = time.time()
    old, recent, finished, pending = (new_approval() for _ in range(4))
    for approval in (old, recent, finished, pending):
        await store.create_approval(approval, keep_for=3600)
    # As the approval desk claims: the running index first, then the claim.
    for approval, at in ((old, now - 600), (recent, now), (finished, now - 600), (pending, now - 600)):
        await store.mark_running(approval.id, at)
    await store.transition(old.id, PENDING, APPROVED, now - 600, {"decided_at": now - 600})
    await store.transition(recent.id, PENDING, APPROVED, now, {"decided_at": now})
    await store.transition(finished.id, PENDING, APPROVED, now - 600, {"decided_at": now - 600})
    await store.transition(finished.id, APPROVED, DONE, now - 590, {})
    # `pending` was indexed, but its claim never happened (the store dropped it): not stalled, and dropped.
    stalled = await backend.other().stalled_approvals(now - 300)
    assert [a.id for a in stalled] == [old.id]
    if isinstance(store, RedisStore):
        assert await store.client.zscore(keys.RUNNING_INDEX, finished.id) is None
        assert await store.client.zscore(keys.RUNNING_INDEX, pending.id) is None
    assert [a.id for a in await backend.other().stalled_approvals(now - 300)] == [old.id]
    # A retry scheduled for later (an unknown outcome) is found only once it is due.
    await store.mark_running(old.id, now)
    assert await backend.other().stalled_approvals(now - 300) == []


async def test_pending_approvals_drop_records_that_are_gone(backend: Backend) -> None:
    store = backend.store
    # `young` lost its record a moment after it was indexed: it may be a record still being written, so its
    # entry stays until it is old enough to be sure.
    short, young, kept = new_approval(created_at=time.time() - 120), new_approval(), new_approval()
    await store.create_approval(short, keep_for=0.1)
    await store.create_approval(young, keep_for=0.1)
    await store.create_approval(kept, keep_for=3600)

    async def expired() -> bool:
        return await store.get_approval(short.id) is None and await store.get_approval(young.id) is None

    await eventually(expired)
    assert [a.id for a in await store.pending_approvals()] == [kept.id]
    if isinstance(store, RedisStore):
        assert await store.client.zscore(keys.PENDING_INDEX, short.id) is None
        assert await store.client.zscore(keys.PENDING_INDEX, young.id) is not None


# -- Redis specifics -----------------------------------------------------------------------------
def node_clients(backend: Backend) -> list[Redis]:
    server = backend.server
    nodes = server.nodes if isinstance(server, RedisClusterServer) else [server] if server else []
    return [Redis(host="127.0.0.1", port=node.port, decode_responses=True) for node in nodes]


async def command_calls(clients: list[Redis]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for client in clients:
        stats: dict[str, Any] = await client.info("commandstats")
        for name, values in stats.items():
            totals[name] = totals.get(name, 0) + int(values["calls"])
    return totals


async def test_an_append_with_its_outcome_is_one_script_call(redis_backend: Backend) -> None:
    backend = redis_backend
    store = redis_only(backend)
    clients = node_clients(backend)
    # Warm the script cache the way any earlier turn would; a cold cache costs a SCRIPT LOAD once.
    await append(store, CONVERSATION.key, [])
    loaded = await store.load_history(CONVERSATION.key)
    before = await command_calls(clients)
    await store.append_history(
        CONVERSATION.key, [{"role": "user", "content": "hi"}], loaded.version, ("ev-1", "s|[]", 60)
    )
    after = await command_calls(clients)
    for client in clients:
        await client.aclose()
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    ours = {name: n for name, n in delta.items() if n and name != "cmdstat_info"}
    # One EVALSHA, and what the script runs server-side: the outcome and version checks (two GETs), the history,
    # the version and the outcome (three SETs); nothing else, no SCRIPT EXISTS / LOAD, no second trip.
    assert ours == {"cmdstat_evalsha": 1, "cmdstat_get": 2, "cmdstat_set": 3}


async def test_scripts_survive_an_empty_script_cache(redis_backend: Backend) -> None:
    backend = redis_backend
    store = redis_only(backend)
    loaded = await store.load_history(CONVERSATION.key)
    for client in node_clients(backend):
        await client.script_flush()
        await client.aclose()
    assert (await store.append_history(CONVERSATION.key, [{"role": "user", "content": "hi"}], loaded.version)).written
    for client in node_clients(backend):
        await client.script_flush()
        await client.aclose()
    assert await history_of(store, CONVERSATION.key) == [{"role": "user", "content": "hi"}]


async def test_outage_raises_store_unavailable_and_recovers(redis_backend: Backend) -> None:
    backend = redis_backend
    store = redis_only(backend)
    server = backend.server
    assert server is not None
    approval = new_approval()
    assert await store.ping()
    await store.create_approval(approval, keep_for=3600)  # opens pooled connections before the outage
    server.stop()
    try:
        assert not await store.ping()
        calls: list[Callable[[], Any]] = [
            lambda: store.first_delivery("Ev1", ttl=60),
            lambda: store.forget_delivery("Ev1"),
            lambda: store.load_history(CONVERSATION.key, "Ev1"),
            lambda: store.append_history(CONVERSATION.key, [], "0", ("Ev1", "s|[]", 60)),
            lambda: store.create_approval(new_approval(), keep_for=60),
            lambda: store.get_approval(approval.id),
            lambda: decide(store, approval.id, APPROVED),
            lambda: store.update_approval_fields(approval.id, {"card_ref": {}}),
            lambda: store.pending_approvals(),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable) as caught:
                await asyncio.wait_for(call(), timeout=30)
            assert "127.0.0.1" not in str(caught.value)
    finally:
        server.start()
    # The same store object reconnects; the restarted server is empty (no persistence).
    assert await store.ping()
    assert await store.first_delivery("Ev1", ttl=60)
    assert await store.get_approval(approval.id) is None
    assert (await append(store, CONVERSATION.key, [{"role": "user", "content": "hi"}])).written
    assert await history_of(store, CONVERSATION.key) == [{"role": "user", "content": "hi"}]


async def test_unavailable_message_has_no_credentials(redis_server: RedisServer) -> None:
    closed_port = RedisServer(redis_server.workdir / "unused").port
    store = RedisStore.from_url(f"redis://:s3cret-pass@127.0.0.1:{closed_port}/0")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await history_of(store, CONVERSATION.key)
        assert "s3cret" not in str(caught.value)
        assert not await store.ping()
    finally:
        await store.close()


async def test_from_url_and_factory_pick_the_client() -> None:
    assert isinstance(make_store(None, history_ttl=60), MemoryStore)
    assert isinstance(make_store("", history_ttl=60), MemoryStore)
    single = make_store("redis://127.0.0.1:6399/0", history_ttl=60)
    cluster = make_store("redis+cluster://127.0.0.1:6399", history_ttl=60)
    try:
        assert isinstance(single, RedisStore) and isinstance(single.client, Redis)
        assert isinstance(cluster, RedisStore) and isinstance(cluster.client, RedisCluster)
    finally:
        await single.close()
        await cluster.close()


def test_conversation_keys_share_one_hash_tag() -> None:
    assert keys.history("slack:T1:C1") == "pb:{slack:T1:C1}:history"
    assert keys.version("slack:T1:C1") == "pb:{slack:T1:C1}:version"
    assert keys.finished("slack:T1:C1", "Ev1").startswith("pb:{slack:T1:C1}:")
    assert keys.dedupe("Ev1") == "pb:dedupe:{Ev1}"
    assert keys.approval("a1") == "pb:approval:{a1}"
    with pytest.raises(ValueError):
        keys.history("")


async def test_a_thousand_turns_at_once_share_a_bounded_set_of_connections(redis_backend: Backend) -> None:
    # redis-py's default pool raises "Too many connections" past 100 commands in flight: with hundreds of turns
    # running at once, every one past the hundredth was told the store was down. They wait for a connection.
    store = redis_only(redis_backend)
    conversations = [f"slack:T1:C1:{i}" for i in range(1000)]
    read = await asyncio.gather(*(store.load_history(key, f"ev-{key}") for key in conversations))
    assert all(loaded.finished is None for loaded in read)
    written = await asyncio.gather(
        *(
            store.append_history(key, [], loaded.version, (f"ev-{key}", "s|[]", 60))
            for key, loaded in zip(conversations, read, strict=True)
        )
    )
    assert all(w.written for w in written)
    if redis_backend.kind == "redis":
        clients: Any = await store.client.info("clients")
        assert clients["connected_clients"] <= MAX_CONNECTIONS + 1  # the pool's bound (+ this INFO's own)
