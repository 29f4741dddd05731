"""Every Teams door, tried as an attacker would: each invoke the route answers and each Action.Execute verb
propbot's cards carry (read from the served inbound turn, so one added later is tried too) gets a documented-shape
activity (a) from a tenant outside TEAMS_ALLOWED_TENANTS, (b) from a person of the tenant with no role, (c) naming
a record they may not see: an approval of another conversation, a request whose notice is not on the card clicked.
Each is refused or shows nothing, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from adapters.teams.cards import APPROVE_VERB, CANCEL_VERB, REFRESH_VERB
from adapters.teams.mount import INBOUND
from adapters.teams.team import MARK_VERB
from bot.app.server import DISPATCHER
from bot.types import ApprovalStatus, TeamNotice
from tests.support.cards import ask
from tests.support.fake_connector import StartTeams, TeamsRig, execute
from tools.tables import MaintenanceRequest

PERMISSIONS = """\
roles:
  staff: {tools: [search_properties, schedule_maintenance]}
  maintenance: {tools: [update_maintenance_status]}
  manager: {tools: ["*"], approves: ["*"]}
users:
  "teams:tenant-1:aad-manager": manager
  "teams:tenant-1:aad-staff": staff
  "teams:tenant-1:aad-tech": maintenance
"""
CHANNEL = "19:maint@thread.tacv2"
Build = Callable[[TeamsRig, str, str, str], dict[str, Any]]  # rig, approval id, user, conversation -> activity


def verb(name: str, data: Callable[[str], dict[str, Any]]) -> Build:
    def build(rig: TeamsRig, approval_id: str, user: str, conversation: str) -> dict[str, Any]:
        body = execute(rig.connector, name, approval_id, card_id="card-1", user=user, conversation=conversation)
        body["value"]["action"]["data"] = data(approval_id)
        return body

    return build


VERBS: dict[str, Build] = {
    APPROVE_VERB: verb(APPROVE_VERB, lambda a: {"approval_id": a}),
    CANCEL_VERB: verb(CANCEL_VERB, lambda a: {"approval_id": a}),
    REFRESH_VERB: verb(REFRESH_VERB, lambda a: {"approval_id": a}),
    MARK_VERB: verb(MARK_VERB, lambda a: {"request_id": "MR-5001", "status": "completed"}),
}


def feedback(rig: TeamsRig, approval_id: str, user: str, conversation: str) -> dict[str, Any]:
    body = execute(rig.connector, REFRESH_VERB, approval_id, card_id="card-1", user=user, conversation=conversation)
    value = {"actionName": "feedback", "actionValue": {"reaction": "like", "feedback": '{"feedbackText":"ok"}'}}
    body.update(name="message/submitAction", value=value)
    return body


def with_tenant(body: dict[str, Any], tenant: str) -> dict[str, Any]:
    body["conversation"]["tenantId"] = tenant
    body["channelData"] = {"tenant": {"id": tenant}}
    return body


async def state(rig: TeamsRig) -> tuple[Any, ...]:
    async with rig.harness.db.session() as session:
        rows = (await session.execute(select(MaintenanceRequest.id, MaintenanceRequest.status))).all()
    approvals = sorted((a.id, a.status.value) for a in await rig.harness.store.unsettled_approvals())
    return sorted(rows), approvals, len(rig.connector.messages())


def every_door(rig: TeamsRig) -> list[tuple[str, Build]]:
    inbound = rig.app[INBOUND]
    assert set(inbound.invokes) == {"adaptiveCard/action", "message/submitAction"}, "an invoke without a test here"
    assert set(inbound.verbs) == set(VERBS), "a card verb without an attacker's activity in this file"
    return [*VERBS.items(), ("feedback", feedback)]


async def test_a_tenant_outside_the_allow_list_is_refused_at_every_teams_door(start_teams: StartTeams) -> None:
    rig = await start_teams(permissions=PERMISSIONS, teams_allowed_tenants="tenant-1")
    approval_id, _ = await ask(rig)
    for name, build in every_door(rig):
        before = await state(rig)
        status, body = await rig.post(with_tenant(build(rig, approval_id, "aad-manager", "a:personal-chat-1"), "t-x"))
        assert status == 403 and approval_id not in json.dumps(body), name
        assert await state(rig) == before, name


async def test_a_person_with_no_role_sees_and_changes_nothing_at_any_teams_door(start_teams: StartTeams) -> None:
    rig = await start_teams(permissions=PERMISSIONS)
    approval_id, _ = await ask(rig)
    for name, build in every_door(rig):
        before = await state(rig)
        status, body = await rig.post(build(rig, approval_id, "aad-nobody", "a:other-chat"))
        assert status == 200, name
        assert "1208 S Congress" not in json.dumps(body) and "MR-5001" not in json.dumps(body), (name, body)
        assert (await state(rig))[:2] == before[:2], name
    stored = await rig.harness.store.get_approval(approval_id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING


async def test_refresh_shows_an_approval_only_in_its_conversation_or_to_its_requester_and_approvers(
    start_teams: StartTeams,
) -> None:
    """Anyone of the tenant who learns an approval id (a forwarded card, a log) gets nothing from another chat."""
    rig = await start_teams()  # viewer by default: may not decide
    approval_id, posted = await ask(rig)
    elsewhere = execute(rig.connector, REFRESH_VERB, approval_id, card_id="x", user="aad-viewer", conversation="a:dm-2")
    status, body = await rig.post(elsewhere)
    assert status == 200 and "no longer exists" in json.dumps(body) and "Congress" not in json.dumps(body)
    # The same person in the card's own conversation sees it (without buttons); its approver sees it anywhere.
    here = execute(rig.connector, REFRESH_VERB, approval_id, card_id=posted.returned_id, user="aad-viewer")
    assert "1208 S Congress Ave" in json.dumps((await rig.post(here))[1])
    boss = execute(rig.connector, REFRESH_VERB, approval_id, card_id="x", user="aad-manager", conversation="a:dm-3")
    assert "1208 S Congress Ave" in json.dumps((await rig.post(boss))[1])


async def test_mark_acts_only_on_the_request_whose_notice_is_in_that_channel(start_teams: StartTeams) -> None:
    """A client can send any request id in a card's data: only a notice propbot posted in this channel counts."""
    rig = await start_teams(permissions=PERMISSIONS, maintenance_channels=f"Austin=teams:{CHANNEL}")
    dispatcher = rig.app[DISPATCHER]
    notice = TeamNotice(
        key="MR-5001:open", request_id="MR-5001", property_id="P-1001", city="Austin", status="open", title="t"
    )
    await dispatcher._surfaces.noticed("teams", CHANNEL, notice.request_id)  # as notify_team records a post
    before = await state(rig)
    for request_id, conversation in (("MR-5002", CHANNEL), ("MR-5001", "19:other@thread.tacv2")):
        tap = execute(rig.connector, MARK_VERB, "", card_id="x", user="aad-tech", conversation=conversation)
        tap["value"]["action"]["data"] = {"request_id": request_id, "status": "completed"}
        status, body = await rig.post(tap)
        assert status == 200 and "not one propbot made" in json.dumps(body), body
    assert (await state(rig))[:2] == before[:2]
    tap = execute(rig.connector, MARK_VERB, "", card_id="x", user="aad-tech", conversation=CHANNEL)
    tap["value"]["action"]["data"] = {"request_id": "MR-5001", "status": "completed"}
    status, body = await rig.post(tap)
    assert status == 200 and "marked done" in json.dumps(body)
