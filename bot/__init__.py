"""propbot's core and its composition root. The layers, top to bottom (imports point down only; a test
enforces it): `bot.app` (the composition root: commands, server, wiring) -> `adapters` (Slack, Teams,
terminal) -> `bot.ingress` (dispatcher, durable turn queue) -> `bot.core` (turns, tool loop, approvals,
permissions) -> `bot.llm` (chat models) -> `bot.observability` (audit, logs, metrics, tracing) -> `bot.store`
(state in Redis or memory) -> `bot.types` / `bot.errors` / `bot.config` -> `tools` (the domain).
"""

__all__: list[str] = []
