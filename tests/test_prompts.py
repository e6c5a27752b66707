"""The prompt catalogue (strict YAML) and the builder (espeak-ng + sox, studio files kept)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import wave
from array import array
from pathlib import Path

import pytest

from ivr.config import load_settings
from ivr.prompts import (
    DEFAULT_CATALOGUE,
    MANIFEST_NAME,
    CatalogueError,
    PromptBuildError,
    PromptEntry,
    build_prompts,
    catalogue_texts,
    check_prompt_files,
    load_catalogue,
    prompts_out_dir,
)
from ivr.speech.persian import fragment_names
from ivr.speech.script import recording_script
from tests.conftest import run_cli

SMALL = ["num_4", "num_9", "num_20_o", "day_15_e", "beep", "silence_short", "pause", "code_gap"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def read_wav(path: Path) -> tuple[int, int, int, array]:
    """(rate, channels, sample width, samples) of a PCM WAV; wave rejects anything else."""
    with wave.open(str(path), "rb") as w:
        frames = w.readframes(w.getnframes())
        samples = array("h")
        samples.frombytes(frames)
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), samples


def peak(samples: array) -> int:
    return max((abs(s) for s in samples), default=0)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_studio_wav(path: Path) -> bytes:
    """A stand-in studio recording: 0.1 s of a quiet ramp, not what the builder writes."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(array("h", (i % 200 for i in range(800))).tobytes())
    return path.read_bytes()


# ---------------------------------------------------------------------------- catalogue


def test_load_catalogue_default_has_fragments_and_generated_sounds() -> None:
    cat = load_catalogue(DEFAULT_CATALOGUE)
    assert cat["beep"] == PromptEntry(name="beep", tone_hz=1000, ms=250)
    assert cat["silence_short"] == PromptEntry(name="silence_short", silence_ms=200)
    assert cat["pause"] == PromptEntry(name="pause", silence_ms=400)
    assert cat["code_gap"] == PromptEntry(name="code_gap", silence_ms=300)
    assert cat["num_4"] == PromptEntry(name="num_4", text="چهار", hint="chahār")
    assert cat["num_9"].text == "نه" and cat["num_9"].spoken_text == "نُه"
    # The joined form is written "word و" and spoken "word-o" (a damma, not the word "va").
    assert cat["num_20_o"] == PromptEntry(
        name="num_20_o", text="بیست و", say="بیست\u064f", hint="bist-o"
    )
    assert "and" not in cat


def test_load_catalogue_every_speech_fragment_has_an_entry() -> None:
    cat = load_catalogue(DEFAULT_CATALOGUE)
    missing = [name for name in fragment_names() if name not in cat]
    assert missing == []
    assert all(
        cat[name].kind == ("silence" if name == "code_gap" else "spoken") for name in fragment_names()
    )


def test_catalogue_texts_only_spoken_entries() -> None:
    texts = catalogue_texts(DEFAULT_CATALOGUE)
    assert "beep" not in texts and "pause" not in texts
    assert texts["month_1"] == "فروردین"


def test_load_catalogue_hint_kept_and_never_synthesised(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "num_20_o: {text: بیست و, say: بیستُ, hint: bist-o}\n")
    entry = load_catalogue(path)["num_20_o"]
    assert (entry.text, entry.spoken_text, entry.hint) == ("بیست و", "بیستُ", "bist-o")


def test_load_catalogue_duplicate_key_rejected_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "welcome: سلام\nnum_1: یک\nwelcome: خوش آمدید\n")
    with pytest.raises(CatalogueError, match=r"duplicate entry 'welcome' at line 3"):
        load_catalogue(path)


def test_load_catalogue_duplicate_key_inside_mapping_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "beep: {tone_hz: 1000, ms: 250, ms: 300}\n")
    with pytest.raises(CatalogueError, match="duplicate entry 'ms'"):
        load_catalogue(path)


@pytest.mark.parametrize(
    "value", ['""', "'   '", "", "{text: ''}", "{text: یک, say: ''}", "{text: یک, hint: ''}"]
)
def test_load_catalogue_empty_text_rejected_naming_entry(tmp_path: Path, value: str) -> None:
    path = write(tmp_path / "c.yaml", f"num_1: یک\nwelcome: {value}\n")
    with pytest.raises(CatalogueError, match=r"entry 'welcome': (text|say|hint) is empty"):
        load_catalogue(path)


