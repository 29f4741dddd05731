"""Model Markdown -> Slack mrkdwn that cannot ping anyone, split to fit Slack's limits.

Slack only turns `<!channel>`, `<!here>`, `<!everyone>`, `<!subteam^..>` and `<@U..>` into pings, and
only when the `<` is literal; escaping `&`, `<` and `>` in everything the model (or a user) wrote is
what makes a ping impossible. The zero-width space in `@channel` is belt and braces for clients that
highlight the bare words.
"""

from __future__ import annotations

import re

SECTION_LIMIT = 3000  # characters in one section block's text
MESSAGE_TEXT_LIMIT = 40_000  # Slack truncates a message's `text` beyond this
ZWSP = "\u200b"

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_FENCE = re.compile(r"^(\s*)```")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?://|mailto:)[^)\s]+)\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![*\w])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_TOKEN = re.compile("\x00(\\d+)\x00")


def escape(text: str) -> str:
    """Text safe to place in mrkdwn or a `text` field: no control sequences, no broadcast words."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return defuse(text)


def defuse(text: str) -> str:
    return _BROADCAST.sub(lambda m: "@" + ZWSP + m.group(1), text)


_SPECIAL = re.compile(r"<([!@#])")


def defuse_markdown(text: str) -> str:
    """Model text for a `markdown_text` stream chunk: markdown stays, but no broadcast and no `<!here>`,
    `<@U…>` or `<#C…>` that Slack would turn into a ping."""
    return _SPECIAL.sub(lambda m: "<" + ZWSP + m.group(1), defuse(text))


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    # Never end inside an entity like "&amp;": a dangling "&am" shows as garbage.
    amp = cut.rfind("&")
    if amp != -1 and amp > len(cut) - 6 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def to_mrkdwn(markdown: str) -> str:
    """Convert the model's Markdown; code is kept verbatim (but escaped), everything else is restyled."""
    out: list[str] = []
    in_code = False
    for line in markdown.replace("\r\n", "\n").split("\n"):
        fence = _FENCE.match(line)
        if fence:
            # Slack ignores a language tag after the fence and would show it as text.
            out.append(fence.group(1) + "```")
            in_code = not in_code
            continue
        out.append(escape(line) if in_code else _line(line))
    return "\n".join(out)


def _line(line: str) -> str:
    heading = _HEADING.match(line)
    if heading:
        return f"*{_inline(heading.group(1)).strip('*')}*"
    bullet = _BULLET.match(line)
    if bullet:
        return f"{bullet.group(1)}• {_inline(line[bullet.end() :])}"
    return _inline(line)


def _inline(text: str) -> str:
    kept: list[str] = []

    def keep(value: str) -> str:
        kept.append(value)
        return f"\x00{len(kept) - 1}\x00"

    text = text.replace("\x00", "")
    # Code spans and links are set aside first so emphasis rules never reach inside them.
    text = _INLINE_CODE.sub(lambda m: keep(escape(m.group(0))), text)
    text = _LINK.sub(lambda m: keep(_link(m.group(2), m.group(1))), text)
    text = escape(text)
    text = _ITALIC.sub(lambda m: f"_{m.group(1)}_", text)
    text = _BOLD.sub(lambda m: f"*{m.group(2)}*", text)
    text = _STRIKE.sub(lambda m: f"~{m.group(1)}~", text)
    return _TOKEN.sub(lambda m: kept[int(m.group(1))], text)


def _link(url: str, label: str) -> str:
    # A `|` or `>` would end the link early; the label is shown, never parsed.
    safe_url = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    safe_label = escape(label).replace("|", "¦")
    return f"<{safe_url}|{safe_label}>"


def split(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split mrkdwn into pieces of at most `limit` characters at paragraph, line or word breaks.

    A code block cut in two is closed at the end of one piece and reopened in the next, so both
    render as code.
    """
    pieces: list[str] = []
    rest = text.strip("\n")
    reopen = False
    while rest:
        prefix = "```\n" if reopen else ""
        budget = limit - len(prefix) - 4  # room for a closing fence
        if len(prefix) + len(rest) <= limit:
            pieces.append(prefix + rest)
            break
        cut = _break_at(rest, budget)
        piece, rest = rest[:cut].rstrip(), rest[cut:].lstrip("\n ")
        open_fence = (piece.count("```") % 2 == 1) != reopen
        if open_fence:
            piece += "\n```"
        pieces.append(prefix + piece)
        reopen = open_fence
    return [p for p in pieces if p.strip()] or [""]


def _break_at(text: str, budget: int) -> int:
    window = text[:budget]
    for sep in ("\n\n", "\n", " "):
        at = window.rfind(sep)
        if at > budget // 3:
            return at + len(sep)
    # No natural break: cut hard, but not inside an entity or a <link|label>.
    cut = budget
    amp, lt = window.rfind("&"), window.rfind("<")
    if amp > budget - 6 and ";" not in window[amp:]:
        cut = amp
    if lt != -1 and ">" not in window[lt:] and lt > 0:
        cut = min(cut, lt)
    return max(cut, 1)
