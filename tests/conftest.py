"""Shared fixtures: settings in a temporary folder, and database sessions on SQLite and PostgreSQL.

Every database test runs twice, once per backend (`db` is parametrised). Each test's
session lives inside an outer transaction that is rolled back afterwards, so tests
never see each other's rows. The PostgreSQL backend is the local server used by CI
(`IVR_TEST_POSTGRES_URL`, default postgresql://postgres@127.0.0.1:5432/test); it is
never skipped: if it is unreachable the tests fail and say so.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ivr.cli import main
from ivr.config import Settings, load_settings
from ivr.db import make_engine
from ivr.migrate import upgrade
from tests.databases import create_schema, drop_schema

if TYPE_CHECKING:
    from playwright.sync_api import Page

POSTGRES_URL = os.environ.get(
    "IVR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TEST_SCHEMA = f"ivr_test_{os.getpid()}"  # concurrent test runs never share a schema


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a slower test (still runs in CI)")
    config.addinivalue_line("markers", "postgres: needs the local PostgreSQL server")


@pytest.fixture(scope="session")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("sqlite") / "test.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    try:
        url = create_schema(POSTGRES_URL, TEST_SCHEMA)
    except Exception as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}", pytrace=False)
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()
    drop_schema(POSTGRES_URL, TEST_SCHEMA)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated engine, once per backend."""
    return request.getfixturevalue(f"{request.param}_engine")


