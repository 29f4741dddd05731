"""Approval cards on Teams: posted with both actions, decided by Action.Execute or Action.Submit, once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from adapters.teams.cards import APPROVE_VERB, CANCEL_VERB, REFRESH_VERB
from bot.app.server import DISPATCHER
from bot.types import ApprovalStatus
from tests.support.cards import ask
from tests.support.fake_connector import StartTeams, execute, message
from tests.support.scripts import requests_with_key, schedule_then_report
from tests.support.waiting import eventually

CARD = "application/vnd.microsoft.card.adaptive"


def actions(card: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = card.get("actions", [])
    return found


async def test_the_posted_card_shows_the_request_and_refreshes_into_each_persons_view(start_teams: StartTeams) -> None:
    rig = await start_teams()
    approval_id, posted = await ask(rig)
    [card] = posted.cards
    assert card["version"] == "1.5"
    shown = json.dumps(card["body"])
    for detail in ("1208 S Congress Ave", "Plumbing", "High", "Kitchen sink is leaking", "Sam Staff", "Expires"):
        assert detail in shown, detail
    # Everyone sees the request; nobody gets decision buttons from the shared card itself.
    assert [(a["type"], a["verb"], a["data"]) for a in actions(card)] == [
        ("Action.Execute", REFRESH_VERB, {"approval_id": approval_id})
    ]
    refresh = card["refresh"]
    assert refresh["action"]["verb"] == REFRESH_VERB and refresh["action"]["data"] == {"approval_id": approval_id}
    # The requester and the approvers the permissions file names who are in this conversation's roster.
    assert sorted(refresh["userIds"]) == ["29:aad-manager", "29:aad-staff"]

    manager = await refreshed(rig, approval_id, posted.returned_id, "aad-manager")
    assert [(a["type"], a["verb"], a["data"]) for a in actions(manager)] == [
        ("Action.Execute", APPROVE_VERB, {"approval_id": approval_id}),
        ("Action.Execute", CANCEL_VERB, {"approval_id": approval_id}),
    ]
    fallbacks = [(a["fallback"]["type"], a["fallback"]["data"]) for a in actions(manager)]
    assert fallbacks == [
        ("Action.Submit", {"approval_id": approval_id, "action": "approve"}),
        ("Action.Submit", {"approval_id": approval_id, "action": "cancel"}),
    ]
    staff = await refreshed(rig, approval_id, posted.returned_id, "aad-staff")
    assert [a["verb"] for a in actions(staff)] == [CANCEL_VERB]  # withdrawing one's own request
    assert "Waiting for approval by a manager" in json.dumps(staff["body"])
    viewer = await refreshed(rig, approval_id, posted.returned_id, "aad-viewer")
    assert actions(viewer) == [] and "1208 S Congress Ave" in json.dumps(viewer["body"])

    # The card reference is stored right after the post returns.
    async def card_stored() -> bool:
        found = await rig.harness.store.get_approval(approval_id)
        return found is not None and bool(found.card_ref)

    await eventually(card_stored)
    stored = await rig.harness.store.get_approval(approval_id)
    assert stored is not None and stored.card_ref["activity_id"] == posted.returned_id
    assert stored.card_ref["reference"]["conversation"]["id"] == posted.conversation_id
    assert await requests_with_key(rig.harness.db, approval_id) == 0


async def refreshed(rig: Any, approval_id: str, card_id: str, user: str) -> dict[str, Any]:
    """The card Teams gets for `user` when it refreshes the approval card (Universal Actions)."""
    status, body = await rig.post(execute(rig.connector, REFRESH_VERB, approval_id, card_id=card_id, user=user))
    assert status == 200 and body["statusCode"] == 200 and body["type"] == CARD, body
    card: dict[str, Any] = body["value"]
    return card


async def test_approve_by_a_manager_replaces_the_card_in_the_invoke_answer(start_teams: StartTeams) -> None:
    rig = await start_teams()
    approval_id, posted = await ask(rig)
    status, body = await rig.post(execute(rig.connector, APPROVE_VERB, approval_id, card_id=posted.returned_id))
    # The stock CloudAdapter.process() answers 500 here; the card must come back with a 200.
    assert status == 200, body
    assert body["statusCode"] == 200 and body["type"] == CARD
    card = body["value"]
    assert "actions" not in card
    assert "Approved and done by Mona Manager" in json.dumps(card)
    assert await requests_with_key(rig.harness.db, approval_id) == 1
    follow_up = await rig.connector.wait_for(lambda: [m for m in rig.connector.messages() if not m.cards])
    assert '"ok": true' in follow_up[-1].body["text"]
    stored = await rig.harness.store.get_approval(approval_id)
    assert (
        stored is not None
        and stored.status is ApprovalStatus.DONE
        and stored.decided_by == "teams:tenant-1:aad-manager"
    )


async def test_cancel_replaces_the_card_and_creates_nothing(start_teams: StartTeams) -> None:
    rig = await start_teams()
    approval_id, posted = await ask(rig)
    status, body = await rig.post(execute(rig.connector, CANCEL_VERB, approval_id, card_id=posted.returned_id))
    assert status == 200 and body["type"] == CARD
    assert "actions" not in body["value"] and "Cancelled by Mona Manager" in json.dumps(body["value"])
    await rig.connector.wait_for(lambda: [m for m in rig.connector.messages() if not m.cards])
    assert await requests_with_key(rig.harness.db, approval_id) == 0


async def test_an_unauthorized_click_is_refused_and_the_card_stays(start_teams: StartTeams) -> None:
    rig = await start_teams()
    approval_id, posted = await ask(rig)
    clicked = execute(rig.connector, APPROVE_VERB, approval_id, card_id=posted.returned_id, user="aad-viewer")
    status, body = await rig.post(clicked)
    assert status == 200 and body["type"] == CARD
    card = body["value"]
    assert actions(card) == []  # the viewer's own view: nothing they may click
    assert "not allowed" in card["body"][0]["text"]
    await rig.idle()
    assert rig.connector.updates() == []
    stored = await rig.harness.store.get_approval(approval_id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING
    assert await requests_with_key(rig.harness.db, approval_id) == 0


async def test_double_clicks_execute_once(start_teams: StartTeams) -> None:
    rig = await start_teams()
    approval_id, posted = await ask(rig)
    clicks = [
        execute(rig.connector, APPROVE_VERB, approval_id, card_id=posted.returned_id),
        execute(rig.connector, APPROVE_VERB, approval_id, card_id=posted.returned_id, user="aad-manager"),
        message(
            rig.connector, "", value={"approval_id": approval_id, "action": "approve"}, reply_to=posted.returned_id
        ),
    ]
    answers = await asyncio.gather(*(rig.post(c) for c in clicks))
    assert [status for status, _ in answers] == [200, 200, 200]
    for _, body in answers[:2]:
        # The loser waits for the winner's tool: every clicker ends up seeing the final state.
        assert body["type"] == CARD and "actions" not in body["value"]
        assert "Approved and done by Mona Manager" in json.dumps(body["value"])
    await rig.idle()
    assert await requests_with_key(rig.harness.db, approval_id) == 1
    follow_ups = [m for m in rig.connector.messages() if not m.cards]
    assert len(follow_ups) == 1


async def test_action_submit_fallback_updates_the_card_activity(start_teams: StartTeams) -> None:
    rig = await start_teams()
    approval_id, posted = await ask(rig)
    submit = message(
        rig.connector, "", value={"approval_id": approval_id, "action": "approve"}, reply_to=posted.returned_id
    )
    assert (await rig.post(submit))[0] == 200
    [update] = await rig.connector.wait_for(rig.connector.updates)
    assert update.activity_id == posted.returned_id and update.conversation_id == posted.conversation_id
    [card] = update.cards
    assert "actions" not in card and "Approved and done by Mona Manager" in json.dumps(card)
    assert "AIGeneratedContent" in json.dumps(update.body["entities"])  # the label stays on the updated card
    await rig.connector.wait_for(lambda: [m for m in rig.connector.messages() if not m.cards])
    assert await requests_with_key(rig.harness.db, approval_id) == 1
    # A redelivery of the same Submit changes nothing.
    assert (await rig.post(submit))[0] == 200
    await rig.idle()
    assert len(rig.connector.updates()) == 1 and await requests_with_key(rig.harness.db, approval_id) == 1


async def test_an_unauthorized_submit_gets_a_message_and_the_card_stays(start_teams: StartTeams) -> None:
    rig = await start_teams()
    approval_id, posted = await ask(rig)
    submit = message(
        rig.connector,
        "",
        user="aad-viewer",
        name="Vic Viewer",
        value={"approval_id": approval_id, "action": "approve"},
        reply_to=posted.returned_id,
    )
    assert (await rig.post(submit))[0] == 200
    said = await rig.connector.wait_for(lambda: [m for m in rig.connector.messages() if not m.cards])
    assert said[-1].body["text"].startswith("Vic Viewer:") and "not allowed" in said[-1].body["text"]
    assert rig.connector.updates() == []
    assert await requests_with_key(rig.harness.db, approval_id) == 0


async def test_a_slow_decision_answers_the_invoke_and_updates_the_card_later(start_teams: StartTeams) -> None:
    rig = await start_teams(invoke_wait=0.2)
    approval_id, posted = await ask(rig)
    rig.harness.fake.latency = 1.0  # the model's follow-up after the tool ran takes longer than Teams waits
    status, body = await rig.post(execute(rig.connector, APPROVE_VERB, approval_id, card_id=posted.returned_id))
    assert status == 200 and body["type"] == "application/vnd.microsoft.activity.message"
    [update] = await rig.connector.wait_for(rig.connector.updates)
    assert update.activity_id == posted.returned_id and "actions" not in update.cards[0]
    assert await requests_with_key(rig.harness.db, approval_id) == 1


async def test_an_expired_approval_card_is_replaced_by_the_sweeper(start_teams: StartTeams) -> None:
    rig = await start_teams(approval_ttl=0.3)
    approval_id, posted = await ask(rig)

    async def swept() -> bool:  # once the approval's 0.3 s are over
        return await rig.app[DISPATCHER].sweep_expired() == 1

    await eventually(swept)
    [update] = await rig.connector.wait_for(rig.connector.updates)
    assert update.activity_id == posted.returned_id and update.conversation_id == posted.conversation_id
    assert "actions" not in update.cards[0] and "Expired" in json.dumps(update.cards[0])
    assert await requests_with_key(rig.harness.db, approval_id) == 0


async def test_the_decided_card_shows_the_new_request_id_and_status(start_teams: StartTeams) -> None:
    rig = await start_teams()
    approval_id, posted = await ask(rig)
    status, body = await rig.post(execute(rig.connector, APPROVE_VERB, approval_id, card_id=posted.returned_id))
    assert status == 200 and body["type"] == CARD
    facts = {
        fact["title"]: fact["value"]
        for block in body["value"]["body"]
        if block["type"] == "FactSet"
        for fact in block["facts"]
    }
    stored = await rig.harness.store.get_approval(approval_id)
    assert stored is not None and stored.result is not None
    request_id = stored.result["data"]["request_id"]
    assert facts["Request id"] == request_id and request_id.startswith("MR-")
    assert facts["Status"] == "scheduled"
    assert f"Request {request_id} created" in json.dumps(body["value"])


async def test_a_fast_decision_in_a_group_chat_updates_the_card_for_everyone(start_teams: StartTeams) -> None:
    rig = await start_teams()
    rig.harness.fake.default = schedule_then_report
    group = "19:group-chat-1@thread.v2"
    asked = message(
        rig.connector,
        "schedule a plumber at P-1001",
        user="aad-staff",
        name="Sam Staff",
        conversation=group,
        conversation_type="groupChat",
        mention=True,
    )
    assert (await rig.post(asked))[0] == 200
    [posted] = await rig.connector.wait_for(lambda: [m for m in rig.connector.messages() if m.cards])
    approval_id = posted.cards[0]["actions"][0]["data"]["approval_id"]
    clicked = execute(rig.connector, APPROVE_VERB, approval_id, card_id=posted.returned_id, conversation=group)
    status, body = await rig.post(clicked)
    assert status == 200 and body["type"] == CARD  # the clicker's own view, answered in the invoke
    # Everyone else's view: the card activity itself is replaced, with no buttons left.
    [update] = await rig.connector.wait_for(rig.connector.updates)
    assert update.activity_id == posted.returned_id and update.conversation_id == group
    [card] = update.cards
    assert "actions" not in card and "Approved and done by Mona Manager" in json.dumps(card)
    assert "AIGeneratedContent" in json.dumps(update.body["entities"])  # the label stays on the updated card
    assert await requests_with_key(rig.harness.db, approval_id) == 1


async def test_the_follow_up_cites_the_request_the_approved_call_made(start_teams: StartTeams) -> None:
    rig = await start_teams()
    approval_id, posted = await ask(rig)
    await rig.post(execute(rig.connector, APPROVE_VERB, approval_id, card_id=posted.returned_id))
    [follow_up] = await rig.connector.wait_for(lambda: [m for m in rig.connector.messages() if not m.cards])
    stored = await rig.harness.store.get_approval(approval_id)
    assert stored is not None and stored.result is not None
    request_id = stored.result["data"]["request_id"]
    [label] = [e for e in follow_up.body["entities"] if e["type"] == "https://schema.org/Message"]
    [claim] = label["citation"]
    assert claim["appearance"]["name"].startswith(f"{request_id} · ")
    assert f"{request_id} [1]" in follow_up.body["text"]  # marked where the answer names it
    assert [s.id for s in stored.sources] == [request_id]  # kept with the approval, for a later announcement
