"""What makes a Teams message an AI app's: the "AI generated" label with citations (a schema.org Message
entity), the feedback loop (channelData), suggested actions, stream info entities, and times in the reader's
time zone. Shapes from Microsoft's "bot messages with AI-generated content" and "stream bot messages" docs."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botbuilder.schema import CardAction, Entity, SuggestedActions

from bot.types import Source, Suggestion

MAX_CITATIONS: Final = 20
ABSTRACT_LIMIT: Final = 160
NAME_LIMIT: Final = 80


class OpenEntity(Entity):  # type: ignore[misc]  # botbuilder-schema ships no type hints
    """An entity whose every field is serialised: botbuilder's Entity keeps `type` only and drops the rest."""

    _attribute_map = {
        "type": {"key": "type", "type": "str"},
        "additional_properties": {"key": "", "type": "{object}"},
    }

    def __init__(self, **fields: Any) -> None:
        super().__init__(type=fields.pop("type"))
        self.additional_properties = fields


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cited(text: str, sources: list[Source]) -> tuple[str, list[dict[str, Any]]]:
    """The text with a `[n]` after the first mention of each source's id (at the end when it is not mentioned),
    and the matching citation claims; Teams shows each `[n]` as a reference to its claim."""
    claims: list[dict[str, Any]] = []
    tail: list[str] = []
    for position, source in enumerate(sources[:MAX_CITATIONS], start=1):
        marker = f"[{position}]"
        mention = re.search(rf"\b{re.escape(source.id)}\b", text)
        if mention is not None:
            text = text[: mention.end()] + f" {marker}" + text[mention.end() :]
        else:
            tail.append(marker)
        appearance = {
            "@type": "DigitalDocument",
            "name": _clip(f"{source.id} · {source.title}", NAME_LIMIT),
            "abstract": _clip(source.detail or source.title, ABSTRACT_LIMIT),
            "keywords": [source.kind.replace("_", " ")[:28]],
        }
        claims.append({"@type": "Claim", "position": position, "appearance": appearance})
    if tail:
        text = f"{text} {' '.join(tail)}".strip()
    return text, claims


def ai_label(claims: list[dict[str, Any]] | None = None) -> OpenEntity:
    """The "AI generated" label, with citations when the answer rests on records."""
    fields: dict[str, Any] = {
        "type": "https://schema.org/Message",
        "@type": "Message",
        "@context": "https://schema.org",
        "@id": "",
        "additionalType": ["AIGeneratedContent"],
    }
    if claims:
        fields["citation"] = claims
    return OpenEntity(**fields)


FEEDBACK_ON: Final = {"feedbackLoopEnabled": True}


def stream_info(kind: str, stream_id: str | None, sequence: int | None) -> OpenEntity:
    """`streaminfo` for a streamed answer: `informative` / `streaming` updates carry a sequence from 1 up; the
    `final` message carries none; every activity after the first names the stream."""
    fields: dict[str, Any] = {"type": "streaminfo", "streamType": kind}
    if stream_id:
        fields["streamId"] = stream_id
    if sequence is not None:
        fields["streamSequence"] = sequence
    return OpenEntity(**fields)


def suggested(suggestions: list[Suggestion], user_id: str | None) -> SuggestedActions | None:
    """Next steps as buttons that send their words back (imBack), shown to the person who asked."""
    if not suggestions:
        return None
    actions = [CardAction(type="imBack", title=s.title, value=s.message) for s in suggestions]
    return SuggestedActions(actions=actions, to=[user_id] if user_id else None)


def time_zone_of(local_timezone: Any, entities: list[Any] | None) -> str | None:
    """The sender's IANA time zone: the activity's `localTimezone`, else the `clientInfo` entity's `timezone`;
    None when neither names one this machine knows."""
    candidates = [local_timezone]
    for entity in entities or []:
        extra = getattr(entity, "additional_properties", None) or {}
        if str(getattr(entity, "type", "")).lower() == "clientinfo":
            candidates.append(extra.get("timezone"))
    for name in candidates:
        if isinstance(name, str) and name:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            return name
    return None


def local_time(epoch: float | None, zone: str | None) -> str:
    """`2026-12-01 09:30 (Europe/Berlin)` in the reader's zone, `2026-12-01 08:30 UTC` without one."""
    if not epoch:
        return "unknown time"
    if zone:
        try:
            moment = dt.datetime.fromtimestamp(epoch, ZoneInfo(zone))
            return f"{moment:%Y-%m-%d %H:%M} ({zone})"
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return f"{dt.datetime.fromtimestamp(epoch, dt.UTC):%Y-%m-%d %H:%M} UTC"
