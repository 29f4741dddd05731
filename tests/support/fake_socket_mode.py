"""Slack's side of Socket Mode on 127.0.0.1: the WebSocket that the real slack_sdk SocketModeClient opens
after `apps.connections.open`. It greets the client as Slack does, sends envelopes a test gives it, and
records the acknowledgements (`{"envelope_id": ...}`) the client sends back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSMsgType, web


class FakeSocketMode:
    def __init__(self) -> None:
        self.url = ""
        self.acks: list[dict[str, Any]] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._connected = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/link"
        return self.url

    async def stop(self) -> None:
        for socket in self._sockets:
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._sockets.append(socket)
        hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}}
        await socket.send_str(json.dumps(hello))
        self._connected.set()
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                self.acks.append(json.loads(message.data))
        return socket

    async def connected(self, within: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), within)

    async def send(self, envelope: dict[str, Any]) -> None:
        await self.connected()
        await self._sockets[-1].send_str(json.dumps(envelope))

    async def ack_for(self, envelope_id: str, within: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            found = [a for a in self.acks if a.get("envelope_id") == envelope_id]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no ack for envelope {envelope_id}; acks: {self.acks}"
            await asyncio.sleep(0.02)


@pytest.fixture
async def fake_socket_mode() -> AsyncIterator[FakeSocketMode]:
    fake = FakeSocketMode()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
