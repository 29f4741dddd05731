"""An onboarding run through the real servers: Slack (the steps streamed as tasks, the lease PDF uploaded into the
thread with files.getUploadURLExternal / completeUploadExternal) and Teams (the PDF offered as a signed,
expiring link to GET /documents/<id>, which serves it); the notifier called once on each."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import urlsplit

import pypdf

from tests.support.cards import has_buttons, posted_card
from tests.support.fake_connector import StartTeams, execute, message
from tests.support.fake_openai import FakeOpenAI, call, calls, last_message, text
from tests.support.fake_slack import MakeSlackBot, click, mention
from tests.support.scripts import JANE
from tests.support.waiting import eventually
from tests.test_onboarding import RecordingNotifier
from tools.db import Database

PERMISSIONS = """\
default_role: viewer
roles:
  viewer: {tools: [search_properties]}
  staff: {tools: [search_properties, onboard_tenant, onboarding_status]}
  manager: {tools: ["*"], approves: ["*"]}
users:
  "slack:T1:UMANAGER": manager
  "slack:T1:USTAFF": staff
  "teams:tenant-1:aad-manager": manager
  "teams:tenant-1:aad-staff": staff
"""
SECRET = "s3cret-for-document-links-0123456789abcdef"
STEPS = [
    "Validate the tenant's details",
    "Create the tenant record",
    "Generate the lease documents",
    "Send the welcome package",
]


def onboarding_model(request: dict[str, Any]) -> dict[str, Any]:
    last = last_message(request)
    if last["role"] == "user" and "Onboard" in str(last["content"]):
        return calls(call("onboard_tenant", JANE))
    return text("Done: Jane Doe is onboarded." if last["role"] == "tool" else "Waiting for a manager.")


def a_pdf_naming_jane(data: bytes) -> bool:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return data.startswith(b"%PDF") and "Jane Doe" in "".join(page.extract_text() for page in reader.pages)


async def test_slack_one_approval_four_steps_streamed_and_the_pdf_uploaded_in_the_thread(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, permissions=PERMISSIONS)
    bot.slack.streaming = True
    notifier = RecordingNotifier()
    bot.runtime.desk.runner.services["notifier"] = notifier
    fake_openai.default = onboarding_model
    event = mention("USTAFF", "Onboard Jane Doe to P-1001 from 1 January at $2,400")
    await bot.send_event(event)
    card = await posted_card(bot, event["ts"])
    shown = json.dumps(card.post.args["blocks"])
    assert all(f"Step {i} of 4: {title}" in shown for i, title in enumerate(STEPS, 1))  # one card, every step

    before = len(bot.slack.calls)
    await bot.send_click(click("UMANAGER", "propbot_approve", card.approval_id, card.channel, card.ts))
    [completed] = await bot.slack.wait_for("files.completeUploadExternal")
    await eventually(lambda: not has_buttons(bot, card))
    chunks = [ch for c in bot.slack.calls[before:] if c.method.endswith("Stream") for ch in c.args.get("chunks") or []]
    finished = [ch["title"] for ch in chunks if ch["type"] == "task_update" and ch["status"] == "complete"]
    assert [t for t in finished if t in STEPS] == STEPS  # each step shown, in order, updated to done

    [shared] = bot.slack.shared_files
    assert shared.channel == "C1" and shared.thread_ts == event["ts"]
    assert shared.filename.startswith("lease-LS-") and shared.filename.endswith(".pdf")
    assert a_pdf_naming_jane(shared.data)
    assert completed.args["channel_id"] == "C1"
    assert [m.to for m in notifier.sent] == ["jane.doe@example.com"]
    assert bot.slack.violations == []


async def test_teams_the_pdf_is_a_signed_expiring_link_that_propbot_serves(start_teams: StartTeams) -> None:
    rig = await start_teams(
        permissions=PERMISSIONS, public_url="https://propbot.example.com", document_link_secret=SECRET
    )
    notifier = RecordingNotifier()
    rig.harness.desk.runner.services["notifier"] = notifier
    rig.harness.fake.default = onboarding_model
    body = message(rig.connector, "Onboard Jane Doe to P-1001 from 1 January", user="aad-staff", name="Sam Staff")
    assert (await rig.post(body))[0] == 200
    [posted] = await rig.connector.wait_for(lambda: [m for m in rig.connector.messages() if m.cards])
    approval_id = posted.cards[0]["actions"][0]["data"]["approval_id"]
    status, _ = await rig.post(execute(rig.connector, "propbot.approve", approval_id, card_id=posted.returned_id))
    assert status == 200

    def opens(card: dict[str, Any]) -> list[str]:
        return [a["url"] for a in card.get("actions", []) if a.get("type") == "Action.OpenUrl"]

    [with_link] = await rig.connector.wait_for(
        lambda: [m for m in rig.connector.messages() if any(opens(c) for c in m.cards)]
    )
    [link] = [url for c in with_link.cards for url in opens(c)]
    # The card it was approved on listed the steps as they ran, updated in place.
    updates = [json.dumps(c.cards, ensure_ascii=False) for c in rig.connector.calls if c.kind == "update"]
    for i, title in enumerate(STEPS, 1):
        assert any(f"… Step {i} of 4: {title}" in u for u in updates), title
        assert any(f"✓ Step {i} of 4: {title}" in u for u in updates), title
    parts = urlsplit(link)
    assert parts.scheme == "https" and parts.netloc == "propbot.example.com" and parts.path.startswith("/documents/")
    served = rig.url.replace("/api/messages", parts.path) + "?" + parts.query
    async with rig.session.get(served) as response:
        assert response.status == 200 and response.content_type == "application/pdf"
        assert a_pdf_naming_jane(await response.read())
    async with rig.session.get(served.replace("signature=", "signature=x")) as forged:
        assert forged.status == 404
    assert [m.to for m in notifier.sent] == ["jane.doe@example.com"]
