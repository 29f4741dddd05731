"""The `propbot` command: serve, worker, chat, check, audit, approvals, teams-package."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from bot.app import ops as ops_cli
from bot.app.processes import WorkerStartFailed
from bot.config import Settings, load_settings, require_model_settings
from bot.errors import ConfigError, PermissionsError
from bot.observability.logs import setup_logging
from bot.observability.tracing import setup_tracing

log = logging.getLogger("propbot")


def run_fast(main: Coroutine[Any, Any, None]) -> None:
    """Run a server on uvloop where it is installed (Linux and macOS): the bench measured about 12% less CPU per
    turn and 10% lower overhead than asyncio's own loop (docs/benchmarks.md). Elsewhere asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def _secrets(settings: Settings) -> list[str]:
    return [
        s
        for s in (
            settings.openai_api_key,
            settings.slack_bot_token,
            settings.slack_signing_secret,
            settings.slack_app_token,
            settings.microsoft_app_password,
            settings.smtp_password,
            settings.document_link_secret,
        )
        if s
    ]


def _log_level(command: str, settings: Settings) -> str:
    """LOG_LEVEL when it is set (environment or .env). Otherwise `check` prints its findings and nothing else
    (each log line would only repeat one of them), and `chat` shows the conversation and warnings only."""
    if "log_level" in settings.model_fields_set:
        return settings.log_level
    return {"check": "ERROR", "chat": "WARNING"}.get(command, settings.log_level)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="propbot", description="Property management agent for Slack and Teams.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP server (Slack events, Teams messages, /healthz, /metrics)")
    sub.add_parser("worker", help="run turn workers only, consuming the durable turn queue (needs REDIS_URL)")
    chat = sub.add_parser("chat", help="talk to the agent in this terminal")
    chat.add_argument("--user", required=True, help="who you are, as in the permissions file (slack:T1:U1)")
    chat.add_argument("--approver", help="who decides approvals (default: --user)")
    check = sub.add_parser(
        "check", help="validate configuration, Redis, database and permissions, and print what was found"
    )
    check.add_argument("--who", help="show how one person's roles resolve instead (slack:T1:U1, teams:<tenant>:<id>)")
    package = sub.add_parser("teams-package", help="write the Teams app zip with MICROSOFT_APP_ID filled in")
    package.add_argument("--out", default="propbot-teams.zip", help="where to write the zip")
    package.add_argument("--domain", help="the bot's public host name, for the manifest's validDomains")
    ops_cli.add_commands(sub)
    return parser


async def _chat(settings: Settings, user: str, approver: str | None) -> int:
    from adapters.console import ConsoleActivity, ConsoleChat
    from bot.app.runtime import build_runtime
    from bot.ingress.dispatch import Dispatcher
    from bot.ingress.tasks import TaskTracker

    runtime = await build_runtime(settings, listeners=[ConsoleActivity(sys.stdout)])
    try:
        core = Dispatcher(runtime.core, TaskTracker(), click_ttl=settings.dedupe_ttl)
        await ConsoleChat(core, user, approver).run()
    finally:
        await runtime.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"propbot: configuration error: {exc}", file=sys.stderr)
        return 1
    # slack_bolt's AsyncApp falls back to this variable when it is handed a client rather than a token, and
    # then warns that the token will be unused. Settings has read it and the Slack client carries it, so
    # nothing else needs it (and no child process inherits it).
    os.environ.pop("SLACK_BOT_TOKEN", None)
    setup_logging(_log_level(args.command, settings), settings.log_format, _secrets(settings))
    try:
        if args.command == "check" and args.who:
            from bot.app.who import explain

            return asyncio.run(explain(settings, args.who, sys.stdout))
        if args.command == "check":
            from bot.app.check import run_check

            return asyncio.run(run_check(settings))
        if args.command in ops_cli.COMMANDS:
            return asyncio.run(ops_cli.run(args, settings))
        if args.command == "teams-package":
            from adapters.teams.package import PackageError, build

            try:
                print(f"wrote {build(settings.microsoft_app_id, Path(args.out), args.domain)}")
            except PackageError as exc:
                print(f"propbot: {exc}", file=sys.stderr)
                return 2
            return 0
        require_model_settings(settings)
        # serve, worker and chat run turns; the other commands have nothing to trace.
        setup_tracing(settings.otel_exporter_otlp_endpoint)
        if args.command == "serve":
            from bot.app.server import serve

            run_fast(serve(settings))
            return 0
        if args.command == "worker":
            from bot.app.server import work

            run_fast(work(settings))
            return 0
        if args.command == "chat":
            return asyncio.run(_chat(settings, args.user, args.approver))
    # Exit 1 for every configuration problem; 2 stays argparse's code for a command line it cannot read.
    except (PermissionsError, WorkerStartFailed) as exc:  # name their file and line, or quote the worker, already
        print(f"propbot: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"propbot: configuration error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