@pytest.mark.parametrize("name", ["Welcome", "1st", "wel-come", "_x", "welcome_é", "'two words'"])
def test_load_catalogue_bad_name_rejected_naming_it(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / "c.yaml", f"num_1: یک\n{name}: سلام\n")
    with pytest.raises(CatalogueError, match="bad name") as err:
        load_catalogue(path)
    assert repr(name.strip("'")) in str(err.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{tone_hz: 1000}", "expected a text"),
        ("{tone_hz: 5000, ms: 100}", "tone_hz must be"),
        ("{tone_hz: 1000, ms: 0}", "ms must be"),
        ("{silence_ms: yes}", "silence_ms must be"),
        ("{silence_ms: 200, volume: 3}", "expected a text"),
        ("5", "must be text"),
        ("[a, b]", "must be text"),
    ],
)
def test_load_catalogue_malformed_entry_rejected_naming_it(
    tmp_path: Path, value: str, message: str
) -> None:
    path = write(tmp_path / "c.yaml", f"thing: {value}\n")
    with pytest.raises(CatalogueError, match=rf"entry 'thing': .*{message}"):
        load_catalogue(path)


def test_load_catalogue_yes_no_keys_stay_names_not_booleans(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "no: خیر\nyes: بله\n")
    assert set(load_catalogue(path)) == {"no", "yes"}


@pytest.mark.parametrize("content", ["", "# only a comment\n", "- a\n- b\n", "just text\n"])
def test_load_catalogue_not_a_mapping_rejected(tmp_path: Path, content: str) -> None:
    path = write(tmp_path / "c.yaml", content)
    with pytest.raises(CatalogueError, match="no entries"):
        load_catalogue(path)


def test_load_catalogue_missing_file_rejected_naming_path(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="nope.yaml"):
        load_catalogue(tmp_path / "nope.yaml")


def test_load_catalogue_text_whitespace_collapsed(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "welcome: '  به   سامانه  '\n")
    assert load_catalogue(path)["welcome"].text == "به سامانه"


def test_prompts_out_dir_is_language_folder_of_prompts_dir(tmp_path: Path) -> None:
    settings = load_settings({"IVR_PROMPTS_DIR": str(tmp_path)}, dotenv=False)
    assert prompts_out_dir(settings) == tmp_path.resolve() / "fa"


def test_default_catalogue_is_in_repo_recordings() -> None:
    settings = load_settings({}, dotenv=False)
    assert DEFAULT_CATALOGUE == settings.prompts_dir / "catalogue.yaml"
    assert DEFAULT_CATALOGUE.is_file()


# ---------------------------------------------------------------------------- builder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SMALL subset of the real catalogue, built once for the read-only checks."""
    out = tmp_path_factory.mktemp("prompts")
    report = build_prompts(DEFAULT_CATALOGUE, out, names=SMALL)
    assert report.generated == SMALL
    return out


@pytest.mark.parametrize("name", SMALL)
def test_build_prompts_subset_writes_8khz_mono_16bit(built: Path, name: str) -> None:
    rate, channels, width, samples = read_wav(built / f"{name}.wav")
    assert (rate, channels, width) == (8000, 1, 2)
    assert len(samples) > 0


@pytest.mark.parametrize("name", ["num_4", "num_9", "num_20_o", "day_15_e"])
def test_build_prompts_spoken_entry_is_audible_and_short(built: Path, name: str) -> None:
    _, _, _, samples = read_wav(built / f"{name}.wav")
    # gain -n -3 normalises the peak to about 0.7 of full scale.
    assert 16000 < peak(samples) < 32767
    # Leading/trailing silence is trimmed so fragments chain tightly: one word < 1.2 s.
    assert 0.1 < len(samples) / 8000 < 1.2
    assert abs(samples[0]) < 2000 and abs(samples[-1]) < 2000


def test_build_prompts_beep_is_a_1000hz_tone_of_250ms(built: Path) -> None:
    _, _, _, samples = read_wav(built / "beep.wav")
    assert len(samples) == 2000
    assert peak(samples) > 10000
    # Count rising zero crossings in the steady middle: 1000 Hz ≈ 1 per ms.
    middle = samples[400:1600]
    crossings = sum(1 for a, b in zip(middle, middle[1:], strict=False) if a < 0 <= b)
    assert 145 <= crossings <= 155


@pytest.mark.parametrize(("name", "ms"), [("silence_short", 200), ("pause", 400)])
def test_build_prompts_silence_has_exact_length_and_no_sound(
    built: Path, name: str, ms: int
) -> None:
    _, _, _, samples = read_wav(built / f"{name}.wav")
    assert len(samples) == ms * 8
    assert peak(samples) == 0


