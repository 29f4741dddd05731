"""Prometheus metrics, exposed at GET /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

TURNS = Counter("propbot_turns_total", "User messages handled", ["platform", "outcome"])
MODEL_LATENCY = Histogram(
    "propbot_model_latency_seconds",
    "Time for one model call, retries included",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
MODEL_TOKENS = Counter("propbot_model_tokens_total", "Tokens reported by the model's usage", ["kind"])
PROMPT_TOKENS = Counter(
    "propbot_prompt_tokens_total", "Prompt tokens, by whether the provider served them from its cache", ["cached"]
)
TOOL_CALLS = Counter("propbot_tool_calls_total", "Tool calls by tool and outcome", ["tool", "outcome"])
TOOL_LATENCY = Histogram(
    "propbot_tool_latency_seconds",
    "Time a tool took",
    ["tool"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15),
)
APPROVALS = Counter("propbot_approvals_total", "Approval events by outcome", ["outcome"])
PENDING_APPROVALS = Gauge("propbot_pending_approvals", "Approvals waiting for a decision")
DUPLICATES = Counter("propbot_duplicate_deliveries_total", "Redelivered events dropped", ["platform"])
RATE_LIMITED = Counter("propbot_rate_limited_total", "Messages refused by a rate limit", ["scope"])
FEEDBACK = Counter("propbot_feedback_total", "Thumbs up/down on answers, by tool the answer used", ["tool", "way"])
ERRORS = Counter("propbot_errors_total", "Errors by kind", ["kind"])


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
