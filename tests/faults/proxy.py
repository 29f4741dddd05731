"""A TCP proxy in front of the suite's redis-server that injects one fault at the N-th command.

It reads the RESP stream in both directions, so it knows where each command starts and which reply answers
it, and can fault at an exact command boundary:

    drop     command N never reaches Redis; the connection is cut (the client sees a connection error)
    lost     command N runs in Redis, its reply never arrives; the connection is cut (ambiguous for the client)
    stall    command N runs, its reply is held past the client's socket timeout, then the connection is cut
    kill     a callback runs first (it SIGKILLs a propbot process), then as `drop`

After the fault Redis stays unreachable for `down_for` seconds (new connections are closed at once), then the
proxy passes traffic again. Commands are numbered across every connection in arrival order; names listed in
`uncounted` (a worker's polling) and commands `skip` picks (heartbeats) are passed through and never numbered,
so the boundaries of a flow are the same from run to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

FAULTS = ("drop", "lost", "stall", "kill")


class _Incomplete(Exception):
    pass


def _line(buf: bytes, at: int) -> tuple[bytes, int]:
    end = buf.find(b"\r\n", at)
    if end < 0:
        raise _Incomplete
    return buf[at:end], end + 2


def _bulk(buf: bytes, at: int) -> int:
    """The end of a `$len` (or `!len`, `=len`) string starting at `at`."""
    header, at = _line(buf, at)
    size = int(header[1:])
    if size < 0:
        return at
    if len(buf) < at + size + 2:
        raise _Incomplete
    return at + size + 2


def command_end(buf: bytes, at: int = 0) -> tuple[int, str]:
    """(end, upper-case command name) of the request starting at `at`; _Incomplete if not all arrived."""
    if buf[at : at + 1] != b"*":  # an inline command (redis-cli); redis-py always sends arrays
        line, end = _line(buf, at)
        return end, (line.split() or [b"?"])[0].decode(errors="replace").upper()
    header, pos = _line(buf, at)
    name = "?"
    for i in range(int(header[1:])):
        start = pos
        pos = _bulk(buf, pos)
        if i == 0:
            name = buf[start:pos].split(b"\r\n", 2)[1].decode(errors="replace").upper()
    return pos, name


def command_key(command: bytes) -> str:
    """The first key a whole request names: the second word, or for EVALSHA / EVAL (sha, numkeys, keys...) the
    fourth; "" when it names none."""
    words: list[bytes] = []
    if command[:1] == b"*":
        header, pos = _line(command, 0)
        for _ in range(min(int(header[1:]), 4)):
            start = pos
            pos = _bulk(command, pos)
            words.append(command[start:pos].split(b"\r\n", 2)[1])
    else:
        words = command.split()
    index = 3 if words and words[0].upper() in (b"EVALSHA", b"EVAL") else 1
    return words[index].decode(errors="replace") if len(words) > index else ""


def reply_end(buf: bytes, at: int = 0) -> int:
    """The end of the reply starting at `at` (RESP2 and RESP3, aggregates nest); _Incomplete if not all arrived."""
    kind = buf[at : at + 1]
    if not kind:
        raise _Incomplete
    if kind in (b"+", b"-", b":", b"_", b"#", b",", b"("):
        return _line(buf, at)[1]
    if kind in (b"$", b"!", b"="):
        return _bulk(buf, at)
    if kind in (b"*", b"~", b">", b"%", b"|"):
        header, pos = _line(buf, at)
        count = max(0, int(header[1:])) * (2 if kind in (b"%", b"|") else 1)
        for _ in range(count):
            pos = reply_end(buf, pos)
        # An attribute map (`|`) is metadata in front of the reply it describes.
        return reply_end(buf, pos) if kind == b"|" else pos
    raise ValueError(f"unexpected RESP reply byte {kind!r}")


@dataclass
class Fault:
    at: int  # the number of the command to fault (1-based); with `when`, of the commands `when` picks
    kind: str
    down_for: float = 0.0
    stall: float = 6.0
    on_kill: Callable[[], None] | None = None
    # Picks the commands `at` counts, by (command name, first key, whole command): e.g. the 2nd EVALSHA on a
    # lock key.
    when: Callable[[str, str, bytes], bool] | None = None
    _seen: int = 0

    def hits(self, number: int, name: str, command: bytes) -> bool:
        if self.when is None:
            return number == self.at
        # With `when`, numbering does not matter: a heartbeat is as good a target as any command.
        if not self.when(name, command_key(command), command):
            return False
        self._seen += 1
        return self._seen == self.at


def command(name: str, key_prefix: str = "") -> Callable[[str, str, bytes], bool]:
    """A `Fault.when` for the commands called `name` whose first key starts with `key_prefix`."""
    return lambda seen, key, _: seen == name and key.startswith(key_prefix)


def script(source: str) -> Callable[[str, str, bytes], bool]:
    """A `Fault.when` for the calls of one Lua script (EVALSHA names it by its SHA1)."""
    sha = hashlib.sha1(source.encode()).hexdigest().encode()
    return lambda seen, _, whole: seen == "EVALSHA" and sha in whole


@dataclass(eq=False)  # identity, so pairs can sit in a set
class _Pair:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    # Numbers (0: uncounted; negative: the faulted one) of the commands awaiting replies.
    pending: deque[float] = field(default_factory=deque)


class RedisFaultProxy:
    def __init__(
        self,
        upstream_port: int,
        uncounted: frozenset[str] = frozenset(),
        skip: Callable[[str, bytes], bool] | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        self.uncounted = uncounted
        self.skip = skip  # (name, whole command) -> True for timer-driven commands, which are not numbered
        self.count = 0
        self.commands: list[str] = []  # names of the counted commands, in order
        self.fault: Fault | None = None
        self.fired = asyncio.Event()
        self._down_until = 0.0
        self._pairs: set[_Pair] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for pair in list(self._pairs):
            self._cut(pair)
        # Let each connection's handler end on its own (its reads see EOF): a handler still running when the
        # loop closes is cancelled, and asyncio logs that as an error.
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=2.0)

    def arm(self, fault: Fault | None) -> None:
        """Number commands from 1 again, and fault at `fault.at` (None: only count)."""
        self.count = 0
        self.commands.clear()
        self.fault = fault
        self.fired.clear()

    def cut(self, down_for: float) -> None:
        """Redis goes away now, for `down_for` seconds: every open connection is cut, new ones refused."""
        self._down_until = time.monotonic() + down_for
        for pair in list(self._pairs):
            self._cut(pair)

    def _cut(self, pair: _Pair) -> None:
        for writer in (pair.client, pair.server):
            with contextlib.suppress(Exception):
                writer.close()
        self._pairs.discard(pair)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        if time.monotonic() < self._down_until:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        await asyncio.gather(self._requests(reader, pair), self._replies(up_reader, pair), return_exceptions=True)
        self._cut(pair)

    async def _requests(self, reader: asyncio.StreamReader, pair: _Pair) -> None:
        buf = b""
        while chunk := await reader.read(65536):
            buf += chunk
            while buf:
                try:
                    end, name = command_end(buf)
                except _Incomplete:
                    break
                command, buf = buf[:end], buf[end:]
                number = 0
                if name not in self.uncounted and not (self.skip is not None and self.skip(name, command)):
                    self.count += 1
                    self.commands.append(name)
                    number = self.count
                fault = self.fault
                hit = fault is not None and not self.fired.is_set() and fault.hits(number, name, command)
                if fault is not None and hit and fault.kind in ("drop", "kill"):
                    self._fire(fault)
                    self._cut(pair)
                    return
                pair.pending.append((-number or -0.5) if hit else number)
                pair.server.write(command)
            await pair.server.drain()

    async def _replies(self, reader: asyncio.StreamReader, pair: _Pair) -> None:
        buf = b""
        while chunk := await reader.read(65536):
            buf += chunk
            out = b""
            while buf:
                try:
                    end = reply_end(buf)
                except _Incomplete:
                    break
                reply, buf = buf[:end], buf[end:]
                number = pair.pending.popleft() if pair.pending else 0
                fault = self.fault
                # The request side marked the faulted command with a negative number (-0.5 if unnumbered).
                if fault is not None and number < 0 and fault.kind in ("lost", "stall"):
                    pair.client.write(out)
                    self._fire(fault)
                    if fault.kind == "stall":
                        await asyncio.sleep(fault.stall)
                    self._cut(pair)
                    return
                out += reply
            pair.client.write(out)
            await pair.client.drain()

    def _fire(self, fault: Fault) -> None:
        if fault.kind == "kill" and fault.on_kill is not None:
            fault.on_kill()
        self._down_until = time.monotonic() + fault.down_for
        if fault.down_for:
            for pair in list(self._pairs):  # an outage cuts every open connection, not only this one
                self._cut(pair)
        self.fired.set()
