"""The call log's row and the phone path's cached reads, on both databases."""
from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.models import Call, Citizen, Holiday, WorkingHours
from ivr.services.call_log import CallRecord, save_call_row
from ivr.services.operators import Schedule, ScheduleCache, load_schedule, operators_open

TEHRAN = ZoneInfo("Asia/Tehran")
NINE_TO_FIVE = (time(8), time(16))


def _record(channel_id: str, caller: str | None = "09121234567", **changes: object) -> CallRecord:
    now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    record = CallRecord(channel_id, "137", "agi", caller, now, answered_at=now)
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def test_save_call_row_new_caller_inserts_the_call_and_the_citizen(db: Session) -> None:
    saved = save_call_row(db, _record("log-1", keys="12", outcome="dropped"))
    call = db.get(Call, saved.id)
    assert call is not None and call.keys == "12" and call.outcome == "dropped"
    assert saved.citizen_id is not None and call.citizen_id == saved.citizen_id
    assert db.scalar(select(Citizen.phone).where(Citizen.id == saved.citizen_id)) == "09121234567"


def test_save_call_row_again_updates_the_row_and_keeps_its_citizen(db: Session) -> None:
    first = save_call_row(db, _record("log-2"))
    again = save_call_row(db, _record("log-2", keys="4", outcome="case_lookup",
                                      ended_at=datetime(2026, 11, 29, 8, 1, tzinfo=UTC)))
    assert again == first
    db.expire_all()
    call = db.get(Call, first.id)
    assert call is not None and call.keys == "4" and call.ended_at is not None
    assert db.scalar(select(func.count()).select_from(Call).where(Call.channel_id == "log-2")) == 1


def test_save_call_row_known_caller_reuses_the_citizen(db: Session) -> None:
    one = save_call_row(db, _record("log-3"))
    two = save_call_row(db, _record("log-4", caller="+989121234567"))
    assert one.citizen_id == two.citizen_id
    assert db.scalar(select(func.count()).select_from(Citizen).where(Citizen.phone == "09121234567")) == 1


def test_save_call_row_without_a_usable_number_has_no_citizen(db: Session) -> None:
    assert save_call_row(db, _record("log-5", caller=None)).citizen_id is None
    assert save_call_row(db, _record("log-6", caller="abc")).citizen_id is None


def test_schedule_answers_as_operators_open(db: Session) -> None:
    db.add(WorkingHours(weekday=6, opens=time(8), closes=time(14)))  # Sunday
    db.add(Holiday(day=date(2026, 12, 13), name="تعطیل"))
    db.flush()
    schedule = load_schedule(db, date(2026, 12, 1))
    for when in (datetime(2026, 12, 6, 6, 0, tzinfo=UTC), datetime(2026, 12, 6, 12, 0, tzinfo=UTC),
                 datetime(2026, 12, 13, 6, 0, tzinfo=UTC), datetime(2026, 12, 7, 6, 0, tzinfo=UTC)):
        assert schedule.is_open(when, TEHRAN, NINE_TO_FIVE) == operators_open(db, when, TEHRAN, NINE_TO_FIVE)


def test_schedule_cache_reads_once_per_ttl_and_day() -> None:
    loads: list[date] = []

    def load(day: date) -> Schedule:
        loads.append(day)
        return Schedule({}, frozenset())

    cache = ScheduleCache(ttl=60)
    cache.get(date(2026, 12, 6), load)
    cache.get(date(2026, 12, 6), load)
    assert loads == [date(2026, 12, 6)]
    cache.get(date(2026, 12, 7), load)
    assert loads == [date(2026, 12, 6), date(2026, 12, 7)]
    expired = ScheduleCache(ttl=0)
    expired.get(date(2026, 12, 6), load)
    expired.get(date(2026, 12, 6), load)
    assert len(loads) == 4
