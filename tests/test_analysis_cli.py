"""`ivr analysis generate` and `ivr analysis rebuild-rollups` as an administrator runs them."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_analysis_cli_generates_then_rebuilds_rollups(env: Path) -> None:
    code, out, _ = run_cli("analysis", "generate", "--calls", "400", "--messages", "40", "--days", "20")
    assert code == 0
    assert "calls                 400" in out and "messages               40" in out
    assert "generated in" in out
    code, out, _ = run_cli("analysis", "rebuild-rollups")
    assert code == 0
    assert "rollup_call_hours" in out and "rollup_messages_monthly" in out


def test_analysis_cli_too_many_messages_is_one_clear_line(env: Path) -> None:
    code, out, err = run_cli("analysis", "generate", "--calls", "10", "--messages", "20", "--days", "5")
    assert code == 1
    assert err.strip() == "ivr: error: at most one message per call: ask for more calls or fewer messages"
