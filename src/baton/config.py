"""One typed settings object, read from ``BATON_*`` environment variables (or ``.env``).

Local development needs no configuration at all: an SQLite file in the current folder.
Outside development (``BATON_ENV=production``) insecure defaults are refused at start.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from baton.domain.egress import EgressPolicy
from baton.domain.limits import DEFAULT_JSON_LIMITS, JsonLimits

INSECURE_SECRET = "change-me-insecure-development-secret"  # noqa: S105


class Settings(BaseSettings):
    """Every setting Baton reads; each is documented in the README (a test checks)."""

    model_config = SettingsConfigDict(
        env_prefix="BATON_",
        env_file=".env",
        extra="ignore",
        # A refused setting must not echo the values (the database URL holds a password).
        hide_input_in_errors=True,
    )

    env: Literal["development", "test", "production"] = Field(
        "development", description="Deployment kind; production refuses insecure defaults."
    )
    database_url: str = Field(
        "sqlite:///baton.db",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user:pw@host/db.",
    )
    sqlite_write_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="SQLite: seconds a write waits for its turn (writers take turns, first "
        "come first served) before it gives up with 503 and nothing saved.",
    )
    group_commit: Literal["auto", "off", "on"] = Field(
        "auto",
        description="on: captures arriving together in one process are committed together, "
        "in one transaction (one commit for many; a failing one fails alone: the group is "
        "then run again with a savepoint each; the captures of new people in a group are "
        "written with one statement per step for all of them, on PostgreSQL from three in "
        "a row). auto (the default): on, with "
        "one group at a time on SQLite (one writer) and two at once on PostgreSQL (each "
        "group a transaction of its own); off: one transaction per capture.",
    )
    import_chunk_rows: int = Field(
        4000,
        ge=1,
        le=1_000_000,
        description="Most rows a CSV import writes per transaction (each chunk is sized "
        "to about 0.2 s of writing), so other writers get turns during a large import.",
    )
    import_jobs: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes for a large lead import (20,000 rows or more): with N > 1, "
        "N - 1 workers validate the rows while the importing process writes those "
        "validated; the same result with any number. More than 1 pays only with an idle "
        "core: on a busy 2-core machine it is slower.",
    )
    default_phone_region: str = Field(
        "US", min_length=2, max_length=2, description="Region for numbers without +code."
    )
    host: str = Field("127.0.0.1", description="Address `baton serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `baton serve` listens on.")
    secret_key: str = Field(
        INSECURE_SECRET,
        description="Signs session cookies and nurture email's open, click and unsubscribe "
        "links (webhooks are signed with each endpoint's own secret); must be set in "
        "production.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level of `baton serve` and `baton worker`."
    )
    timezone: str | None = Field(
        None,
        description="IANA time zone the `baton` command shows times in (e.g. Europe/Paris); "
        "unset: the machine's local zone.",
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
        "http://127.0.0.1:8000",
        description="Base URL of this Baton, used in links in email and chat messages.",
    )
    worker_poll_seconds: float = Field(
        0.2, gt=0, le=60, description="How often `baton worker` looks for due work when idle."
    )
    retrain_model_days: int = Field(
        0,
        ge=0,
        le=3650,
        description="Days after which the worker trains a draft model like the active one "
        "(when 50+ new outcomes arrived since); 0: never.",
    )
    status_behind_seconds: float = Field(
        120,
        ge=1,
        le=86400,
        description="Seconds the oldest due item of a worker queue may wait before "
        "`baton status` and the worker call that queue behind (nurture's send rate and the "
        "duplicate lane's wait between batches are allowed on top).",
    )
    outbox_lease_seconds: float = Field(
        120,
        ge=10,
        le=3600,
        description="Seconds a worker holds the email and webhooks it claimed; renewed before "
        "each send, and at least 8 SMTP timeouts and 4 webhook timeouts (one send must fit).",
    )
    outbox_claim_size: int = Field(
        50,
        ge=1,
        le=1000,
        description="Most messages a worker claims at once per channel (fewer when sends are "
        "slow: what it can send in half the lease).",
    )
    outbox_pause_seconds: float = Field(
        30,
        gt=0,
        le=3600,
        description="Seconds a worker stops sending to a mail server or webhook endpoint it "
        "could not reach (doubling while it stays down, up to 10 minutes).",
    )
    webhook_internal_allowlist: str = Field(
        "",
        description="Internal addresses, networks (CIDR) or host names webhooks may reach, "
        "comma-separated; by default only public addresses are.",
    )
    session_hours: float = Field(12, gt=0, le=24 * 90, description="Hours a sign-in session lasts.")
    one_time_password_days: float = Field(
        7,
        gt=0,
        le=90,
        description="Days a one-time password (from `baton user add` or a reset) works before "
        "an admin must give a new one.",
    )
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
    intake_rate_per_address: int = Field(
        20,
        ge=1,
        le=100_000,
        description="Requests a minute one client address may make with one browser intake "
        "key (a key with origins; under the key's own rate), so that one sender cannot use "
        "up a website's key.",
    )
    max_body_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Largest request body in bytes, announced or streamed (chunked); larger "
        "ones get 413 before they are read. A 10,000-event batch is a few MiB.",
    )
    json_max_bytes: int = Field(
        DEFAULT_JSON_LIMITS.max_bytes,
        ge=256,
        description="Largest lead `attributes` or activity `properties` object, in bytes of "
        "compact JSON; larger ones get 422.",
    )
    json_max_keys: int = Field(
        DEFAULT_JSON_LIMITS.max_keys,
        ge=1,
        description="Most keys in one `attributes` or `properties` object, counted at every "
        "level of nesting.",
    )
    json_max_depth: int = Field(
        DEFAULT_JSON_LIMITS.max_depth,
        ge=1,
        le=100,
        description="Deepest nesting of objects and lists in `attributes` or `properties`.",
    )
    json_max_string: int = Field(
        DEFAULT_JSON_LIMITS.max_string,
        ge=1,
        description="Longest text value or key in `attributes` or `properties`, in characters.",
    )

    @property
    def json_limits(self) -> JsonLimits:
        """The bounds for free-form JSON (pass as validation context, see
        :mod:`baton.domain.limits`)."""
        return JsonLimits(
            max_bytes=self.json_max_bytes,
            max_keys=self.json_max_keys,
            max_depth=self.json_max_depth,
            max_string=self.json_max_string,
        )

    @model_validator(mode="after")
    def _one_smtp_tls_mode(self) -> Settings:
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("set BATON_SMTP_SSL or BATON_SMTP_STARTTLS, not both")
        return self

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Settings:
        # A send must end before the lease it was fenced under can expire.
        floor = max(8 * self.smtp_timeout_seconds, 4 * self.webhook_timeout_seconds)
        if self.outbox_lease_seconds < floor:
            raise ValueError(
                f"BATON_OUTBOX_LEASE_SECONDS must be at least {floor:g} (8 SMTP timeouts and "
                "4 webhook timeouts) so that one send always ends within its lease"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if not value:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Europe/Paris"
            ) from None
        return value

    @field_validator("webhook_internal_allowlist")
    @classmethod
    def _allowlist(cls, value: str) -> str:
        EgressPolicy.parse(value)  # raises ValueError naming the bad entry
        return value

    @model_validator(mode="after")
    def _driver_installed(self) -> Settings:
        # The PostgreSQL driver is an extra (SQLite needs nothing): say how to get it
        # rather than let the first connection fail with "No module named 'psycopg'".
        url = self.database_url
        if url.startswith(("postgresql://", "postgresql+psycopg://")):
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise ValueError(
                    "BATON_DATABASE_URL points at PostgreSQL but its driver is not "
                    "installed: pip install 'baton-handoff[postgres]'"
                ) from None
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
        elif self.env == "development" and self.secret_key == INSECURE_SECRET:
            host = (urlsplit(self.public_url).hostname or "").lower()
            local = host in ("localhost", "::1") or host.endswith(".localhost")
            if not local and not host.startswith("127."):
                # Nurture email carries unsubscribe links signed with this key to the
                # world: with the published default anyone could unsubscribe every lead.
                raise ValueError(
                    f"BATON_SECRET_KEY must be set to a random value of 32+ characters: "
                    f"BATON_PUBLIC_URL ({host}) is not a local address, and email links "
                    "signed with the built-in development key can be forged by anyone"
                )
        return self
