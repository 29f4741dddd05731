"""Real Redis for the tests: throwaway `redis-server` processes on free 127.0.0.1 ports.

Fixtures:
    redis_server          session: a `RedisServer` (stop()/start() it to simulate an outage)
    redis_url             function: FLUSHALLs the session server (restarting it if a test left it
                          down) and returns its `redis://` URL
    redis_cluster_server  session, lazy: a `RedisClusterServer`, three masters, no replicas
    redis_cluster         session, lazy: its startup node URL, `redis+cluster://127.0.0.1:PORT`
                          (the scheme `bot.store.RedisStore.from_url` reads as "cluster")
    redis_cluster_url     function: like `redis_url`, for the cluster

Servers run with `--save "" --appendonly no`: a restart comes back empty, like a failover to a
replica that missed the last writes, and nothing is written outside the temporary directory.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis

_STARTUP_TIMEOUT = 10.0


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` was not found on PATH; the store tests need a real Redis "
            "(Debian/Ubuntu: apt-get install redis-server)",
            pytrace=False,
        )
    return path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _free_cluster_port() -> int:
    # A cluster node also listens on port + 10000 (the cluster bus), so the port must be <= 55535
    # and both must be free; the kernel's ephemeral range usually starts above that.
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 45_000)
        if _port_free(port) and _port_free(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _die_with_parent() -> None:
    # If pytest itself is killed, the kernel stops the server too instead of leaving an orphan.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class RedisServer:
    """One `redis-server` process; `start()` after `stop()` reuses the same port and directory."""

    _live: set[RedisServer] = set()

    def __init__(self, workdir: Path, *, extra_args: Sequence[str] = (), port: int | None = None) -> None:
        self.binary = _binary("redis-server")
        self.port = port or _free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        if self.running:
            return
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", str(self.log_path),
            *self.extra_args,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        RedisServer._live.add(self)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        with self.client() as client:
            while True:
                if self._process is None or self._process.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} exited:\n{self._log_tail()}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
                time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self._process = self._process, None
        RedisServer._live.discard(self)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall()

    @classmethod
    def stop_all(cls) -> None:
        for server in list(cls._live):
            server.stop()


atexit.register(RedisServer.stop_all)


class RedisClusterServer:
    """A local Redis Cluster: three masters, every slot covered, no replicas."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.nodes: list[RedisServer] = []
        for i in range(masters):
            node_dir = workdir / f"node{i}"
            cluster_args = ["--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf")]
            self.nodes.append(RedisServer(node_dir, extra_args=cluster_args, port=_free_cluster_port()))

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    @property
    def running(self) -> bool:
        return all(node.running for node in self.nodes)

    def create(self) -> None:
        for node in self.nodes:
            node.start()
        command = [
            _binary("redis-cli"),
            "--cluster", "create",
            *(f"127.0.0.1:{node.port}" for node in self.nodes),
            "--cluster-replicas", "0",
            "--cluster-yes",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node reports cluster_state:ok and knows all masters."""
        deadline = time.monotonic() + timeout
        while not all(self._node_ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the test Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def _node_ok(self, node: RedisServer) -> bool:
        try:
            with node.client() as client:
                raw = client.execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return "cluster_state:ok" in text and f"cluster_known_nodes:{len(self.nodes)}" in text

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def start(self) -> None:
        """Restart stopped nodes; they rejoin from their nodes.conf (with empty data)."""
        for node in self.nodes:
            node.start()
        self.wait_ok()

    def flushall(self) -> None:
        for node in self.nodes:
            node.flushall()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.start()  # no-op unless an earlier test stopped it and failed before restarting
    redis_server.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServer]:
    cluster = RedisClusterServer(tmp_path_factory.mktemp("redis-cluster"))
    cluster.create()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster(redis_cluster_server: RedisClusterServer) -> str:
    return redis_cluster_server.url


@pytest.fixture
def redis_cluster_url(redis_cluster_server: RedisClusterServer) -> str:
    if not redis_cluster_server.running:
        redis_cluster_server.start()
    redis_cluster_server.flushall()
    return redis_cluster_server.url
