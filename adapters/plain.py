"""Plain-text renderings of neutral replies: the terminal chat, and the fallback text of rich messages."""

from __future__ import annotations

import time

from bot.types import Approval, Presentation


def presentation_text(p: Presentation, max_items: int = 20) -> str:
    lines = [p.title]
    lines += [f"  {f.label}: {f.value}" for f in p.fields]
    for item in p.items[:max_items]:
        details = ", ".join(f"{f.label}: {f.value}" for f in item.fields)
        lines.append(f"  - {item.title}" + (f" ({details})" if details else ""))
    if len(p.items) > max_items:
        lines.append(f"  … and {len(p.items) - max_items} more")
    if p.link_url:
        lines.append(f"  {p.link_text or 'Link'}: {p.link_url}")
    if p.footer:
        lines.append(f"  {p.footer}")
    return "\n".join(lines)


def expires_text(approval: Approval) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(approval.expires_at))


def approval_text(approval: Approval) -> str:
    lines = [f"Approval needed: {approval.title or approval.tool}"]
    lines += [f"  {d.label}: {d.value}" for d in approval.summary]
    lines.append(f"  Requested by: {approval.requested_by_name or approval.requested_by}")
    lines.append(f"  Expires: {expires_text(approval)}")
    return "\n".join(lines)
