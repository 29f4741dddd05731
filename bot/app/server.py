"""`propbot serve`: one aiohttp application for Slack, Teams, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.app import describe
from bot.app.documents import document_route
from bot.app.platforms import Mount, enabled_mounts
from bot.app.processes import WorkerProcesses, WorkerStartFailed, default_processes
from bot.app.reload import PermissionsReloader
from bot.app.runtime import Runtime, build_runtime, permissions_path
from bot.config import Settings
from bot.core.team_channels import TeamChannels
from bot.errors import ConfigError, StoreUnavailable
from bot.ingress.dispatch import Dispatcher
from bot.ingress.tasks import TaskTracker
from bot.ingress.turn_queue import TurnQueue
from bot.observability import metrics

log = logging.getLogger(__name__)

RUNTIME = web.AppKey("runtime", Runtime)
TASKS = web.AppKey("tasks", TaskTracker)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
# False in `propbot worker`: adapters register their responders but must not open Socket Mode etc.
SERVES_HTTP = web.AppKey("serves_http", bool)
RELOADER = web.AppKey("permissions_reloader", PermissionsReloader)


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    redis_ok = await runtime.store.ping()
    db_ok = await runtime.db.ping()
    body: dict[str, Any] = {
        "status": "ok" if redis_ok and db_ok else "degraded",
        "store": "ok" if redis_ok else "unreachable",
        "database": "ok" if db_ok else "unreachable",
        "in_flight": request.app[TASKS].in_flight,
    }
    reloader = request.app[RELOADER]
    if reloader.path is not None:
        # Still serving with the rules in force: an edit that did not apply is news, not an outage.
        body["permissions"] = reloader.problem or "ok"
    return web.json_response(body, status=200 if redis_ok and db_ok else 503)


async def metrics_view(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    # On a store outage the gauge keeps its last value; the outage itself shows in /healthz.
    with contextlib.suppress(StoreUnavailable):
        metrics.PENDING_APPROVALS.set(len(await runtime.store.pending_approvals()))
    body, content_type = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def sweep_forever(dispatcher: Dispatcher, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await dispatcher.sweep_expired()
        except StoreUnavailable:
            log.warning("approval sweep skipped: state store unreachable")
        except Exception:
            log.exception("approval sweep failed")


def permissions_reloader(runtime: Runtime) -> PermissionsReloader:
    settings = runtime.settings
    # Trial mode (no file) has nothing to watch: the reloader is idle.
    return PermissionsReloader(
        permissions_path(settings),
        runtime.gate,
        allow_self_approval=settings.allow_self_approval,
        interval=settings.permissions_reload,
    )


def make_queue(runtime: Runtime) -> TurnQueue | None:
    settings = runtime.settings
    if not settings.durable_turns or runtime.redis is None:
        return None
    return TurnQueue(runtime.redis, claim_idle=settings.turn_claim_idle, max_in_flight=settings.turn_concurrency)


# Seconds a stopping process gives its in-flight turns and requests.
DRAIN_TIMEOUT = 25.0


def startup_block(runtime: Runtime, headline: str, *, serving: bool, worker: bool, processes: int = 0) -> str:
    """What this process listens on and runs with, one aspect a line and no secrets: the first thing to read
    when a deployment does not behave."""
    settings = runtime.settings
    durable = settings.durable_turns and runtime.redis is not None
    aspects = [
        *((("slack", describe.slack(settings)), ("teams", describe.teams(settings))) if serving else ()),
        ("store", describe.store(settings)),
        ("database", runtime.db.describe_url()),
        ("model", describe.model(settings)),
        ("permissions", describe.permissions(permissions_path(settings), runtime.permissions)),
        ("turns", describe.turns(settings, durable, worker, dedicated=not serving, processes=processes)),
    ]
    return "\n".join([headline, *(f"  {name:<12} {text}" for name, text in aspects)])


async def create_app(
    runtime: Runtime,
    mounts: list[Mount] | None = None,
    *,
    drain_timeout: float = DRAIN_TIMEOUT,
    sweep_interval: float = 30.0,
    serve_http: bool = True,
    run_worker: bool | None = None,
) -> web.Application:
    """The application. `serve_http=False` builds a turn worker: the adapters' responders without routes
    being served. `run_worker` defaults to IN_PROCESS_WORKER for a server and to True for a worker."""
    app = web.Application(client_max_size=1024 * 1024)
    tasks = TaskTracker()
    queue = make_queue(runtime)
    dispatcher = Dispatcher(
        runtime.core,
        tasks,
        queue,
        click_ttl=runtime.settings.dedupe_ttl,
        team_channels=TeamChannels.parse(runtime.settings.maintenance_channels),
    )
    app[RUNTIME] = runtime
    app[TASKS] = tasks
    app[DISPATCHER] = dispatcher
    app[SERVES_HTTP] = serve_http
    app[RELOADER] = reloader = permissions_reloader(runtime)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/documents/{document_id}", document_route(runtime.settings, dispatcher))
    cleanups: list[Callable[[], Awaitable[None]]] = []
    for mount in enabled_mounts(runtime.settings) if mounts is None else mounts:
        cleanup = await mount(app, dispatcher)
        if cleanup is not None:
            cleanups.append(cleanup)
    background: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    worker = runtime.settings.in_process_worker if run_worker is None else run_worker

    async def on_startup(_: web.Application) -> None:
        background.append(asyncio.create_task(sweep_forever(dispatcher, sweep_interval)))
        background.append(asyncio.create_task(dispatcher.courier.run(stop)))
        if reloader.path is not None and reloader.interval:
            background.append(asyncio.create_task(reloader.run(stop)))
        if queue is not None and worker:
            background.append(asyncio.create_task(queue.run(dispatcher.run_queued, stop)))

    async def on_shutdown(_: web.Application) -> None:
        stop.set()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if queue is not None:
            await queue.drain(drain_timeout)
        cut = await tasks.drain(drain_timeout)
        if cut:
            log.warning("shutdown cut %d turn(s) short; their locks expire and their history was not changed", cut)
        for cleanup in cleanups:
            await cleanup()
        await runtime.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def require_platform_settings(settings: Settings) -> None:
    """Stop before anything starts when a platform's settings cannot be served (one line, exit 1)."""
    if settings.teams_enabled and (problem := settings.teams_problem()):
        raise ConfigError(problem)


