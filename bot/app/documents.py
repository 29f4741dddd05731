"""`GET /documents/<id>?expires=…&signature=…`: a document a tool made (a lease PDF), to whoever holds a link
propbot signed (Teams shows these; Slack gets the file itself). The link names one document and an expiry, and is
signed with DOCUMENT_LINK_SECRET; anything else gets a 404 that says nothing about whether the document exists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.config import Settings
from bot.ingress.dispatch import Dispatcher
from tools.documents.links import sign_document_link, verify_document_link

LINK_LIFETIME = dt.timedelta(days=7)


def document_links(settings: Settings) -> Callable[[str], str] | None:
    """Signs links for Teams; None when PUBLIC_URL or DOCUMENT_LINK_SECRET is unset."""
    base, secret = settings.public_url, settings.document_link_secret
    if not base or not secret:
        return None

    def link(document_id: str) -> str:
        return sign_document_link(base, document_id, secret, dt.datetime.now(dt.UTC) + LINK_LIFETIME)

    return link


def document_route(
    settings: Settings, dispatcher: Dispatcher
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    secret = settings.document_link_secret

    async def serve(request: web.Request) -> web.StreamResponse:
        document_id = request.match_info["document_id"]
        query = request.query
        genuine = secret is not None and verify_document_link(
            document_id, query.get("expires", ""), query.get("signature", ""), secret, dt.datetime.now(dt.UTC)
        )
        found = await dispatcher.document(document_id) if genuine else None
        if found is None:
            return web.Response(status=404, text="no such document, or the link has expired")
        content_type, data = found
        headers = {
            "Content-Disposition": f'inline; filename="{document_id}.pdf"'
            if content_type == "application/pdf"
            else "attachment",
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        }
        return web.Response(body=data, content_type=content_type, headers=headers)

    return serve
