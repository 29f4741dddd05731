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


class DocumentLink(BaseModel):
    """A document a tool made (a lease PDF), kept in the document store: Slack gets it as a file in the thread,
    Teams as a signed, expiring link to propbot's `GET /documents/<id>`."""

    id: str
    filename: str
    title: str


class TeamNotice(BaseModel):
    """A change the maintenance team hears about (a request scheduled or cancelled): posted once per `key` to the
    team's channel for the property's city, with buttons to mark the request in progress or done."""

    key: str  # "MR-5001:scheduled": the change, so a retried or redelivered call is announced once
    request_id: str
    property_id: str
    city: str
    status: str
    title: str
    fields: list[Detail] = Field(default_factory=list)
    # The buttons the notice offers, in order: the status each sets -> its label ("completed": "Mark done").
    marks: dict[str, str] = Field(default_factory=dict)


class Source(BaseModel):
    """A record an answer rests on (a property, a maintenance request): cited by the platforms that show
    citations, and the anchor for suggested next steps."""

    id: str  # "P-1001", "MR-5001"
    kind: str  # "property" | "maintenance_request" | a tool's own kind
    title: str
    detail: str = ""
    status: str = ""  # a request's status, for what may be done with it next
