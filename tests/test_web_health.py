"""The health endpoint a load balancer polls."""
from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.db import make_engine, make_sessionmaker
from ivr.infra.spool import Spool
from ivr.models import utcnow
from ivr.services.call_log import CallRecord
from web import create_app


def test_health_database_up_is_ok(settings: Settings, session_factory: sessionmaker[Session]) -> None:
    client = create_app(settings, session_factory=session_factory).test_client()
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok", "database": "ok", "spooled_calls": 0}


def test_health_database_down_is_503_and_counts_spool(settings: Settings) -> None:
    Spool(settings.spool_dir).put(CallRecord("x-1", "137", "agi", None, utcnow()), [])
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test", connect_args={"connect_timeout": 2})
    client = create_app(settings, session_factory=make_sessionmaker(engine)).test_client()
    resp = client.get("/healthz")
    engine.dispose()
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "degraded" and body["spooled_calls"] == 1 and body["database"]
