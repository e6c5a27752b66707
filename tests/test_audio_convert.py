"""Reply audio conversion against hostile files: bounded memory, allow-listed formats, no file left behind."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import wave
from pathlib import Path
from typing import Any

import pytest

from ivr.infra.audio_convert import (
    BUSY,
    NOT_AUDIO,
    ConversionSlots,
    ReplyAudioError,
    ReplyAudioLimits,
    convert_reply_audio,
    probe_audio,
)
from tests.fakes import write_speech_wav

ROOT = Path(__file__).resolve().parent.parent
# Peak memory growth allowed for the converting (server) process, and the most any ffmpeg/ffprobe it
# runs may hold beyond the server's own size (a child's peak RSS counts the parent's pages it shared
# until exec). Decoding the 192 kHz 8-channel file in Python took 3 GB; streamed through ffmpeg the
# server grows by nothing measurable and ffmpeg holds a few MB.
SERVER_GROWTH_BOUND_KB = 30 * 1024
CHILD_EXTRA_BOUND_KB = 100 * 1024

MEASURE = """
import json, os, resource, shutil, sys, tempfile
from pathlib import Path
from ivr.infra.audio_convert import ReplyAudioError, convert_reply_audio
work = Path(tempfile.mkdtemp(dir=sys.argv[2]))
src = work / "upload"
shutil.copyfile(sys.argv[1], src)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    convert_reply_audio(src, work)
    out = {"status": 200}
except ReplyAudioError as exc:
    out = {"status": exc.status, "text": exc.text, "reason": exc.reason}
