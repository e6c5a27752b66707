"""Every prompt the call flow can play exists in the catalogue (and, once built, as audio)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ivr.flow.definition import load_flow
from ivr.prompts import DEFAULT_CATALOGUE, build_prompts, check_prompt_files, load_catalogue
from ivr.speech import persian
from ivr.vocabulary import CASE_KINDS, CASE_STAGES, MESSAGE_STATUSES, NOT_REFERRED_REASONS, VERDICTS


def playable_prompts() -> set[str]:
    """Every catalogue name the flow, its actions and the drivers can ask a telephone to play."""
    names = set(load_flow().static_prompts())
    names |= {f"status_{s}" for s in MESSAGE_STATUSES}
    names |= {f"reason_{r}" for r in NOT_REFERRED_REASONS}
    names |= {f"case_kind_{k}" for k in CASE_KINDS}
    names |= {f"stage_{s}" for stages in CASE_STAGES.values() for s in stages}
    names |= {f"verdict_{v}" for v in VERDICTS}
    names |= {"referred_to_district", "referred_to_unit", "case_next_date", "case_fine"}
    names |= {"invalid_key", "no_input", "sorry_technical", "beep", "silence_short"}
    names |= set(persian.fragment_names())
    return names


def test_prompt_catalogue_has_every_playable_prompt() -> None:
    missing = sorted(playable_prompts() - set(load_catalogue()))
    assert missing == []


def test_prompt_catalogue_lookup_fails_for_unknown_name() -> None:
    assert "no_such_prompt" not in load_catalogue()


@pytest.mark.slow
def test_prompt_build_produces_audio_for_every_playable_prompt(tmp_path: Path) -> None:
    out = tmp_path / "fa"
    build_prompts(DEFAULT_CATALOGUE, out, names=sorted(playable_prompts()))
    assert check_prompt_files(sorted(playable_prompts()), out) == []
    assert check_prompt_files(["no_such_prompt"], out) == ["no_such_prompt"]
