"""The results: ratios to the bare Bolt app, targets met or missed, a Markdown table, and the JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

PROPBOT = ("inproc", "split", "direct")
LAYOUT_NAMES = {
    "inproc": "propbot (in-process worker)",
    "split": "propbot (web + 1 worker)",
    "direct": "propbot (no turn queue)",
    "textbook": "textbook bot (Bolt + openai)",
    "bare": "bare Bolt",
}
RATES = ("50", "200", "500")


def required_paths() -> list[str]:
    """Every figure a run must produce as a number (the smoke test checks each one)."""
    paths: list[str] = []
    for layout in (*PROPBOT, "textbook", "bare"):
        paths += [f"layouts.{layout}.burst.ack.p99_ms", f"layouts.{layout}.burst.last_reply_s"]
        paths.append(f"layouts.{layout}.throughput.cpu_ms_per_turn")
        for rate in RATES:
            paths += [f"layouts.{layout}.ack.{rate}.p50_ms", f"layouts.{layout}.ack.{rate}.p99_ms"]
        paths += [f"layouts.{layout}.overhead.p50_ms", f"layouts.{layout}.overhead.p99_ms"]
        paths.append(f"layouts.{layout}.throughput.turns_per_s")
    for layout in PROPBOT:
        paths += [f"layouts.{layout}.redis.commands_per_turn", f"layouts.{layout}.redis.round_trips_per_turn"]
        paths.append(f"layouts.{layout}.memory.rss_mb")
        for figure in ("first_token", "first_token_burst"):
            paths += [f"layouts.{layout}.{figure}.overhead.p50_ms", f"layouts.{layout}.{figure}.overhead.p99_ms"]
        paths += [f"ratios.{layout}.overhead_p50", f"ratios.{layout}.overhead_p99", f"ratios.{layout}.throughput"]
    paths += ["approval.p50_ms", "approval.p99_ms"]
    paths += ["tokens.propbot_per_turn", "tokens.naive_per_turn", "tokens.saving_pct"]
    # tokens_80 is measured by a full run only (--quick skips it).
    paths += ["tokens.cache.propbot.cacheable_pct_second_half", "tokens.cache.naive.cacheable_pct_second_half"]
    return paths


def lookup(results: dict[str, Any], path: str) -> Any:
    node: Any = results
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 2) if is_number(a) and is_number(b) and b else None


def add_ratios(results: dict[str, Any]) -> None:
    bare = results["layouts"].get("bare", {})
    ratios: dict[str, Any] = {}
    for layout in PROPBOT:
        figures = results["layouts"].get(layout)
        if figures is None:
            continue
        ratios[layout] = {
            "overhead_p50": _ratio(lookup(figures, "overhead.p50_ms"), lookup(bare, "overhead.p50_ms")),
            "overhead_p99": _ratio(lookup(figures, "overhead.p99_ms"), lookup(bare, "overhead.p99_ms")),
            "throughput": _ratio(lookup(figures, "throughput.turns_per_s"), lookup(bare, "throughput.turns_per_s")),
        }
    results["ratios"] = ratios


# (name, path under a layout or the top, comparison, target value, unit)
TARGETS: list[tuple[str, str, str, float, str]] = [
    ("ack p99 at 200 events/s", "ack.200.p99_ms", "<", 50, "ms"),
    ("burst: last reply after the first event (issue 15)", "burst.last_reply_s", "<=", 6, "s"),
    ("burst: ack p99 (issue 15)", "burst.ack.p99_ms", "<", 50, "ms"),
    ("turn overhead p50 (issue 15)", "overhead.p50_ms", "<=", 4, "ms"),
    ("turn overhead p99", "overhead.p99_ms", "<", 20, "ms"),
    ("CPU ms per plain turn at saturation (issue 15)", "throughput.cpu_ms_per_turn", "<=", 1.5, "ms"),
    ("throughput per process", "throughput.turns_per_s", ">=", 200, "turns/s"),
    ("overhead p50 vs bare Bolt", "@ratios.overhead_p50", "<=", 1.5, "x"),
    ("Redis round trips per plain turn (issue 15)", "redis.round_trips_per_turn", "<=", 3, ""),
    ("RSS at 1,000 in flight", "memory.rss_mb", "<", 250, "MB"),
    ("first token overhead p99 (streaming)", "first_token.overhead.p99_ms", "<", 150, "ms"),
    ("first token overhead p99 under the burst (issue 15)", "first_token_burst.overhead.p99_ms", "<=", 150, "ms"),
    ("prompt tokens saved vs naive", "@@tokens.saving_pct", ">=", 40, "%"),
]


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, path, op, goal, unit in TARGETS:
        for layout in PROPBOT if not path.startswith("@@") else ("inproc",):
            if path.startswith("@@"):
                value = lookup(results, path[2:])
            elif path.startswith("@"):
                value = lookup(results, f"ratios.{layout}.{path[1:].split('.', 1)[1]}")
            else:
                value = lookup(results, f"layouts.{layout}.{path}")
            met = None
            if is_number(value):
                met = value < goal if op == "<" else value <= goal if op == "<=" else value >= goal
            by = round(value / goal, 2) if is_number(value) and goal else None
            shown_layout = "-" if path.startswith("@@") else layout
            rows.append(
                {
                    "target": name,
                    "layout": shown_layout,
                    "goal": f"{op} {goal:g}{unit}",
                    "value": value,
                    "met": met,
                    "x_of_goal": by,
                }
            )
    return rows


def _pair(figure: Any, a: str = "p50_ms", b: str = "p99_ms") -> str:
    if not isinstance(figure, dict) or not is_number(figure.get(a)):
        return "-"
    return f"{figure[a]:.1f} / {figure[b]:.1f}"


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    return fmt.format(value) if is_number(value) else "-"


def table(results: dict[str, Any]) -> str:
    layouts = [name for name in ("inproc", "split", "direct", "textbook", "bare") if name in results["layouts"]]
    header = "| figure | " + " | ".join(LAYOUT_NAMES[name] for name in layouts) + " |"
    lines = [header, "|" + " --- |" * (len(layouts) + 1)]

    def row(label: str, render: Any) -> None:
        cells = [render(results["layouts"][name], name) for name in layouts]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for rate in RATES:
        row(f"ack p50 / p99 ms at {rate}/s (model 2 s)", lambda f, _, r=rate: _pair(lookup(f, f"ack.{r}")))
    row("turn overhead p50 / p99 ms (model instant)", lambda f, _: _pair(f.get("overhead")))
    row("throughput, turns/s per process", lambda f, _: _num(lookup(f, "throughput.turns_per_s")))
    row("ack p99 ms while saturated", lambda f, _: _num(lookup(f, "throughput.ack_p99_ms_while_saturated")))
    row(
        "CPU ms per turn at saturation (all processes)",
        lambda f, _: _num(lookup(f, "throughput.cpu_ms_per_turn"), "{:.2f}"),
    )
    row(
        "burst (500 in 50 channels, 50 in flight, model 1.5 s): ack p50 / p99 ms",
        lambda f, _: _pair(lookup(f, "burst.ack")),
    )
    row("  same burst: last reply after the first event, s", lambda f, _: _num(lookup(f, "burst.last_reply_s")))
    ratios = results.get("ratios", {})

    def ratio(key: str) -> Any:
        return lambda _f, name: (
            _num(lookup(ratios, f"{name}.{key}"), "{:.2f}x") if name in ratios else "1x" if name == "bare" else "-"
        )

    row("overhead p50 / bare Bolt", ratio("overhead_p50"))
    row("overhead p99 / bare Bolt", ratio("overhead_p99"))
    row("throughput / bare Bolt", ratio("throughput"))
    row(
        "first words visible p50 / p99 ms (model's first token 300 ms)",
        lambda f, _: _pair(f.get("first_token", {}).get("visible")),
    )
    row(
        "  overhead above the model's first token p50 / p99 ms",
        lambda f, _: _pair(f.get("first_token", {}).get("overhead")),
    )
    row(
        "  same, under the burst (streaming model): visible p50 / p99 ms",
        lambda f, _: _pair(f.get("first_token_burst", {}).get("visible")),
    )
    row(
        "  under the burst: overhead above the first token p50 / p99 ms",
        lambda f, _: _pair(f.get("first_token_burst", {}).get("overhead")),
    )
    row("Redis commands per plain turn", lambda f, _: _num(lookup(f, "redis.commands_per_turn")))
    row("Redis round trips per plain turn", lambda f, _: _num(lookup(f, "redis.round_trips_per_turn")))
    mem = "memory.rss_mb"
    row("RSS MB, 1,000 in flight (model 5 s)", lambda f, _: _num(lookup(f, mem)))
    row("  of which at the model at once", lambda f, _: _num(lookup(f, "memory.at_model_peak"), "{:.0f}"))
    lines.append(f"| approval round trip p50 / p99 ms | {_pair(results.get('approval'))} |" + " |" * (len(layouts) - 1))
    tokens = results.get("tokens", {})
    text = "-"
    if is_number(tokens.get("propbot_per_turn")):
        ours, naive, saving = tokens["propbot_per_turn"], tokens["naive_per_turn"], tokens["saving_pct"]
        text = f"{ours:.0f} vs naive {naive:.0f} ({saving}% fewer)"
    lines.append(f"| prompt tokens per turn, 30-turn conversation | {text} |" + " |" * (len(layouts) - 1))
    for name, turns in (("tokens", 30), ("tokens_80", 80)):
        cache = (results.get(name) or {}).get("cache") or {}
        ours, naive = cache.get("propbot") or {}, cache.get("naive") or {}
        if is_number(ours.get("cacheable_pct_second_half")):
            text = (
                f"{ours['cacheable_pct_second_half']}% cacheable, {ours['effective_prompt_per_turn']:.0f} effective "
                f"tokens/turn vs naive {naive['cacheable_pct_second_half']}%, {naive['effective_prompt_per_turn']:.0f}"
            )
            label = f"prompt cache, {turns}-turn conversation (second half; cached at 1/10)"
            lines.append(f"| {label} | {text} |" + " |" * (len(layouts) - 1))
    return "\n".join(lines)


def targets_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | layout | goal | measured | met | x of goal |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        met = "?" if r["met"] is None else "met" if r["met"] else "MISSED"
        lines.append(
            f"| {r['target']} | {r['layout']} | {r['goal']} | {_num(r['value'], '{:g}')} | {met} | "
            f"{_num(r['x_of_goal'], '{:g}')} |"
        )
    return "\n".join(lines)


def write(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True))
