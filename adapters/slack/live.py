"""A turn shown in Slack while it runs: text streamed with chat.startStream / appendStream / stopStream and tool
progress as task chunks. Where streaming is not to be had, the fallback is what propbot always did: the
working reaction, then the replies posted whole.

Slack calls go out from one pump task per answer, never from the model's stream: a slow Slack call delays
the next flush, not the model. Flushes are at least `interval` apart, so one answer makes a few calls a
second at most, whatever the model's speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from slack_sdk.web.async_client import AsyncWebClient

from adapters.pump import Pump
from adapters.slack import blocks
from adapters.slack import format as fmt
from adapters.slack.delivery import AnswerTags, find_posted, part
from adapters.slack.web import attempt, call
from adapters.stream_support import StreamSupport
from bot.types import Conversation, Progress, ProgressState, Reply, TextReply

log = logging.getLogger(__name__)

STREAM_INTERVAL: Final = 0.5
# Errors that say this workspace or token cannot stream at all: remembered, so later answers go straight to
# the fallback. Anything else (rate limits, a 500, a message gone) falls back for this answer only.
NO_STREAMING: Final = frozenset(
    {"unknown_method", "not_allowed_token_type", "missing_scope", "method_deprecated", "feature_not_enabled"}
)


def slack_streaming(enabled: bool = True) -> StreamSupport:
    return StreamSupport("slack", NO_STREAMING, enabled)


_TASK_STATUS: Final = {
    ProgressState.RUNNING: "in_progress",
    ProgressState.DONE: "complete",
    ProgressState.FAILED: "error",
    ProgressState.WAITING: "pending",
}
# A mention or broadcast whose end is not here yet ("<", "<!chan", "@her") waits for the next flush, so that
# defusing sees it whole.
_OPEN_TAIL = re.compile(r"(<[!@#]?\w*|@\w{0,8})$")


@dataclass(frozen=True)
class Target:
    """Where an answer goes and for whom."""

    team: str  # the installation, for StreamSupport
    channel: str
    thread: str | None
    user: str  # the Slack user id the answer is for (chat.startStream's recipient in channels)
    user_team: str
    assistant: bool = False  # an assistant-panel thread: status shown with assistant.threads.setStatus


class Poster(Protocol):
    """How replies are posted whole (adapters.slack.responder.SlackResponder)."""

    async def post_answer(
        self,
        conversation: Conversation,
        numbered: list[tuple[int, Reply]],
        main: TextReply | None,
        tags: AnswerTags | None,
    ) -> None: ...

    async def post_messages(
        self,
        conversation: Conversation,
        messages: list[blocks.Message],
        tags: AnswerTags | None = None,
        reply: int = 0,
        first: int = 0,
    ) -> None: ...


class SlackLive:
    """One answer being shown (bot.core.port.LiveReply)."""

    def __init__(
        self,
        client: AsyncWebClient,
        support: StreamSupport,
        target: Target,
        poster: Poster,
        conversation: Conversation,
        interval: float = STREAM_INTERVAL,
        tags: AnswerTags | None = None,
    ) -> None:
        self.client = client
        self.tags = tags  # each message's delivery id and part, in its metadata (adapters/slack/delivery.py)
        self.support = support
        self.target = target
        self.poster = poster  # replies posted whole go where `conversation` says
        self.conversation = conversation
        self.finished = False
        self.sent = ""  # all text handed over, to find the reply it belongs to
        self.ts: str | None = None  # the streamed message, once started
        self.broken = False  # the stream failed after it started: the end replaces its message whole
        self._pending = ""
        self._tasks: dict[str, Progress] = {}
        self._changed: list[str] = []  # task ids to send with the next flush
        self._closing = False  # the end is being sent: a mention cut at the end of the text goes out as it is
        self._pump = Pump(self._flush, interval, paced=lambda: self.ts is not None)
        self._status: asyncio.Task[None] | None = None
        # Streaming was refused for this answer, or is off here: nothing is shown until the end.
        self._declined = not (target.thread and support.on(target.team))

    # -- what the core calls -----------------------------------------------------------------------------
    async def progress(self, step: Progress) -> None:
        self._tasks[step.id] = step
        if step.id not in self._changed:
            self._changed.append(step.id)
        self._kick()

    async def text(self, delta: str) -> None:
        self.sent += delta
        self._pending += delta
        self._kick()

    async def finish(self, replies: list[Reply]) -> None:
        self.finished = True
        await self._stop_pump()
        main = self._main_reply(replies)
        numbered = list(enumerate(replies))
        if self.ts is None:
            await self.poster.post_answer(self.conversation, numbered, main, self.tags)
        else:
            # One turn, one message: a notice that ends the turn (the tool-step limit, a model failure after steps
            # were shown) ends the streamed message, as an answer would.
            ending = main or next((r for r in replies if isinstance(r, TextReply) and r.is_error and r.text), None)
            at = next((i for i, r in numbered if r is ending), len(replies))
            await self._close(ending, at)
            rest = [(i, r) for i, r in numbered if r is not ending]
            await self.poster.post_answer(self.conversation, rest, None, self.tags)
        await self.clear_status()

    async def resume(self) -> bool:
        if self.tags is None:
            return False
        found = await find_posted(self.client, self.conversation, self.tags.delivery)
        if found is None:
            return False
        self.tags.posted = found
        return True

    async def abandon(self) -> None:
        """The turn ended without replies (it runs again later): what it showed goes."""
        await self._stop_pump()
        if self.ts is not None:
            if not self.broken:
                await call(self.client, "chat.stopStream", channel=self.target.channel, ts=self.ts)
            await call(self.client, "chat.delete", channel=self.target.channel, ts=self.ts)
            self.ts = None
        await self.clear_status()

    # -- the assistant panel's status ----------------------------------------------------------------------
    def begin_status(self, status: str) -> None:
        """Set the panel's status beside the turn (not in front of it); `clear_status` waits for it."""
        if self.target.assistant:
            self._status = asyncio.create_task(self.set_status(status), name="slack:status")

    async def set_status(self, status: str) -> None:
        if self.target.assistant and self.target.thread:
            await call(
                self.client,
                "assistant.threads.setStatus",
                channel_id=self.target.channel,
                thread_ts=self.target.thread,
                status=fmt.defuse_markdown(status),
            )

    async def clear_status(self) -> None:
        if self._status is not None:
            await self._status
        await self.set_status("")

    # -- the pump --------------------------------------------------------------------------------------
    def _kick(self) -> None:
        if self._declined and not self.target.assistant:
            return  # nothing to show before the end
        self._pump.kick("slack:stream")

    async def _stop_pump(self) -> None:
        self._closing = True
        await self._pump.stop()

    async def _flush(self) -> None:
        changed = [self._tasks[i] for i in self._changed]
        self._changed = []
        if changed and self.target.assistant:
            await self.set_status(changed[-1].title)
        if self._declined:
            return
        text = self._take_text()
        if self.ts is None:
            await self._start(changed, text)
        elif not self.broken and (text or changed):
            await self._append(changed, text)

    def _take_text(self) -> str:
        held = _OPEN_TAIL.search(self._pending)
        cut = held.start() if held and not self._closing else len(self._pending)
        text, self._pending = self._pending[:cut], self._pending[cut:]
        return fmt.defuse_markdown(text)

    async def _start(self, changed: list[Progress], text: str) -> None:
        params: dict[str, Any] = {
            "channel": self.target.channel,
            "thread_ts": self.target.thread,
            "task_display_mode": "timeline",
            "chunks": _chunks(changed, text),
        }
        if not self.target.channel.startswith("D"):
            params.update(recipient_user_id=self.target.user, recipient_team_id=self.target.user_team)
        data, error = await attempt(self.client, "chat.startStream", **params)
        if data is not None and data.get("ts"):
            self.ts = str(data["ts"])
            return
        self.support.refused(self.target.team, error)
        self._declined = True  # not streaming after all: the replies are posted whole at the end

    async def _append(self, changed: list[Progress], text: str) -> None:
        assert self.ts is not None
        data = await call(
            self.client, "chat.appendStream", channel=self.target.channel, ts=self.ts, chunks=_chunks(changed, text)
        )
        if data is None:
            self.broken = True  # the end replaces the message whole: nothing is posted twice

    # -- the end ---------------------------------------------------------------------------------------
    def _main_reply(self, replies: list[Reply]) -> TextReply | None:
        """The answer, which carries the feedback buttons: the reply whose text was streamed, else the last text
        reply that is not an error or a notice."""
        texts = [r for r in replies if isinstance(r, TextReply)]
        if self.sent:
            return next((r for r in texts if r.text == self.sent), None)
        return next((r for r in reversed(texts) if not r.is_error and r.text.strip()), None)

    async def _close(self, main: TextReply | None, at: int) -> None:
        """End the streamed message as the answer or the notice that ends the turn (reply `at` of the turn), then
        post what does not fit in it."""
        assert self.ts is not None
        channel = self.target.channel
        tagged = {"metadata": self.tags.metadata(part(at, 0))} if self.tags is not None else {}
        if not self.broken:
            tail, changed = self._take_text(), [self._tasks[i] for i in self._changed]
            if main is not None and main.is_error:
                tail += ("\n\n" if self.sent.strip() else "") + "⚠️ " + fmt.defuse_markdown(main.text)
            self._changed = []
            extra = blocks.answer_extras(main) if main is not None else []
            first = extra[0].blocks if extra else None
            stopped = await call(
                self.client,
                "chat.stopStream",
                channel=channel,
                ts=self.ts,
                chunks=_chunks(changed, tail),
                blocks=first,
                **tagged,
            )
            if stopped is not None:
                await self.poster.post_messages(self.conversation, extra[1:], self.tags, at, first=1)
                return
            log.warning("slack stream %s could not be stopped; its message is replaced whole", self.ts)
        if main is None:
            return
        messages = blocks.answer_messages(main)
        updated = await call(self.client, "chat.update", channel=channel, ts=self.ts, **messages[0].payload(), **tagged)
        if updated is None:
            # Slack would not take the update: the answer is posted whole once more, the stub removed.
            await call(self.client, "chat.delete", channel=channel, ts=self.ts)
            await self.poster.post_messages(self.conversation, messages, self.tags, at)
            return
        await self.poster.post_messages(self.conversation, messages[1:], self.tags, at, first=1)


def _chunks(changed: list[Progress], text: str) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = []
    for step in changed:
        # Titles and outputs carry the model's arguments and the tools' errors: defused like the answer's text.
        title = fmt.truncate(fmt.defuse_markdown(step.title), 256)
        task: dict[str, Any] = {"type": "task_update", "id": step.id, "title": title}
        task["status"] = _TASK_STATUS[step.state]
        if step.detail:
            task["output"] = fmt.truncate(fmt.defuse_markdown(step.detail), 256)
        chunks.append(task)
    if text:
        chunks.append({"type": "markdown_text", "text": text})
    return chunks


@contextlib.asynccontextmanager
async def shown(live: SlackLive) -> AsyncIterator[SlackLive]:
    """`live` for the block's duration; abandoned when the block ends without finishing it."""
    try:
        yield live
    finally:
        if not live.finished:
            await live.abandon()
