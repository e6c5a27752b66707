"""The `ivr` command: database, demo data, case import, users, prompts, servers.

Expected errors print one clear line (no traceback) and exit with status 1.

Each command imports what it needs when it runs (the blocks marked `# per command`), on purpose:
this module is also imported by every FastAGI worker process (`spawn` re-imports the `ivr`
script), and importing the whole program up front costs 0.15 s → 1.3 s and 16 → 80 MB per
process (`/usr/bin/time python -c "import ivr.cli"` versus `"import web"`, December 2026).
The program itself is assembled in `ivr.wiring` (jobs, adapters) and `web.create_app`.
"""
from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from ivr.config import ConfigError, Settings, load_settings
from ivr.followthrough.scheduler import PeriodicScheduler
from ivr.vocabulary import ROLES

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("ivr")


def _expected_errors() -> tuple[type[BaseException], ...]:
    # per command: importing the program up front costs start-up time (module docstring)
    from sqlalchemy.exc import OperationalError

    from ivr.flow.definition import FlowError
    from ivr.infra.spool import SpoolError
    from ivr.jobqueue import JobError
    from ivr.prompts import CatalogueError, PromptBuildError
    from ivr.services.cases import CaseImportError
    from ivr.services.messages import MessageError
    from ivr.services.users import UserError

    return (
        ConfigError, FlowError, CatalogueError, PromptBuildError, CaseImportError, UserError, JobError,
        OperationalError, OSError, SpoolError, MessageError,
    )


def friendly(fn: F) -> F:
    """Turn expected errors into one line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.exceptions.Exit:
            raise
        except _expected_errors() as exc:
            # per command: importing the program up front costs start-up time (module docstring)
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                msg = f"database unreachable: {str(exc.orig).strip().splitlines()[0]}"
            else:
                msg = str(exc)
            click.echo(f"ivr: error: {msg}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.obj.get("settings") if ctx.obj else None
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            click.echo(f"ivr: error: {exc}", err=True)
            sys.exit(1)
        ctx.obj["settings"] = settings
    return settings


def _engine(settings: Settings) -> Any:
    # per command: importing the program up front costs start-up time (module docstring)
    from ivr.db import make_engine

    return make_engine(settings.database_url)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log every call step.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Citizen-contact lines 137 and 1888: IVR and call-centre backend."""
    ctx.ensure_object(dict)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# ---- database ---------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
@friendly
def db_upgrade(ctx: click.Context) -> None:
    """Bring the database to the current schema."""
    # per command: importing the program up front costs start-up time (module docstring)
    from ivr.migrate import current, upgrade

    settings = _settings(ctx)
    engine = _engine(settings)
    before = current(engine)
    upgrade(engine)
    after = current(engine)
    where = settings.database_url.split("@")[-1]
    click.echo(f"database {where}: {before or 'empty'} → {after}")


# ---- demo and data ----------------------------------------------------------------


@main.command()
@click.option("--calls", default=2000, show_default=True, help="How many demo calls.")
@click.option("--voices/--no-voices", default=True, show_default=True,
              help="Speak the waiting voice messages and the newest replies with espeak-ng.")
@click.pass_context
@friendly
def demo(ctx: click.Context, calls: int, voices: bool) -> None:
    """Load a demo city (Tehran's 22 districts, units, users, cases, calls, messages)."""
    # per command: importing the program up front costs start-up time (module docstring)
    from tqdm import tqdm

    from ivr.db import make_sessionmaker, transaction
    from ivr.demo import DemoAlreadyLoaded, espeak_voice, load_demo
    from ivr.migrate import upgrade

    settings = _settings(ctx)
    engine = _engine(settings)
    upgrade(engine)
    try:
        with tqdm(desc="demo city", unit="row", file=sys.stderr, leave=False, disable=None) as bar:
            with transaction(make_sessionmaker(engine)) as session:
                voice = espeak_voice(settings.recordings_dir, settings.incoming_dir) if voices else None
                report = load_demo(session, calls=calls, progress=bar.update, voice=voice, tz=settings.timezone)
    except DemoAlreadyLoaded as exc:
        click.echo(f"ivr: {exc}")
        return
    for table, n in report.counts.items():
        click.echo(f"  {table:<14} {n:>7}")
    click.echo("\nDemo logins (shown once; change them before real use):")
    for username, role, password in report.logins:
        click.echo(f"  {role:<10} {username:<22} {password}")


