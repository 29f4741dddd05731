"""Short forms of text for people: titles, table cells, one-line summaries."""

from __future__ import annotations

ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """`text` on one line and at most `limit` characters, cut at a word boundary with "…" when it is longer.

    When the last word boundary would throw away more than a quarter of the room (long words, key=value
    runs), the text is cut inside the word instead: a stub tells less than most of a word.
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    # A space at index `limit - 1` still leaves room for the ellipsis after the word before it.
    space = text.rfind(" ", 0, limit)
    cut = text[:space] if space >= limit * 3 // 4 else text[: limit - len(ELLIPSIS)]
    return cut.rstrip(" ,;:.-–—") + ELLIPSIS