def test_build_prompts_manifest_records_every_generated_file(built: Path) -> None:
    manifest = json.loads((built / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert sorted(manifest) == sorted(SMALL)
    for name in SMALL:
        assert manifest[name]["wav_sha256"] == sha256(built / f"{name}.wav")
        assert len(manifest[name]["text_sha256"]) == 64


def test_build_prompts_files_readable_by_asterisk_no_temp_left(built: Path) -> None:
    for path in built.glob("*.wav"):
        assert path.stat().st_mode & 0o044 == 0o044, path
    assert sorted(p.name for p in built.iterdir() if p.name.startswith(".")) == [MANIFEST_NAME]


@pytest.fixture
def small_catalogue(tmp_path: Path) -> Path:
    return write(
        tmp_path / "catalogue.yaml",
        "num_4: چهار\nnum_5: پنج\nbeep: {tone_hz: 1000, ms: 250}\npause: {silence_ms: 400}\n",
    )


def test_build_prompts_rebuild_unchanged_skips_everything(
    small_catalogue: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fa"
    first = build_prompts(small_catalogue, out)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")}
    second = build_prompts(small_catalogue, out)
    assert first.generated == ["num_4", "num_5", "beep", "pause"]
    assert second.generated == [] and second.kept_studio == []
    assert second.skipped == ["num_4", "num_5", "beep", "pause"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")} == stamps


def test_build_prompts_force_regenerates_generated_files(
    small_catalogue: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fa"
    build_prompts(small_catalogue, out)
    report = build_prompts(small_catalogue, out, force=True)
    assert report.generated == ["num_4", "num_5", "beep", "pause"]


def test_build_prompts_studio_recording_kept_even_with_force(
    small_catalogue: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fa"
    build_prompts(small_catalogue, out)
    studio = make_studio_wav(out / "num_4.wav")
    seen: list[tuple[str, str]] = []
    report = build_prompts(
        small_catalogue, out, force=True, progress=lambda n, o: seen.append((n, o))
    )
    assert report.kept_studio == ["num_4"]
    assert "num_4" not in report.generated
    assert (out / "num_4.wav").read_bytes() == studio
    assert ("num_4", "kept_studio") in seen and ("num_5", "generated") in seen


def test_build_prompts_file_without_manifest_entry_kept_as_studio(
    small_catalogue: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fa"
    out.mkdir()
    studio = make_studio_wav(out / "num_5.wav")
    report = build_prompts(small_catalogue, out)
    assert report.kept_studio == ["num_5"]
    assert report.generated == ["num_4", "beep", "pause"]
    assert (out / "num_5.wav").read_bytes() == studio
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert "num_5" not in manifest


def test_build_prompts_changed_text_regenerates_only_that_entry(
    small_catalogue: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fa"
    build_prompts(small_catalogue, out)
    before = (out / "num_4.wav").read_bytes()
    write(
        small_catalogue,
        small_catalogue.read_text(encoding="utf-8").replace("num_4: چهار", "num_4: چهارصد"),
    )
    report = build_prompts(small_catalogue, out)
    assert report.generated == ["num_4"]
    assert report.skipped == ["num_5", "beep", "pause"]
    assert (out / "num_4.wav").read_bytes() != before


def test_build_prompts_changed_tone_regenerates(small_catalogue: Path, tmp_path: Path) -> None:
    out = tmp_path / "fa"
    build_prompts(small_catalogue, out)
    write(
        small_catalogue,
        small_catalogue.read_text(encoding="utf-8").replace("ms: 250", "ms: 500"),
    )
    report = build_prompts(small_catalogue, out)
    assert report.generated == ["beep"]
    assert len(read_wav(out / "beep.wav")[3]) == 4000


def test_build_prompts_unknown_wav_reported_orphan_not_deleted(
    small_catalogue: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fa"
    out.mkdir()
    make_studio_wav(out / "old_welcome.wav")
    report = build_prompts(small_catalogue, out)
    assert report.orphans == ["old_welcome"]
    assert (out / "old_welcome.wav").exists()


def test_build_prompts_missing_espeak_raises_naming_program(
    small_catalogue: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        PromptBuildError,
        match=r"espeak-ng not found.*/nonexistent/espeak-ng.*apt-get install espeak-ng",
    ):
        build_prompts(small_catalogue, tmp_path / "fa", espeak="/nonexistent/espeak-ng")
    assert list((tmp_path / "fa").glob("*.wav")) == []


def test_build_prompts_missing_sox_raises_naming_program(
    small_catalogue: Path, tmp_path: Path
) -> None:
    with pytest.raises(PromptBuildError, match=r"sox not found.*apt-get install sox"):
        build_prompts(small_catalogue, tmp_path / "fa", sox="/nonexistent/sox")


def test_build_prompts_nothing_to_do_needs_no_synthesiser(
    small_catalogue: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fa"
    build_prompts(small_catalogue, out)
    report = build_prompts(
        small_catalogue, out, espeak="/nonexistent/espeak-ng", sox="/nonexistent/sox"
    )
    assert len(report.skipped) == 4


def test_build_prompts_failing_synthesiser_raises_and_leaves_no_temp(
    small_catalogue: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fa"
    with pytest.raises(PromptBuildError, match=r"prompt 'num_[45]': false failed"):
        build_prompts(small_catalogue, out, espeak="/bin/false")
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != MANIFEST_NAME]
    assert leftovers == []
    assert not (out / "num_4.wav").exists() and not (out / "num_5.wav").exists()
    # Whatever did get built is in the manifest, so the next build skips it.
    report = build_prompts(small_catalogue, out)
    assert {"num_4", "num_5"} <= set(report.generated)
    assert sorted(report.generated + report.skipped) == ["beep", "num_4", "num_5", "pause"]
    assert report.kept_studio == []


def test_build_prompts_unknown_name_raises(small_catalogue: Path, tmp_path: Path) -> None:
    with pytest.raises(PromptBuildError, match="welcome"):
        build_prompts(small_catalogue, tmp_path / "fa", names=["num_4", "welcome"])


def test_check_prompt_files_lists_missing_in_order(built: Path) -> None:
    assert check_prompt_files(["num_4", "num_7", "beep", "num_7", "welcome"], built) == [
        "num_7",
        "welcome",
    ]


@pytest.mark.slow
def test_build_prompts_whole_catalogue_every_entry_valid(tmp_path: Path) -> None:
    out = tmp_path / "fa"
    started = time.monotonic()
    report = build_prompts(DEFAULT_CATALOGUE, out)
    elapsed = time.monotonic() - started
    catalogue = load_catalogue(DEFAULT_CATALOGUE)
    assert sorted(report.generated) == sorted(catalogue)
    assert check_prompt_files(catalogue, out) == []
    for name, entry in catalogue.items():
        rate, channels, width, samples = read_wav(out / f"{name}.wav")
        assert (rate, channels, width) == (8000, 1, 2), name
        if entry.kind == "spoken":
            assert peak(samples) > 16000, name
    # ~0.03 s per entry on a laptop; a generous bound catches a lost thread pool.
    assert elapsed < 0.5 * len(catalogue), elapsed


# ---------------------------------------------------------------------------- recording script


def test_recording_script_every_entry_once_with_text_hint_and_example() -> None:
    catalogue = load_catalogue(DEFAULT_CATALOGUE)
    lines = recording_script(catalogue, {"welcome_137": [("137/start", ("welcome_137", "menu_main_137"))]})
    assert [line.name for line in lines] == list(catalogue)
    for line in lines:
        assert line.hint, line.name
        if line.kind != "sound":
            assert line.text and any(mine for _, mine in line.example), line.name
    by_name = {line.name: line for line in lines}
    assert by_name["welcome_137"].used_in == "137/start"
    assert by_name["welcome_137"].example_text.startswith(f"«{catalogue['welcome_137'].text}» ")


def test_recording_script_fragments_shown_in_a_sentence() -> None:
    lines = {line.name: line for line in recording_script(load_catalogue(DEFAULT_CATALOGUE), {})}
    assert set(fragment_names()) <= set(lines)
    assert lines["num_20_o"].hint == "bist-o" and lines["num_20_o"].say == "بیست\u064f"
    assert lines["num_20_o"].example_text == "مبلغ جریمه: «بیست و» سه ریال"
    assert lines["day_15_e"].example_text.startswith("تاریخ نوبت بعدی: «پانزدهم» ")
    assert lines["toman_o"].example_text == (
        "مبلغ جریمه: هزار و دویست و سی و چهار «تومان و» پنج ریال"
    )
    assert "سه · «چهار» پنج" in lines["num_4"].example_text  # the code's groups
    assert lines["code_gap"].kind == "sound" and "300 ms" in lines["code_gap"].hint


def test_cli_prompts_script_writes_csv_with_bom_and_printable_page(env: Path) -> None:
    code, out, _ = run_cli("prompts", "script", "--out", "script")
    assert code == 0 and "recording-script.csv" in out
    raw = (env / "script" / "recording-script.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["name", "kind", "text", "say", "hint", "example", "used_in"]
    names = [row[0] for row in rows[1:]]
    assert names == list(load_catalogue(DEFAULT_CATALOGUE))
    welcome = next(row for row in rows if row[0] == "welcome_1888")
    assert "1888/" in welcome[6]
    page = (env / "script" / "recording-script.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and 'dir="rtl"' in page
    assert "<script" not in page.lower()
    assert page.count("<tr") == len(names) + 1 and "<mark>بیست و</mark>" in page
