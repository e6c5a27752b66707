"""Classic AGI (`ivr-agi`) starts quickly: the welcome prompt goes out before SQLAlchemy is imported."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.db import make_engine, make_sessionmaker, transaction
from ivr.migrate import upgrade
from ivr.models import Call
from tests.fakes import FakeAsteriskCall, hangup, press, run_fake_call_pipes, type_digits, wait

# ivr-agi's own main, with stdout wrapped so the first write reports what was imported by then.
PROBE = """
import io, sys
from ivr.drivers.agi.classic import main

class Probe(io.TextIOWrapper):
    seen = False
    def write(self, text):
        if not Probe.seen:
            Probe.seen = True
            loaded = sorted(m for m in ("sqlalchemy", "ivr.runner", "ivr.models", "ivr.db") if m in sys.modules)
            print("loaded at the first command:", loaded, file=sys.stderr, flush=True)
        return super().write(text)

stdout = Probe(sys.stdout.buffer, encoding="utf-8", newline="\\n")
sys.exit(main(stdout=stdout))
"""


@pytest.fixture
def classic_env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'classic.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return dict(os.environ, IVR_DATA_DIR=str(tmp_path / "data"), IVR_DATABASE_URL=url)


def _calls(env: dict[str, str]) -> list[Call]:
    engine = make_engine(env["IVR_DATABASE_URL"])
    try:
        with transaction(make_sessionmaker(engine), readonly=True) as s:
            return list(s.scalars(select(Call)))
    finally:
        engine.dispose()


def test_classic_first_prompt_goes_out_before_the_database_layer_is_imported(
    classic_env: dict[str, str], tmp_path: Path
) -> None:
    fake = FakeAsteriskCall([press("4"), press("1"), type_digits("1#"), wait(), hangup()],
                            env={"agi_arg_1": "137"}, incoming_root=tmp_path / "data", classic=True, idle_limit=30)
    run_fake_call_pipes([sys.executable, "-c", PROBE], fake, env=classic_env)
    assert fake.returncode == 0, fake.stderr_text
    assert "loaded at the first command: []" in fake.stderr_text
    assert fake.commands[0] == 'STREAM FILE welcome_137 "*01249" 0'
    assert fake.heard[:3] == ["welcome_137", "menu_case_kind", "enter_case_number"]
    assert "case_not_found" in fake.heard  # the database was there for the look-up
    [call] = _calls(classic_env)
    assert (call.channel_id, call.line_code, call.keys) == (fake.uniqueid, "137", "411#")


def test_classic_hang_up_during_the_first_prompt_is_logged(classic_env: dict[str, str], tmp_path: Path) -> None:
    fake = FakeAsteriskCall([hangup()], env={"agi_arg_1": "1888"}, incoming_root=tmp_path / "data", classic=True)
    run_fake_call_pipes([str(Path(sys.executable).with_name("ivr-agi"))], fake, env=classic_env)
    assert fake.returncode == 0, fake.stderr_text
    assert fake.heard == ["welcome_1888"]
    [call] = _calls(classic_env)
    assert (call.channel_id, call.line_code, call.outcome, call.keys) == (fake.uniqueid, "1888", "dropped", "")


def test_classic_unknown_line_apologises_before_loading_anything(classic_env: dict[str, str], tmp_path: Path) -> None:
    fake = FakeAsteriskCall([], env={"agi_arg_1": "999", "agi_dnid": "999", "agi_extension": "s"},
                            incoming_root=tmp_path / "data", classic=True)
    run_fake_call_pipes([str(Path(sys.executable).with_name("ivr-agi"))], fake, env=classic_env)
    assert fake.heard == ["sorry_technical"]
    assert fake.variables == {"IVR_NEXT": "operator"}
    assert fake.returncode == 1
