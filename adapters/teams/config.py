"""What the Teams adapter needs to know, handed over by the composition root (bot.app.platforms), which alone
reads the settings and has already refused settings that cannot be served."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TeamsConfig:
    app_id: str  # empty: local mode (no authentication, loopback only)
    app_password: str = ""
    app_type: str = "MultiTenant"  # MultiTenant | SingleTenant | UserAssignedMSI
    tenant_id: str = ""
    local_mode: bool = False
    allowed_tenants: frozenset[str] = frozenset()  # Azure tenant ids whose users are answered; "*" for any
    # Other clouds (and the suite's local identity server): set together or not at all.
    openid_metadata_url: str | None = None
    token_issuer: str | None = None
    login_url: str | None = None
    problem: str | None = None  # why these settings cannot be served, naming the variable; None when they can
    streaming: bool = True  # answers streamed in personal chats where Teams allows
    stream_interval: float = 1.0  # seconds between two updates of one streamed answer
    # document id -> a signed, expiring https link to propbot's GET /documents/<id>; None: links cannot be made
    # (PUBLIC_URL or DOCUMENT_LINK_SECRET unset), and a document is named in words only.
    document_link: Callable[[str], str] | None = None
    # A channel thread is a conversation of its own (its own history and turn order); false: one per channel.
    thread_memory: bool = False
    # Microsoft Graph, for Entra ID group and e-mail entries of the permissions file (no client id: not asked).
    graph_client_id: str = ""
    graph_client_secret: str = ""
    graph_base_url: str = "https://graph.microsoft.com/v1.0"
    graph_authority: str = "https://login.microsoftonline.com"
