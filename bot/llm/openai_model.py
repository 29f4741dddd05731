"""The model client: Chat Completions with `tools`, one retry layer (tenacity), a circuit breaker."""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI, AsyncStream, DefaultAioHttpClient
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from bot.errors import ModelError, ModelFailure
from bot.llm.circuit import CircuitBreaker, CircuitOpen
from bot.llm.model import ModelReply, TextSink, Usage, usage_of
from bot.llm.streaming import StreamAssembler
from bot.observability import metrics, tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """What the client needs of the settings (OPENAI_* and CIRCUIT_*)."""

    api_key: str
    model: str
    base_url: str | None = None
    timeout: float = 30.0
    max_attempts: int = 4
    deadline: float = 60.0
    temperature: float | None = None
    stream: bool = True  # stream=true when the caller wants the text as it comes
    failure_threshold: int = 5
    cooldown: float = 30.0
    prompt_cache_key: bool = False  # send each conversation's cache key (OpenAI's prompt_cache_key)


# A server asking for a longer pause than this is treated as down: the user should not wait minutes.
MAX_RETRY_AFTER = 20.0


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError))


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's requested pause, from `retry-after-ms` or `retry-after` (seconds or HTTP date)."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class _Wait:
    """Honour Retry-After when the server sends it, else exponential backoff with full jitter."""

    def __init__(self) -> None:
        self._backoff = wait_random_exponential(multiplier=0.5, max=8)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        pause = retry_after_seconds(exc)
        if pause is not None:
            return min(pause, MAX_RETRY_AFTER)
        return float(self._backoff(state))


def _classify(exc: BaseException) -> ModelError:
    if isinstance(exc, openai.RateLimitError):
        return ModelError(ModelFailure.RATE_LIMITED, "the model provider is rate limiting us")
    if isinstance(exc, openai.APITimeoutError):
        return ModelError(ModelFailure.TIMEOUT, "the model did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return ModelError(ModelFailure.UNAVAILABLE, "cannot reach the model server")
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return ModelError(ModelFailure.AUTH, "the model server refused our credentials")
    if isinstance(exc, openai.APIStatusError):
        kind = ModelFailure.UNAVAILABLE if exc.status_code >= 500 else ModelFailure.BAD_REQUEST
        return ModelError(kind, f"HTTP {exc.status_code}")
    return ModelError(ModelFailure.UNAVAILABLE, type(exc).__name__)


class OpenAIChatModel:
    """Chat Completions with `tools` over the openai SDK (any OpenAI-compatible server)."""

    def __init__(self, config: ModelConfig, breaker: CircuitBreaker | None = None) -> None:
        self.config = config
        self.breaker = breaker or CircuitBreaker(config.failure_threshold, config.cooldown)
        # The SDK's own retries are off: tenacity is the one retry layer, or attempts multiply.
        self._client = AsyncOpenAI(
            api_key=config.api_key or "not-set",
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout,
            http_client=DefaultAioHttpClient(timeout=config.timeout),
        )

    async def close(self) -> None:
        await self._client.close()

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_text: TextSink | None = None,
        cache_key: str | None = None,
    ) -> ModelReply:
        with tracing.span("propbot.model_call", model=self.config.model) as span:
            try:
                reply = await self._complete(messages, tools, on_text, cache_key)
            except ModelError as exc:
                span.set(error=exc.kind, attempts=exc.attempts)
                raise
            span.set(
                attempts=reply.attempts,
                prompt_tokens=reply.usage.prompt_tokens,
                cached_tokens=reply.usage.cached_tokens,
                completion_tokens=reply.usage.completion_tokens,
            )
            return reply

    async def _complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_text: TextSink | None,
        cache_key: str | None,
    ) -> ModelReply:
        try:
            self.breaker.before_call()
        except CircuitOpen as exc:
            metrics.ERRORS.labels("model_circuit_open").inc()
            raise ModelError(ModelFailure.CIRCUIT_OPEN, str(exc)) from None
        started = time.perf_counter()
        attempts = 0
        shown: list[str] = []  # text already handed to `on_text`: after it, a failure is not retried
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: not shown and _retryable(exc)),
            wait=_Wait(),
            stop=stop_after_attempt(self.config.max_attempts) | stop_before_delay(self.config.deadline),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    body = self._body(messages, tools, cache_key)
                    if on_text is None or not self.config.stream:
                        out, usage = _parsed(await self._create(body))
                    else:
                        out, usage = await self._stream(body, on_text, shown)
        except Exception as exc:
            self.breaker.record_failure()
            error = _classify(exc)
            metrics.ERRORS.labels(f"model_{error.kind}").inc()
            log.warning("model call failed after %d attempt(s): %s", attempts, error)
            error.attempts = attempts
            raise error from None
        except BaseException:
            self.breaker.record_abandoned()
            raise
        self.breaker.record_success()
        if on_text is not None and not self.config.stream and out["content"]:
            await on_text(out["content"])  # streaming is off: the whole text, once
        metrics.MODEL_TOKENS.labels("prompt").inc(usage.prompt_tokens)
        metrics.PROMPT_TOKENS.labels("true").inc(usage.cached_tokens)
        metrics.PROMPT_TOKENS.labels("false").inc(max(0, usage.prompt_tokens - usage.cached_tokens))
        metrics.MODEL_TOKENS.labels("completion").inc(usage.completion_tokens)
        latency = time.perf_counter() - started
        metrics.MODEL_LATENCY.observe(latency)
        return ModelReply(out, usage, latency, attempts)

    async def _stream(
        self, request: dict[str, Any], on_text: TextSink, shown: list[str]
    ) -> tuple[dict[str, Any], Usage]:
        body = {**request, "stream": True, "stream_options": {"include_usage": True}}
        stream = await self._client.post(
            "/chat/completions",
            cast_to=ChatCompletion,
            body=body,
            stream=True,
            stream_cls=AsyncStream[ChatCompletionChunk],
        )
        assembler = StreamAssembler()
        async with stream:
            async for chunk in stream:
                if text := assembler.add(chunk):
                    shown.append(text)
                    await on_text(text)
        if assembler.refused_only:
            await on_text(assembler.message()["content"])
        return assembler.message(), assembler.usage

    async def _create(self, body: dict[str, Any]) -> Any:
        # The client's public `post` rather than `chat.completions.create`: `create` walks every message
        # and tool schema through its type-driven transform on each call (17% of a busy process's CPU in
        # bench/), and ours are already plain wire-format dicts. Same endpoint, same parsed response.
        return await self._client.post("/chat/completions", cast_to=ChatCompletion, body=body)

    def _body(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], cache_key: str | None = None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.config.model, "messages": messages}
        if cache_key and self.config.prompt_cache_key:
            # Requests of one conversation share a long prefix: the key routes them to the same cache.
            kwargs["prompt_cache_key"] = cache_key
        if tools:
            kwargs["tools"] = tools
            kwargs["tool_choice"] = "auto"
        if self.config.temperature is not None:
            kwargs["temperature"] = self.config.temperature
        return kwargs


def _parsed(response: ChatCompletion) -> tuple[dict[str, Any], Usage]:
    message = response.choices[0].message
    # A refusal comes with `content` null and the reason in `refusal`: the reason is the answer, and a stored
    # null content would make every later request of the conversation invalid.
    content = message.content if message.content is not None else (getattr(message, "refusal", None) or "")
    out: dict[str, Any] = {"role": "assistant", "content": content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
            for call in message.tool_calls
            if call.type == "function"
        ]
    return out, usage_of(response.usage) if response.usage is not None else Usage()