out["peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["growth_kb"] = out["peak_kb"] - before
out["child_peak_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
out["left"] = sorted(os.listdir(work))
print(json.dumps(out))
"""


# The whole server side of an upload in a fresh process: the app on its own SQLite database, a
# manager signed in with a referred message, the FLAC posted through the reply form.
SERVER = """
import json, resource, sys
from io import BytesIO
from pathlib import Path
from sqlalchemy import func, select
from ivr.config import load_settings
from ivr.db import make_engine, make_sessionmaker
from ivr.migrate import upgrade
from ivr.models import Recording, Reply, Unit, User
from ivr.services.users import hash_password
from tests.conftest import TEST_PASSWORD, csrf_token, login
from tests.test_web_inbox import referred_message
from web import create_app
tmp = Path(sys.argv[2])
settings = load_settings({"IVR_VAR_DIR": str(tmp / "var"), "IVR_DATA_DIR": str(tmp / "data"),
                          "IVR_DATABASE_URL": f"sqlite:///{tmp}/server.sqlite3"}, dotenv=False)
engine = make_engine(settings.database_url)
upgrade(engine)
factory = make_sessionmaker(engine)
with factory() as s:
    unit = Unit(code="u1", name="u1", kind="department")
    s.add(unit)
    s.flush()
    s.add(User(username="m1", full_name="m1", role="manager", unit_id=unit.id, password_hash=hash_password(TEST_PASSWORD)))
    msg_id = referred_message(s, settings, unit.id).id
    s.commit()
app = create_app(settings, session_factory=factory, config={"TESTING": True})
client = app.test_client()
login(client, "m1")
token = csrf_token(client, f"/inbox/messages/{msg_id}")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
response = client.post(f"/inbox/messages/{msg_id}/reply", content_type="multipart/form-data",
                       data={"csrf_token": token, "audio": (BytesIO(Path(sys.argv[1]).read_bytes()), "b.flac")})
out = {"status": response.status_code, "page": response.get_data(as_text=True)}
out["peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["growth_kb"] = out["peak_kb"] - before
out["child_peak_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with factory() as s:
    out["replies"] = s.scalar(select(func.count()).select_from(Reply))
    out["reply_recordings"] = s.scalar(select(func.count()).select_from(Recording).where(Recording.purpose == "reply"))
out["files"] = sorted(str(p.relative_to(settings.data_dir)) for p in settings.data_dir.rglob("*") if p.is_file())
print(json.dumps(out))
"""


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly (making test files)."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def surround_silence(path: Path, seconds: int) -> Path:
    """The issue's file: 8-channel 192 kHz 32-bit FLAC of silence (127 KB for 240 s)."""
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=192000:cl=7.1", "-t", str(seconds), "-c:a", "flac",
           "-sample_fmt", "s32", str(path))
    return path


def measure(src: Path, tmp_path: Path) -> dict[str, Any]:
    """Convert `src` in a fresh Python process; its answer and peak memory figures."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(src), str(tmp_path)], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=300)
    return json.loads(done.stdout)


def work_with(tmp_path: Path, data: bytes) -> tuple[Path, Path]:
    """A work folder holding one upload, named as send_reply names it."""
    work = tmp_path / "work"
    work.mkdir()
    src = work / "upload"
    src.write_bytes(data)
    return src, work


@pytest.mark.parametrize("seconds,reason", [(240, "too_long"), (20, "silent")])
def test_convert_surround_192khz_flac_keeps_the_server_memory_bounded(tmp_path: Path, seconds: int,
                                                                      reason: str) -> None:
    # 240 s is refused by the probe before any decoding; 20 s passes it and streams through ffmpeg.
    src = surround_silence(tmp_path / "b.flac", seconds)
    assert src.stat().st_size < 200 * 1024
    out = measure(src, tmp_path)
    assert (out["status"], out["reason"]) == (400, reason)
    assert out["text"] in ("پاسخ صوتی بیش از 3 دقیقه است؛ کوتاه‌ترش کنید.",
                           "در این پرونده صدایی شنیده نمی‌شود (سکوت است).")
    assert out["growth_kb"] <= SERVER_GROWTH_BOUND_KB, out
    assert out["child_peak_kb"] <= out["peak_kb"] + CHILD_EXTRA_BOUND_KB, out
    assert out["left"] == ["upload"]


def test_upload_of_surround_192khz_flac_keeps_the_server_memory_bounded_and_stores_nothing(tmp_path: Path) -> None:
    src = surround_silence(tmp_path / "b.flac", 240)
    done = subprocess.run([sys.executable, "-c", SERVER, str(src), str(tmp_path)], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=300)
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["status"] == 400 and "پاسخ صوتی بیش از ۳ دقیقه است؛ کوتاه‌ترش کنید." in out["page"]
    assert out["growth_kb"] <= SERVER_GROWTH_BOUND_KB, {k: v for k, v in out.items() if k != "page"}
    assert out["child_peak_kb"] <= out["peak_kb"] + CHILD_EXTRA_BOUND_KB, {k: v for k, v in out.items() if k != "page"}
    assert (out["replies"], out["reply_recordings"]) == (0, 0)
    # Only the message's own recording is stored; nothing is left in the uploads folder.
    assert len([f for f in out["files"] if f.startswith("recordings/")]) == 1, out["files"]
    assert [f for f in out["files"] if f.startswith("uploads/")] == []


def test_convert_hls_playlist_naming_a_local_mp3_is_refused(tmp_path: Path) -> None:
    mp3 = tmp_path / "secret.mp3"
    write_speech_wav(tmp_path / "secret.wav", 6.4)
    ffmpeg("-i", str(tmp_path / "secret.wav"), str(mp3))
    playlist = (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:6.4,\n{mp3}\n#EXT-X-ENDLIST\n").encode()
    src, work = work_with(tmp_path, playlist)
    with pytest.raises(ReplyAudioError) as refused:
        convert_reply_audio(src, work)
    assert (refused.value.status, refused.value.text, refused.value.reason) == (400, NOT_AUDIO, "not_audio")
    assert sorted(p.name for p in work.iterdir()) == ["upload"]


@pytest.mark.parametrize("body", [
    b"ffconcat version 1.0\nfile '/etc/passwd'\n",
    b"[playlist]\nFile1=/tmp/x.mp3\n",
    b"<?xml version='1.0'?><smil><body><audio src='file:/tmp/x.mp3'/></body></smil>",
])
def test_convert_other_files_naming_files_are_refused(tmp_path: Path, body: bytes) -> None:
    src, work = work_with(tmp_path, body)
    with pytest.raises(ReplyAudioError) as refused:
        convert_reply_audio(src, work)
    assert refused.value.reason == "not_audio"
    assert sorted(p.name for p in work.iterdir()) == ["upload"]


def test_probe_reports_container_codec_rate_channels_and_length(tmp_path: Path) -> None:
    src = surround_silence(tmp_path / "b.flac", 3)
    probe = probe_audio(src)
    assert (probe.container, probe.codec, probe.rate, probe.channels, probe.streams) == ("flac", "flac", 192000, 8, 1)
    assert probe.seconds == pytest.approx(3.0, abs=0.01)


def test_convert_video_codec_or_unknown_audio_codec_is_refused(tmp_path: Path) -> None:
    mkv = tmp_path / "a.mkv"
    ffmpeg("-f", "lavfi", "-i", "sine=d=2", "-c:a", "ac3", str(mkv))  # matroska, but not a codec we take
    src, work = work_with(tmp_path, mkv.read_bytes())
    with pytest.raises(ReplyAudioError) as refused:
        convert_reply_audio(src, work)
    assert refused.value.reason == "not_audio"
    assert sorted(p.name for p in work.iterdir()) == ["upload"]


def test_convert_m4a_from_a_phone_goes_to_8khz_mono_and_ogg(tmp_path: Path) -> None:
    m4a = tmp_path / "a.m4a"
    ffmpeg("-i", str(write_speech_wav(tmp_path / "s.wav", 2.0)), "-ac", "2", "-ar", "44100", "-c:a", "aac", str(m4a))
    src, work = work_with(tmp_path, m4a.read_bytes())
    converted = convert_reply_audio(src, work)
    with wave.open(str(converted.phone_wav)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        frames = w.getnframes()
    assert converted.browser.name == "reply.ogg" and converted.browser.read_bytes().startswith(b"OggS")
    assert converted.seconds == pytest.approx(2.0, abs=0.1)
    assert converted.phone_wav.stat().st_size == 44 + frames * 2  # a plain header, as Asterisk expects


def test_convert_webm_longer_than_its_header_says_is_cut_at_the_limit(tmp_path: Path) -> None:
    # MediaRecorder's WebM has no duration: only the decode can tell, and it stops a second past the limit.
    webm = tmp_path / "a.webm"
    ffmpeg("-i", str(write_speech_wav(tmp_path / "s.wav", 8.0)), "-c:a", "libopus", str(webm))
    src, work = work_with(tmp_path, webm.read_bytes())
    with pytest.raises(ReplyAudioError) as refused:
        convert_reply_audio(src, work, ReplyAudioLimits(max_seconds=5))
    assert refused.value.reason == "too_long"
    assert sorted(p.name for p in work.iterdir()) == ["upload"]


def test_convert_waits_for_a_slot_then_says_busy_in_persian(tmp_path: Path) -> None:
    webm = tmp_path / "a.webm"
    ffmpeg("-i", str(write_speech_wav(tmp_path / "s.wav", 2.0)), "-c:a", "libopus", str(webm))
    src, work = work_with(tmp_path, webm.read_bytes())
    slots = ConversionSlots(1, wait_seconds=0.1)
    with slots.held():
        with pytest.raises(ReplyAudioError) as refused:
            convert_reply_audio(src, work, slots=slots)
    assert (refused.value.status, refused.value.text, refused.value.reason) == (503, BUSY, "busy")
    assert sorted(p.name for p in work.iterdir()) == ["upload"]
    # A slot freed while waiting is taken.
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with slots.held():
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    slots.wait_seconds = 5.0
    threading.Timer(0.2, release.set).start()
    converted = convert_reply_audio(src, work, slots=slots)
    thread.join()
    assert converted.phone_wav.is_file() and converted.browser.name == "reply.webm"


def test_conversion_slots_default_to_the_cpu_count() -> None:
    import os

    assert ConversionSlots().size == (os.cpu_count() or 1)
    assert ConversionSlots(3).size == 3


@pytest.mark.parametrize("name,make,browser", [
    ("ogg", ["-c:a", "libvorbis"], "reply.ogg"),
    ("ogg", ["-c:a", "flac"], "reply.ogg"),
    ("aac", ["-f", "adts"], "reply.ogg"),
    ("wav", ["-c:a", "pcm_mulaw"], "reply.ogg"),
    ("mp3", ["-write_xing", "0", "-id3v2_version", "0"], "reply.mp3"),  # bare MP3 frames, no header
])
def test_convert_accepts_the_allowed_formats(tmp_path: Path, name: str, make: list[str], browser: str) -> None:
    made = tmp_path / f"a.{name}"
    ffmpeg("-i", str(write_speech_wav(tmp_path / "s.wav", 2.0)), *make, str(made))
    src, work = work_with(tmp_path, made.read_bytes())
    converted = convert_reply_audio(src, work)
    assert converted.browser.name == browser and converted.seconds == pytest.approx(2.0, abs=0.25)  # encoder padding
    assert sorted(p.name for p in work.iterdir()) == sorted(["upload", "reply.wav", browser])


def test_convert_takes_the_audio_of_a_video_or_an_mp3_with_a_cover_picture(tmp_path: Path) -> None:
    speech = write_speech_wav(tmp_path / "s.wav", 2.0)
    video, cover, mp3 = tmp_path / "v.webm", tmp_path / "c.png", tmp_path / "c.mp3"
    ffmpeg("-f", "lavfi", "-i", "testsrc=d=2:s=64x64", "-i", str(speech), "-t", "2", "-c:v", "libvpx", "-c:a",
           "libopus", str(video))
    ffmpeg("-f", "lavfi", "-i", "testsrc=d=1:s=64x64", "-frames:v", "1", str(cover))
    ffmpeg("-i", str(speech), "-i", str(cover), "-map", "0:a", "-map", "1:v", "-c:v", "png",
           "-disposition:v", "attached_pic", str(mp3))
    for made in (video, mp3):
        work = tmp_path / f"work-{made.suffix[1:]}"
        work.mkdir()
        shutil.copyfile(made, work / "upload")
        converted = convert_reply_audio(work / "upload", work)
        assert converted.browser.name == "reply.ogg" and converted.seconds == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("name", ["b.flac", "b.webm"])  # ffmpeg reading the file itself, or fed through the FIFO
def test_convert_taking_too_long_is_stopped_and_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        name: str) -> None:
    from ivr.infra import audio_convert

    made = tmp_path / name
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "60", str(made))
    src, work = work_with(tmp_path, made.read_bytes())
    monkeypatch.setattr(audio_convert, "DECODE_TIMEOUT", 0.001)
    with pytest.raises(ReplyAudioError) as refused:
        convert_reply_audio(src, work)
    assert refused.value.reason == "not_audio"
    assert sorted(p.name for p in work.iterdir()) == ["upload"]


def test_convert_without_fifos_reads_the_file_after_the_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ivr.infra import audio_convert

    def no_fifo(path: object, mode: int = 0o666) -> None:
        raise OSError(1, "Operation not permitted")

    webm = tmp_path / "a.webm"
    ffmpeg("-i", str(write_speech_wav(tmp_path / "s.wav", 2.0)), "-c:a", "libopus", str(webm))
    src, work = work_with(tmp_path, webm.read_bytes())
    monkeypatch.setattr(audio_convert.os, "mkfifo", no_fifo)
    converted = convert_reply_audio(src, work)
    assert converted.browser.name == "reply.webm" and converted.seconds == pytest.approx(2.0, abs=0.1)
