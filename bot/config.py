"""Settings from environment variables or `.env` (pydantic-settings)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pymongo.uri_parser import parse_uri

from bot.guard.netguard import parse_allow_entry

DEFAULT_MONGODB_URI = "mongodb://127.0.0.1:27017/linksnap"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def _split_list(value: object) -> object:
    """Accept `a,b c` from the environment as well as a real list."""
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    if isinstance(value, int):
        return [value]
    return value


class Settings(BaseSettings):
    """Everything the bot reads from its environment."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    telegram_bot_token: SecretStr
    telegram_api_url: AnyHttpUrl = AnyHttpUrl("https://api.telegram.org")
    mongodb_uri: SecretStr = SecretStr(DEFAULT_MONGODB_URI)
    openai_api_key: SecretStr | None = None
    openai_base_url: AnyHttpUrl | None = None
    openai_model: str = "gpt-4o-mini"
    chromium_path: str | None = None
    browser_ws_endpoint: str | None = None
    capture_concurrency: int = Field(2, ge=1, le=16)
    capture_timeout: float = Field(30, gt=0, le=300)
    capture_allow_private: Annotated[list[str], NoDecode] = []
    # egress / capture guard: the proxy every capture goes through (bot/guard/egress.py)
    egress_proxy_listen: str = "127.0.0.1:0"
    egress_proxy_url: AnyHttpUrl | None = None
    egress_max_connections: int = Field(256, ge=8, le=10_000)
    egress_max_connections_per_capture: int = Field(64, ge=4, le=1_000)
    egress_idle_timeout: float = Field(20, gt=0, le=600)
    capture_max_mb: float = Field(64, gt=0, le=4_096)
    allowed_users: Annotated[list[int], NoDecode] = []
    webhook_url: AnyHttpUrl | None = None
    port: int = Field(8080, ge=1, le=65535)
    webhook_secret: SecretStr | None = None
    log_level: str = "INFO"
    user_rate_per_minute: int = Field(20, ge=1)
    summary_first_token_timeout: float = Field(20, gt=0)
    summary_stall_timeout: float = Field(20, gt=0)
    # delivery: how the bot paces Telegram (see bot/chat/outbound.py) and stops
    telegram_private_burst: int = Field(3, ge=1, le=30)
    telegram_private_per_second: float = Field(1.0, gt=0, le=30)
    telegram_group_per_minute: float = Field(20, gt=0, le=600)
    telegram_overall_per_second: float = Field(30, gt=0, le=1000)
    shutdown_grace: float = Field(20, ge=0, le=600)
    database_patience: float = Field(600, gt=0, le=86_400)
    summary_retry_delay: float = Field(300, gt=0, le=86_400)
    # where the derived /find and /tags index (SQLite, rebuilt from MongoDB) is kept
    search_index_dir: str = "data/index"
    # what answers /find, /tags and exports: the SQLite index (FerretDB), MongoDB's own
    # indexes (MongoDB), or chosen from the server's buildInfo (storage/index/listing.py)
    listing: Literal["auto", "index", "native"] = "auto"
    # seconds between passes that find what reached the database behind the index's back
    index_heal_every: float = Field(45, ge=1, le=86_400)
    # capture fidelity: budget, consent banners, full page / PDF / archive (bot/browser/capture.py)
    capture_budget: float = Field(8, gt=0, le=120)
    capture_consent: bool = True
    consent_rules_dir: str | None = None
    consent_wait: float = Field(3, ge=0, le=30)
    full_page_max_height: int = Field(30_000, ge=800, le=60_000)
    archive_max_mb: float = Field(45, gt=0, le=2_000)
    document_max_mb: float = Field(20, gt=0, le=2_000)
    # one blank page kept ready for the next capture: ~150 ms less per link (bot/browser/spare.py)
    capture_spare_page: bool = True
    # seconds without a capture after which the browser closes (0: never); see bot/browser/idle.py
    browser_idle_close: float = Field(300, ge=0, le=86_400)
    # link-rot: every saved link is checked at least this often (seconds; bot/library/rotround.py)
    linkrot_max_age: float = Field(7 * 86400, ge=3600, le=365 * 86400)
    # seconds between digests telling each user which saved pages went offline
    digest_interval: float = Field(7 * 86400, ge=3600, le=365 * 86400)
    # the platform's pages (bot/web/): where the front serves them, and the URL users open
    web_listen: str = "127.0.0.1:8080"
    webapp_url: AnyHttpUrl | None = None

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        bot_id, _, secret = token.partition(":")
        if not (bot_id.isdigit() and secret):
            raise ValueError("expected the form 123456:ABC... given by @BotFather")
        return SecretStr(token)

    @field_validator("mongodb_uri")
    @classmethod
    def _mongodb_uri(cls, value: SecretStr) -> SecretStr:
        uri = value.get_secret_value()
        try:
            parsed = parse_uri(uri, connect_timeout=1)
        except Exception as exc:  # pymongo raises several types for a bad URI
            raise ValueError(f"not a MongoDB URI ({type(exc).__name__})") from None
        if not parsed.get("database"):
            raise ValueError("the URI needs a database name in its path, e.g. .../linksnap")
        return value

    @field_validator("capture_allow_private", "allowed_users", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("capture_allow_private")
    @classmethod
    def _allow_entries(cls, value: list[str]) -> list[str]:
        # The guard's own parser, so what passes here is exactly what the guard applies.
        for entry in value:
            parse_allow_entry(entry)
        return value

    @field_validator("webapp_url")
    @classmethod
    def _webapp_url(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        # Telegram opens Mini Apps only over https; plain http is for this machine alone.
        if value is not None and value.scheme != "https" and value.host not in LOCAL_HOSTS:
            raise ValueError("use https (http only for 127.0.0.1 or localhost, for local use)")
        return value

    @field_validator("egress_proxy_listen", "web_listen")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        host, port = split_listen(value)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError("expected IP:port, e.g. 127.0.0.1:0 or 0.0.0.0:8899") from None
        if not 0 <= port < 65536:
            raise ValueError("port out of range")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("one of DEBUG, INFO, WARNING, ERROR")
        return level

    @property
    def token(self) -> str:
        return self.telegram_bot_token.get_secret_value()

    @property
    def api_root(self) -> str:
        return str(self.telegram_api_url).rstrip("/")

    @property
    def summaries_enabled(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())


def split_listen(value: str) -> tuple[str, int]:
    """`127.0.0.1:0`, `[::1]:8899` → (host, port); ValueError if it is not that shape."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("expected IP:port, e.g. 127.0.0.1:0 or 0.0.0.0:8899")
    return host.strip("[]"), int(port)


def describe_error(exc: Exception) -> str:
    """One line naming the first bad variable, for a start-up failure."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError) and exc.errors():
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "configuration"
        if err["type"] == "missing":
            return f"configuration error: {name} is required but not set"
        return f"configuration error: {name} is invalid: {err['msg']}"
    return f"configuration error: {exc}"
