"""How a tool result looks to a person: platform-neutral, rendered by the adapters as Block Kit or an Adaptive
Card. A leaf module: the tools build these and the core and adapters carry them, so nothing here imports
either side."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Detail(BaseModel):
    label: str
    value: str


class PresentationItem(BaseModel):
    title: str
    fields: list[Detail] = Field(default_factory=list)
    link: str | None = None


class Presentation(BaseModel):
    """How a tool result looks to a person: rendered as Block Kit or an Adaptive Card."""

    title: str
    fields: list[Detail] = Field(default_factory=list)
    items: list[PresentationItem] = Field(default_factory=list)
    image_url: str | None = None
    link_url: str | None = None
    link_text: str | None = None
    footer: str | None = None
