"""Shared fixtures: a service context on SQLite and on PostgreSQL, with injected time.

Databases
    Every test that takes ``ctx`` runs twice: on SQLite (a file in the test's
    ``tmp_path``) and on PostgreSQL (marked ``postgres``; deselect with
    ``-m "not postgres"``).

    By default one throwaway PostgreSQL server is started per test session with the
    ``pgserver`` package (only when a PostgreSQL test is collected). To use an existing
    server instead, set ``BATON_TEST_POSTGRES_URL`` to a URL of its maintenance
    database, e.g. ``postgresql://user:secret@localhost:5432/postgres``; the user needs
    the CREATEDB privilege. Nothing else on that server is touched: the run creates
    its own databases ``t_<hex>`` and drops them at the end.

    Isolation: SQLite tests each get a new file (copied from a migrated template).
    PostgreSQL tests share one migrated database, used by one test at a time and
    emptied (every row deleted) when each test ends, which costs milliseconds where a
    new database per test costs half a second; the migration tests, which need a
    database without any schema, get a new database of their own.

Time
    Every context gets a :class:`~baton.domain.clock.ManualClock` (the ``clock``
    fixture), so nothing depends on the wall clock: tests move time explicitly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, delete, text
from sqlalchemy.engine import URL, make_url

from baton.config import Settings
from baton.domain.access import Principal, Role, operator
from baton.domain.clock import ManualClock
from baton.domain.leads import LeadCreate
from baton.domain.users import TokenCreate, UserCreate
from baton.services import users as user_service
from baton.services.context import Context, open_context
from baton.services.leads import CaptureResult, capture_lead
from baton.services.users import add_user, create_token, token_principal
from baton.store.tables import metadata

# No test may fail because a machine is slow: hypothesis deadlines are off everywhere.
settings.register_profile(
    "baton",
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("BATON_HYPOTHESIS_PROFILE", "baton"))

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""Where every test's clock starts (a Monday morning)."""

POSTGRES_URL_VARIABLE = "BATON_TEST_POSTGRES_URL"


