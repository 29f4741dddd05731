"""Prompt tokens: what propbot sent the model against what the textbook agent would have sent.

The naive baseline keeps the whole untrimmed conversation and offers every tool on every request. It is
rebuilt from the requests the fake model actually received: each request is (system prompt, a trimmed
suffix of the conversation, the new messages), so the conversation is the running union of what was
seen, and the naive request at each point is the system prompt, everything seen so far, and all five
tool schemas. Both sides are counted with propbot's own `bot.core.history.TokenCounter`.
"""

from __future__ import annotations

import json
from typing import Any

from bot.core.history import Message, TokenCounter, prepare
from tools import builtin_tools

registry = builtin_tools()

CITIES = ("Austin, TX", "Denver, CO", "Seattle, WA", "Chicago, IL", "Atlanta, GA", "Phoenix, AZ", "Nashville, TN")


def _call(tool: str, **args: Any) -> str:
    return f"#call {tool} {json.dumps(args)}"


def conversation_script(turns: int) -> list[str]:
    """A property manager's session: searches, look-ups, request lists and plain questions."""
    script: list[str] = []
    for i in range(turns):
        kind, city = i % 5, CITIES[(i // 5) % len(CITIES)]
        if kind == 0:
            search = {"property_type": None, "min_price": None, "max_price": None, "min_bedrooms": None}
            script.append(_call("search_properties", location=city, **search))
        elif kind == 1:
            script.append(_call("get_property", property_id=f"P-100{1 + i % 9}"))
        elif kind == 3:
            script.append(_call("list_maintenance_requests", property_id=None, status="open"))
        else:
            script.append("thanks, which of those would you look at first and why?")
    return script


def _key(message: dict[str, Any]) -> str:
    # A tool result is known by its call id: propbot resends older results shortened, and the naive agent
    # would resend the full text it saw first.
    if message.get("role") == "tool":
        return f"tool:{message.get('tool_call_id')}"
    return json.dumps(message, sort_keys=True)


def _overlap(seen: list[dict[str, Any]], new: list[dict[str, Any]]) -> int:
    """The longest k with seen[-k:] == new[:k] (by `_key`): how much of `new` propbot had already sent."""
    seen_keys, new_keys = [_key(m) for m in seen], [_key(m) for m in new]
    for k in range(min(len(seen), len(new)), 0, -1):
        if seen_keys[len(seen) - k :] == new_keys[:k]:
            return k
    return 0


def compact_old_results(history: list[Message], keep_chars: int) -> list[Message]:
    """What-if: tool results of earlier exchanges cut to `keep_chars` (the current exchange untouched)."""
    last_user = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=0)
    out: list[Message] = []
    for i, message in enumerate(history):
        content = str(message.get("content") or "")
        if i < last_user and message.get("role") == "tool" and len(content) > keep_chars:
            message = {**message, "content": content[:keep_chars] + "…"}
        out.append(message)
    return out


def prompt_tokens(requests: list[dict[str, Any]], turns: int, budget: int = 6000) -> dict[str, Any]:
    """Propbot's real prompts vs the naive baseline, plus two what-ifs replayed offline through
    `bot.core.history.prepare` on the same conversation: a smaller HISTORY_TOKEN_BUDGET, and old tool
    results compacted (a candidate core change)."""
    counter = TokenCounter()
    every_tool = registry.schemas(registry.names())
    seen: list[dict[str, Any]] = []
    sent: list[list[Any]] = []  # each request as the provider's cache sees it: tools, then the messages
    naive_sent: list[list[Any]] = []
    actual = naive = replayed = half_budget = compacted = 0
    trimmed_requests = 0
    for request in requests:
        messages: list[dict[str, Any]] = request["messages"]
        system, rest = messages[:1], messages[1:]
        tools: list[dict[str, Any]] = request.get("tools") or []
        known = _overlap(seen, rest)
        if known < len(seen):
            trimmed_requests += 1
        seen.extend(rest[known:])
        actual += counter.messages(messages) + counter.tools(tools)
        naive += counter.messages([*system, *seen]) + counter.tools(every_tool)
        sent.append([tools, *messages])
        naive_sent.append([every_tool, *system, *seen])
        # The replay with today's settings should give `actual` back: it checks the reconstruction.
        same = prepare(seen, system[0], budget, counter, tools)
        replayed += counter.messages(same) + counter.tools(tools)
        smaller = prepare(seen, system[0], budget // 2, counter, tools)
        half_budget += counter.messages(smaller) + counter.tools(tools)
        compact = prepare(compact_old_results(seen, 300), system[0], budget, counter, tools)
        compacted += counter.messages(compact) + counter.tools(tools)

    def saving(value: int) -> float | None:
        return round(100 * (1 - value / naive), 1) if naive else None

    return {
        "propbot_per_turn": round(actual / turns, 1),
        "naive_per_turn": round(naive / turns, 1),
        "saving_pct": saving(actual),
        "requests": len(requests),
        "trimmed_requests": trimmed_requests,
        "replayed_per_turn": round(replayed / turns, 1),
        "what_if_budget_3000_saving_pct": saving(half_budget),
        "what_if_old_tool_results_300_chars_saving_pct": saving(compacted),
        "cache": {"propbot": prompt_cache(sent, counter, turns), "naive": prompt_cache(naive_sent, counter, turns)},
    }


CACHE_MINIMUM, CACHE_STEP, CACHED_PRICE = 1024, 128, 0.1


def prompt_cache(requests: list[list[Any]], counter: TokenCounter, turns: int) -> dict[str, Any]:
    """What a provider's prompt cache (OpenAI's rules: an exact prefix of an earlier request, from 1,024 tokens, in
    128-token steps; cached input at a tenth of the price) would serve of these requests: the cacheable share of
    prompt tokens over the second half (a long conversation's steady state), and the prompt's effective cost per
    turn in full-price tokens."""

    def size(part: Any) -> int:
        return counter.tools(part) if isinstance(part, list) else counter.message(part)

    keys = [[json.dumps(part, sort_keys=True) for part in request] for request in requests]
    sizes = [[size(part) for part in request] for request in requests]
    cached_all, prompt_all, effective = [], [], 0.0
    for i, request in enumerate(keys):
        best = 0
        for earlier in keys[:i]:
            common = 0
            for mine, theirs in zip(request, earlier, strict=False):
                if mine != theirs:
                    break
                common += 1
            best = max(best, sum(sizes[i][:common]))
        cached = (best // CACHE_STEP) * CACHE_STEP if best >= CACHE_MINIMUM else 0
        prompt = sum(sizes[i])
        cached_all.append(cached)
        prompt_all.append(prompt)
        effective += prompt - cached + CACHED_PRICE * cached
    half = len(requests) // 2
    share = sum(cached_all[half:]) / max(sum(prompt_all[half:]), 1)
    return {
        "cacheable_pct_second_half": round(100 * share, 1),
        "effective_prompt_per_turn": round(effective / turns, 1),
    }
