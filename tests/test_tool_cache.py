"""Read-only tools answer from the cache within their TTL; writes make the affected answers stale.

The database is changed behind the bot's back between calls: a cached answer still shows the old
row (so the tool did not run), and a fresh one shows the new row.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import update

from bot.core.tool_cache import ToolCache, digest
from bot.store.memory import MemoryStore
from bot.store.redis import RedisStore
from bot.types import ApprovalRequest, DecisionOutcome
from tests.support.harness import MANAGER, STAFF, Harness
from tests.support.scripts import call_what_the_user_asks
from tools import ToolResult, builtin_tools
from tools.tables import Property

registry = builtin_tools()


async def use(h: Harness, tool: str, user: str = MANAGER, **args: Any) -> dict[str, Any]:
    replies = await h.say(user, json.dumps({"tool": tool, "args": args}))
    [result] = json.loads(replies[-1].text)  # type: ignore[union-attr]
    assert isinstance(result, dict)
    return result


async def set_rent(h: Harness, property_id: str, rent: int) -> None:
    async with h.db.session() as session:
        await session.execute(update(Property).where(Property.id == property_id).values(monthly_rent=rent))
        await session.commit()


def cached_calls(tool: str) -> float:
    return REGISTRY.get_sample_value("propbot_tool_calls_total", {"tool": tool, "outcome": "cached"}) or 0.0


async def test_second_identical_search_is_served_from_the_cache(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.default = call_what_the_user_asks
    search: dict[str, Any] = {"location": "Austin, TX", "min_bedrooms": 2}
    first = await use(h, "search_properties", **search)
    rent = {p["id"]: p["monthly_rent"] for p in first["data"]["properties"]}
    assert rent["P-1001"] == 2150
    await set_rent(h, "P-1001", 999)
    before = cached_calls("search_properties")
    # Extra whitespace is what parse_location ignores anyway: still the same cache entry.
    again = await use(h, "search_properties", location="  Austin,   TX ", min_bedrooms=2)
    assert again == first
    assert cached_calls("search_properties") == before + 1
    # Different arguments are a different entry, and read the database.
    other = await use(h, "search_properties", location="Austin, TX", min_bedrooms=1)
    assert {p["id"]: p["monthly_rent"] for p in other["data"]["properties"]}["P-1001"] == 999


def test_letter_case_of_a_location_is_not_merged() -> None:
    """The title repeats the asked text when matches span places, so 'tx' and 'TX' differ."""
    spec = registry.get("search_properties")
    assert spec is not None
    lower, upper = (spec.args_model.model_validate({"location": where}) for where in ("tx", "TX"))
    assert digest(spec, lower) != digest(spec, upper)
    ids = registry.get("get_property")
    assert ids is not None
    assert digest(ids, ids.args_model.model_validate({"property_id": " p-1001"})) == digest(
        ids, ids.args_model.model_validate({"property_id": "P-1001"})
    )


async def test_scheduling_invalidates_property_and_request_lists(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.default = call_what_the_user_asks
    prop = await use(h, "get_property", property_id="P-1001")
    listed = await use(h, "list_maintenance_requests", property_id="P-1001")
    opened = prop["data"]["open_maintenance_requests"]
    await set_rent(h, "P-1001", 1234)
    cached = await use(h, "get_property", property_id="p-1001 ")  # normalised like the tool does
    assert cached == prop  # old rent: the tool did not run

    # A schedule, approved and run: the next reads see the new request and the new rent.
    schedule = {
        "property_id": "P-1001",
        "issue_type": "plumbing",
        "priority": "high",
        "description": "Bathroom tap drips constantly",
        "preferred_date": None,
    }
    replies = await h.say(STAFF, json.dumps({"tool": "schedule_maintenance", "args": schedule}))
    [approval] = [r.approval for r in replies if isinstance(r, ApprovalRequest)]
    assert (await h.decide(approval.id, MANAGER)).outcome is DecisionOutcome.DONE
    fresh = await use(h, "get_property", property_id="P-1001")
    assert fresh["data"]["open_maintenance_requests"] == opened + 1
    assert fresh["data"]["monthly_rent"] == 1234
    relisted = await use(h, "list_maintenance_requests", property_id="P-1001")
    assert relisted["data"]["count"] == listed["data"]["count"] + 1
    # search_properties is not affected by maintenance writes and stays cached.
    assert registry.get("schedule_maintenance").invalidates == ("get_property", "list_maintenance_requests")  # type: ignore[union-attr]


async def test_cancelling_invalidates_the_request_list(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.default = call_what_the_user_asks
    listed = await use(h, "list_maintenance_requests", status="open")
    victim = listed["data"]["requests"][0]["request_id"]
    replies = await h.say(STAFF, json.dumps({"tool": "cancel_maintenance_request", "args": {"request_id": victim}}))
    [approval] = [r.approval for r in replies if isinstance(r, ApprovalRequest)]
    assert (await h.decide(approval.id, MANAGER)).outcome is DecisionOutcome.DONE
    after = await use(h, "list_maintenance_requests", status="open")
    assert victim not in [r["request_id"] for r in after["data"]["requests"]]


async def test_failures_are_not_cached(make_harness: Any) -> None:
    h: Harness = await make_harness(redis=False)
    h.fake.default = call_what_the_user_asks
    assert (await use(h, "get_property", property_id="P-1001"))["ok"] is True
    missing = await use(h, "get_property", property_id="P-1001-X")
    assert missing["ok"] is False
    async with h.db.session() as session:
        original = await session.get(Property, "P-1001")
        assert original is not None
        columns = {c.key: getattr(original, c.key) for c in Property.__table__.columns}
        session.add(Property(**{**columns, "id": "P-1001-X"}))
        await session.commit()
    assert (await use(h, "get_property", property_id="P-1001-X"))["ok"] is True


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unreachable_store_is_a_miss_never_an_error() -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{_dead_port()}", socket_connect_timeout=0.5)
    cache = ToolCache(store)
    spec = registry.get("search_properties")
    assert spec is not None
    args = spec.args_model.model_validate({"location": "Austin"})
    errors = REGISTRY.get_sample_value("propbot_errors_total", {"kind": "cache_unavailable"}) or 0.0
    try:
        assert await cache.get(spec, args) is None
        await cache.after_call(spec, args, ToolResult(data={"x": 1}))
        writer = registry.get("schedule_maintenance")
        assert writer is not None
        await cache.after_call(writer, args, ToolResult(data={}))
    finally:
        await store.close()
    assert (REGISTRY.get_sample_value("propbot_errors_total", {"kind": "cache_unavailable"}) or 0.0) >= errors + 2


async def test_a_result_computed_across_a_write_is_not_stored() -> None:
    """get (generation seen) -> a write bumps the generation -> the pre-write answer is dropped."""
    store = MemoryStore()
    cache = ToolCache(store)
    spec, writer = registry.get("get_property"), registry.get("cancel_maintenance_request")
    assert spec is not None and writer is not None
    args = spec.args_model.model_validate({"property_id": "P-1001"})
    assert await cache.get(spec, args) is None
    await cache.after_call(writer, writer.args_model.model_validate({"request_id": "MR-1"}), ToolResult(ok=False))
    await cache.after_call(spec, args, ToolResult(data={"stale": True}))
    assert await cache.get(spec, args) is None
    await cache.after_call(spec, args, ToolResult(data={"fresh": True}))
    assert await cache.get(spec, args) == ToolResult(data={"fresh": True})
