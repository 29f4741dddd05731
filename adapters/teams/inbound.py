"""A Teams activity in: a message becomes an `Incoming` for the core, a card click a `Decision`. An
Action.Execute click is answered in its invoke (within Teams' few seconds) and finished in the background."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.schema import Activity, ActivityTypes

from adapters.teams import cards, team
from adapters.teams.activity import (
    MESSAGE_RESPONSE,
    as_dict,
    caller_of,
    channel_of,
    conversation_of,
    invoke_body,
    principal_of,
    sent_from,
    strip_bot_mention,
    tenant_of,
)
from adapters.teams.ai import time_zone_of
from adapters.teams.outbound import TeamsResponder
from adapters.teams.run_card import RunCard
from bot.core.port import CorePort
from bot.types import (
    Approval,
    ApprovalStatus,
    Decision,
    DecisionAction,
    DecisionOutcome,
    DecisionResult,
    Feedback,
    Incoming,
    TextReply,
    same_person,
)

log = logging.getLogger(__name__)

# Teams shows "something went wrong" when an invoke is not answered within a few seconds; a decision
# that takes longer (the tool runs, then the model answers) is finished in the background.
INVOKE_WAIT: Final = 4.0
REFUSED: Final = "You are not allowed to use propbot in this workspace; nothing was changed."


class TeamsInbound:
    def __init__(
        self, core: CorePort, responder: TeamsResponder, invoke_wait: float = INVOKE_WAIT, thread_memory: bool = False
    ) -> None:
        self.core = core
        self.thread_memory = thread_memory
        self.responder = responder
        self.invoke_wait = invoke_wait
        # Every invoke propbot answers, by name (any other is refused by name), and every Action.Execute verb its
        # cards carry: the door test reads both, so one added here is tried as an attacker would.
        self.invokes: dict[str, Callable[[Activity], Awaitable[dict[str, Any] | None]]] = {
            "adaptiveCard/action": self._execute,
            "message/submitAction": self._feedback,
        }
        self.verbs: dict[str, Callable[[Activity, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            **{verb: functools.partial(self._decide, action) for verb, action in cards.VERBS.items()},
            cards.REFRESH_VERB: self._refresh,
            team.MARK_VERB: self._mark,
        }

    async def on_turn(self, ctx: TurnContext) -> None:
        activity: Activity = ctx.activity
        if activity.type in (ActivityTypes.invoke, ActivityTypes.message) and not await self.core.admit(
            caller_of(activity)
        ):
            # The core's gate: a person not let in reaches nothing below, whatever the activity.
            log.info("refused a Teams %s from %s: not let in", activity.name or activity.type, principal_of(activity))
            if activity.type == ActivityTypes.invoke:
                body = invoke_body({"type": MESSAGE_RESPONSE, "value": REFUSED})
                await ctx.send_activity(
                    Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=200, body=body))
                )
            return
        handler = self.invokes.get(str(activity.name)) if activity.type == ActivityTypes.invoke else None
        if handler is not None:
            answer = await handler(activity)
            await ctx.send_activity(
                Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=200, body=answer))
            )
        elif activity.type == ActivityTypes.message and isinstance(activity.value, dict):
            await self._submit(activity)
        elif activity.type == ActivityTypes.message:
            text = strip_bot_mention(activity)
            if text:
                await self.core.submit(self._incoming(activity, text))
                # Addressed in a team channel: that channel can hear maintenance notices from now on.
                await team.remember_channel(self.core, activity)
            else:
                log.info("ignored a Teams message with no words for propbot (only a mention, or attachments)")
        elif activity.type == ActivityTypes.invoke:
            # botbuilder answers an invoke nobody handled with 501; an invoke propbot has no use for is the
            # sender's mistake, so it is refused by name instead.
            log.info("refused a Teams invoke %r: propbot does not handle it", activity.name)
            error = {"code": "BadRequest", "message": f"propbot does not handle the invoke {activity.name!r}."}
            body = invoke_body({"type": "application/vnd.microsoft.error", "value": error}, 400)
            await ctx.send_activity(
                Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=400, body=body))
            )
        elif activity.type == ActivityTypes.conversation_update and await team.remember_channel(self.core, activity):
            log.info("remembered Teams channel %s for maintenance notices", activity.conversation.id)
        else:
            log.info("ignored a Teams %s activity: only messages and card actions are handled", activity.type)

    def _incoming(self, activity: Activity, text: str) -> Incoming:
        return Incoming(
            conversation=conversation_of(activity, self.thread_memory),
            user=principal_of(activity),
            user_name=activity.from_property.name,
            text=text,
            event_id="teams:" + (activity.id or str(uuid.uuid4())),
            **sent_from(activity),
        )

    def _decision(self, activity: Activity, approval_id: Any, action: str) -> Decision | None:
        if not isinstance(approval_id, str) or action not in ("approve", "cancel"):
            return None
        return Decision(
            approval_id=approval_id,
            user=principal_of(activity),
            user_name=activity.from_property.name,
            action=DecisionAction(action),
            platform="teams",
            workspace=tenant_of(activity),
            channel=channel_of(activity),
        )

    async def _execute(self, activity: Activity) -> dict[str, Any]:
        """An Action.Execute click; the invoke's answer replaces the card in place."""
        action = as_dict(as_dict(activity.value).get("action"))
        verb = action.get("verb")
        handler = self.verbs.get(verb) if isinstance(verb, str) else None
        if handler is None:
            return _unknown_action()
        return await handler(activity, as_dict(action.get("data")))

    async def _mark(self, activity: Activity, data: dict[str, Any]) -> dict[str, Any]:
        return await team.mark(self.core, activity, data) or _unknown_action()

    async def _decide(self, action: str, activity: Activity, data: dict[str, Any]) -> dict[str, Any]:
        decision = self._decision(activity, data.get("approval_id"), action)
        if decision is None:
            return _unknown_action()

        def show(approval: Approval) -> RunCard:
            return RunCard(self.responder, approval, activity.reply_to_id)

        task = self.core.spawn(self.core.decide(decision, show), name="teams:decide")
        try:
            result: DecisionResult = await asyncio.wait_for(asyncio.shield(task), self.invoke_wait)
        except TimeoutError:
            self.core.spawn(self._conclude(task, activity), name="teams:decide-late")
            return invoke_body({"type": MESSAGE_RESPONSE, "value": "Working on it; the card updates when done."})
        except Exception:
            log.exception("deciding approval %s failed", decision.approval_id)
            error = {"code": "InternalError", "message": "propbot hit an error while deciding this request."}
            return invoke_body({"type": "application/vnd.microsoft.error", "value": error}, 500)
        approval = result.approval
        if approval is not None and (follow_up := self.responder.follow_up(result)):
            self.core.spawn(self.responder.post(approval.conversation, follow_up), name="teams:follow-up")
        if approval is None or result.outcome is DecisionOutcome.UNAVAILABLE:
            return invoke_body({"type": MESSAGE_RESPONSE, "value": result.message})
        if result.outcome is not DecisionOutcome.REFUSED:
            # The invoke answer replaces the card only for the person who clicked; everyone else in a group
            # chat or channel would keep seeing Approve/Cancel on a decided request.
            self.core.spawn(self.responder.replace_card(approval, activity.reply_to_id), name="teams:card")
        zone = time_zone_of(activity.local_timezone, activity.entities)
        if result.outcome is DecisionOutcome.REFUSED:
            # The clicker's own view, which has no button they may use, and why.
            view = cards.REQUESTER if same_person(decision.user, approval.requested_by) else cards.OTHER
            content = cards.approval_card(approval, notice=result.message, view=view, zone=zone)
        else:
            content = cards.decided_card(approval, zone=zone)
        return invoke_body({"type": cards.CARD_CONTENT_TYPE, "value": content})

    async def _refresh(self, activity: Activity, data: dict[str, Any]) -> dict[str, Any]:
        """The approval card as the person asking sees it: their buttons, their time zone; nothing for someone who
        is neither in the card's conversation nor its requester or approver."""
        found, view = (None, "")
        approval_id = data.get("approval_id")
        if isinstance(approval_id, str) and approval_id:
            found, view = await self.core.surfaces.viewer(approval_id, caller_of(activity), channel_of(activity))
        if found is None:
            return invoke_body({"type": MESSAGE_RESPONSE, "value": "This approval request no longer exists."})
        zone = time_zone_of(activity.local_timezone, activity.entities)
        if found.status is ApprovalStatus.PENDING and found.expires_at > time.time():
            content = cards.approval_card(found, view=view, zone=zone)
        else:
            content = cards.decided_card(found, zone=zone)
        return invoke_body({"type": cards.CARD_CONTENT_TYPE, "value": content})

    async def _feedback(self, activity: Activity) -> None:  # the invoke's answer is a bare 200
        """👍/👎 from the feedback loop (`message/submitAction`), recorded like Slack's."""
        value = as_dict(activity.value)
        action = as_dict(value.get("actionValue"))
        reaction = action.get("reaction")
        if value.get("actionName") != "feedback" or reaction not in ("like", "dislike"):
            log.info("ignored a Teams submitAction that is not feedback")
            return
        comment = ""
        raw = action.get("feedback")
        if isinstance(raw, str):
            try:
                comment = str(as_dict(json.loads(raw)).get("feedbackText") or "")
            except ValueError:
                comment = raw
        feedback = Feedback(
            user=principal_of(activity),
            conversation=conversation_of(activity, self.thread_memory).key,
            positive=reaction == "like",
            answer=activity.reply_to_id or "",
            comment=comment,
        )
        await self.core.surfaces.feedback(caller_of(activity), feedback)

    async def _submit(self, activity: Activity) -> None:
        """An Action.Submit click (clients without Universal Actions): a message carrying the card's data."""
        value: dict[str, Any] = activity.value
        decision = self._decision(activity, value.get("approval_id"), str(value.get("action", "")))
        if decision is None:
            return
        # Messages are redelivered when Teams misses our answer; a Submit must not be decided twice. The schema
        # makes `id` optional: without one there is nothing to tell a redelivery by, and the approval's own
        # atomic claim still decides it once.
        delivery = "teams:" + activity.id if isinstance(activity.id, str) and activity.id else None
        if delivery is not None and not await self.core.first_delivery(delivery):
            return
        self.core.spawn(self._conclude(self.core.decide(decision), activity), name="teams:submit")

    async def _conclude(self, pending: Awaitable[DecisionResult], activity: Activity) -> None:
        """Show a decision made outside an invoke answer: update the card, or tell the clicker why not."""
        result = await pending
        approval = result.approval
        if approval is None or result.outcome in (DecisionOutcome.REFUSED, DecisionOutcome.UNAVAILABLE):
            who = activity.from_property.name or "Someone"
            note = TextReply(text=f"{who}: {result.message}")
            await self.responder.post(conversation_of(activity, self.thread_memory), [note])
            return
        await self.responder.replace_card(approval, activity.reply_to_id)
        if follow_up := self.responder.follow_up(result):
            await self.responder.post(approval.conversation, follow_up)


def _unknown_action() -> dict[str, Any]:
    error = {"code": "BadRequest", "message": "This card action is not one propbot knows."}
    return invoke_body({"type": "application/vnd.microsoft.error", "value": error}, 400)