@main.group()
def cases() -> None:
    """Urban-planning and Article 100 cases."""


@cases.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
@friendly
def cases_import(ctx: click.Context, csv_file: Path) -> None:
    """Import cases from the urban-planning system's CSV feed (UTF-8)."""
    # per command: importing the program up front costs start-up time (module docstring)
    from tqdm import tqdm

    from ivr.db import make_sessionmaker, transaction
    from ivr.services.cases import import_cases

    settings = _settings(ctx)
    factory = make_sessionmaker(_engine(settings))
    with csv_file.open("r", encoding="utf-8-sig", newline="", errors="strict") as f, tqdm(
        desc="cases", unit="row", file=sys.stderr, disable=None
    ) as bar:
        with transaction(factory) as session:
            report = import_cases(session, f, progress=lambda n: bar.update(n - bar.n), districts=settings.districts)
    for line_no, reason in report.errors:
        click.echo(f"{csv_file}:{line_no}: {reason}", err=True)
    click.echo(f"{report.imported} case(s) imported, {len(report.errors)} bad row(s)")
    if report.errors:
        sys.exit(1)


@main.group()
def users() -> None:
    """Console users."""


@users.command("add")
@click.argument("username")
@click.option("--name", "full_name", required=True, help="Full name as shown in the console.")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--unit", default=None, help="Unit code (required for managers).")
@click.password_option(help="Asked for when not given.")
@click.pass_context
@friendly
def users_add(ctx: click.Context, username: str, full_name: str, role: str, unit: str | None, password: str) -> None:
    """Add a console user."""
    # per command: importing the program up front costs start-up time (module docstring)
    from ivr.db import make_sessionmaker, transaction
    from ivr.services.users import add_user

    settings = _settings(ctx)
    with transaction(make_sessionmaker(_engine(settings))) as session:
        user = add_user(session, username, full_name, role, unit, password)
        click.echo(f"user {user.username} ({user.role}) added")


# ---- prompts and flow -------------------------------------------------------------


@main.group()
def prompts() -> None:
    """The Persian prompt catalogue and its audio."""


@prompts.command("build")
@click.option("--force", is_flag=True, help="Regenerate every generated prompt.")
@click.pass_context
@friendly
def prompts_build(ctx: click.Context, force: bool) -> None:
    """Generate recordings/fa/*.wav from the catalogue (espeak-ng + sox); studio files are kept."""
    # per command: importing the program up front costs start-up time (module docstring)
    from tqdm import tqdm

    from ivr.prompts import build_prompts

    settings = _settings(ctx)
    catalogue = settings.prompts_dir / "catalogue.yaml"
    out = settings.prompts_dir / settings.prompt_language
    with tqdm(desc="prompts", unit="file", file=sys.stderr, leave=False, disable=None) as bar:
        report = build_prompts(catalogue, out, force=force, progress=lambda *_: bar.update(1))
    click.echo(
        f"prompts in {out}: {len(report.generated)} generated, {len(report.skipped)} up to date, "
        f"{len(report.kept_studio)} studio recordings kept"
    )
    if report.orphans:
        click.echo(f"not in the catalogue (left alone): {', '.join(sorted(report.orphans))}")