@contextmanager
def rolled_back(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """A session factory whose every session joins one outer transaction, rolled back at the end.

    Code under test may commit freely: commits become savepoint releases.
    """
    conn = engine.connect()
    outer = conn.begin()
    try:
        yield sessionmaker(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
    finally:
        outer.rollback()
        conn.close()


@pytest.fixture
def session_factory(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions for one test, rolled back at its end (see `rolled_back`)."""
    with rolled_back(engine) as factory:
        yield factory


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """One session for a test, rolled back afterwards."""
    session = session_factory()
    yield session
    session.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings that keep every file the test makes under its own temporary folder."""
    return load_settings(
        {
            "IVR_VAR_DIR": str(tmp_path / "var"),
            "IVR_DATA_DIR": str(tmp_path / "data"),
        },
        dotenv=False,
    )


# ---- the web app (flaskr-style fixtures) -----------------------------------------------------

TEST_PASSWORD = "correct horse battery"


@pytest.fixture
def jobs(settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[object]:
    """The in-process job queue on the test's database, closed afterwards."""
    from ivr.wiring import build_in_process_jobs

    queue = build_in_process_jobs(settings, session_factory, workers=1)
    yield queue
    queue.close(timeout=5)


@pytest.fixture
def app(settings: Settings, session_factory: sessionmaker[Session], jobs: object) -> object:
    """The web app on the test's database, CSRF on (as in production)."""
    from web import create_app

    return create_app(settings, session_factory=session_factory, jobs=jobs, config={"TESTING": True})


@pytest.fixture
def client(app: object) -> object:
    """A test client of `app`."""
    return app.test_client()  # type: ignore[attr-defined]


@pytest.fixture
def make_user(session_factory: sessionmaker[Session]) -> object:
    """`make_user(role, unit_id=None, username=None)` -> (username, password): a console user.

    A manager given no unit gets a new department of their own.
    """
    import itertools

    from ivr.models import Unit, User
    from ivr.services.users import hash_password

    counter = itertools.count(1)
    hashed = hash_password(TEST_PASSWORD)

    def make(role: str, unit_id: int | None = None, username: str | None = None) -> tuple[str, str]:
        name = username or f"{role}{next(counter)}"
        with session_factory() as session:
            if role == "manager" and unit_id is None:
                unit = Unit(code=f"unit-{name}", name=f"واحد {name}", kind="department")
                session.add(unit)
                session.flush()
                unit_id = unit.id
            session.add(User(username=name, full_name=f"کاربر {name}", role=role, unit_id=unit_id, password_hash=hashed))
            session.commit()
        return name, TEST_PASSWORD

    return make


def csrf_token(client: object, url: str = "/login") -> str:
    """A valid CSRF token scraped from a page the client can open."""
    import re

    page = client.get(url).get_data(as_text=True)  # type: ignore[attr-defined]
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def login(client: object, username: str, password: str = TEST_PASSWORD) -> object:
    """Sign `client` in through the real form (CSRF token included)."""
    token = csrf_token(client, "/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})  # type: ignore[attr-defined]


REDIS_URL = os.environ.get("IVR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_queue(settings: Settings) -> Iterator[Settings]:
    """Settings pointing at the local Redis with a queue name of this test's own; its keys are deleted after.

    Never skipped: if Redis is unreachable the test fails and says so.
    """
    import uuid

    from redis import Redis
    from redis.exceptions import RedisError

    conn = Redis.from_url(REDIS_URL)
    try:
        conn.ping()
    except RedisError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc}", pytrace=False)
    name = f"ivr-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield settings.with_(redis_url=REDIS_URL, queue_name=name)
    for key in conn.scan_iter(match=f"*{name}*", count=1000):
        conn.delete(key)
    conn.close()


# ---- proof that the PostgreSQL half really ran ----------------------------------------

_postgres = {"passed": 0, "failed": 0, "version": ""}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "postgres" in report.keywords and not report.skipped:
        _postgres["passed" if report.passed else "failed"] += 1


@pytest.fixture(scope="session", autouse=True)
def _postgres_version(request: pytest.FixtureRequest) -> None:
    """Remember which server the PostgreSQL tests talked to (asked only if any will run)."""
    if any("postgres" in item.keywords for item in request.session.items):
        engine = request.getfixturevalue("postgres_engine")
        with engine.connect() as conn:
            _postgres["version"] = conn.execute(text("SELECT version()")).scalar_one().split(",")[0]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    ran = _postgres["passed"] + _postgres["failed"]
    if ran:
        terminalreporter.write_line(
            f"PostgreSQL: {_postgres['passed']} passed, {_postgres['failed']} failed against "
            f"{_postgres['version']} at {POSTGRES_URL.split('@')[-1]}"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI the PostgreSQL half must run: a run where none of it did is a failure.
    selected = any("postgres" in item.keywords for item in session.items)
    if os.environ.get("CI") and selected and _postgres["passed"] == 0 and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ---- a real browser against a real server -------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # A fake microphone (a beeping tone) so MediaRecorder can record a spoken reply.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]


class LiveServer:
    """The web app under waitress on a free port, on a database of its own (files, not a rolled-back transaction)."""

    def __init__(self, url: str, session_factory: sessionmaker[Session], settings: Settings, jobs: object) -> None:
        self.url, self.session_factory, self.settings, self.jobs = url, session_factory, settings, jobs


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """The app served by waitress in a thread, on a fresh migrated SQLite database (threads need real commits)."""
    import threading

    from ivr.db import make_sessionmaker
    from ivr.wiring import build_in_process_jobs
    from web import create_app
    from web.server import WebServer

    engine = make_engine(f"sqlite:///{tmp_path / 'live.sqlite3'}")
    upgrade(engine)
    factory = make_sessionmaker(engine)
    jobs = build_in_process_jobs(settings, factory, workers=1)
    app = create_app(settings, session_factory=factory, jobs=jobs)
    server = WebServer(settings, host="127.0.0.1", port=0, app=app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.address
    yield LiveServer(f"http://{host}:{port}", factory, settings, jobs)
    server.shutdown()
    thread.join(5)
    jobs.close(timeout=5)
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (headless, fresh profile, no network beyond localhost).

    Module scope, not session: Playwright's sync API keeps an event loop running on the main
    thread while it is open, and later tests that call asyncio.run() would fail.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():  # pragma: no cover - the message is the point
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium", pytrace=False)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object, live_server: LiveServer) -> Iterator[object]:
    """A new browser page (own cookies, microphone allowed) opening the live server."""
    context = browser.new_context(base_url=live_server.url, locale="fa-IR")  # type: ignore[attr-defined]
    context.grant_permissions(["microphone"], origin=live_server.url)
    pg = context.new_page()
    pg.set_default_timeout(15000)
    yield pg
    context.close()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder of its own for the `ivr` command, with the embedded default database."""
    monkeypatch.chdir(tmp_path)
    for key in ("IVR_DATABASE_URL", "IVR_DATA_DIR", "IVR_AGI_PORT", "IVR_VAR_DIR"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run `ivr ARGS...` as an administrator types it: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def browser_login(page: Page, live_server: LiveServer, username: str, password: str) -> None:
    """Sign in through the login form in the browser and wait for the console's home page."""
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