def worker_processes(settings: Settings) -> int:
    """How many `propbot worker` processes `propbot serve` starts beside itself: WEB_CONCURRENCY (default: one per
    core) processes in all, the web process being one, when turns go through the durable queue and serve is to
    run them; 0 otherwise (one process, as with WEB_CONCURRENCY=1)."""
    if not (settings.redis_url and settings.durable_turns and settings.in_process_worker):
        return 0
    return (settings.web_concurrency or default_processes()) - 1


async def serve(settings: Settings) -> None:
    require_platform_settings(settings)
    spawned = worker_processes(settings)
    if spawned:
        # The turns run in the worker processes; this one only answers the platforms.
        settings = settings.model_copy(update={"in_process_worker": False})
    runtime = await build_runtime(settings)
    app = await create_app(runtime)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # aiohttp's default listen backlog (128) overflows in a burst of Slack events; dropped connections
    # come back a second later, which shows up as second-long acks.
    site = web.TCPSite(runner, settings.listen_host, settings.port, backlog=1024)
    await site.start()
    if not settings.redis_url:
        log.warning("REDIS_URL is not set: using in-memory state (one process only, lost on restart)")
    headline = f"propbot serve listening on http://{settings.listen_host}:{settings.port}"
    # The CLI took SLACK_BOT_TOKEN out of the environment once read (bolt would pick it up); a worker needs it.
    token = {"SLACK_BOT_TOKEN": settings.slack_bot_token} if settings.slack_bot_token else {}
    workers = WorkerProcesses(spawned, {**os.environ, **token})
    if spawned:
        await workers.start()
    log.info("%s", startup_block(runtime, headline, serving=True, worker=settings.in_process_worker, processes=spawned))
    failure = await _until_signalled_or_failed(workers)
    log.info("shutting down: finishing in-flight turns")
    workers.terminate()  # they drain their turns while this process drains its requests
    await runner.cleanup()
    await workers.stop(DRAIN_TIMEOUT + 5)
    if failure is not None:
        # Exit non-zero so the supervisor shows the worker's error rather than a server that answers no turn.
        raise failure


async def _until_signalled_or_failed(workers: WorkerProcesses) -> WorkerStartFailed | None:
    """Serve until SIGTERM/SIGINT (None) or until a worker turns out unable to start (its failure)."""
    signalled = asyncio.create_task(_until_signalled())
    failed = asyncio.create_task(workers.failed())
    await asyncio.wait({signalled, failed}, return_when=asyncio.FIRST_COMPLETED)
    for task in (signalled, failed):
        task.cancel()
    await asyncio.gather(signalled, failed, return_exceptions=True)
    return failed.result() if failed.done() and not failed.cancelled() else None


async def work(settings: Settings) -> None:
    """`propbot worker`: consume the durable turn queue; no HTTP."""
    require_platform_settings(settings)
    runtime = await build_runtime(settings)
    if make_queue(runtime) is None:
        await runtime.close()
        raise ConfigError("REDIS_URL should be set for `propbot worker`: workers share turns through Redis")
    app = await create_app(runtime, serve_http=False, run_worker=True)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    log.info("%s", startup_block(runtime, "propbot worker consuming turns", serving=False, worker=True))
    await _until_signalled()
    log.info("worker shutting down: finishing in-flight turns")
    await runner.cleanup()
