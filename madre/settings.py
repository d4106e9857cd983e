"""Configuration: the only module that reads the environment.

Every knob is an environment variable (names in DESIGN.md). `Settings()` reads and
validates them once; `load_settings()` turns a validation failure into `ConfigError`
whose message names the variable, so start-up stops with a sentence, not a traceback.
"""

from __future__ import annotations

import ipaddress
import pathlib
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from madre.errors import ConfigError
from madre.modules import BY_NAME
from madre.principals import Principals, load_principals_file, single_token
from madre.rules.policy_file import load_policy_file
from madre.webhooks import check_secret

DEFAULT_TOKEN = "vx11-local-token"
"""The token of a Madre bound to loopback that nobody configured (refused anywhere else)."""


def _url(module: str) -> str:
    return BY_NAME[module].default_url


def _route(module: str) -> str:
    return str(BY_NAME[module].route)


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    """Madre's settings. Pass keyword arguments to override the environment (tests, embedding)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    token: SecretStr = Field(SecretStr(DEFAULT_TOKEN), validation_alias=_env("VX11_TOKEN"))
    # A file holding the token (a container secret, /run/secrets/vx11_token): read when
    # VX11_TOKEN is not set, so the token need not sit in the environment.
    token_file: str | None = Field(None, validation_alias=_env("VX11_TOKEN_FILE"))
    spawner_token: SecretStr | None = Field(None, validation_alias=_env("MADRE_SPAWNER_TOKEN"))
    callback_auth: Literal["token", "none"] = Field(
        "token", validation_alias=_env("MADRE_CALLBACK_AUTH")
    )
    database_url: str = Field(
        "sqlite:///data/runtime/vx11.db", validation_alias=_env("DATABASE_URL")
    )
    host: str = Field("127.0.0.1", validation_alias=_env("MADRE_HOST"))
    port: int = Field(8001, ge=0, le=65535, validation_alias=_env("MADRE_PORT"))

    switch_url: str = Field(_url("switch"), validation_alias=_env("SWITCH_URL"))
    hermes_url: str = Field(_url("hermes"), validation_alias=_env("HERMES_URL"))
    hormiguero_url: str = Field(_url("hormiguero"), validation_alias=_env("HORMIGUERO_URL"))
    manifestator_url: str = Field(
        _url("manifestator"), validation_alias=_env("MANIFESTATOR_URL")
    )
    shub_url: str = Field(_url("shub"), validation_alias=_env("SHUB_URL"))
    spawner_url: str = Field(_url("spawner"), validation_alias=_env("SPAWNER_URL"))

    confirm_ttl_seconds: float = Field(
        900, gt=0, validation_alias=_env("MADRE_CONFIRM_TTL_SECONDS")
    )
    chat_wait_seconds: float = Field(5.0, ge=0, validation_alias=_env("MADRE_CHAT_WAIT_SECONDS"))
    # auto: text when stdout is a terminal, JSON lines otherwise.
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", validation_alias=_env("MADRE_LOG_FORMAT"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=_env("MADRE_LOG_LEVEL")
    )

    # Outgoing calls: a parse must be quick (the fallback parser is always there); a step may
    # take longer. Connect timeouts are short because every module lives on the same network.
    parse_timeout_seconds: float = Field(
        1.5, gt=0, validation_alias=_env("MADRE_PARSE_TIMEOUT_SECONDS")
    )
    step_timeout_seconds: float = Field(
        10.0, gt=0, validation_alias=_env("MADRE_STEP_TIMEOUT_SECONDS")
    )
    connect_timeout_seconds: float = Field(
        1.0, gt=0, validation_alias=_env("MADRE_CONNECT_TIMEOUT_SECONDS")
    )
    step_retries: int = Field(2, ge=0, le=10, validation_alias=_env("MADRE_STEP_RETRIES"))
    retry_backoff_seconds: float = Field(
        0.2, ge=0, validation_alias=_env("MADRE_RETRY_BACKOFF_SECONDS")
    )
    # A module that answers 429 or 503 with Retry-After is waited for that long before the
    # retry, but never longer than this (a step must not sleep for an hour on its word).
    retry_after_max_seconds: float = Field(
        10.0, ge=0, validation_alias=_env("MADRE_RETRY_AFTER_MAX_SECONDS")
    )
    # Per module: how many times its step calls are retried (unset: MADRE_STEP_RETRIES).
    switch_retries: int | None = Field(None, ge=0, le=10,
                                       validation_alias=_env("MADRE_SWITCH_RETRIES"))
    hermes_retries: int | None = Field(None, ge=0, le=10,
                                       validation_alias=_env("MADRE_HERMES_RETRIES"))
    hormiguero_retries: int | None = Field(None, ge=0, le=10,
                                           validation_alias=_env("MADRE_HORMIGUERO_RETRIES"))
    manifestator_retries: int | None = Field(
        None, ge=0, le=10, validation_alias=_env("MADRE_MANIFESTATOR_RETRIES"))
    shub_retries: int | None = Field(None, ge=0, le=10,
                                     validation_alias=_env("MADRE_SHUB_RETRIES"))
    breaker_failures: int = Field(3, ge=1, validation_alias=_env("MADRE_BREAKER_FAILURES"))
    breaker_reset_seconds: float = Field(
        15.0, gt=0, validation_alias=_env("MADRE_BREAKER_RESET_SECONDS")
    )
    health_interval_seconds: float = Field(
        10.0, gt=0, validation_alias=_env("MADRE_HEALTH_INTERVAL_SECONDS")
    )

    # Parses that may wait on Switch at once (others wait their turn, at most a parse timeout).
    # MADRE_PARSER_ACTORS is its older name, from when each parse had its own actor.
    parses_at_once: int = Field(8, ge=1, le=64, validation_alias=AliasChoices(
        "MADRE_PARSES_AT_ONCE", "MADRE_PARSER_ACTORS"))
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, validation_alias=_env("MADRE_MAX_BODY_BYTES")
    )
    restart_max: int = Field(3, ge=0, validation_alias=_env("MADRE_RESTART_MAX"))
    restart_backoff_seconds: float = Field(
        0.1, ge=0, validation_alias=_env("MADRE_RESTART_BACKOFF_SECONDS")
    )
    max_active_plans: int = Field(64, ge=1, le=4096,
                                  validation_alias=_env("MADRE_MAX_ACTIVE_PLANS"))
    tick_seconds: float = Field(1.0, gt=0, validation_alias=_env("MADRE_TICK_SECONDS"))
    metrics_open: bool = Field(False, validation_alias=_env("MADRE_METRICS_OPEN"))
    forensic_dir: str = Field("forensic/madre/logs", validation_alias=_env("MADRE_FORENSIC_DIR"))
    events_max_lag: int = Field(10_000, ge=1, validation_alias=_env("MADRE_EVENTS_MAX_LAG"))
    restart_period_seconds: float = Field(
        60.0, gt=0, validation_alias=_env("MADRE_RESTART_PERIOD_SECONDS")
    )

    # Connections (madre.http.guard): silent, slow and too many clients.
    http_idle_seconds: float = Field(5.0, gt=0, validation_alias=_env("MADRE_HTTP_IDLE_SECONDS"))
    http_request_seconds: float = Field(
        30.0, gt=0, validation_alias=_env("MADRE_HTTP_REQUEST_SECONDS")
    )
    http_max_connections: int = Field(
        2048, ge=1, validation_alias=_env("MADRE_HTTP_MAX_CONNECTIONS")
    )
    http_max_header_bytes: int = Field(
        16 * 1024, ge=1024, validation_alias=_env("MADRE_HTTP_MAX_HEADER_BYTES")
    )
    # Several instances on one PostgreSQL: how long a running plan's owner may go without
    # renewing its lease before another instance takes the plan over (renewed every third).
    lease_seconds: float = Field(10.0, gt=0.2, le=3600, validation_alias=_env("MADRE_LEASE_SECONDS"))
    migrate: Literal["auto", "off"] = Field("auto", validation_alias=_env("MADRE_MIGRATE"))
    instance_id: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
                                    validation_alias=_env("MADRE_INSTANCE_ID"))

    switch_parse_route: str = Field(_route("switch"), validation_alias=_env("MADRE_SWITCH_ROUTE"))
    hermes_route: str = Field(_route("hermes"), validation_alias=_env("MADRE_HERMES_ROUTE"))
    hormiguero_route: str = Field(_route("hormiguero"), validation_alias=_env("MADRE_HORMIGUERO_ROUTE"))
    manifestator_route: str = Field(
        _route("manifestator"), validation_alias=_env("MADRE_MANIFESTATOR_ROUTE")
    )
    shub_route: str = Field(_route("shub"), validation_alias=_env("MADRE_SHUB_ROUTE"))
    # A TOML file that adds verbs and protected targets to the risk tables (README, "How Madre
    # judges risk"). Read here too, so a bad file stops start-up with its line named.
    policy_file: str | None = Field(None, validation_alias=_env("MADRE_POLICY_FILE"))

    # Principals and approvals (README, "Principals, roles and approvals").
    principals_file: str | None = Field(None, validation_alias=_env("MADRE_PRINCIPALS_FILE"))
    # None: off in single-token mode, high with a principals file.
    four_eyes: Literal["off", "high", "all"] | None = Field(
        None, validation_alias=_env("MADRE_FOUR_EYES"))
    high_approvals: int = Field(1, ge=1, le=16, validation_alias=_env("MADRE_HIGH_APPROVALS"))
    notify_url: str | None = Field(None, validation_alias=_env("MADRE_NOTIFY_URL"))
    notify_secret: SecretStr | None = Field(None, validation_alias=_env("MADRE_NOTIFY_SECRET"))
    notify_attempts: int = Field(6, ge=1, le=20, validation_alias=_env("MADRE_NOTIFY_ATTEMPTS"))
    notify_backoff_seconds: float = Field(
        1.0, ge=0, validation_alias=_env("MADRE_NOTIFY_BACKOFF_SECONDS"))
    notify_timeout_seconds: float = Field(
        5.0, gt=0, validation_alias=_env("MADRE_NOTIFY_TIMEOUT_SECONDS"))
    public_url: str | None = Field(None, validation_alias=_env("MADRE_PUBLIC_URL"))

    # The console (/console): the key that signs its session cookies (made anew by each
    # process when unset, so sessions end with the process and one instance does not accept
    # another's: set it, the same on every instance, behind a load balancer), and how long a
    # session lasts.
    console_secret: SecretStr | None = Field(
        None, validation_alias=_env("MADRE_CONSOLE_SECRET"))
    console_session_seconds: float = Field(
        8 * 3600, ge=60, le=7 * 24 * 3600, validation_alias=_env("MADRE_CONSOLE_SESSION_SECONDS"))

    @field_validator(
        "switch_url", "hermes_url", "hormiguero_url", "manifestator_url", "shub_url", "spawner_url"
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="before")
    @classmethod
    def _token_from_file(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        path = data.get("token_file") or data.get("VX11_TOKEN_FILE")
        if path and not (data.get("token") or data.get("VX11_TOKEN")):
            try:
                token = pathlib.Path(str(path)).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"VX11_TOKEN_FILE {path}: cannot be read ({exc.strerror})"
                                 ) from None
            if not token:
                raise ValueError(f"VX11_TOKEN_FILE {path} is empty")
            data = {**data, "token": token}
        return data

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgres://", "postgresql://")):
            raise ValueError(
                "must be sqlite:///<path> or postgresql://user@host/db, got " + repr(value)
            )
        if value.startswith("sqlite") and (value.endswith(":memory:") or value == "sqlite://"):
            raise ValueError("must name a SQLite file: every actor thread would see its own "
                             "empty :memory: database")
        return value

    @field_validator("policy_file")
    @classmethod
    def _policy_file_loads(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            load_policy_file(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("principals_file")
    @classmethod
    def _principals_file_loads(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            load_principals_file(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("notify_url", "public_url")
    @classmethod
    def _optional_http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return cls._http_url(value)

    @field_validator("console_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (python3 -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))' makes one)")
        return value

    @field_validator("notify_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            problem = check_secret(value.get_secret_value())
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _approvals_need_principals(self) -> Settings:
        # With one token there is one principal: four eyes or N approvals could never be met.
        if self.principals_file is None:
            if self.four_eyes not in (None, "off"):
                raise ValueError(f"MADRE_FOUR_EYES={self.four_eyes} needs "
                                 "MADRE_PRINCIPALS_FILE: with one token there is one "
                                 "principal, who could never approve its own plans")
            if self.high_approvals > 1:
                raise ValueError(f"MADRE_HIGH_APPROVALS={self.high_approvals} needs "
                                 "MADRE_PRINCIPALS_FILE: with one token there is one "
                                 "principal, so one approval at most")
        if self.notify_url and self.notify_secret is None:
            raise ValueError("MADRE_NOTIFY_URL needs MADRE_NOTIFY_SECRET (whsec_<base64>) "
                             "to sign what it sends")
        return self

    @property
    def four_eyes_mode(self) -> str:
        """MADRE_FOUR_EYES, or its default: off with one token, high with principals."""
        if self.four_eyes is not None:
            return self.four_eyes
        return "high" if self.principals_file else "off"

    def principals(self) -> Principals:
        """The principals file's principals, or the server token as the one `vx11`."""
        if self.principals_file:
            return load_principals_file(self.principals_file)
        return single_token(self.token.get_secret_value())

    def module_url(self, module: str) -> str:
        """Where module `module` listens (its *_URL setting)."""
        return str(getattr(self, f"{module}_url"))

    def module_retries(self, module: str) -> int:
        """How many times a step call to `module` is retried (MADRE_<MODULE>_RETRIES, else
        MADRE_STEP_RETRIES)."""
        own = getattr(self, f"{module}_retries", None)
        return self.step_retries if own is None else int(own)

    def module_route(self, module: str) -> str:
        """The route a step posts to on module `module` (switch: its parse route too)."""
        name = "switch_parse_route" if module == "switch" else f"{module}_route"
        return str(getattr(self, name))

    @property
    def binds_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check_exposure(self) -> None:
        """Refuse to serve a non-loopback address with the well-known default token."""
        if not self.binds_loopback and self.token.get_secret_value() == DEFAULT_TOKEN:
            raise ConfigError(
                f"MADRE_HOST={self.host} exposes Madre beyond this machine with the default "
                "token; set VX11_TOKEN to a secret of your own, or bind 127.0.0.1"
            )


def sqlite_file(url: str) -> pathlib.Path | None:
    """The file a `sqlite:///path` URL names (relative to the working directory), or None
    for another database (or a SQLite URL that names no file)."""
    parts = urlsplit(url)
    if parts.scheme.split("+", 1)[0] != "sqlite":
        return None
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path or path == ":memory:":
        return None
    return pathlib.Path(path).expanduser()


def database_shown(url: str) -> str:
    """`url` as a person should see it: a password masked, a relative SQLite path made
    absolute (it is relative to the working directory, which is easy to get wrong)."""
    file = sqlite_file(url)
    if file is not None:
        return f"sqlite:///{file.resolve()}"
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:****@", url)


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and `overrides`), raising ConfigError that names the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # a check of several settings: its message names them
                problems.append(str(err["msg"]).removeprefix("Value error, "))
                continue
            problems.append(f"{variable_of(str(err['loc'][0]))}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def variable_of(field: str) -> str:
    """The environment variable that sets the setting `field` (VX11_TOKEN for token)."""
    return _variable_name(field)


def _variable_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices) and alias.choices:
        return str(alias.choices[0])
    return field
