"""Hear a value before callers do: the prompts page composes it from the current fragments."""
from __future__ import annotations

import datetime
import io
import wave
from pathlib import Path

import pytest

from ivr.config import Settings
from ivr.models import User
from ivr.prompts import DEFAULT_CATALOGUE, PromptAudioError, build_prompts, concatenate_wavs
from ivr.services.users import hash_password
from ivr.speech import persian
from ivr.speech.preview import PreviewError, compose_preview, preview_fragments
from tests.conftest import browser_login, login

NEEDED = ["num_thousand_o", "num_400_o", "num_3", "num_1", "num_2", "num_4", "num_5", "num_6",
          "code_gap", "day_15_e", "month_7", "num_12", "num_300_o", "num_40_o", "num_5", "rial"]


@pytest.fixture(scope="module")
def fragments_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prompts folder with the fragments these tests say, built once."""
    root = tmp_path_factory.mktemp("prompts")
    build_prompts(DEFAULT_CATALOGUE, root / "fa", names=NEEDED)
    return root


@pytest.fixture
def settings(settings: Settings, fragments_dir: Path) -> Settings:
    """The suite's settings, playing this module's fragments (the live server's too)."""
    return settings.with_(prompts_dir=fragments_dir)


def frames(data: bytes) -> tuple[tuple[int, int, int], int]:
    with wave.open(io.BytesIO(data), "rb") as w:
        return (w.getnchannels(), w.getsampwidth(), w.getframerate()), w.getnframes()


def nframes(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        return w.getnframes()


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("number", "1403", persian.number(1403)),
        ("number", "۱٬۴۰۳", persian.number(1403)),
        ("amount", "12,345", persian.amount(12_345, "rial")),
        ("date", "1403/07/15", persian.jalali_date(datetime.date(2024, 10, 6))),
        ("date", "2024-10-06", persian.jalali_date(datetime.date(2024, 10, 6))),
        ("code", "۱۲۳۴۵۶", persian.digits("123456", (3, 3, 3))),
    ],
)
def test_preview_fragments_same_as_the_phone(settings: Settings, kind: str, raw: str, expected: tuple[str, ...]) -> None:
    assert preview_fragments(kind, raw, settings) == expected


def test_preview_fragments_follow_currency_and_code_groups(settings: Settings) -> None:
    assert preview_fragments("amount", "12345", settings.with_(currency="toman")) == persian.amount(12_345, "toman")
    assert preview_fragments("code", "123456", settings.with_(code_groups=(2, 4))) == persian.digits("123456", (2, 4))


@pytest.mark.parametrize(
    ("kind", "raw"),
    [("number", "-5"), ("number", "1e3"), ("number", "1" * 16), ("amount", ""), ("date", "1403/13/01"),
     ("date", "15 mehr"), ("code", "12a"), ("code", "1" * 21), ("weight", "5")],
)
def test_preview_fragments_bad_input_refused_in_persian(settings: Settings, kind: str, raw: str) -> None:
    with pytest.raises(PreviewError) as err:
        preview_fragments(kind, raw, settings)
    assert any("\u0600" <= ch <= "\u06ff" for ch in str(err.value))


def test_compose_preview_joins_the_fragment_files(settings: Settings, fragments_dir: Path) -> None:
    preview = compose_preview("number", "1403", settings.with_(prompts_dir=fragments_dir))
    assert preview.names == ("num_thousand_o", "num_400_o", "num_3")
    params, count = frames(preview.wav)
    assert params == (1, 2, 8000)
    assert count == sum(nframes(fragments_dir / "fa" / f"{n}.wav") for n in preview.names)


def test_compose_preview_missing_fragment_named(settings: Settings, fragments_dir: Path) -> None:
    with pytest.raises(PreviewError, match="num_900_o"):
        compose_preview("number", "905", settings.with_(prompts_dir=fragments_dir))


def test_concatenate_wavs_other_format_named(tmp_path: Path, fragments_dir: Path) -> None:
    odd = tmp_path / "studio.wav"
    with wave.open(str(odd), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 160)
    with pytest.raises(PromptAudioError, match="studio.wav: 16000 Hz"):
        concatenate_wavs([fragments_dir / "fa" / "num_3.wav", odd])


def test_admin_prompt_preview_plays_wav_or_says_why(settings, session_factory, jobs, make_user, fragments_dir) -> None:
    from web import create_app

    app = create_app(settings.with_(prompts_dir=fragments_dir), session_factory=session_factory, jobs=jobs,
                     config={"TESTING": True})
    client = app.test_client()
    login(client, *make_user("admin"))
    page = client.get("/admin/prompts").get_data(as_text=True)
    assert 'id="preview-form"' in page and "prompt_preview.js" in page
    assert "<script>" not in page  # no inline script: the page's code is a static file
    with client.get("/admin/prompt-preview.wav?kind=date&value=۱۴۰۳/۰۷/۱۵") as resp:
        assert resp.status_code == 200 and resp.mimetype == "audio/wav"
        assert resp.headers["X-Fragments"] == "day_15_e month_7 num_thousand_o num_400_o num_3"
        assert frames(resp.data)[0] == (1, 2, 8000)
    with client.get("/admin/prompt-preview.wav?kind=number&value=abc") as resp:
        assert resp.status_code == 400 and "عدد" in resp.get_data(as_text=True)
    operator = app.test_client()
    login(operator, *make_user("operator"))
    assert operator.get("/admin/prompt-preview.wav?kind=number&value=5").status_code == 403


@pytest.mark.slow
def test_browser_prompt_preview_plays_a_date(page, live_server) -> None:
    """The page's script fetches the composed WAV, shows its fragments and plays it."""
    with live_server.session_factory() as session:
        session.add(User(username="admin1", full_name="مدیر سامانه", role="admin",
                         password_hash=hash_password("a long password")))
        session.commit()
    browser_login(page, live_server, "admin1", "a long password")
    page.goto("/admin/prompts")
    page.select_option("#preview-form select[name=kind]", "date")
    page.fill("#preview-form input[name=value]", "۱۴۰۳/۰۷/۱۵")
    with page.expect_response(lambda r: "prompt-preview.wav" in r.url) as wav:
        page.click("#preview-form button[type=submit]")
    assert wav.value.status == 200 and wav.value.headers["content-type"] == "audio/wav"
    page.wait_for_function("() => document.getElementById('preview-result').textContent.includes('day_15_e')")
    page.fill("#preview-form input[name=value]", "1403/13/40")
    page.click("#preview-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('preview-result').textContent.includes('تاریخ')")