@prompts.command("script")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder to write recording-script.csv and recording-script.html into.")
@click.pass_context
@friendly
def prompts_script(ctx: click.Context, out_dir: Path) -> None:
    """Write the recording script: every prompt with its text, a hint and an example sentence."""
    # per command: importing the program up front costs start-up time (module docstring)
    from ivr.flow.definition import load_flow
    from ivr.prompts import load_catalogue
    from ivr.speech.script import recording_script, write_csv, write_html

    settings = _settings(ctx)
    # prompt → node → (lines, what the node plays); a node shared by both lines is listed once.
    nodes: dict[str, dict[str, tuple[list[str], tuple[Any, ...]]]] = {}
    for line, line_flow in sorted(load_flow().lines.items()):
        for node in line_flow.nodes.values():
            played = (*node.intro, *node.prompts)
            for name in {p for p in played if isinstance(p, str)}:
                nodes.setdefault(name, {}).setdefault(node.name, ([], played))[0].append(line)
    uses = {
        name: [(f"{'+'.join(lines)}/{node}", played) for node, (lines, played) in by_node.items()]
        for name, by_node in nodes.items()
    }
    lines = recording_script(
        load_catalogue(settings.prompts_dir / "catalogue.yaml"), uses, settings.code_groups or (3, 3, 3)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = out_dir / "recording-script.csv", out_dir / "recording-script.html"
    # utf-8-sig: the BOM makes spreadsheet tools read the Persian as UTF-8.
    with csv_path.open("w", encoding="utf-8-sig", newline="") as f:
        write_csv(lines, f)
    with html_path.open("w", encoding="utf-8") as f:
        write_html(lines, f)
    click.echo(f"{len(lines)} prompts: {csv_path}, {html_path}")


@main.group()
def flow() -> None:
    """The call-flow definition."""


@flow.command("check")
@click.option("--menus", "menus", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A menus file to check before it is deployed (default: the packaged one).")
@click.pass_context
@friendly
def flow_check(ctx: click.Context, menus: Path | None) -> None:
    """Check the menus: targets, keys, prompts, actions and results, kinds, and the database's topics."""
    # per command: importing the program up front costs start-up time (module docstring)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from ivr.db import make_sessionmaker, transaction
    from ivr.flow.check import check_flow
    from ivr.flow.definition import FlowError, load_flow
    from ivr.models import LINES, MESSAGE_KINDS
    from ivr.prompts import load_catalogue
    from ivr.runner import CallActions
    from ivr.services.admin import list_topics

    settings = _settings(ctx)
    try:
        definition = load_flow(menus)
    except FlowError as exc:
        _fail_lines(str(exc).splitlines())
    topics: dict[str, str] | None = None
    url = make_url(settings.database_url)
    try:
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
            raise FileNotFoundError(url.database)  # connecting would create an empty database
        with transaction(make_sessionmaker(_engine(settings)), readonly=True) as s:
            topics = {t.code: t.line_code for t in list_topics(s)}
    except (SQLAlchemyError, FileNotFoundError) as exc:
        click.echo(f"ivr: topics not checked: database not readable ({type(exc).__name__})", err=True)
    if topics == {}:
        click.echo("ivr: topics not checked: the database has no topics", err=True)
    implemented = {name[3:] for name in dir(CallActions) if name.startswith("do_")}
    problems = check_flow(
        definition,
        prompts=set(load_catalogue(settings.prompts_dir / "catalogue.yaml")),
        implemented=implemented,
        kinds=MESSAGE_KINDS,
        topics=topics or None,
        lines=LINES,
    )
    if problems:
        _fail_lines(problems)
    click.echo(f"flow ok: lines {', '.join(sorted(definition.lines))}, {len(definition.static_prompts())} prompts, "
               f"{len(definition.actions_declared)} actions" + ("" if topics else " (topics not checked)"))


def _fail_lines(problems: list[str]) -> NoReturn:
    """One line per problem on stderr, then exit status 1."""
    for problem in problems:
        click.echo(f"ivr: error: {problem}", err=True)
    sys.exit(1)


# ---- spool and servers ------------------------------------------------------------


@main.group()
def calls() -> None:
    """Calls: the test calls made from the console's test phone (/phone/)."""


@calls.command("purge-test")
@click.pass_context
@friendly
def calls_purge_test(ctx: click.Context) -> None:
    """Delete every test call with its messages, replies, feedback and stored audio."""
    from ivr.db import make_sessionmaker, transaction
    from ivr.infra.storage import AudioError, AudioStore
    from ivr.services.test_calls import purge_test_calls

    settings = _settings(ctx)
    with transaction(make_sessionmaker(_engine(settings))) as session:
        purged = purge_test_calls(session)
    store = AudioStore(settings.recordings_dir)
    for rel in purged.audio:  # after the commit: a failed purge never loses audio still in use
        try:
            store.path_of(rel).unlink(missing_ok=True)
        except (AudioError, OSError) as exc:
            click.echo(f"could not remove {rel}: {exc}", err=True)
    counts = ", ".join(f"{n} {table}" for table, n in sorted(purged.rows.items()) if n) or "nothing"
    click.echo(f"test calls purged: {counts}")


@main.group()
def spool() -> None:
    """Calls and messages waiting on disk (database down, or a message that could not be registered)."""


@spool.command("replay")
@click.pass_context
@friendly
def spool_replay(ctx: click.Context) -> None:
    """Ingest spooled calls and messages into the database."""
    # per command: importing the program up front costs start-up time (module docstring)
    from ivr.db import make_sessionmaker
    from ivr.services.spooled import open_spool

    settings = _settings(ctx)
    report = open_spool(settings).replay(make_sessionmaker(_engine(settings)))
    click.echo(f"{report.ingested} ingested, {report.waiting} waiting, {len(report.rejected)} rejected")
    if report.waiting or report.rejected:
        sys.exit(1)


@spool.command("list")
@click.pass_context
@friendly
def spool_list(ctx: click.Context) -> None:
    """Spooled files, waiting or rejected, with the reason (tab-separated)."""
    from ivr.services.spooled import open_spool

    settings = _settings(ctx)
    entries = open_spool(settings).entries()
    for e in entries:
        click.echo("\t".join([e.id, e.state, e.line, e.channel_id, ",".join(e.kinds), ",".join(e.topics), e.reason]))
    if not entries:
        click.echo("the spool is empty")


@spool.command("register")
@click.argument("spool_id")
@click.option("--topic", default=None, help="topic code for the message(s), e.g. when the spooled one is gone")
@click.pass_context
@friendly
def spool_register(ctx: click.Context, spool_id: str, topic: str | None) -> None:
    """Register one spooled file by hand (by its id from `ivr spool list`)."""
    from ivr.db import make_sessionmaker
    from ivr.services.spooled import open_spool

    settings = _settings(ctx)
    codes = open_spool(settings).register(
        spool_id, make_sessionmaker(_engine(settings)), topic=topic
    )
    click.echo(f"registered: {', '.join(codes) or 'the call log only'}")


def _ensure_schema(settings: Settings) -> None:
    # per command: importing the program up front costs start-up time (module docstring)
    from ivr.migrate import current, upgrade

    engine = _engine(settings)
    if current(engine) is None or engine.dialect.name == "sqlite":
        upgrade(engine)


def _run_until_signal(servers: list[Any], grace: float) -> None:
    """Serve until SIGINT/SIGTERM, then shut every server down gracefully."""
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    stop.wait()
    click.echo("shutting down: finishing calls in progress…")
    for s in servers:
        s.shutdown(grace)


def _serve(
    settings: Settings,
    grace: float,
    banner: Callable[..., list[str]],
    *,
    agi: bool,
    web: bool,
    workers: int = 1,
) -> None:
    """Run the FastAGI server (spool replayed in the background) and/or the web app until a signal.

    With `workers` > 1 the FastAGI server runs in that many supervised processes.
    """
    # per command: importing the program up front costs start-up time (module docstring)
    from ivr.db import make_sessionmaker
    from ivr.wiring import build_jobs

    _ensure_schema(settings)
    servers: list[Any] = []
    urls: dict[str, str] = {}
    replayer = None
    session_factory = make_sessionmaker(_engine(settings))
    jobs = build_jobs(settings, session_factory)
    # Periodic sweeps: here for the embedded default; with Redis each `ivr worker` runs them.
    scheduler = None if settings.redis_url else PeriodicScheduler(jobs, settings.sweep_seconds)
    if scheduler is not None:
        scheduler.start()
    if agi and workers > 1:
        # per command: importing the program up front costs start-up time (module docstring)
        from ivr.drivers.agi.workers import Supervisor, WorkerStartError

        supervisor = Supervisor(settings, workers, grace=grace)
        try:
            supervisor.start()
        except WorkerStartError as exc:
            click.echo(f"ivr: error: {exc}", err=True)
            sys.exit(1)
        servers.append(supervisor)
        urls["agi"] = "agi://{}:{}".format(*supervisor.address)
    elif agi:
        # per command: importing the program up front costs start-up time (module docstring)
        from ivr.drivers.agi.handler import SpoolReplayer, build_call_handler
        from ivr.drivers.agi.server import build_agi_server
        from ivr.drivers.agi.workers import freeze_startup_objects
        from ivr.runner import build_runner

        runner = build_runner(settings)
        server = build_agi_server(settings, build_call_handler(settings, runner))
        replayer = SpoolReplayer(runner)
        replayer.start()
        servers.append(server)
        urls["agi"] = "agi://{}:{}".format(*server.address)
        freeze_startup_objects()
    if web:
        # per command: importing the program up front costs start-up time (module docstring)
        from web import create_app
        from web.server import WebServer

        web_server = WebServer(settings, app=create_app(settings, session_factory=session_factory, jobs=jobs))
        servers.append(web_server)
        urls["web"] = "http://{}:{}".format(*web_server.address)
    for line in banner(**urls):
        click.echo(line)
    try:
        _run_until_signal(servers, grace)
    finally:
        if replayer is not None:
            replayer.stop()
        if scheduler is not None:
            scheduler.stop()
        jobs.close()


WORKERS_OPTION = click.option(
    "--workers", default=None, type=click.IntRange(1, 256),
    help="FastAGI server processes sharing the port (IVR_AGI_WORKERS, default the CPU count).",
)


@main.group()
def agi() -> None:
    """The Asterisk FastAGI server."""


@agi.command("serve")
@click.option("--host", default=None, help="Address to listen on (IVR_AGI_HOST).")
@click.option("--port", default=None, type=int, help="Port (IVR_AGI_PORT, default 4573).")
@click.option("--grace", default=30.0, show_default=True, help="Seconds to let calls finish on shutdown.")
@WORKERS_OPTION
@click.pass_context
@friendly
def agi_serve(ctx: click.Context, host: str | None, port: int | None, grace: float, workers: int | None) -> None:
    """Run the FastAGI server for agi://HOST:PORT/1888 and /137."""
    settings = _settings(ctx)
    settings = settings.with_(
        agi_host=host or settings.agi_host, agi_port=settings.agi_port if port is None else port
    )
    n = workers or settings.agi_workers
    _serve(
        settings, grace, lambda agi: [f"FastAGI: {agi}/1888 and {agi}/137 ({_processes(n)})"],
        agi=True, web=False, workers=n,
    )


def _processes(n: int) -> str:
    return "1 process" if n == 1 else f"{n} worker processes"


@main.command()
@click.option("--host", default=None, help="Address to listen on (IVR_WEB_HOST).")
@click.option("--port", default=None, type=int, help="Port (IVR_WEB_PORT, default 8137).")
@click.pass_context
@friendly
def web(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the web application (waitress, a production WSGI server)."""
    settings = _settings(ctx)
    settings = settings.with_(web_host=host or settings.web_host, web_port=port or settings.web_port)
    _serve(settings, 5.0, lambda web: [f"web: {web}/  (health: {web}/healthz)"], agi=False, web=True)


@main.command()
@click.option("--grace", default=30.0, show_default=True, help="Seconds to let calls finish on shutdown.")
@WORKERS_OPTION
@click.pass_context
@friendly
def serve(ctx: click.Context, grace: float, workers: int | None) -> None:
    """Run everything that exists (FastAGI server, web app) and say where each part is."""
    settings = _settings(ctx)
    n = workers or settings.agi_workers
    _serve(
        settings,
        grace,
        lambda agi, web: [
            "ivr serve: the citizen-contact lines are up",
            f"  database      {settings.database_url.split('@')[-1]}",
            f"  audio         {settings.data_dir}",
            f"  FastAGI 1888  {agi}/1888",
            f"  FastAGI 137   {agi}/137 ({_processes(n)})",
            f"  console       {web}/  (sign in with a demo login)",
            f"  Twilio        {web}/twilio/voice/1888, /137, /sms (set IVR_PUBLIC_BASE_URL)",
            f"  web health    {web}/healthz",
            f"  prompts       {settings.prompts_dir / settings.prompt_language}",
            "  Asterisk: see dialplan/README.md. Stop with Ctrl-C.",
        ],
        agi=True,
        web=True,
        workers=n,
    )


# ---- background jobs --------------------------------------------------------------


@main.command()
@click.option("--burst", is_flag=True, help="Run the queued jobs, then stop.")
@click.pass_context
@friendly
def worker(ctx: click.Context, burst: bool) -> None:
    """Run background jobs from Redis (IVR_REDIS_URL) until stopped."""
    # per command: importing the program up front costs start-up time (module docstring)
    from ivr.db import make_sessionmaker
    from ivr.jobqueue import JobError
    from ivr.wiring import build_redis_jobs

    settings = _settings(ctx)
    if not settings.redis_url:
        raise JobError("IVR_REDIS_URL is not set: jobs run inside `ivr serve` / `ivr web`; a worker needs Redis")
    _ensure_schema(settings)
    jobs = build_redis_jobs(settings, make_sessionmaker(_engine(settings)))
    click.echo(f"worker: queue {settings.queue_name!r} on {settings.redis_url.split('@')[-1]}")
    scheduler = None if burst else PeriodicScheduler(jobs, settings.sweep_seconds)
    if scheduler is not None:
        scheduler.start()  # enqueues the periodic sweep; one worker per time slot does (SET NX)
    try:
        jobs.work(burst=burst)
    finally:
        if scheduler is not None:
            scheduler.stop()


@main.group()
def jobs() -> None:
    """Background jobs that kept failing."""


def _jobs(ctx: click.Context) -> Any:
    # per command: importing the program up front costs start-up time (module docstring)
    from ivr.db import make_sessionmaker
    from ivr.wiring import build_redis_jobs

    settings = _settings(ctx)
    factory = make_sessionmaker(_engine(settings))
    if settings.redis_url:
        return build_redis_jobs(settings, factory)
    return _KeptJobs(settings, factory)


class _KeptJobs:
    """The in-process queue's kept failures, read and retried without starting a thread pool."""

    def __init__(self, settings: Settings, factory: Any) -> None:
        self.settings, self.factory = settings, factory

    def failed(self) -> Any:
        # per command: importing the program up front costs start-up time (module docstring)
        from ivr.wiring import build_in_process_jobs

        queue = build_in_process_jobs(self.settings, self.factory, workers=1)
        try:
            return queue.failed()
        finally:
            queue.close(0)

    def retry(self, job_id: str) -> None:
        # per command: importing the program up front costs start-up time (module docstring)
        from ivr.wiring import build_in_process_jobs

        queue = build_in_process_jobs(self.settings, self.factory, workers=1)
        try:
            queue.retry(job_id)
            queue.drain(60)
        finally:
            queue.close(0)


@jobs.command("failed")
@click.pass_context
@friendly
def jobs_failed(ctx: click.Context) -> None:
    """List jobs that kept failing (newest first)."""
    failed = _jobs(ctx).failed()
    if not failed:
        click.echo("no failed jobs")
    for job in failed:
        last = job.error.strip().splitlines()[-1] if job.error.strip() else ""
        click.echo(f"{job.job_id}\t{job.name}\t{job.failed_at}\t{last}")


@jobs.command("retry")
@click.argument("job_id")
@click.pass_context
@friendly
def jobs_retry(ctx: click.Context, job_id: str) -> None:
    """Run a failed job again (in-process: now; Redis: queued for the worker)."""
    _jobs(ctx).retry(job_id)
    click.echo(f"retried {job_id}")


# ---- follow-through ------------------------------------------------------------------


@main.group()
def followthrough() -> None:
    """Reply notices, surveys, escalation and the scorecard."""


@followthrough.command("sweep")
@click.pass_context
@friendly
def followthrough_sweep(ctx: click.Context) -> None:
    """Escalate overdue referrals and send due surveys now (what the periodic sweep does)."""
    # per command: importing the program up front costs start-up time (module docstring)
    from ivr.db import make_sessionmaker
    from ivr.followthrough.jobs import followthrough_sweep_job
    from ivr.wiring import build_jobs, job_context

    settings = _settings(ctx)
    factory = make_sessionmaker(_engine(settings))
    jobs = build_jobs(settings, factory)
    try:
        result = followthrough_sweep_job(job_context(settings, factory, jobs))
        if hasattr(jobs, "drain"):
            jobs.drain(60)  # the SMS it queued are sent before the command ends
    finally:
        jobs.close()
    click.echo(
        f"{result['escalated']} escalated, {result['surveys']} surveys sent, "
        f"{result['notice_calls']} notice calls settled"
    )


# ---- console: API tokens --------------------------------------------------------------------


@users.command("token")
@click.argument("username", required=False)
@click.option("--name", default="cli", show_default=True, help="A label to recognise the token by.")
@click.option("--revoke", "revoke_id", type=int, default=None, metavar="ID", help="Revoke the token with this id.")
@click.option("--list", "list_tokens", is_flag=True, help="List every token (of USERNAME, if given).")
@click.pass_context
@friendly
def users_token(
    ctx: click.Context, username: str | None, name: str, revoke_id: int | None, list_tokens: bool
) -> None:
    """Make a bearer token for the JSON API (printed once; only its hash is stored), list or revoke tokens.

    A new token lives IVR_API_TOKEN_DAYS days (0: no expiry).
    """
    # per command: importing the program up front costs start-up time (module docstring)
    from sqlalchemy import select

    from ivr.db import make_sessionmaker, transaction
    from ivr.models import User, utcnow
    from ivr.services import api_tokens
    from ivr.services.users import UserError

    settings = _settings(ctx)
    if revoke_id is not None and (list_tokens or username is not None):
        raise click.UsageError("give a USERNAME to make a token, --revoke ID or --list [USERNAME]")
    with transaction(make_sessionmaker(_engine(settings))) as session:
        if revoke_id is not None:
            if not api_tokens.revoke_token(session, revoke_id):
                raise UserError(f"no unrevoked token with id {revoke_id}")
            click.echo(f"token {revoke_id} revoked")
            return
        if list_tokens:
            now = utcnow()
            for token, owner in api_tokens.all_tokens(session):
                if username is not None and owner != username:
                    continue
                state = "revoked" if token.revoked_at else ("live" if api_tokens.is_live(token, now) else "expired")
                expires = token.expires_at.isoformat(timespec="minutes") if token.expires_at else "never"
                used = token.last_used_at.isoformat(timespec="minutes") if token.last_used_at else "-"
                click.echo(f"{token.id}\t{owner}\t{token.name}\t{state}\texpires={expires}\tlast_used={used}")
            return
        if username is None:
            raise click.UsageError("give a USERNAME to make a token, --revoke ID or --list [USERNAME]")
        user = session.scalars(select(User).where(User.username == username)).one_or_none()
        if user is None or not user.active:
            raise UserError(f"no active user named {username!r}")
        _token, plain = api_tokens.create_token(session, user.id, name, days=settings.api_token_days)
    click.echo(plain)


@users.command("passwd")
@click.argument("username")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from the first line of stdin (scripts).")
@click.pass_context
@friendly
def users_passwd(ctx: click.Context, username: str, from_stdin: bool) -> None:
    """Set a user's password (asked twice, never echoed); the user's sessions end and API tokens are revoked."""
    from ivr.db import make_sessionmaker, transaction
    from ivr.services.users import UserError, set_password, user_named

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise UserError("the password is empty")
    settings = _settings(ctx)
    with transaction(make_sessionmaker(_engine(settings))) as session:
        set_password(session, user_named(session, username), password)
    click.echo(f"password of {username} set; their sessions ended and API tokens revoked")


# ---- analysis desk ----------------------------------------------------------------


@main.group()
def analysis() -> None:
    """The analysis desk: generated data at scale, rollups."""


@analysis.command("generate")
@click.option("--calls", default=10_000_000, show_default=True, help="How many calls to add.")
@click.option("--messages", default=1_000_000, show_default=True, help="How many messages to add.")
@click.option("--days", default=13 * 365, show_default=True, help="Spread over this many days before today.")
@click.option("--seed", default=1888, show_default=True, help="Random seed.")
@click.pass_context
@friendly
def analysis_generate(ctx: click.Context, calls: int, messages: int, days: int, seed: int) -> None:
    """Add calls and messages shaped like the source's figures (COPY on PostgreSQL)."""
    # per command: importing the program up front costs start-up time (module docstring)
    from tqdm import tqdm

    from ivr.analysis.generator import GeneratorError, generate
    from ivr.db import make_sessionmaker, transaction
    from ivr.demo import load_demo
    from ivr.migrate import upgrade

    settings = _settings(ctx)
    engine = _engine(settings)
    upgrade(engine)
    try:
        with tqdm(total=calls, desc="calls", unit="call", unit_scale=True, file=sys.stderr, disable=None) as bar:
            with transaction(make_sessionmaker(engine)) as session:
                report = generate(
                    session, calls=calls, messages=messages, days=days, seed=seed, progress=bar.update,
                    # The city's units, topics and staff, if missing: the demo's, without its month of calls.
                    load_city=lambda s: load_demo(s, calls=0, messages=0),
                )
    except GeneratorError as exc:
        click.echo(f"ivr: error: {exc}", err=True)
        sys.exit(1)
    for table, n in report.counts.items():
        click.echo(f"  {table:<12} {n:>12,}")
    for table, n in report.rollups.items():
        click.echo(f"  {table:<22} {n:>10,} rows (rebuilt)")
    click.echo(f"generated in {report.seconds:.0f} s")


@analysis.command("rebuild-rollups")
@click.pass_context
@friendly
def analysis_rebuild(ctx: click.Context) -> None:
    """Recompute every rollup table from the raw calls and messages (after a bulk load)."""
    # per command: importing the program up front costs start-up time (module docstring)
    from ivr.analysis.rollups import rebuild_rollups
    from ivr.db import make_sessionmaker, transaction

    settings = _settings(ctx)
    with transaction(make_sessionmaker(_engine(settings))) as session:
        rows = rebuild_rollups(session)
    for table, n in rows.items():
        click.echo(f"  {table:<22} {n:>10,} rows")


if __name__ == "__main__":  # pragma: no cover
    main()
