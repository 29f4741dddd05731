"""Platform adapters: they translate platform payloads into the core's types and its replies back, and decide
nothing. `adapters.slack`, `adapters.teams` and `adapters.console` (the terminal chat)."""

__all__: list[str] = []
