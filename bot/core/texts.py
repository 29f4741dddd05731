"""What the bot says when something goes wrong: plain words, never a stack trace."""

from __future__ import annotations

from typing import assert_never

from bot.errors import ModelError, ModelFailure
from bot.types import Presentation, TextReply

NO_ANSWER = "I have no answer to that; could you put it another way?"


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


def not_admitted() -> TextReply:
    return TextReply(text="You are not allowed to use propbot in this workspace; nothing was changed.", is_error=True)


def gave_up() -> TextReply:
    why = "propbot kept failing to process it (its state store was unreachable, or an error repeated)"
    return TextReply(text=f"I could not answer your message: {why}. Please send it again.", is_error=True)


def resent() -> TextReply:
    return TextReply(text="(propbot restarted while sending the answer below; if you already have it, this is a copy.)")


def rate_limited(retry_in: float) -> TextReply:
    return TextReply(
        text=f"You're sending requests faster than propbot allows. Please wait {max(1, round(retry_in))} "
        "seconds and try again.",
        is_error=True,
    )


def _model_words(kind: ModelFailure) -> str:
    # A match over the enum, so mypy fails the build when a new kind has no words.
    match kind:
        case ModelFailure.RATE_LIMITED:
            return "The AI service is overloaded right now."
        case ModelFailure.TIMEOUT:
            return "The AI service did not answer in time."
        case ModelFailure.UNAVAILABLE:
            return "The AI service cannot be reached right now."
        case ModelFailure.CIRCUIT_OPEN:
            return "The AI service has been failing, so I'm pausing calls to it for a short while."
        case ModelFailure.AUTH:
            return "The AI service refused propbot's credentials; an administrator needs to check OPENAI_API_KEY."
        case ModelFailure.BAD_REQUEST:
            return "The AI service could not process this conversation."
        case _:
            assert_never(kind)


def model_failed(exc: ModelError) -> TextReply:
    return TextReply(text=f"{_model_words(exc.kind)} Nothing was changed; please try again in a minute.", is_error=True)


def outcome_without_model(outcome: str, exc: ModelError) -> TextReply:
    """An approved (or cancelled, or expired) request whose follow-up the model could not write: the outcome
    stands, and only the summary is missing."""
    words = _model_words(exc.kind).rstrip(".")
    return TextReply(text=f"{outcome.rstrip('.')}. {words}, so I could not write more about it.", is_error=True)


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
