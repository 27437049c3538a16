"""One typed settings object, read from ``BATON_*`` environment variables (or ``.env``).

Local development needs no configuration at all: an SQLite file in the current folder.
Outside development (``BATON_ENV=production``) insecure defaults are refused at start.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

INSECURE_SECRET = "change-me-insecure-development-secret"  # noqa: S105


class Settings(BaseSettings):
    """Every setting Baton reads; each is documented in the README (a test checks)."""

    model_config = SettingsConfigDict(env_prefix="BATON_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = Field(
        "development", description="Deployment kind; production refuses insecure defaults."
    )
    database_url: str = Field(
        "sqlite:///baton.db",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user:pw@host/db.",
    )
    default_phone_region: str = Field(
        "US", min_length=2, max_length=2, description="Region for numbers without +code."
    )
    host: str = Field("127.0.0.1", description="Address `baton serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `baton serve` listens on.")
    secret_key: str = Field(
        INSECURE_SECRET, description="Signs webhooks and sessions; must be set in production."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Server log level."
    )
    smtp_host: str = Field("localhost", description="SMTP server that sends notification email.")
    smtp_port: int = Field(25, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_from: str = Field("baton@localhost", description="Sender address of notification email.")
    smtp_username: str | None = Field(None, description="SMTP login user; unset: no login.")
    smtp_password: SecretStr | None = Field(None, description="SMTP login password.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_ssl: bool = Field(False, description="Connect to the SMTP server over TLS (port 465).")
    smtp_timeout_seconds: float = Field(
        10.0, gt=0, description="Seconds before an SMTP connection or command gives up."
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="Seconds before a webhook delivery attempt gives up."
    )
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL of this Baton, used in links in email."
    )
    worker_poll_seconds: float = Field(
        0.2, gt=0, le=60, description="How often `baton worker` looks for due work when idle."
    )
    session_hours: float = Field(12, gt=0, le=24 * 90, description="Hours a sign-in session lasts.")
    login_window_minutes: float = Field(
        15, gt=0, le=24 * 60, description="Window in which failed sign-ins are counted."
    )
    login_max_failures_per_account: int = Field(
        10, ge=1, description="Failed sign-ins to one account in the window before a 429."
    )
    login_max_failures_per_address: int = Field(
        50, ge=1, description="Failed sign-ins from one address in the window before a 429."
    )
    token_cache_seconds: float = Field(
        4,
        ge=0,
        le=5,
        description="Seconds a verified API token or intake key is trusted without a database "
        "read; a revocation takes effect everywhere within this time.",
    )

    @model_validator(mode="after")
    def _one_smtp_tls_mode(self) -> Settings:
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("set BATON_SMTP_SSL or BATON_SMTP_STARTTLS, not both")
        return self

    @model_validator(mode="after")
    def _refuse_insecure(self) -> Settings:
        if self.env == "production":
            if self.secret_key == INSECURE_SECRET or len(self.secret_key) < 32:
                raise ValueError(
                    "BATON_SECRET_KEY must be set to a random value of 32+ characters in production"
                )
            if self.database_url.startswith("sqlite") and ":memory:" in self.database_url:
                raise ValueError("an in-memory database loses every lead on restart")
        return self
