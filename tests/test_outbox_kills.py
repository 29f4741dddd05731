"""Every effect survives a SIGKILL at each boundary of the outbox: before its record, after it, during its delivery,
and after delivery before the done mark. Real processes: the change is made by a tool in its own process
(tests/support/tool_process.py, as the process running an approved call), delivered by `propbot worker` processes
(the courier), killed with SIGKILL where the test holds them: the fake Slack or the SMTP server keeps a request
waiting, or the test holds SQLite's write lock so the process cannot write its next row.

A maintenance notice is exactly once in effect (a retry finds the post by its metadata); the welcome e-mail is at
least once, and a copy sent after an unlucky kill carries the same Message-ID."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.smtp import Envelope
from sqlalchemy import select

from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import Call, FakeSlack
from tests.support.fake_smtp import Mailbox, start_server
from tests.support.processes import ROOT, free_port, propbot_env, read_log, start_propbot, stop
from tests.support.scripts import JANE
from tests.support.waiting import eventually
from tools.db import Database
from tools.tables import MaintenanceRequest, OutboxRow, WorkflowRun

MAINT = "C0MAINT"
SCHEDULE = {"property_id": "P-1001", "issue_type": "plumbing", "priority": "high", "description": "The sink leaks"}
KEY = "approval-1"


class ToolProcess:
    """tests/support/tool_process.py, started and waiting for its go."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()

    async def result(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        assert line, "the tool process exited without a result"
        outcome: dict[str, Any] = json.loads(line)
        return outcome

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


class Rig:
    def __init__(self, tmp_path: Path, env: dict[str, str], db: Database) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.db = db
        self.workers: list[subprocess.Popen[bytes]] = []
        self.tools: list[ToolProcess] = []

    async def tool(self, mode: str, arguments: dict[str, Any]) -> ToolProcess:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.support.tool_process", mode, json.dumps(arguments), KEY),
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        started = ToolProcess(process)
        self.tools.append(started)
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 60) == b"ready\n"
        return started

    async def run_tool(self, mode: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The tool run to its end in a process of its own (the approval's recovery re-runs the call so)."""
        started = await self.tool(mode, arguments)
        await started.go()
        outcome = await started.result()
        await started.kill()
        return outcome

    def worker(self) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp_path / f"worker-{len(self.workers)}.log"
        process = start_propbot("worker", self.env, self.tmp_path, log)
        self.workers.append(process)
        return process, log

    async def outbox(self, effect_id: str) -> OutboxRow | None:
        async with self.db.session() as session:
            return await session.get(OutboxRow, effect_id, populate_existing=True)

    async def rows(self) -> list[OutboxRow]:
        async with self.db.session() as session:
            return list((await session.execute(select(OutboxRow))).scalars())


@contextmanager
def write_lock(db: Database) -> Iterator[sqlite3.Connection]:
    """SQLite's write lock, held by the test: no process writes a row until it is let go."""
    path = db.url.database
    assert path is not None
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@asynccontextmanager
async def rig_for(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack, db: Database, **extra: str
) -> AsyncIterator[Rig]:
    env = propbot_env(
        tmp_path, redis_url, fake_openai, fake_slack, MAINTENANCE_CHANNELS=f"*=slack:{MAINT}", OUTBOX_CLAIM="2", **extra
    )
    rig = Rig(tmp_path, env, db)
    try:
        yield rig
    finally:
        for tool in rig.tools:
            await tool.kill()
        for worker in rig.workers:
            stop(worker, signal.SIGKILL)


def notices(fake_slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in fake_slack.replies(MAINT) if (m.get("metadata") or {}).get("event_type") == "propbot_notice"]


async def one_notice_for_the_request(rig: Rig, fake_slack: FakeSlack) -> None:
    """The end state every notice test asks for: the request exists, its notice was posted once, its row done."""
    async with rig.db.session() as session:
        query = select(MaintenanceRequest.id).where(MaintenanceRequest.idempotency_key == KEY)
        [request_id] = (await session.execute(query)).scalars()
    post = f"notice:{request_id}:scheduled|slack:{MAINT}"
    await eventually(lambda: len(notices(fake_slack)) >= 1, within=30)
    try:
        await eventually(lambda: _done(rig, post), within=30)
    except AssertionError:
        logs = sorted(rig.tmp_path.glob("*.log"))
        row = await rig.outbox(post)
        seen = "\n".join(f"--- {log.name}\n{read_log(log)[-3000:]}" for log in logs)
        state = row and (row.status, row.attempts, row.due_at, row.error)
        raise AssertionError(f"{post} not done: {state}\n{seen}") from None
    row = await rig.outbox(post)
    assert row is not None and row.status == "done"
    [posted] = notices(fake_slack)
    assert posted["metadata"]["event_payload"] == {"delivery": post}
    assert request_id in json.dumps(posted["blocks"])
    assert fake_slack.violations == []


async def _done(rig: Rig, effect_id: str) -> bool:
    row = await rig.outbox(effect_id)
    return row is not None and row.status == "done"


# -- a maintenance notice ------------------------------------------------------------------------------------


async def test_notice_killed_before_its_record_is_made_with_the_request_when_the_call_runs_again(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack, sqlite_database: Database
) -> None:
    async with rig_for(tmp_path, redis_url, fake_openai, fake_slack, sqlite_database) as rig:
        tool = await rig.tool("schedule", SCHEDULE)
        with write_lock(sqlite_database):
            await tool.go()
            await tool.kill()  # it could not have written anything: the test holds the lock
        assert await rig.rows() == []
        rig.worker()
        assert (await rig.run_tool("schedule", SCHEDULE))["ok"]  # the approval's recovery runs the call again
        await one_notice_for_the_request(rig, fake_slack)


async def test_notice_killed_after_its_record_is_posted_by_another_process(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack, sqlite_database: Database
) -> None:
    async with rig_for(tmp_path, redis_url, fake_openai, fake_slack, sqlite_database) as rig:
        tool = await rig.tool("schedule", SCHEDULE)
        await tool.go()
        assert (await tool.result())["ok"]
        await tool.kill()  # the change committed, with its notice: the process dies before anyone posts it
        assert [row.status for row in await rig.rows()] == ["pending"]
        rig.worker()
        await one_notice_for_the_request(rig, fake_slack)


@pytest.mark.parametrize("when", ["before", "after"], ids=["slack_has_not_posted", "slack_posted_no_answer_yet"])
async def test_notice_killed_during_its_post_is_posted_once(
    when: str,
    tmp_path: Path,
    redis_url: str,
    fake_openai: FakeOpenAI,
    fake_slack: FakeSlack,
    sqlite_database: Database,
) -> None:
    released = asyncio.Event()

    async def hang(call: Call) -> None:
        if call.args.get("channel") == MAINT:
            await released.wait()
            if when == "before":
                raise web.HTTPServiceUnavailable()  # Slack never acted on it

    fake_slack.holds["chat.postMessage"] = (when, hang)
    async with rig_for(tmp_path, redis_url, fake_openai, fake_slack, sqlite_database) as rig:
        first, _ = rig.worker()
        assert (await rig.run_tool("schedule", SCHEDULE))["ok"]
        await fake_slack.wait_for("chat.postMessage", where=lambda c: c.args["channel"] == MAINT, within=30)
        stop(first, signal.SIGKILL)
        del fake_slack.holds["chat.postMessage"]
        released.set()
        rig.worker()
        await one_notice_for_the_request(rig, fake_slack)
        if when == "after":  # the second attempt found the first's post instead of posting again
            assert len(fake_slack.calls_to("chat.postMessage")) == 1
            assert fake_slack.calls_to("conversations.history")


async def test_notice_killed_after_its_post_before_the_done_mark_is_not_posted_again(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack, sqlite_database: Database
) -> None:
    locked: list[sqlite3.Connection] = []

    async def lock_then_answer(call: Call) -> None:
        if call.args.get("channel") == MAINT:
            path = sqlite_database.url.database
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
            await asyncio.to_thread(conn.execute, "BEGIN IMMEDIATE")
            locked.append(conn)

    fake_slack.holds["chat.postMessage"] = ("after", lock_then_answer)
    async with rig_for(tmp_path, redis_url, fake_openai, fake_slack, sqlite_database) as rig:
        first, log = rig.worker()
        assert (await rig.run_tool("schedule", SCHEDULE))["ok"]
        # Slack answered; the worker says it delivered, and cannot write the done mark while the test holds the lock.
        await eventually(lambda: ": delivered on attempt 1" in read_log(log), within=30)
        stop(first, signal.SIGKILL)
        del fake_slack.holds["chat.postMessage"]
        for conn in locked:
            conn.execute("ROLLBACK")
            conn.close()
        rig.worker()
        await one_notice_for_the_request(rig, fake_slack)
        assert len(fake_slack.calls_to("chat.postMessage")) == 1


# -- the welcome e-mail --------------------------------------------------------------------------------------


class Mail:
    def __init__(self) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self.server: Any = None

    async def start(self) -> None:
        self.server = await start_server(self.mailbox, port=self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def message_ids(self) -> list[str]:
        found = []
        for envelope in self.mailbox.received:
            parsed = email.message_from_bytes(envelope.original_content or b"", policy=email.policy.default)
            found.append(str(parsed["Message-ID"]))
        return found


@asynccontextmanager
async def mail_rig(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack, db: Database, mail: Mail
) -> AsyncIterator[Rig]:
    smtp = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(mail.port), "SMTP_SECURITY": "none"}
    try:
        async with rig_for(tmp_path, redis_url, fake_openai, fake_slack, db, **smtp) as rig:
            yield rig
    finally:
        await mail.close()


async def run_status(db: Database) -> str:
    async with db.session() as session:
        run = await session.get(WorkflowRun, KEY, populate_existing=True)
        return run.status if run is not None else "none"


async def welcome_sent(rig: Rig, mail: Mail, copies: int = 1) -> None:
    """The e-mail went out (`copies` times, one Message-ID), its row is done, and the run finishes as done when the
    approval's recovery runs it again."""
    await eventually(lambda: len(mail.mailbox.received) >= copies, within=30)
    await eventually(lambda: _done(rig, f"email:{KEY}:welcome"), within=30)
    assert (await rig.run_tool("onboard", JANE))["ok"]
    assert await run_status(rig.db) == "done"
    assert len(mail.mailbox.received) == copies
    assert len(set(mail.message_ids())) == 1
    assert mail.mailbox.received[0].rcpt_tos == ["jane.doe@example.com"]


async def test_welcome_killed_before_its_record_is_sent_once_when_the_run_runs_again(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack, sqlite_database: Database
) -> None:
    mail = Mail()
    await mail.start()
    async with mail_rig(tmp_path, redis_url, fake_openai, fake_slack, sqlite_database, mail) as rig:
        tool = await rig.tool("onboard", JANE)
        with write_lock(sqlite_database):
            await tool.go()
            await tool.kill()
        assert await rig.rows() == [] and await run_status(sqlite_database) == "none"
        assert (await rig.run_tool("onboard", JANE))["ok"]  # the approval's recovery runs it again
        await welcome_sent(rig, mail)


async def test_welcome_recorded_while_the_mail_server_is_down_is_sent_by_another_process(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack, sqlite_database: Database
) -> None:
    mail = Mail()  # not started: the first attempt finds no server
    async with mail_rig(tmp_path, redis_url, fake_openai, fake_slack, sqlite_database, mail) as rig:
        tool = await rig.tool("onboard", JANE)
        await tool.go()
        outcome = await tool.result()
        assert outcome["ok"] and outcome["data"]["status"] == "done"
        await tool.kill()
        [row] = [r for r in await rig.rows() if r.kind == "email"]
        assert row.status == "pending" and row.attempts == 1
        await mail.start()
        rig.worker()
        await welcome_sent(rig, mail)


async def test_welcome_killed_while_the_server_holds_it_unaccepted_is_sent_once(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack, sqlite_database: Database
) -> None:
    mail = Mail()
    released = asyncio.Event()

    async def hang(envelope: Envelope) -> None:
        await released.wait()
        raise ConnectionResetError("the sender is gone")  # never taken

    mail.mailbox.hold_data = hang
    await mail.start()
    async with mail_rig(tmp_path, redis_url, fake_openai, fake_slack, sqlite_database, mail) as rig:
        tool = await rig.tool("onboard", JANE)
        await tool.go()
        await eventually(lambda: len(mail.mailbox.handed) == 1, within=30)
        await tool.kill()
        mail.mailbox.hold_data = None
        released.set()
        rig.worker()
        await welcome_sent(rig, mail)
        assert len(mail.mailbox.handed) == 2


async def test_welcome_killed_after_the_server_took_it_is_sent_again_with_the_same_message_id(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack, sqlite_database: Database
) -> None:
    mail = Mail()
    locked: list[sqlite3.Connection] = []

    async def lock_then_accept(envelope: Envelope) -> None:
        path = sqlite_database.url.database
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
        await asyncio.to_thread(conn.execute, "BEGIN IMMEDIATE")
        locked.append(conn)

    mail.mailbox.hold_accepted = lock_then_accept
    await mail.start()
    async with mail_rig(tmp_path, redis_url, fake_openai, fake_slack, sqlite_database, mail) as rig:
        tool = await rig.tool("onboard", JANE)
        await tool.go()
        await eventually(lambda: len(mail.mailbox.received) == 1 and bool(locked), within=30)
        await tool.kill()  # taken by the server (250), not marked done: the unlucky window of at-least-once
        mail.mailbox.hold_accepted = None
        for conn in locked:
            conn.execute("ROLLBACK")
            conn.close()
        rig.worker()
        await welcome_sent(rig, mail, copies=2)
