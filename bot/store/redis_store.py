"""A `Store` on Redis, shared by every bot process. Works on one server and on Redis Cluster.

Cluster rules followed throughout: each command touches one key, or keys sharing one hash tag (see
`bot.store.keys`); scripts run by EVALSHA name all their keys; the MULTI/EXEC of `save_history`
only holds keys of one conversation. Approval changes are stored as separate JSON hash fields
(`f:<field>`) rather than merged inside Lua, because Lua's cjson re-encoding would turn `[]` into
`{}` and round floats (timestamps) to 14 digits.

URLs: `redis://` / `rediss://` give a single-server client; `redis+cluster://host:port` (or
`rediss+cluster://` for TLS) gives a RedisCluster client with that host as startup node.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, NoScriptError, RedisClusterException, RedisError

from bot.errors import StoreUnavailable
from bot.store import keys, redis_scripts
from bot.store.memory_store import encode_changes
from bot.types import Approval, ApprovalStatus

DEFAULT_HISTORY_TTL = 30 * 24 * 3600.0
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_LOCK_AND_LOAD = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
local history = redis.call('GET', KEYS[2])
if not history then return {1} end
return {1, history}
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# ARGV: expected, new, now, tx token, then field/value pairs to set on a win.
# Returns {won, changed_status, HGETALL}. `tx` lets a client-side retry of a transition that already
# won (reply lost on a dropped connection) still see its own win instead of "someone else won".
_TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {0, 0, {}} end
if status ~= ARGV[1] then
  local won = 0
  if status == ARGV[2] and redis.call('HGET', KEYS[1], 'tx') == ARGV[4] then won = 1 end
  return {won, 0, redis.call('HGETALL', KEYS[1])}
end
if ARGV[1] == 'pending' and ARGV[2] ~= 'expired' then
  local expires_at = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
  if expires_at and tonumber(ARGV[3]) > expires_at then
    redis.call('HSET', KEYS[1], 'status', 'expired')
    return {0, 1, redis.call('HGETALL', KEYS[1])}
  end
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'tx', ARGV[4], unpack(ARGV, 5))
return {1, 1, redis.call('HGETALL', KEYS[1])}
"""

# ARGV: keep_for ms, then field/value pairs. DEL first so a reused id can't inherit `f:` overrides of
# an older record; one script so the record never exists without its expiry.
_CREATE = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# Only touch an existing record: HSET on an expired key would resurrect a partial, immortal hash.
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# redis-py raises RedisClusterException (not a RedisError) when no cluster node answers.
_REDIS_ERRORS = (RedisError, RedisClusterException, OSError)


