"""One vocabulary: every code has its Persian label in ivr/vocabulary.py and nowhere else; districts follow IVR_DISTRICTS."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import CheckConstraint

from ivr import vocabulary as v
from ivr.config import ConfigError, load_settings
from ivr.models import Base
from ivr.services.messages import MessageError, register_message
from tests.conftest import login

ROOT = Path(__file__).resolve().parent.parent
# Groups whose labels are words no other text needs as a whole string literal.
DISTINCT_GROUPS = ("kind", "reason", "role", "unit_kind", "case_kind")
# Codes that mean something else there: an audit-log event ("not_referred"), an inbox filter tab ("answered").
ALLOWED_MAPPINGS = {("web/audit_log.py", "not_referred"), ("web/inbox.py", "answered")}
PROSE_WORDS = 5  # a value of this many words is a sentence (demo texts per reason), not a label


def _sources() -> list[Path]:
    files = [p for d in ("ivr", "web") for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".html", ".js")]
    return [
        p for p in files
        if p.relative_to(ROOT).as_posix() != "ivr/vocabulary.py"
        and "migrations" not in p.parts and "vendor" not in p.parts
    ]


def test_vocabulary_labels_cover_every_code() -> None:
    groups = {
        "line": v.LINES, "kind": v.MESSAGE_KINDS, "source": v.MESSAGE_SOURCES, "status": v.MESSAGE_STATUSES,
        "reason": v.NOT_REFERRED_REASONS, "outcome": v.CALL_OUTCOMES, "role": v.ROLES, "unit_kind": v.UNIT_KINDS,
        "case_kind": v.CASE_KINDS, "channel": v.FEEDBACK_CHANNELS, "sms_direction": v.SMS_DIRECTIONS,
        "sms_status": v.SMS_STATUSES,
    }
    assert set(v.LABELS) == set(groups)
    for group, codes in groups.items():
        assert tuple(v.LABELS[group]) == codes, group
        assert all(re.search("[\u0600-\u06ff]", label) for label in v.LABELS[group].values()), group
    assert set(v.LINE_KINDS) == set(v.LINES)
    assert {k for kinds in v.LINE_KINDS.values() for k in kinds} == set(v.MESSAGE_KINDS)


def test_vocabulary_is_read_only_and_imports_nothing_from_ivr() -> None:
    with pytest.raises(TypeError):
        v.KIND_LABELS["request"] = "x"  # type: ignore[index]
    source = (ROOT / "ivr" / "vocabulary.py").read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import) ivr\b", source, re.M)


def test_vocabulary_label_falls_back_to_the_code() -> None:
    assert v.label("kind", "complaint") == "شکایت"
    assert v.label("kind", "unknown") == "unknown"
    assert v.label("outcome", None, "—") == "—"


def test_model_check_constraints_use_the_vocabulary() -> None:
    checks = {
        (c.table.name, str(c.sqltext)) for t in Base.metadata.tables.values()
        for c in t.constraints if isinstance(c, CheckConstraint)
    }
    texts = " ".join(text for _, text in checks)
    for codes in (v.MESSAGE_KINDS, v.NOT_REFERRED_REASONS, v.CALL_OUTCOMES, v.ROLES, v.MESSAGE_STATUSES):
        assert ", ".join(f"'{c}'" for c in codes) in texts
    assert f"district BETWEEN 1 AND {v.MAX_DISTRICTS}" in texts


def test_no_copy_of_a_persian_label_outside_the_vocabulary() -> None:
    """A label written again as a string, or a code → Persian mapping, anywhere in ivr/ or web/ fails."""
    labels = {label for g in DISTINCT_GROUPS for label in v.LABELS[g].values()}
    codes = {code for group in v.LABELS.values() for code in group}
    literal = re.compile("|".join(rf"[\"']{re.escape(label)}[\"']" for label in sorted(labels)))
    mapping = re.compile(r"[\"'](\w+)[\"']\s*:\s*[\"']([^\"']*[\u0600-\u06ff][^\"']*)[\"']")
    found = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if literal.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
            for m in mapping.finditer(line):
                if (
                    m.group(1) in codes and (rel, m.group(1)) not in ALLOWED_MAPPINGS
                    and len(m.group(2).split()) < PROSE_WORDS
                ):
                    found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "labels belong in ivr/vocabulary.py:\n" + "\n".join(found)


def test_no_district_limit_written_outside_the_vocabulary() -> None:
    pattern = re.compile(r"1 (to|and|AND) 22\b|BETWEEN 1 AND 22|range\(1, 23\)|<= ?22\b|۱ تا ۲۲")
    owned = ("ivr/runner.py", "ivr/services/", "ivr/analysis/dashboard.py", "ivr/models.py", "web/")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in _sources() if path.relative_to(ROOT).as_posix().startswith(owned)
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)
    ]
    assert not found


# ---- IVR_DISTRICTS --------------------------------------------------------------------------


def test_config_districts_default_is_tehrans_22(tmp_path: Path) -> None:
    settings = load_settings({"IVR_VAR_DIR": str(tmp_path)}, dotenv=False)
    assert settings.districts == 22 and settings.district_numbers == range(1, 23)


def test_config_districts_set_and_bounded_by_the_schema(tmp_path: Path) -> None:
    env = {"IVR_VAR_DIR": str(tmp_path)}
    assert load_settings({**env, "IVR_DISTRICTS": "13"}, dotenv=False).district_numbers == range(1, 14)
    with pytest.raises(ConfigError, match="IVR_DISTRICTS"):
        load_settings({**env, "IVR_DISTRICTS": str(v.MAX_DISTRICTS + 1)}, dotenv=False)
    with pytest.raises(ConfigError, match="IVR_DISTRICTS"):
        load_settings({**env, "IVR_DISTRICTS": "0"}, dotenv=False)


def test_register_message_refuses_a_district_beyond_the_citys_count(db: Any) -> None:
    with pytest.raises(MessageError, match="1 to 13"):
        register_message(db, line="137", kind="request", source="sms", caller="09120000000",
                         district=14, body="چاله", districts=13)
    message = register_message(db, line="137", kind="request", source="sms", caller="09120000000",
                               district=13, body="چاله", districts=13)
    assert message.district == 13


def test_keypad_district_check_follows_the_configured_count(settings: Any, session_factory: Any) -> None:
    from ivr.runner import CallActions

    actions = CallActions(session_factory, settings.with_(districts=13))
    results = {raw: actions.do_check_district({"district": raw}, None).outcome  # type: ignore[arg-type]
               for raw in ("13", "14", "0", "")}
    assert results == {"13": "ok", "14": "invalid", "0": "invalid", "": "invalid"}


def test_screening_form_offers_the_configured_districts(
    settings: Any, session_factory: Any, jobs: Any, make_user: Any
) -> None:
    from web import create_app

    app = create_app(settings.with_(districts=13), session_factory=session_factory, jobs=jobs,
                     config={"TESTING": True})
    client = app.test_client()
    login(client, *make_user("operator"))
    page = client.get("/screening/typed").get_data(as_text=True)
    assert 'value="13"' in page and 'value="14"' not in page and "منطقه (۱ تا ۱۳)" in page


def test_openapi_district_maximum_is_the_configured_count(
    settings: Any, session_factory: Any, jobs: Any
) -> None:
    from web import create_app

    app = create_app(settings.with_(districts=9), session_factory=session_factory, jobs=jobs,
                     config={"TESTING": True})
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert '"maximum": 9' in str(doc).replace("'", '"')


# ---- hotspots (was "critical") --------------------------------------------------------------


def test_hotspots_old_critical_urls_redirect_keeping_the_query(client: Any, make_user: Any) -> None:
    login(client, *make_user("analyst"))
    response = client.get("/analysis/api/critical?line=137")
    assert response.status_code == 308 and response.headers["Location"].endswith("/analysis/api/hotspots?line=137")
    response = client.get("/analysis/export/critical.csv")
    assert response.status_code == 308 and response.headers["Location"].endswith("/analysis/export/hotspots.csv")
    table = client.get("/analysis/api/hotspots").get_json()["table"]
    assert table["name"] == "hotspots" and table["title"].startswith("نقاط بحرانی")
