"""The `ivr` command: what an administrator types, and the one-line errors they get."""
from __future__ import annotations

from pathlib import Path

import pytest

from ivr.config import ConfigError, load_settings
from tests.conftest import run_cli


def test_cli_db_upgrade_creates_sqlite_under_var(env: Path) -> None:
    from alembic.script import ScriptDirectory

    from ivr.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    code, out, _ = run_cli("db", "upgrade")
    assert code == 0 and f"empty → {head}" in out
    assert (env / "var" / "ivr.sqlite3").is_file()
    code, out, _ = run_cli("db", "upgrade")
    assert code == 0 and f"{head} → {head}" in out


def test_cli_malformed_setting_is_one_clear_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_AGI_PORT", "forty")
    code, out, err = run_cli("db", "upgrade")
    assert code == 1
    assert err == "ivr: error: IVR_AGI_PORT: expected a whole number, got 'forty'\n"


def test_cli_setting_from_dotenv_file(env: Path) -> None:
    (env / ".env").write_text("IVR_DATABASE_URL=mysql://nope\n", encoding="utf-8")
    code, _, err = run_cli("db", "upgrade")
    assert code == 1 and err.startswith("ivr: error: IVR_DATABASE_URL: expected a sqlite:/// or postgresql:// URL")


def test_cli_unreachable_database_is_one_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2")
    code, _, err = run_cli("db", "upgrade")
    assert code == 1 and err.startswith("ivr: error: database unreachable:") and err.count("\n") == 1


def test_cli_cases_import_reports_bad_rows_and_keeps_good_ones(env: Path) -> None:
    csv = env / "cases.csv"
    csv.write_text(
        "case_number,kind,district,stage,next_date,verdict,fine_rials,updated_at\n"
        "1001,urban_planning,3,site_visit,2025-01-05,,,2024-12-01\n"
        "12AB,urban_planning,3,site_visit,,,,\n"
        "2002,article100,22,final_verdict,,fine,150000000,\n"
        "3003,article100,23,appeal,,,,\n",
        encoding="utf-8",
    )
    run_cli("db", "upgrade")
    code, out, err = run_cli("cases", "import", str(csv))
    assert code == 1
    assert "2 case(s) imported, 2 bad row(s)" in out
    assert f"{csv}:3:" in err and f"{csv}:5:" in err
    assert "Traceback" not in err


def test_cli_cases_import_without_header_imports_nothing(env: Path) -> None:
    csv = env / "cases.csv"
    csv.write_text("1001,urban_planning,3,site_visit,,,,\n", encoding="utf-8")
    run_cli("db", "upgrade")
    code, out, err = run_cli("cases", "import", str(csv))
    assert code == 1 and err.startswith("ivr: error:") and "imported" not in out


def test_cli_flow_check_passes_for_shipped_menus(env: Path) -> None:
    code, out, _ = run_cli("flow", "check")
    assert code == 0 and out.startswith("flow ok: lines 137, 1888")


def test_cli_spool_replay_with_nothing_waiting(env: Path) -> None:
    run_cli("db", "upgrade")
    code, out, _ = run_cli("spool", "replay")
    assert code == 0 and out == "0 ingested, 0 waiting, 0 rejected\n"


def test_cli_users_add_validates_role_and_unit(env: Path) -> None:
    run_cli("db", "upgrade")
    code, _, err = run_cli("users", "add", "mgr1", "--name", "مدیر", "--role", "manager", "--password", "a-long-password")
    assert code == 1 and err.startswith("ivr: error:")
    code, out, _ = run_cli("users", "add", "op_one", "--name", "اپراتور یک", "--role", "operator", "--password", "a-long-password")
    assert code == 0 and "op_one (operator) added" in out


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("IVR_AGI_PORT", "70000", "IVR_AGI_PORT: must be between 1 and 65535, got 70000"),
        ("IVR_OPERATOR_HOURS", "19:00-07:00", "IVR_OPERATOR_HOURS: opening time must be before closing time"),
        ("IVR_OPERATOR_HOURS", "9-5", "IVR_OPERATOR_HOURS: expected HH:MM-HH:MM"),
        ("IVR_TIMEZONE", "Mars/Olympus", "IVR_TIMEZONE: unknown time zone"),
        ("IVR_CURRENCY", "dollar", "IVR_CURRENCY: expected 'rial' or 'toman'"),
    ],
)
def test_config_malformed_value_names_the_setting(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        load_settings({name: value}, dotenv=False)


def test_config_postgres_url_uses_psycopg3_driver() -> None:
    s = load_settings({"IVR_DATABASE_URL": "postgresql://u@db/ivr"}, dotenv=False)
    assert s.database_url == "postgresql+psycopg://u@db/ivr"


def test_cli_cases_import_binary_file_is_refused_cleanly(env: Path) -> None:
    blob = env / "cases.csv"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00\x01" * 50)
    run_cli("db", "upgrade")
    code, _, err = run_cli("cases", "import", str(blob))
    assert code == 1 and err.startswith("ivr: error:") and "Traceback" not in err