def _ms(ttl: float) -> int:
    # Redis rejects a zero expiry; round up so a tiny ttl still expires at all.
    return max(1, int(ttl * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _approval_from_hash(raw: dict[Any, Any] | list[Any]) -> Approval | None:
    """Rebuild an Approval from HGETALL (a dict from redis-py, a flat list from a script)."""
    items = list(raw.items()) if isinstance(raw, dict) else list(zip(raw[::2], raw[1::2], strict=True))
    fields = {_text(k): _text(v) for k, v in items}
    if "data" not in fields or "status" not in fields:
        return None
    data: dict[str, Any] = json.loads(fields["data"])
    for name, value in fields.items():
        if name.startswith("f:"):
            data[name[2:]] = json.loads(value)
    data["status"] = fields["status"]  # the hash field is authoritative; `data` is the creation copy
    return Approval.model_validate(data)


def _change_pairs(changes: dict[str, Any] | None) -> list[str]:
    pairs: list[str] = []
    for name, text in encode_changes(changes or {}).items():
        pairs += [f"f:{name}", text]
        if name == "expires_at":
            pairs += ["expires_at", text]  # the plain field is what the transition script compares
    return pairs


@asynccontextmanager
async def _unavailable(operation: str) -> AsyncIterator[None]:
    try:
        yield
    except _REDIS_ERRORS as exc:
        # Only the operation and error class: redis messages can carry host names, never the URL.
        raise StoreUnavailable(f"redis {operation} failed ({type(exc).__name__})") from exc


class RedisStore:
    def __init__(self, client: Redis | RedisCluster, *, history_ttl: float = DEFAULT_HISTORY_TTL) -> None:
        self._client = client
        self._history_ttl = history_ttl
        self._cluster_ready = False
        self._init_lock = asyncio.Lock()
        self._release = client.register_script(_RELEASE)
        self._lock_load = client.register_script(_LOCK_AND_LOAD)
        self._extend = client.register_script(_EXTEND)
        self._transition = client.register_script(_TRANSITION)
        self._update = client.register_script(_UPDATE)
        self._create = client.register_script(_CREATE)
        self._rate = client.register_script(redis_scripts.RATE)
        self._cache_get = client.register_script(redis_scripts.CACHE_GET)
        self._cache_put = client.register_script(redis_scripts.CACHE_PUT)
        self._cache_invalidate = client.register_script(redis_scripts.CACHE_INVALIDATE)

    @classmethod
    def from_url(cls, url: str, *, history_ttl: float = DEFAULT_HISTORY_TTL, **kw: Any) -> RedisStore:
        """Connect lazily (the first command connects); `kw` overrides the client options below."""
        options: dict[str, Any] = {
            "socket_connect_timeout": 2.0,
            "socket_timeout": 5.0,
            # PING connections idle this long before reuse, so a restarted server is noticed early.
            "health_check_interval": 15,
            # Connection errors only: a timed-out SET NX may have run, and repeating it would then
            # report "duplicate" / "lock held" for our own write. (RedisCluster ignores the error
            # list and retries its own fixed set, timeouts included, `retries` times.)
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2, supported_errors=(ConnectionError,)),
            "decode_responses": True,
        }
        options.update(kw)
        scheme, sep, rest = url.partition("://")
        client: Redis | RedisCluster
        if sep and scheme.lower() in CLUSTER_SCHEMES:
            client = RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme.lower()]}://{rest}", **options)
        else:
            client = Redis.from_url(url, **options)
        return cls(client, history_ttl=history_ttl)

    @property
    def client(self) -> Redis | RedisCluster:
        return self._client

    @asynccontextmanager
    async def _op(self, operation: str) -> AsyncIterator[None]:
        async with _unavailable(operation):
            if isinstance(self._client, RedisCluster) and not self._cluster_ready:
                # A new cluster client given several commands at once races its own discovery and
                # crashes (redis-py 8.1: AttributeError in a connection). Discover once, serially.
                async with self._init_lock:
                    if not self._cluster_ready:
                        await self._client.initialize()
                        self._cluster_ready = True
            yield

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except _REDIS_ERRORS:
            return False

    async def close(self) -> None:
        await self._client.aclose()

    # -- delivery de-duplication ---------------------------------------------------------------
    async def first_delivery(self, event_id: str, ttl: float) -> bool:
        async with self._op("first_delivery"):
            return bool(await self._client.set(keys.dedupe(event_id), "1", nx=True, px=_ms(ttl)))

    async def forget_delivery(self, event_id: str) -> None:
        async with self._op("forget_delivery"):
            await self._client.delete(keys.dedupe(event_id))

    # -- conversation lock -----------------------------------------------------------------------
    async def acquire_lock(self, conversation: str, ttl: float) -> str | None:
        token = secrets.token_hex(16)
        async with self._op("acquire_lock"):
            acquired = await self._client.set(keys.lock(conversation), token, nx=True, px=_ms(ttl))
        return token if acquired else None

    async def lock_and_load(self, conversation: str, ttl: float) -> tuple[str | None, list[dict[str, Any]]]:
        token = secrets.token_hex(16)
        lock_key, history_key = keys.lock(conversation), keys.history(conversation)
        async with self._op("lock_and_load"):
            # Both keys carry the conversation's hash tag: one slot, so valid on a cluster.
            got = await self._lock_load(keys=[lock_key, history_key], args=[token, _ms(ttl)])
        if not got or not got[0]:
            return None, []
        messages: list[dict[str, Any]] = json.loads(got[1]) if len(got) > 1 and got[1] else []
        return token, messages

    async def release_lock(self, conversation: str, token: str) -> bool:
        async with self._op("release_lock"):
            return bool(await self._release(keys=[keys.lock(conversation)], args=[token]))

    async def extend_lock(self, conversation: str, token: str, ttl: float) -> bool:
        async with self._op("extend_lock"):
            return bool(await self._extend(keys=[keys.lock(conversation)], args=[token, _ms(ttl)]))

    # -- history ---------------------------------------------------------------------------------
    async def load_history(self, conversation: str) -> list[dict[str, Any]]:
        async with self._op("load_history"):
            raw = await self._client.get(keys.history(conversation))
        if raw is None:
            return []
        messages: list[dict[str, Any]] = json.loads(raw)
        return messages

    async def save_history(
        self, conversation: str, messages: list[dict[str, Any]], *, release_token: str | None = None
    ) -> None:
        payload = json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
        history_key, ttl = keys.history(conversation), _ms(self._history_ttl)
        async with self._op("save_history"):
            if release_token is None:
                await self._client.set(history_key, payload, px=ttl)
                return
            lock_key = keys.lock(conversation)
            if isinstance(self._client, RedisCluster):
                # The cluster transaction pipeline resolves each queued command's slot in a
                # throwaway thread and event loop, and would run a pending topology discovery
                # there too; do that discovery here, on our loop (a no-op when up to date).
                await self._client.initialize()
            # Raw EVALSHA rather than the Script object: redis-py would add SCRIPT EXISTS (+LOAD)
            # round trips before every pipeline that carries a Script, and ClusterPipeline blocks
            # its `evalsha` method outright. Both keys share the conversation's hash tag, so this
            # MULTI/EXEC is valid on a cluster.
            pipe = self._client.pipeline(transaction=True)
            pipe.set(history_key, payload, px=ttl)
            pipe.execute_command("EVALSHA", self._release.sha, 1, lock_key, release_token)
            results = await pipe.execute(raise_on_error=False)
            if isinstance(results[0], Exception):
                raise results[0]
            if isinstance(results[1], NoScriptError):
                # Script cache empty (server restarted or failed over): the history is saved; the
                # compare-and-delete is idempotent, so running it now keeps the same meaning.
                await self._release(keys=[lock_key], args=[release_token])
            elif isinstance(results[1], Exception):
                raise results[1]

    # -- approvals -------------------------------------------------------------------------------
    async def create_approval(self, approval: Approval, keep_for: float) -> None:
        record = {
            "status": approval.status.value,
            "created_at": repr(approval.created_at),
            "expires_at": repr(approval.expires_at),
            "data": approval.model_dump_json(),
        }
        args: list[str | int] = [_ms(keep_for)]
        for name, value in record.items():
            args += [name, value]
        async with self._op("create_approval"):
            await self._create(keys=[keys.approval(approval.id)], args=args)
            if approval.status is ApprovalStatus.PENDING:
                await self._client.zadd(keys.PENDING_INDEX, {approval.id: approval.created_at})

    async def get_approval(self, approval_id: str) -> Approval | None:
        async with self._op("get_approval"):
            raw = await self._client.hgetall(keys.approval(approval_id))
        return _approval_from_hash(raw)

    async def transition(
        self,
        approval_id: str,
        expected: ApprovalStatus,
        new: ApprovalStatus,
        now: float,
        changes: dict[str, Any] | None = None,
    ) -> tuple[bool, Approval | None]:
        pairs = _change_pairs(changes)  # validation errors surface before anything is written
        expected, new = ApprovalStatus(expected), ApprovalStatus(new)
        token = secrets.token_hex(8)
        async with self._op("transition"):
            won, changed, raw = await self._transition(
                keys=[keys.approval(approval_id)],
                args=[expected.value, new.value, repr(float(now)), token, *pairs],
            )
            approval = _approval_from_hash(raw)
            if changed and approval is not None and approval.status is not ApprovalStatus.PENDING:
                await self._client.zrem(keys.PENDING_INDEX, approval_id)
            if won and new is ApprovalStatus.APPROVED:
                await self._client.zadd(keys.RUNNING_INDEX, {approval_id: float(now)})
            elif won and expected is ApprovalStatus.APPROVED:
                await self._client.zrem(keys.RUNNING_INDEX, approval_id)
        return bool(won), approval

    async def update_approval_fields(self, approval_id: str, changes: dict[str, Any]) -> None:
        pairs = _change_pairs(changes)
        if not pairs:
            return
        async with self._op("update_approval_fields"):
            await self._update(keys=[keys.approval(approval_id)], args=pairs)

    async def pending_approvals(self) -> list[Approval]:
        return await self._indexed(keys.PENDING_INDEX, ApprovalStatus.PENDING, "+inf")

    async def stalled_approvals(self, claimed_before: float) -> list[Approval]:
        return await self._indexed(keys.RUNNING_INDEX, ApprovalStatus.APPROVED, repr(float(claimed_before)))

    async def _indexed(self, index: str, status: ApprovalStatus, max_score: str) -> list[Approval]:
        async with self._op("indexed_approvals"):
            # Without WITHSCORES the reply is a flat list of members.
            members = cast(list[bytes | str], await self._client.zrangebyscore(index, "-inf", max_score))
            ids = [_text(member) for member in members]
            if not ids:
                return []
            # Non-transactional: the records live in different slots; a cluster pipeline splits
            # the batch per node.
            pipe = self._client.pipeline(transaction=False)
            for approval_id in ids:
                pipe.hgetall(keys.approval(approval_id))
            records = await pipe.execute()
            pending: list[Approval] = []
            stale: list[str] = []
            for approval_id, raw in zip(ids, records, strict=True):
                approval = _approval_from_hash(raw)
                if approval is not None and approval.status is status:
                    pending.append(approval)
                else:
                    # Gone (keep_for elapsed) or moved on without the index being updated.
                    stale.append(approval_id)
            if stale:
                await self._client.zrem(index, *stale)
        return pending

    # -- rate limits -----------------------------------------------------------------------------
    async def take_rate(self, group: str, limits: Sequence[tuple[str, int]], window: float) -> tuple[float, str]:
        if not limits:
            return 0.0, ""
        window_us = max(1, int(window * 1_000_000))
        async with self._op("take_rate"):
            wait_us, worst = await self._rate(
                keys=[keys.rate(group, name) for name, _ in limits],
                args=[window_us, *(limit for _, limit in limits)],
            )
        if not int(worst):
            return 0.0, ""
        return int(wait_us) / 1_000_000, limits[int(worst) - 1][0]

    # -- read-only tool cache ----------------------------------------------------------------------
    async def cache_get(self, tool: str, digest: str) -> tuple[str | None, str]:
        async with self._op("cache_get"):
            reply = await self._cache_get(keys=[keys.cache_generation(tool), keys.cache_entry(tool, digest)])
        generation = _text(reply[0])
        return (_text(reply[1]) if len(reply) > 1 else None), generation

    async def cache_put(self, tool: str, digest: str, generation: str, value: str, ttl: float) -> bool:
        async with self._op("cache_put"):
            stored = await self._cache_put(
                keys=[keys.cache_generation(tool), keys.cache_entry(tool, digest)],
                args=[generation, value, _ms(ttl)],
            )
        return bool(stored)

    async def cache_invalidate(self, tools: Sequence[str]) -> None:
        if not tools:
            return
        async with self._op("cache_invalidate"):
            await self._cache_invalidate(keys=[keys.cache_generation(tool) for tool in tools])
