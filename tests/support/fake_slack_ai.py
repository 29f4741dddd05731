"""The fake Slack Web API's AI-app methods, documented at docs.slack.dev/reference/methods: streaming
(chat.startStream / appendStream / stopStream), the assistant panel (assistant.threads.*), the Home tab and
modals (views.publish, views.open). Mixed into `FakeSlack`, which records the calls and keeps the messages."""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.support.block_kit import check_message

_ts = itertools.count(1)
_views = itertools.count(1)
BOT_ID = "BBOT"


def new_ts() -> str:
    """A message ts, unique across the fakes of a test run."""
    return f"{1_700_000_000 + next(_ts)}.000100"


class AISurfaces:
    streaming: bool
    messages: dict[tuple[str, str], dict[str, Any]]
    violations: list[str]
    statuses: list[tuple[str, str, str]]
    homes: dict[str, dict[str, Any]]
    modals: list[dict[str, Any]]

    # Streaming (docs.slack.dev/reference/methods/chat.startStream, appendStream, stopStream): a reply in a
    # thread, for one recipient in channels; text arrives as markdown chunks, tool progress as task chunks.
    def _chat_startStream(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.streaming:
            return {"ok": False, "error": "unknown_method"}
        channel, thread = str(args.get("channel") or ""), args.get("thread_ts")
        if not channel or not thread:
            return {"ok": False, "error": "invalid_arguments"}
        if not channel.startswith("D") and not (args.get("recipient_user_id") and args.get("recipient_team_id")):
            return {"ok": False, "error": "missing_recipient_user_id"}
        ts = new_ts()
        message: dict[str, Any] = {"ts": ts, "bot_id": BOT_ID, "thread_ts": thread, "text": "", "blocks": []}
        message.update(streaming=True, tasks={}, chunks=[])
        self.messages[(channel, ts)] = message
        problem = self._take_chunks(message, args)
        if problem:
            return {"ok": False, "error": problem}
        return {"ok": True, "channel": channel, "ts": ts}

    def _chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get((str(args.get("channel")), str(args.get("ts"))))
        if message is None or not message.get("streaming"):
            return {"ok": False, "error": "message_not_in_streaming_state"}
        problem = self._take_chunks(message, args)
        return {"ok": False, "error": problem} if problem else {"ok": True}

    def _chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get((str(args.get("channel")), str(args.get("ts"))))
        if message is None or not message.get("streaming"):
            return {"ok": False, "error": "message_not_in_streaming_state"}
        problem = self._take_chunks(message, args)
        if problem:
            return {"ok": False, "error": problem}
        final = args.get("blocks") or []
        problems = check_message({"channel": "x", "text": "x", "blocks": final})
        if problems:
            self.violations.extend(f"chat.stopStream: {p}" for p in problems)
            return {"ok": False, "error": "invalid_blocks"}
        message.update(streaming=False, blocks=final)
        keep_metadata(message, args)
        return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}

    def _take_chunks(self, message: dict[str, Any], args: dict[str, Any]) -> str:
        if args.get("markdown_text"):
            message["text"] += str(args["markdown_text"])
        for chunk in args.get("chunks") or []:
            kind = chunk.get("type")
            message["chunks"].append(chunk)
            if kind == "markdown_text":
                message["text"] += str(chunk.get("text") or "")
            elif kind == "task_update":
                if chunk.get("status") not in ("pending", "in_progress", "complete", "error") or not chunk.get("id"):
                    self.violations.append(f"bad task_update chunk {chunk}")
                    return "invalid_chunks"
                message["tasks"][chunk["id"]] = chunk
            elif kind not in ("plan_update", "blocks"):
                self.violations.append(f"unknown chunk type {kind!r}")
                return "invalid_chunks"
        return ""

    def _assistant_threads_setStatus(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel_id") or not args.get("thread_ts") or "status" not in args:
            return {"ok": False, "error": "invalid_arguments"}
        self.statuses.append((str(args["channel_id"]), str(args["thread_ts"]), str(args["status"])))
        return {"ok": True}

    def _assistant_threads_setSuggestedPrompts(self, args: dict[str, Any]) -> dict[str, Any]:
        prompts = args.get("prompts") or []
        if not args.get("channel_id") or not prompts or len(prompts) > 4:
            return {"ok": False, "error": "invalid_arguments"}
        if any(not p.get("title") or not p.get("message") for p in prompts):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _assistant_threads_setTitle(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel_id") or not args.get("thread_ts") or not args.get("title"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        if not args.get("user_id") or not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        if len(view.get("blocks") or []) > 100:
            self.violations.append("views.publish: over 100 blocks")
            return {"ok": False, "error": "invalid_blocks"}
        self.homes[str(args["user_id"])] = view
        return {"ok": True, "view": {"id": f"V{next(_views)}", **view}}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        if not args.get("trigger_id") or not isinstance(view, dict) or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        if len(view.get("blocks") or []) > 100 or len(str((view.get("title") or {}).get("text", ""))) > 24:
            self.violations.append("views.open: view over limits")
            return {"ok": False, "error": "invalid_arguments"}
        self.modals.append(view)
        return {"ok": True, "view": {"id": f"V{next(_views)}", **view}}


def keep_metadata(message: dict[str, Any], args: dict[str, Any]) -> None:
    """The message metadata a call set (chat.postMessage, chat.update, chat.stopStream), as Slack keeps it."""
    metadata = args.get("metadata")
    if isinstance(metadata, str):  # sent form-encoded, the metadata is a JSON string
        metadata = json.loads(metadata)
    if metadata:
        message["metadata"] = metadata
