"""Signed document links: what a link looks like, and every way a changed, late or foreign link is refused."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tools.documents.links import sign_document_link, verify_document_link
from tools.documents.store import new_document_id

SECRET = "4f3c2a1b" * 8  # 64 bytes, like `openssl rand -hex 32`
NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
EXPIRES = NOW + dt.timedelta(hours=1)


def parts(url: str) -> tuple[str, str, str, str]:
    """(the path's document id, expires, signature, the URL before the query) as a handler would read them."""
    split = urlsplit(url)
    query = parse_qs(split.query, strict_parsing=True)
    assert set(query) == {"expires", "signature"}
    [expires], [signature] = query["expires"], query["signature"]
    prefix, _, document_id = split.path.rpartition("/documents/")
    return document_id, expires, signature, f"{split.scheme}://{split.netloc}{prefix}"


def test_a_link_verifies_until_it_expires() -> None:
    document_id = new_document_id()
    url = sign_document_link("https://propbot.example.com", document_id, SECRET, EXPIRES)

    assert re.fullmatch(r"https://propbot\.example\.com/documents/[\w-]{24}\?expires=\d+&signature=[\w-]{43}", url)
    got_id, expires, signature, _ = parts(url)
    assert got_id == document_id
    assert int(expires) == int(EXPIRES.timestamp())
    assert verify_document_link(got_id, expires, signature, SECRET, NOW)
    assert verify_document_link(got_id, int(expires), signature, SECRET.encode(), EXPIRES - dt.timedelta(seconds=1))
    # Expired at the second it names, and ever after.
    assert not verify_document_link(got_id, expires, signature, SECRET, EXPIRES)
    assert not verify_document_link(got_id, expires, signature, SECRET, EXPIRES + dt.timedelta(days=365))


def test_a_changed_link_is_refused() -> None:
    document_id = new_document_id()
    got_id, expires, signature, _ = parts(sign_document_link("https://h", document_id, SECRET, EXPIRES))

    assert not verify_document_link(new_document_id(), expires, signature, SECRET, NOW)  # another document
    assert not verify_document_link(got_id, str(int(expires) + 3600), signature, SECRET, NOW)  # a later expiry
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for forged in (flipped, signature[:-1], signature + "A", "", signature.upper(), signature + "=", "é" * 43):
        assert not verify_document_link(got_id, expires, forged, SECRET, NOW), forged
    for bad_expiry in ("", "abc", "-1", "+" + expires, " " + expires, expires + ".0", "1e12", "٣" * 10, True):
        assert not verify_document_link(got_id, bad_expiry, signature, SECRET, NOW), bad_expiry
    for bad_id in ("", "../" + got_id, got_id + "x", got_id.upper() if got_id.upper() != got_id else got_id + "."):
        assert not verify_document_link(bad_id, expires, signature, SECRET, NOW), bad_id


def test_a_link_from_another_secret_is_refused() -> None:
    document_id = new_document_id()
    _, expires, signature, _ = parts(sign_document_link("https://h", document_id, "x" * 32, EXPIRES))
    assert verify_document_link(document_id, expires, signature, "x" * 32, NOW)
    assert not verify_document_link(document_id, expires, signature, "x" * 31 + "y", NOW)
    assert not verify_document_link(document_id, expires, signature, SECRET, NOW)


def test_the_base_url_keeps_its_path_and_loses_a_trailing_slash() -> None:
    document_id = new_document_id()
    for base in ("https://example.com/propbot", "https://example.com/propbot/"):
        url = sign_document_link(base, document_id, SECRET, EXPIRES)
        assert url.startswith(f"https://example.com/propbot/documents/{document_id}?expires=")
        assert parts(url)[3] == "https://example.com/propbot"
    assert sign_document_link("http://127.0.0.1:3000", document_id, SECRET, EXPIRES).startswith(
        f"http://127.0.0.1:3000/documents/{document_id}?"
    )


def test_expiry_in_another_time_zone_is_the_same_instant() -> None:
    document_id = new_document_id()
    in_austin = EXPIRES.astimezone(dt.timezone(dt.timedelta(hours=-6)))
    assert sign_document_link("https://h", document_id, SECRET, in_austin) == sign_document_link(
        "https://h", document_id, SECRET, EXPIRES
    )


def test_mistakes_of_the_caller_raise() -> None:
    document_id = new_document_id()
    for weak in ("", "short", b"x" * 31):
        with pytest.raises(ValueError, match="at least 32 bytes"):
            sign_document_link("https://h", document_id, weak, EXPIRES)
        with pytest.raises(ValueError, match="at least 32 bytes"):
            verify_document_link(document_id, "1", "sig", weak, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_document_link("https://h", document_id, SECRET, dt.datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_document_link(document_id, "1", "sig", SECRET, dt.datetime(2030, 1, 1))
    for base in ("propbot.example.com", "ftp://h", "https://h/?a=b", "https://h/#top", "https://"):
        with pytest.raises(ValueError, match="base_url"):
            sign_document_link(base, document_id, SECRET, EXPIRES)
    with pytest.raises(ValueError, match="not a document id"):
        sign_document_link("https://h", "../etc/passwd", SECRET, EXPIRES)
