"""The tool registry: typed async functions become OpenAI Chat Completions tools.

A tool is an async function whose first parameter is a pydantic model (the arguments the model sends)
and whose second is a `ToolContext`. The model's JSON schema is what OpenAI sees, so the docstring and
the field descriptions are the prompt for the tool. Each tool module has a `Registry` of its own
(`registry = Registry()`, `@registry.tool(...)`); the composition root merges the built-in ones and those
TOOL_MODULES names (`module:registry`) into the one the agent uses. Nothing is registered globally.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

from pydantic import BaseModel, Field, ValidationError

from tools.presentation import Detail, DocumentLink, Presentation, Source

if TYPE_CHECKING:
    from tools.db import Database


class ToolDefinitionError(Exception):
    """A function cannot be a tool (wrong signature, duplicate name)."""


class ToolArgumentError(Exception):
    """The model's arguments are not valid JSON or do not fit the tool's schema."""


StepSink = Callable[[str, str, str, str], Awaitable[None]]


@dataclass(frozen=True)
class ToolContext:
    db: Database
    user: str
    conversation_key: str
    # Set when the call runs after an approval: the approval id. A tool that writes must make the
    # same key never write twice (a re-delivered click or a re-run turn reuses it).
    idempotency_key: str | None = None
    # Services the composition root hands to tools (a workflow's notifier and document store), by name.
    extras: dict[str, Any] = field(default_factory=dict)
    # Where a long call reports its steps as they go (a workflow run): (step key, title, state, detail), the
    # state one of "running", "done", "failed". None: nobody is watching.
    progress: StepSink | None = None
    # Whether the person asking may see a record made in the conversation with this key (a run, a document): the
    # core's gate answers (their own workspace or tenant). None: this conversation's records only.
    sees: Callable[[str], bool] | None = None
    # Why the approved call behind a record (by its approval id) may no longer run, in plain words, or None when it
    # may: the requester's and the approver's permissions as they are now. None: nothing to re-check here.
    recheck: Callable[[str], Awaitable[str | None]] | None = None

    def may_see(self, conversation_key: str) -> bool:
        return self.sees(conversation_key) if self.sees is not None else conversation_key == self.conversation_key


class ToolResult(BaseModel):
    """What a tool returns: data for the model, and optionally a presentation for people."""

    ok: bool = True
    data: Any = None
    error: str | None = None
    # One sentence, in the tool's own words, of what it did ("Request MR-12 cancelled."): shown on the
    # decided approval card and kept in the audit trail, so no one has to guess the verb from the tool name.
    summary: str | None = None
    presentation: Presentation | None = None
    # The records this result shows (not sent to the model: its data already names them).
    sources: list[Source] = Field(default_factory=list)
    # Documents it made, delivered to the conversation as files or links (not sent to the model either).
    documents: list[DocumentLink] = Field(default_factory=list)

    @classmethod
    def failure(cls, error: str, **data: Any) -> ToolResult:
        return cls(ok=False, error=error, data=data or None)

    def for_model(self) -> str:
        """Compact JSON for the `tool` message: every byte here is a prompt token on later turns."""
        payload: dict[str, Any] = {"ok": self.ok}
        if self.error is not None:
            payload["error"] = self.error
        if self.summary is not None:
            payload["summary"] = self.summary
        if self.data is not None:
            payload["data"] = self.data
        return json.dumps(payload, separators=(",", ":"), default=str, ensure_ascii=False)


ToolFunc = Callable[[Any, ToolContext], Awaitable["ToolResult | dict[str, Any] | list[Any]"]]
Describer = Callable[[Any, ToolContext], Awaitable[tuple[str, list[Detail]]]]
# Arguments -> what the call is doing, in a few words for the person waiting ("Searching properties in Austin…").
Doing = Callable[[Any], str]
# Arguments -> what identifies the answer, for the cache key (e.g. an id upper-cased the way the tool
# reads it anyway). It must never merge arguments that can produce different answers.
CacheKey = Callable[[Any], Any]


@dataclass
class ToolSpec:
    name: str
    description: str
    args_model: type[BaseModel]
    func: ToolFunc
    risky: bool = False
    read_only: bool = True
    timeout: float = 15.0
    sensitive: frozenset[str] = frozenset()
    # Seconds an ok result may be reused for equal arguments. Only for tools whose answer depends on
    # the arguments and the data alone, never on who asks.
    cache_ttl: float | None = None
    cache_key: CacheKey | None = None
    # Tools whose cached answers this tool's writes make stale.
    invalidates: tuple[str, ...] = ()
    describe: Describer | None = None
    progress: Doing | None = None
    # Raised by the tool's author when its behaviour changes; its argument schema is fingerprinted separately
    # (`schema_hash`), so an approval made under other arguments is never run by the new code.
    version: int = 1
    _schema: dict[str, Any] | None = None

    @property
    def schema_hash(self) -> str:
        """A fingerprint of the arguments the tool takes (its JSON schema, canonical): equal hashes mean an old
        call's stored arguments mean the same to this code."""
        parameters = self.openai_schema()["function"]["parameters"]
        canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def doing(self, raw_arguments: str | None) -> str:
        """What a call with these (unchecked) arguments is doing, for the progress shown while it runs."""
        if self.progress is None:
            return self.doing_with(None)
        try:
            return self.doing_with(self.parse_arguments(raw_arguments))
        except ToolArgumentError:
            return self.doing_with(None)  # the call will be refused with the reason; until then the plain words do

    def doing_with(self, args: BaseModel | None) -> str:
        """What a call with these validated arguments is doing (None: the tool's plain words)."""
        if self.progress is not None and args is not None:
            return self.progress(args)
        return f"Using {self.name.replace('_', ' ')}…"

    def openai_schema(self) -> dict[str, Any]:
        if self._schema is None:
            params, strict = strict_parameters(self.args_model)
            function: dict[str, Any] = {
                "name": self.name,
                "description": self.description,
                "parameters": params,
            }
            if strict:
                function["strict"] = True
            self._schema = {"type": "function", "function": function}
        return self._schema

    def parse_arguments(self, raw: str | None) -> BaseModel:
        try:
            data = json.loads(raw or "{}")
        except json.JSONDecodeError as exc:
            raise ToolArgumentError(f"arguments are not valid JSON ({exc.msg} at position {exc.pos})") from exc
        if not isinstance(data, dict):
            raise ToolArgumentError("arguments must be a JSON object")
        try:
            return self.args_model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(arguments)'}: {err['msg']}" for err in exc.errors()
            )
            raise ToolArgumentError(f"invalid arguments: {problems}") from exc

    def redact(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return {k: ("[redacted]" if k in self.sensitive else v) for k, v in arguments.items()}

    async def summarise(self, args: BaseModel, ctx: ToolContext) -> tuple[str, list[Detail]]:
        """Title and details for an approval card."""
        if self.describe is not None:
            return await self.describe(args, ctx)
        return self.default_summary(args)

    def default_summary(self, args: BaseModel) -> tuple[str, list[Detail]]:
        details = [
            Detail(label=k.replace("_", " ").capitalize(), value=str(v))
            for k, v in args.model_dump(exclude_none=True).items()
        ]
        return self.name.replace("_", " ").capitalize(), details


# Keywords strict mode rejects. Length limits go too: pydantic still enforces them when the arguments
# arrive, and a violation is fed back to the model as a tool result it can correct.
_STRICT_UNSUPPORTED = {"default", "title", "examples", "minLength", "maxLength"}


def strict_parameters(model: type[BaseModel]) -> tuple[dict[str, Any], bool]:
    """The JSON schema for `model`, shaped for OpenAI strict mode where that is possible.

    Strict mode wants `additionalProperties: false` on every object and every property listed in
    `required`; an optional argument is expressed as a union with null (pydantic already emits
    `anyOf [..., {type: null}]` for `X | None`). A field that is optional but not nullable cannot be
    expressed, so such a model falls back to a plain, non-strict schema.
    """
    schema = copy.deepcopy(model.model_json_schema())
    strict = True

    def visit(node: Any) -> None:
        nonlocal strict
        if isinstance(node, dict):
            for key in _STRICT_UNSUPPORTED & node.keys():
                del node[key]
            if node.get("type") == "object" and "properties" in node:
                props: dict[str, Any] = node["properties"]
                required = set(node.get("required", []))
                for name, prop in props.items():
                    if name not in required and not _nullable(prop):
                        strict = False
                node["required"] = list(props)
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    if not strict:
        plain = copy.deepcopy(model.model_json_schema())
        plain.pop("title", None)
        return plain, False
    return schema, True


def _nullable(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or any(alt.get("type") == "null" for alt in prop.get("anyOf", []))


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class Registry:
    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}

    def register(self, spec: ToolSpec) -> ToolSpec:
        if spec.name in self._tools and self._tools[spec.name].func is not spec.func:
            raise ToolDefinitionError(f"a tool named {spec.name!r} is already registered")
        self._tools[spec.name] = spec
        return spec

    def include(self, other: Registry) -> Registry:
        """Add every tool of `other` (a module's registry) to this one; returns self."""
        for spec in other.specs():
            self.register(spec)
        return self

    def get(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def specs(self, names: Iterable[str] | None = None) -> list[ToolSpec]:
        wanted = self.names() if names is None else sorted(set(names) & self._tools.keys())
        return [self._tools[n] for n in wanted]

    def schemas(self, names: Iterable[str]) -> list[dict[str, Any]]:
        return [spec.openai_schema() for spec in self.specs(names)]

    def tool(
        self,
        *,
        name: str | None = None,
        risky: bool = False,
        read_only: bool | None = None,
        timeout: float = 15.0,
        sensitive: Iterable[str] = (),
        cache_ttl: float | None = None,
        cache_key: CacheKey | None = None,
        invalidates: Iterable[str] = (),
        describe: Describer | None = None,
        progress: Doing | None = None,
        version: int = 1,
    ) -> Callable[[F], F]:
        """Register an async function as a tool. Risky tools wait for a human approval."""

        def decorate(func: F) -> F:
            spec = build_spec(
                func,
                name=name,
                risky=risky,
                read_only=(not risky) if read_only is None else read_only,
                timeout=timeout,
                sensitive=frozenset(sensitive),
                cache_ttl=cache_ttl,
                cache_key=cache_key,
                invalidates=tuple(invalidates),
                describe=describe,
                progress=progress,
                version=version,
            )
            self.register(spec)
            return func

        return decorate


def build_spec(func: Callable[..., Awaitable[Any]], *, name: str | None, **meta: Any) -> ToolSpec:
    if not inspect.iscoroutinefunction(func):
        raise ToolDefinitionError(f"{func.__qualname__}: a tool must be an async function")
    params = list(inspect.signature(func).parameters.values())
    hints = get_type_hints(func)
    if len(params) != 2:
        raise ToolDefinitionError(f"{func.__qualname__}: a tool takes (args: SomeModel, ctx: ToolContext)")
    args_model = hints.get(params[0].name)
    if not (isinstance(args_model, type) and issubclass(args_model, BaseModel)):
        raise ToolDefinitionError(f"{func.__qualname__}: the first parameter must be a pydantic model")
    description = inspect.cleandoc(func.__doc__ or "").strip()
    if not description:
        raise ToolDefinitionError(f"{func.__qualname__}: a tool needs a docstring; it is the model's guide")
    return ToolSpec(
        name=name or func.__name__,
        description=description,
        args_model=args_model,
        func=func,
        **meta,
    )


def load_registry(specs: Iterable[str]) -> Registry:
    """One registry from `module:attribute` specs (the built-in ones and TOOL_MODULES). A spec without
    `:attribute` means the module's `registry`. Registries are merged; two tools of one name are an error."""
    merged = Registry()
    for spec in specs:
        module_name, _, attribute = spec.strip().partition(":")
        if not module_name:
            continue
        module = importlib.import_module(module_name)
        found = getattr(module, attribute or "registry", None)
        if not isinstance(found, Registry):
            raise ToolDefinitionError(f"{spec}: no Registry named {attribute or 'registry'!r} in {module_name}")
        merged.include(found)
    return merged


BUILTIN_REGISTRIES = (
    "tools.properties:registry",
    "tools.maintenance:registry",
    "tools.maintenance_team:registry",
    "tools.tenants:registry",
    "tools.onboarding:registry",
)


def builtin_tools() -> Registry:
    """The property and maintenance tools propbot ships with."""
    return load_registry(BUILTIN_REGISTRIES)