@dataclass
class PostgresServer:
    """A PostgreSQL server with one migrated database that the tests share, one at a
    time, emptied after each test; tests that need a database without any schema get
    a database of their own."""

    base_url: URL
    admin: Engine
    shared: str = ""
    shared_engine: Engine | None = None

    def url_for(self, database: str) -> str:
        """A ``postgresql://`` URL (Baton's engine picks the psycopg driver itself)."""
        return self.base_url.set(drivername="postgresql", database=database).render_as_string(
            hide_password=False
        )

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex}"
        with self.admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
        return name

    def drop_database(self, name: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    def empty_shared(self) -> None:
        """Delete every row of the shared database (schema and migration state stay).

        Faster than a database per test by two orders of magnitude on small data; the
        lock timeout turns a connection leaked by a test into an error, not a hang."""
        assert self.shared_engine is not None
        with self.shared_engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '30s'"))
            for table in reversed(metadata.sorted_tables):
                connection.execute(delete(table))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (see the module docstring)."""
    external = os.environ.get(POSTGRES_URL_VARIABLE)
    handle: Any = None
    data_dir: str | None = None
    if external:
        base_url = make_url(external)
    else:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI).
            warnings.simplefilter("ignore")
            import pgserver

        # A short path: the Unix socket lives in it and socket paths are limited.
        data_dir = tempfile.mkdtemp(prefix="baton-pg-")
        handle = pgserver.get_server(data_dir, cleanup_mode="stop")
        base_url = make_url(handle.get_uri())
    admin = create_engine(
        base_url.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    server = PostgresServer(base_url=base_url, admin=admin)
    try:
        if handle is not None:
            # A private throwaway server: durability only costs time here.
            with admin.connect() as connection:
                for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                    connection.execute(text(f"ALTER SYSTEM SET {setting} = off"))
                connection.execute(text("SELECT pg_reload_conf()"))
        server.shared = server.create_database()
        migrated = open_context(Settings(database_url=server.url_for(server.shared), env="test"))
        server.shared_engine = migrated.engine
        yield server
    finally:
        if server.shared_engine is not None:
            server.shared_engine.dispose()
        if server.shared:
            server.drop_database(server.shared)
        admin.dispose()
        if handle is not None:
            handle.cleanup()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "baton.db"
    open_context(Settings(database_url=f"sqlite:///{path}", env="test")).engine.dispose()
    return path


def _sqlite_url(request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool) -> str:
    path = tmp_path / "baton.db"
    if migrated:
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


def _database_url(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, *, migrated: bool
) -> Iterator[str]:
    if backend == "sqlite":
        yield _sqlite_url(request, tmp_path, migrated=migrated)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    if migrated:
        try:
            yield server.url_for(server.shared)
        finally:
            server.empty_shared()
        return
    name = server.create_database()
    try:
        yield server.url_for(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh database of this test's own (already migrated on PostgreSQL)."""
    yield from _database_url(request, backend, tmp_path, migrated=True)


@pytest.fixture
def empty_database_url(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> Iterator[str]:
    """URL of a fresh database with no schema at all (for the migration tests)."""
    yield from _database_url(request, backend, tmp_path, migrated=False)


def _open(url: str) -> Iterator[Context]:
    context = open_context(Settings(database_url=url, env="test"), clock=ManualClock(current=START))
    try:
        yield context
    finally:
        context.engine.dispose()


@pytest.fixture
def ctx(database_url: str) -> Iterator[Context]:
    """A migrated, empty database on each backend, with a :class:`ManualClock`."""
    yield from _open(database_url)


@pytest.fixture
def own_postgres(empty_database_url: str, backend: str) -> Iterator[Context]:
    """A migrated PostgreSQL database of this test's own, with a :class:`ManualClock`
    and autovacuum off on the tables that grow (skipped on SQLite): for a test that
    reads PostgreSQL's statistics, which the shared test database carries over from
    earlier tests (their rows, deleted, are still counted for a second) and which
    autovacuum may change meanwhile."""
    if backend != "postgresql":
        pytest.skip("planner statistics: PostgreSQL")
    for context in _open(empty_database_url):
        with context.write() as connection:
            for table in ("leads", "activities", "duplicate_checks"):
                connection.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
        yield context


@pytest.fixture
def sqlite_ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    """Like ``ctx`` but on SQLite only, for tests whose subject is not the database."""
    yield from _open(_sqlite_url(request, tmp_path, migrated=True))


@pytest.fixture
def clock(ctx: Context) -> ManualClock:
    """The manual clock of ``ctx``: advance it to make time pass."""
    assert isinstance(ctx.clock, ManualClock)
    return ctx.clock


@pytest.fixture
def capture(ctx: Context) -> Callable[..., CaptureResult]:
    """Capture a lead from keyword fields, as the API would (actor ``marketing``)."""

    def _capture(*, actor: str = "marketing", **fields: Any) -> CaptureResult:
        data = LeadCreate.model_validate(fields, context={"default_region": "US"})
        return capture_lead(ctx, data, actor=operator(actor))

    return _capture


def token_for(
    ctx: Context,
    role: str | Role = Role.ADMIN,
    *,
    email: str | None = None,
    rep_email: str | None = None,
    teams: tuple[str, ...] = (),
    scopes: tuple[str, ...] = ("admin",),
) -> str:
    """Make a user of ``role`` (a rep user for ``rep_email``, a manager of ``teams``)
    and an API token of theirs; returns the token for ``Authorization: Bearer``.

    The email defaults to the rep's for a rep user, so a rep acts under the same
    address the old ``X-Baton-Actor`` header named."""
    role = Role(role)
    email = email or rep_email or f"{role.value}.{uuid.uuid4().hex[:8]}@example.com"
    with _test_password_hashed_once():
        user, _ = add_user(
            ctx,
            UserCreate(
                email=email,
                display_name=email.split("@")[0],
                role=role,
                rep_email=rep_email,
                teams=list(teams),
            ),
            actor=operator("test"),
            password=TEST_PASSWORD,
        )
    _, secret = create_token(
        ctx,
        TokenCreate(name=f"{role.value} test token", scopes=list(scopes), user_email=user.email),
        actor=operator("test"),
    )
    return secret


TEST_PASSWORD = "correct horse battery staple"


_TEST_PASSWORD_HASHES: dict[tuple[Any, ...], str] = {}


def _test_password_hash(hasher: PasswordHasher) -> str:
    """The real argon2id hash of :data:`TEST_PASSWORD` by ``hasher``, made once per
    process and set of parameters: each costs about 0.2 CPU s on purpose (Baton's
    defaults), and hundreds of tests make a user through :func:`token_for`. A sign-in
    still verifies it for real; only the salt is shared between test users."""
    key = tuple(
        getattr(hasher, name)
        for name in ("type", "time_cost", "memory_cost", "parallelism", "hash_len", "salt_len")
    )
    if key not in _TEST_PASSWORD_HASHES:
        _TEST_PASSWORD_HASHES[key] = hasher.hash(TEST_PASSWORD)
    return _TEST_PASSWORD_HASHES[key]


@contextmanager
def _test_password_hashed_once() -> Iterator[None]:
    """While a test user is added, the hasher hands out :func:`_test_password_hash` for
    :data:`TEST_PASSWORD` (any other secret, e.g. a server thread's, is hashed as ever;
    a test's own hasher class is left alone)."""
    real = user_service._hasher
    if type(real) is not PasswordHasher:
        yield
        return

    class Once(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            if password == TEST_PASSWORD and salt is None:
                return _test_password_hash(real)
            return real.hash(password, salt=salt)

    user_service._hasher = Once(
        time_cost=real.time_cost,
        memory_cost=real.memory_cost,
        parallelism=real.parallelism,
        hash_len=real.hash_len,
        salt_len=real.salt_len,
        type=real.type,
    )
    try:
        yield
    finally:
        user_service._hasher = real


def principal_for(ctx: Context, role: str | Role = Role.ADMIN, **kwargs: Any) -> Principal:
    """A real principal (a user with a token) for calling use cases directly."""
    principal = token_principal(ctx, token_for(ctx, role, **kwargs))
    assert principal is not None
    return principal


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
