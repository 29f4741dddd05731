"""Approval changes checked and encoded once, so both stores accept and reject exactly the same changes."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import TypeAdapter

from bot.types import Approval

# Fields a change may never touch: the id names the record and status moves only via `transition`.
_FROZEN_FIELDS = frozenset({"id", "status"})


@cache
def _field_adapter(name: str) -> TypeAdapter[Any]:
    annotation: Any = Approval.model_fields[name].annotation
    return TypeAdapter(annotation)


def encode_changes(changes: dict[str, Any]) -> dict[str, str]:
    """Validate `changes` against the Approval fields and encode each value as JSON text.

    Shared by both stores so they accept and reject exactly the same changes."""
    encoded: dict[str, str] = {}
    for name, value in changes.items():
        if name in _FROZEN_FIELDS or name not in Approval.model_fields:
            raise ValueError(f"approval field {name!r} cannot be changed")
        adapter = _field_adapter(name)
        encoded[name] = adapter.dump_json(adapter.validate_python(value)).decode()
    return encoded
