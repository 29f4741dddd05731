"""Signed, expiring download links: `<base>/documents/<id>?expires=<unix seconds>&signature=<HMAC>`.

Teams gets a lease as a link rather than an upload (its bots can send files in personal chats only, after the user
consents), and whoever holds the link can fetch the document until it expires: the signature (HMAC-SHA256 over the
id and the expiry) stops anyone from changing either or from making links to other documents. The URL is the only
credential, so links should be short-lived.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from typing import Final
from urllib.parse import urlencode, urlsplit

from tools.documents.store import is_document_id

MIN_SECRET_BYTES: Final = 32
# Names what the MAC is for, so a secret reused for some other HMAC in propbot can never yield a valid link.
_PURPOSE: Final = b"propbot document link v1"
_EXPIRES: Final = re.compile(r"[0-9]{1,12}", re.ASCII)


def sign_document_link(base_url: str, document_id: str, secret: str | bytes, expires_at: dt.datetime) -> str:
    """The URL at which propbot serves `document_id` until `expires_at` (timezone-aware; whole seconds).

    `base_url` is propbot's public http(s) address, e.g. https://propbot.example.com (a path prefix is kept).
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("base_url must be an http(s) URL without a query or fragment, such as https://host")
    if not is_document_id(document_id):
        raise ValueError(f"{document_id!r} is not a document id")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    expires = int(expires_at.timestamp())
    query = urlencode({"expires": expires, "signature": _signature(_key(secret), document_id, expires)})
    return f"{base_url.rstrip('/')}/documents/{document_id}?{query}"


def verify_document_link(
    document_id: str, expires: str | int, signature: str, secret: str | bytes, now: dt.datetime
) -> bool:
    """True when `signature` was made with `secret` for this id and expiry, and `now` is before the expiry.

    Takes the values as they come from the request (`expires` is the query string's text) and never raises on
    anything a client can send; a bad `secret` or a naive `now` are the caller's mistakes and do raise.
    """
    key = _key(secret)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if isinstance(expires, bool) or not is_document_id(document_id) or not signature.isascii():
        return False
    if isinstance(expires, str):
        if not _EXPIRES.fullmatch(expires):
            return False
        expires = int(expires)
    expected = _signature(key, document_id, expires)
    # Compare first and always, so the time taken says nothing about which check failed.
    genuine = hmac.compare_digest(expected, signature)
    return genuine and now.timestamp() < expires


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        # An empty or short secret would let anyone mint links: refuse it rather than sign with it.
        raise ValueError(f"the document link secret must be at least {MIN_SECRET_BYTES} bytes (openssl rand -hex 32)")
    return key


def _signature(key: bytes, document_id: str, expires: int) -> str:
    # Ids are [A-Za-z0-9_-] and the expiry is digits, so the newline-separated message is unambiguous.
    message = b"\n".join((_PURPOSE, document_id.encode(), str(expires).encode()))
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
