"""Corpus payloads through propbot's real routes, and the judgement of what each one did.

A route object wraps one served propbot (Slack over HTTP, or Teams): `prepare` fills a corpus file in (for
a click, after creating a real pending approval whose card it references), `send` posts it signed or as the
channel would, and then either `judge` asserts the file's verdict or `harmless` asserts the weaker promise
for a payload that lost a field it needs: no 5xx, and nothing changed that should not have.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import pytest

from bot.app.server import DISPATCHER
from bot.types import ApprovalStatus
from tests.support.cards import Card, ask, post_card
from tests.support.corpus import SLACK, SOCKET, TEAMS, Expect, Verdict, corpus_model, load, unique
from tests.support.fake_connector import ConnectorCall, TeamsRig
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import Call, Sent, SlackBot
from tests.support.scripts import requests_with_key
from tests.support.state import could_be_a_message, could_be_teams_input, redis_keys, settle
from tests.support.waiting import eventually
from tools.db import Database

CLICKS = frozenset({Verdict.APPROVED, Verdict.CANCELLED, Verdict.REFUSED})
CARD = "application/vnd.microsoft.card.adaptive"


@dataclass
class Mark:
    """Where the record of everything stood just before a payload was sent."""

    at: float  # Slack calls made from this moment on
    calls: int  # Bot Connector calls from this index on
    model: int
    logs: int
    keys: set[str]


@dataclass
class Case:
    name: str
    expect: Expect
    payload: dict[str, Any]
    mark: Mark
    approval_id: str | None = None
    card: Card | None = None  # Slack: the posted card
    card_id: str | None = None  # Teams: the card's activity id


class _Route:
    def __init__(self, model: FakeOpenAI, db: Database, caplog: pytest.LogCaptureFixture, redis_url: str) -> None:
        self.model = model
        self.db = db
        self.caplog = caplog
        self.redis_url = redis_url
        caplog.set_level(logging.DEBUG)  # propbot's own echoes are ignored at DEBUG

    def logs_since(self, mark: Mark) -> list[str]:
        return [r.getMessage() for r in self.caplog.records[mark.logs :]]

    def asked_since(self, mark: Mark) -> list[dict[str, Any]]:
        return self.model.requests[mark.model :]

    async def ignored_with_reason(self, case: Case) -> None:
        await eventually(lambda: any(case.expect.why in line for line in self.logs_since(case.mark)))

    async def approval_consistent(self, case: Case, updated: bool) -> ApprovalStatus:
        """A click ran the tool once and replaced the card, or changed nothing; never anything between."""
        assert case.approval_id is not None
        stored = await self.store_approval(case.approval_id)
        runs = await requests_with_key(self.db, case.approval_id)
        if stored is ApprovalStatus.DONE:
            assert runs == 1 and updated, (stored, runs, updated)
        else:
            assert stored in (ApprovalStatus.PENDING, ApprovalStatus.CANCELLED), stored
            assert runs == 0, (stored, runs)
            assert updated == (stored is ApprovalStatus.CANCELLED), (stored, updated)
        return stored

    async def store_approval(self, approval_id: str) -> ApprovalStatus:
        raise NotImplementedError


class SlackRoute(_Route):
    def __init__(
        self, bot: SlackBot, model: FakeOpenAI, db: Database, caplog: pytest.LogCaptureFixture, redis_url: str
    ) -> None:
        super().__init__(model, db, caplog, redis_url)
        self.bot = bot

    async def store_approval(self, approval_id: str) -> ApprovalStatus:
        stored = await self.bot.runtime.store.get_approval(approval_id)
        assert stored is not None
        return stored.status

    async def settle(self) -> None:
        await settle(self.redis_url, self.bot.dispatcher.tasks)

    def since(self, mark: Mark, method: str) -> list[Call]:
        return [c for c in self.bot.slack.calls_to(method) if c.at >= mark.at]

    async def prepare(self, name: str) -> Case:
        expect = SLACK.get(name) or SOCKET[name]
        n = unique()
        values = {"EVENT_ID": f"EvCORPUS{n:06d}", "TS": f"1700{n:06d}.000100", "ENVELOPE_ID": f"env-{n}"}
        card = None
        if expect.verdict in CLICKS:
            card = await post_card(self.bot, self.model)
            values |= {"APPROVAL_ID": card.approval_id, "CHANNEL": card.channel, "CARD_TS": card.ts}
            values |= {"THREAD_TS": card.thread}
        self.model.default = corpus_model
        await self.settle()
        mark = Mark(time.monotonic(), 0, len(self.model.requests), len(self.caplog.records), self.keys())
        payload = load("slack", name, **values)
        if name in SOCKET:
            payload = payload["payload"]  # over HTTP Slack sends what the envelope carries
        return Case(name, expect, payload, mark, card.approval_id if card else None, card)

    def keys(self) -> set[str]:
        return redis_keys(self.redis_url)

    async def send(self, case: Case, payload: dict[str, Any]) -> Sent:
        # The transport belongs to the kind of payload, whatever a fuzzed copy has left of its `type`.
        if case.payload.get("type") in ("block_actions", "shortcut"):
            return await self.bot.send_click(payload)
        return await self.bot.send_json(payload)

    async def judge(self, case: Case, payload: dict[str, Any], sent: Sent) -> None:
        verdict, mark, slack = case.expect.verdict, case.mark, self.bot.slack
        if verdict is Verdict.REJECTED:
            assert 400 <= sent.status < 500 and case.expect.why in sent.body, sent
            await self.unchanged(case)
            return
        assert sent.status == 200, sent
        if verdict in (Verdict.APPROVED, Verdict.CANCELLED):
            card = case.card
            assert card is not None
            [update] = await slack.wait_for("chat.update", where=lambda c: c.at >= mark.at and c.args["ts"] == card.ts)
            assert update.args["channel"] == card.channel and "actions" not in json.dumps(update.args["blocks"])
            stored = await self.approval_consistent(case, updated=True)
            assert stored is (ApprovalStatus.DONE if verdict is Verdict.APPROVED else ApprovalStatus.CANCELLED)
            await slack.wait_for("chat.postMessage", where=lambda c: c.at >= mark.at)  # the follow-up
        elif verdict is Verdict.REFUSED:
            [note] = await slack.wait_for("chat.postEphemeral", where=lambda c: c.at >= mark.at)
            assert note.args["user"] == payload["user"]["id"] and case.expect.why in note.args["text"]
            await self.settle()
            assert await self.approval_consistent(case, updated=False) is ApprovalStatus.PENDING
        elif verdict is Verdict.ANSWERED:
            answered = await slack.wait_for(
                "chat.postMessage", where=lambda c: c.at >= mark.at and "corpus answer" in json.dumps(c.args)
            )
            event = payload["event"]
            assert [c.args["channel"] for c in answered] == [event["channel"]]
            thread = event.get("thread_ts") or (event["ts"] if event["type"] == "app_mention" else None)
            assert answered[0].args.get("thread_ts") == thread
            asked = self.asked_since(mark)[0]["messages"][-1]["content"]
            assert "<@" not in asked and "corpus answer" not in asked
        else:
            await self.ignored_with_reason(case)
            await self.unchanged(case)

    async def unchanged(self, case: Case) -> None:
        await self.settle()
        assert self.since(case.mark, "chat.postMessage") == [] and self.since(case.mark, "chat.update") == []
        assert self.asked_since(case.mark) == []
        assert self.keys() == case.mark.keys

    async def harmless(self, case: Case, payload: dict[str, Any], sent: Sent) -> None:
        assert sent.status < 500, sent
        await self.settle()
        if case.card is not None:
            ts = case.card.ts
            updated = any(c.args.get("ts") == ts for c in self.since(case.mark, "chat.update"))
            stored = await self.approval_consistent(case, updated)
            if case.expect.verdict is Verdict.REFUSED or not _clicker_team(payload):
                # Whatever a partner's click lacks, it decides nothing; and a click that names no team for its
                # clicker gets no role at all, whoever clicked (never the home workspace's).
                assert stored is ApprovalStatus.PENDING
        elif could_be_a_message(payload.get("event")) and payload.get("type") == "event_callback":
            assert len(self.since(case.mark, "chat.postMessage")) <= 1
        else:
            await self.unchanged(case)


class TeamsRoute(_Route):
    def __init__(self, rig: TeamsRig, caplog: pytest.LogCaptureFixture, redis_url: str) -> None:
        super().__init__(rig.harness.fake, rig.harness.db, caplog, redis_url)
        self.rig = rig

    async def store_approval(self, approval_id: str) -> ApprovalStatus:
        stored = await self.rig.harness.store.get_approval(approval_id)
        assert stored is not None
        return stored.status

    async def settle(self) -> None:
        await settle(self.redis_url, self.rig.app[DISPATCHER].tasks)

    def since(self, mark: Mark) -> list[ConnectorCall]:
        return self.rig.connector.calls[mark.calls :]

    async def prepare(self, name: str) -> Case:
        expect = TEAMS[name]
        values = {"SERVICE_URL": self.rig.connector.service_url, "ACTIVITY_ID": f"1700{unique():09d}"}
        approval_id = card_id = None
        if expect.verdict in CLICKS:
            approval_id, posted = await ask(self.rig)
            card_id = posted.returned_id
            values |= {"APPROVAL_ID": approval_id, "CARD_ID": card_id, "CONVERSATION_ID": posted.conversation_id}
        self.model.default = corpus_model
        await self.settle()
        mark = Mark(0.0, len(self.rig.connector.calls), len(self.model.requests), len(self.caplog.records), set())
        mark.keys = redis_keys(self.redis_url)
        return Case(name, expect, load("teams", name, **values), mark, approval_id, card_id=card_id)

    async def send(self, payload: dict[str, Any]) -> tuple[int, Any]:
        return await self.rig.post(payload)

    def card_updated(self, case: Case) -> bool:
        return any(c.kind == "update" and c.activity_id == case.card_id for c in self.since(case.mark))

    async def judge(self, case: Case, payload: dict[str, Any], sent: tuple[int, Any]) -> None:
        (status, body), verdict, mark = sent, case.expect.verdict, case.mark
        if verdict is Verdict.REJECTED:
            assert 400 <= status < 500 and case.expect.why in json.dumps(body), sent
            await self.unchanged(case)
            return
        assert status == 200, sent
        if verdict is Verdict.APPROVED:
            if body is not None:  # Action.Execute answers with the decided card, for the clicker
                assert body["type"] == CARD and "actions" not in body["value"], body
            await eventually(lambda: self.card_updated(case))
            [update] = [c for c in self.since(mark) if c.kind == "update"]
            assert "actions" not in update.cards[0]
            assert await self.approval_consistent(case, updated=True) is ApprovalStatus.DONE
        elif verdict is Verdict.ANSWERED:
            # The answer message itself: in a personal chat, streaming updates (typing) carry the text first.
            await eventually(
                lambda: any(c.type == "message" and c.body.get("text") == "corpus answer" for c in self.since(mark))
            )
            replies = [c for c in self.since(mark) if c.type == "message"]
            assert [c.conversation_id for c in replies] == [payload["conversation"]["id"]]
            asked = self.asked_since(mark)[0]["messages"][-1]["content"]
            assert asked.endswith("what is open at P-1001?") and "<at>" not in asked, asked
        else:
            await self.ignored_with_reason(case)
            await self.unchanged(case)

    async def unchanged(self, case: Case) -> None:
        await self.settle()
        assert [(c.kind, c.type) for c in self.since(case.mark) if c.type != "typing"] == []
        assert self.asked_since(case.mark) == []
        assert redis_keys(self.redis_url) == case.mark.keys

    async def harmless(self, case: Case, payload: dict[str, Any], sent: tuple[int, Any]) -> None:
        assert sent[0] < 500, sent
        await self.settle()
        if case.approval_id is not None:
            await self.approval_consistent(case, self.card_updated(case))
        elif could_be_teams_input(payload):
            assert len([c for c in self.since(case.mark) if c.type == "message"]) <= 1
        else:
            await self.unchanged(case)


def _clicker_team(payload: dict[str, Any]) -> str | None:
    """The clicker's team as the payload names it (`user.team_id`, else `team.id`), None when it names none."""
    user, team = payload.get("user"), payload.get("team")
    found = (user.get("team_id") if isinstance(user, dict) else None) or (
        team.get("id") if isinstance(team, dict) else None
    )
    return found if isinstance(found, str) and found else None
