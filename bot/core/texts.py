"""What the bot says when something goes wrong: plain words, never a stack trace."""

from __future__ import annotations

from bot.llm.openai_model import ModelError
from bot.types import Presentation, TextReply


def unavailable() -> TextReply:
    return TextReply(
        text="propbot is temporarily unavailable (its state store cannot be reached). "
        "Nothing was changed; please try again in a minute.",
        is_error=True,
    )


def unavailable_at_ingress() -> TextReply:
    return TextReply(
        text="propbot is temporarily unavailable (its state store cannot be reached). If it is back within a "
        "few minutes I will answer this message on my own; otherwise please send it again.",
        is_error=True,
    )


def busy() -> TextReply:
    return TextReply(
        text="I'm still working on an earlier message in this conversation. Please try again in a moment.",
        is_error=True,
    )


def rate_limited(retry_in: float) -> TextReply:
    return TextReply(
        text=f"You're sending requests faster than propbot allows. Please wait {max(1, round(retry_in))} "
        "seconds and try again.",
        is_error=True,
    )


_MODEL_WORDS = {
    "rate_limited": "The AI service is overloaded right now.",
    "timeout": "The AI service did not answer in time.",
    "unavailable": "The AI service cannot be reached right now.",
    "circuit_open": "The AI service has been failing, so I'm pausing calls to it for a short while.",
    "auth": "The AI service refused propbot's credentials; an administrator needs to check OPENAI_API_KEY.",
    "bad_request": "The AI service could not process this conversation.",
}


def model_failed(exc: ModelError) -> TextReply:
    reason = _MODEL_WORDS.get(exc.kind, "The AI service failed.")
    return TextReply(text=f"{reason} Nothing was changed; please try again in a minute.", is_error=True)


def out_of_rounds(rounds: int, presentations: list[Presentation]) -> TextReply:
    return TextReply(
        text=f"I stopped after {rounds} tool steps without reaching an answer. Could you narrow the request down?",
        presentations=presentations,
        is_error=True,
    )


def bound_input(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def input_cut_notice(limit: int) -> str:
    return f"Your message was longer than {limit} characters; I only read the first {limit}."
