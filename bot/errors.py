"""Every error propbot raises on purpose derives from `PropbotError`, so a caller can tell ours from a bug."""

from __future__ import annotations

from enum import StrEnum


class PropbotError(Exception):
    """Base of propbot's own errors."""


class Undeliverable(PropbotError):
    """A platform refused a post for good (the channel is gone, propbot is not in it): trying again cannot help."""

    permanent = True


class ConfigError(PropbotError):
    """A setting is missing or wrong: one clear line naming the variable and what it should hold."""


class PermissionsError(ConfigError):
    """The permissions file is missing or malformed; the message names the line and the problem."""


class StoreUnavailable(PropbotError):
    """The state store cannot be reached; the caller answers 'temporarily unavailable'."""


class ModelFailure(StrEnum):
    """Why the model could not answer; each kind has its own words for the user (bot.core.texts)."""

    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    CIRCUIT_OPEN = "circuit_open"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"


class ModelError(PropbotError):
    """The model could not answer. `kind` picks the words the user sees."""

    def __init__(self, kind: ModelFailure, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail
        self.attempts = 0
