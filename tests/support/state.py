"""What a served propbot has stored, and waiting until it has finished with a request: the helpers behind
"this payload changed nothing" in the fuzz and corpus tests."""

from __future__ import annotations

from typing import Any

import redis
from botbuilder.schema import Activity

from bot.ingress.tasks import TaskTracker
from bot.ingress.turn_queue import STREAM
from tests.support.waiting import eventually


def redis_keys(url: str) -> set[str]:
    """The keys in Redis, and the turn queue's last entry id (it moves whenever a turn is queued)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        # Delivery ids are remembered even for events that are then ignored; that is bookkeeping, not state.
        keys = {str(k) for k in client.keys("*")}
        keys = {k for k in keys if not k.startswith("pb:dedupe:") and k != STREAM}
        if client.exists(STREAM):
            keys.add(f"last queued turn {client.xinfo_stream(STREAM)['last-generated-id']}")
        return keys
    finally:
        client.close()


async def queue_ready(url: str) -> None:
    """The in-process worker creates the turn queue as it starts; snapshots taken before would differ."""
    client = redis.Redis.from_url(url)
    try:
        await eventually(lambda: client.exists(STREAM), within=10)
    finally:
        client.close()


async def settle(url: str, tasks: TaskTracker, within: float = 15.0) -> None:
    """Until no turn is queued or running and no background task (a click's decision, a reaction) is left.

    The queue deletes a turn's entry only after the turn's replies were delivered, and every other piece of
    work a request starts is one of `tasks`, so both being empty means the request is done with."""
    await queue_ready(url)
    client = redis.Redis.from_url(url)
    try:
        await eventually(lambda: tasks.in_flight == 0 and client.xlen(STREAM) == 0, within=within)
    finally:
        client.close()


# -- payloads an adapter may rightly act on; anything else must change nothing ---------------------------


def could_be_a_message(event: Any) -> bool:
    """A Slack event with every part a real message needs."""
    if not isinstance(event, dict):
        return False
    parts = (event.get(k) for k in ("user", "channel", "ts", "text"))
    return event.get("type") in ("app_mention", "message") and all(isinstance(p, str) and p for p in parts)


def deserialize(body: Any) -> Activity | None:
    try:
        return Activity().deserialize(body) if isinstance(body, dict) else None
    except Exception:  # msrest's own family of errors: the route answers 400 for these
        return None


def could_be_teams_input(body: Any) -> bool:
    """A message with words, or a Submit carrying a decision. Judged on the deserialised activity: msrest
    turns a number in `text` into words."""
    activity = deserialize(body)
    if activity is None or activity.type != "message":
        return False
    return isinstance(activity.value, dict) or bool(str(activity.text or "").strip())
