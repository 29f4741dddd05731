"""Short forms of text for people: titles, table cells, one-line summaries."""

from __future__ import annotations

ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """`text` on one line and at most `limit` characters, cut at a word boundary with "…" when it is longer.

    A single word longer than half the limit is cut inside it rather than leaving a stub of a title.
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    # A space at index `limit - 1` still leaves room for the ellipsis after the word before it.
    space = text.rfind(" ", 0, limit)
    cut = text[:space] if space >= limit // 2 else text[: limit - len(ELLIPSIS)]
    return cut.rstrip(" ,;:.-–—") + ELLIPSIS
