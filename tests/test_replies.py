"""Spoken replies sent from the console: what a good upload leaves, and that a bad one leaves nothing."""
from __future__ import annotations

import re
import subprocess
import time
import wave
from collections.abc import Iterator
from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pytest
from pydub import AudioSegment
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.infra.audio_convert import ConversionSlots, ReplyAudioLimits
from ivr.infra.storage import AudioStore, has_speech
from ivr.jobqueue import InProcessJobs, JobRegistry
from ivr.models import AuditEntry, Message, Recording, Referral, Reminder, Reply
from ivr.services.messages import phone_status
from tests.conftest import csrf_token, login
from tests.fakes import write_speech_wav
from tests.test_web_inbox import referred_message, unit_of


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Upload bodies: browser-like WebM/Opus, MP3, and bad files of every kind."""
    root = tmp_path_factory.mktemp("samples")
    with write_speech_wav(root / "speech.wav", 3.0).open("rb") as f:  # pydub leaves paths it opens unclosed
        speech = AudioSegment.from_file(f, format="wav")
    browser = speech.set_frame_rate(48000).set_channels(2)
    out: dict[str, bytes] = {}
    for name, segment, fmt, codec in (
        ("webm", browser, "webm", "libopus"),
        ("mp3", speech.set_frame_rate(44100), "mp3", None),
        ("wav", speech.set_frame_rate(16000), "wav", None),
        ("silent", AudioSegment.silent(4000, frame_rate=48000), "webm", "libopus"),
        ("seven_seconds", browser * 3, "ogg", "libopus"),
        ("long", AudioSegment.silent(185_000, frame_rate=8000), "ogg", "libopus"),
    ):
        path = root / f"{name}.{fmt}"
        segment.export(str(path), format=fmt, codec=codec).close()
        out[name] = path.read_bytes()
    # The hostile files: 240 s of 8-channel 192 kHz silence (127 KB), an HLS playlist naming a local mp3.
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=192000:cl=7.1",
                    "-t", "240", "-c:a", "flac", "-sample_fmt", "s32", str(root / "b.flac")], check=True)
    out["surround"] = (root / "b.flac").read_bytes()
    out["playlist"] = (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:3.0,\n{root / 'mp3.mp3'}\n#EXT-X-ENDLIST\n").encode()
    out["text"] = "این یک پرونده صوتی نیست\n".encode() * 50
    out["truncated"] = out["webm"][:300]
    out["png"] = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\0" * 64
    return out


@pytest.fixture
def followups() -> list[int]:
    """Reply ids whose citizen's notice was queued (and run)."""
    return []


@pytest.fixture
def jobs(settings: Settings, session_factory: sessionmaker[Session], followups: list[int]) -> Iterator[InProcessJobs]:
    """The app's queue, knowing only the reply follow-up job, which just records its reply id."""
    registry = JobRegistry({"reply.followup": lambda ctx, reply_id: followups.append(reply_id)})
    queue = InProcessJobs(settings, session_factory, registry, workers=1)
    yield queue
    queue.close(timeout=5)


@pytest.fixture
def setup(session_factory: sessionmaker[Session], settings: Settings, make_user) -> dict[str, object]:
    """A manager with one referred 137 request (with an open reminder) in their inbox."""
    name, password = make_user("manager")
    with session_factory() as s:
        unit = unit_of(s, name)
        msg = referred_message(s, settings, unit, line="137", kind="request")
        s.add(Reminder(message_id=msg.id, unit_id=unit, reason="dissatisfied"))
        s.commit()
        return {"manager": name, "password": password, "msg": msg.id, "unit": unit,
                "message_file": msg.recordings[0].path}


def post_reply(client, message_id: int, body: bytes | None, *, filename: str = "reply.webm",
               mimetype: str = "audio/webm", text: str = "", with_csrf: bool = True):
    """POST the reply form as the browser does (multipart, CSRF token from the message page)."""
    data: dict[str, object] = {"text": text}
    if with_csrf:
        data["csrf_token"] = csrf_token(client, f"/inbox/messages/{message_id}")
    if body is not None:
        data["audio"] = (BytesIO(body), filename, mimetype)
    return client.post(f"/inbox/messages/{message_id}/reply", data=data, content_type="multipart/form-data")


def stored_files(settings: Settings) -> set[str]:
    """Every file under the recordings folder, relative."""
    root = settings.recordings_dir
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def assert_nothing_stored(db: Session, settings: Settings, setup: dict[str, object], followups: list[int]) -> None:
    """No reply, no reply audio, no file beyond the message's own, the message still waiting."""
    db.expire_all()
    assert db.scalars(select(Reply)).all() == []
    assert db.scalars(select(Recording).where(Recording.purpose == "reply")).all() == []
    assert stored_files(settings) == {setup["message_file"]}
    uploads = settings.data_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
    msg = db.get(Message, setup["msg"])
    assert msg.status == "referred"
    assert db.scalar(select(Referral.closed_at).where(Referral.message_id == msg.id)) is None
    assert db.scalar(select(Reminder.resolved_at).where(Reminder.message_id == msg.id)) is None
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "answer")).all() == []
    time.sleep(0.2)
    assert followups == []


def wait_for(items: list[int], count: int = 1, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(items) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # room for a second, wrong, run to show up


@pytest.mark.parametrize("kind,filename,mimetype,browser_format,magic", [
    ("webm", "reply.webm", "audio/webm", "webm", b"\x1aE\xdf\xa3"),  # MediaRecorder's own file is kept
    ("mp3", "reply.bin", "application/octet-stream", "mp3", b"ID3"),
    ("wav", "reply.mp3", "audio/mpeg", "ogg", b"OggS"),  # anything else becomes Ogg/Opus
])
def test_reply_upload_is_stored_for_phone_and_browser(client, db, settings, setup, samples, followups, kind: str,
                                                      filename: str, mimetype: str, browser_format: str,
                                                      magic: bytes) -> None:
    login(client, setup["manager"], setup["password"])
    response = post_reply(client, setup["msg"], samples[kind], filename=filename, mimetype=mimetype,
                          text="لامپ‌ها تعویض شد")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/inbox/messages/{setup['msg']}")
    db.expire_all()
    (reply,) = db.scalars(select(Reply)).all()
    assert (reply.message_id, reply.text) == (setup["msg"], "لامپ‌ها تعویض شد")
    referral = db.scalar(select(Referral).where(Referral.message_id == setup["msg"]))
    assert reply.referral_id == referral.id and referral.closed_at is not None
    assert reply.author_id is not None
    phone, browser = reply.recordings
    assert (phone.format, browser.format, phone.purpose, browser.purpose) == ("wav", browser_format, "reply", "reply")
    store = AudioStore(settings.recordings_dir)
    with wave.open(str(store.path_of(phone.path))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() / 8000 == pytest.approx(3.0, abs=0.1)
    assert has_speech(store.path_of(phone.path))
    assert store.path_of(browser.path).read_bytes().startswith(magic)
    assert browser.path.endswith(f".{browser_format}")
    assert phone.seconds == pytest.approx(3.0, abs=0.1) and phone.size_bytes == store.path_of(phone.path).stat().st_size
    assert stored_files(settings) == {setup["message_file"], phone.path, browser.path}
    msg = db.get(Message, setup["msg"])
    assert msg.status == "answered"
    assert db.scalar(select(Reminder.resolved_at).where(Reminder.message_id == msg.id)) is not None
    (entry,) = db.scalars(select(AuditEntry).where(AuditEntry.action == "answer")).all()
    assert (entry.object_type, entry.object_id, entry.user_id) == ("message", msg.id, reply.author_id)
    # The phone follow-up plays the 8 kHz WAV, never the browser copy.
    assert phone_status(msg).reply_audio == phone.path
    wait_for(followups)
    assert followups == [reply.id]
    page = client.get(f"/inbox/messages/{setup['msg']}").get_data(as_text=True)
    assert "پاسخ صوتی فرستاده شد" in page and "لامپ‌ها تعویض شد" in page and 'class="reply-audio"' in page
    assert 'id="reply-form"' not in page  # answered: no second reply form
    (src,) = re.findall(r'class="reply-audio" controls preload="none" src="(/audio/[^"]+)"', page)
    played = client.get(src)
    assert played.status_code == 200 and played.data.startswith(magic)
    assert played.mimetype == {"webm": "audio/webm", "mp3": "audio/mpeg", "ogg": "audio/ogg"}[browser_format]
    played.close()


def test_reply_to_a_request_reopened_by_a_reminder(client, db, settings, setup, samples, followups) -> None:
    # The citizen was not satisfied with an earlier reply: the referral is closed, a reminder is open.
    referral = db.scalar(select(Referral).where(Referral.message_id == setup["msg"]))
    closed_at = referral.referred_at + timedelta(days=1)
    referral.closed_at = closed_at
    db.commit()
    login(client, setup["manager"], setup["password"])
    inbox = client.get("/inbox/?state=open").get_data(as_text=True)
    assert f'data-message="{setup["msg"]}"' in inbox and "۱ تذکر" in inbox
    assert post_reply(client, setup["msg"], samples["webm"]).status_code == 302
    db.expire_all()
    assert db.get(Message, setup["msg"]).status == "answered"
    assert db.scalar(select(Referral.closed_at).where(Referral.message_id == setup["msg"])) == closed_at
    assert db.scalar(select(Reminder.resolved_at).where(Reminder.message_id == setup["msg"])) is not None
    assert "تذکر" not in client.get("/inbox/").get_data(as_text=True).split("<tbody>", 1)[1]


@pytest.mark.parametrize(
    "sample,status,error",
    [
        ("text", 400, "این پرونده صدا نیست یا خراب است."),
        ("png", 400, "این پرونده صدا نیست یا خراب است."),
        ("truncated", 400, "این پرونده صدا نیست یا خراب است."),
        ("silent", 400, "در این پرونده صدایی شنیده نمی‌شود (سکوت است)."),
        ("long", 400, "پاسخ صوتی بیش از ۳ دقیقه است؛ کوتاه‌ترش کنید."),
        ("surround", 400, "پاسخ صوتی بیش از ۳ دقیقه است؛ کوتاه‌ترش کنید."),
        ("playlist", 400, "این پرونده صدا نیست یا خراب است."),
        ("empty", 400, "پرونده صوتی فرستاده نشد یا خالی است."),
        (None, 400, "پرونده صوتی فرستاده نشد یا خالی است."),
    ],
)
def test_reply_bad_upload_is_refused_and_nothing_stored(client, db, settings, setup, samples, followups,
                                                        sample: str | None, status: int, error: str) -> None:
    login(client, setup["manager"], setup["password"])
    body = b"" if sample == "empty" else (samples[sample] if sample else None)
    response = post_reply(client, setup["msg"], body)
    assert response.status_code == status
    page = response.get_data(as_text=True)
    assert error in page and 'id="reply-form"' in page
    assert_nothing_stored(db, settings, setup, followups)


def test_reply_too_big_is_refused_with_413(app, client, db, settings, setup, samples, followups) -> None:
    # Kept under 500 kB: werkzeug's test client leaks the temporary file of a larger body.
    app.config["REPLY_AUDIO_LIMITS"] = ReplyAudioLimits(max_bytes=256 * 1024)
    login(client, setup["manager"], setup["password"])
    response = post_reply(client, setup["msg"], samples["webm"] + b"\0" * (256 * 1024))
    assert response.status_code == 413
    assert "پرونده بزرگ‌تر از حد مجاز (۰٫۲۵ مگابایت) است." in response.get_data(as_text=True)
    assert_nothing_stored(db, settings, setup, followups)


def test_reply_over_the_request_limit_is_refused_with_413(app, client, db, settings, setup, followups) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    login(client, setup["manager"], setup["password"])
    token = csrf_token(client, f"/inbox/messages/{setup['msg']}")
    response = client.post(f"/inbox/messages/{setup['msg']}/reply", content_type="multipart/form-data",
                           data={"csrf_token": token, "audio": (BytesIO(b"\1" * 128 * 1024), "big.webm")})
    assert response.status_code == 413 and "اندازه پرونده بیش از حد مجاز است." in response.get_data(as_text=True)
    assert_nothing_stored(db, settings, setup, followups)


def test_reply_when_every_conversion_slot_stays_busy_is_503_in_persian(app, client, db, settings, setup, samples,
                                                                      followups) -> None:
    slots = ConversionSlots(1, wait_seconds=0.1)
    app.extensions["ivr_conversion_slots"] = slots
    login(client, setup["manager"], setup["password"])
    with slots.held():
        response = post_reply(client, setup["msg"], samples["webm"])
    assert response.status_code == 503
    assert "سرگرم آماده‌کردن پاسخ‌های دیگر است؛ چند لحظه بعد دوباره بفرستید." in response.get_data(as_text=True)
    assert_nothing_stored(db, settings, setup, followups)
    assert post_reply(client, setup["msg"], samples["webm"]).status_code == 302  # the slot is free again


def test_reply_too_long_for_configured_limit(app, client, db, settings, setup, samples, followups) -> None:
    app.config["REPLY_AUDIO_LIMITS"] = ReplyAudioLimits(max_seconds=5)
    login(client, setup["manager"], setup["password"])
    response = post_reply(client, setup["msg"], samples["seven_seconds"], filename="a.ogg", mimetype="audio/ogg")
    assert response.status_code == 400 and "بیش از ۰ دقیقه" in response.get_data(as_text=True)
    assert_nothing_stored(db, settings, setup, followups)


def test_reply_without_csrf_is_refused(client, db, settings, setup, samples, followups) -> None:
    login(client, setup["manager"], setup["password"])
    response = post_reply(client, setup["msg"], samples["webm"], with_csrf=False)
    assert response.status_code == 400 and "برگه منقضی شده است" in response.get_data(as_text=True)
    assert_nothing_stored(db, settings, setup, followups)


def test_reply_to_another_units_message_is_404(client, db, settings, setup, samples, followups, make_user) -> None:
    other, password = make_user("manager")
    login(client, other, password)
    token = csrf_token(client, "/inbox/")
    response = client.post(f"/inbox/messages/{setup['msg']}/reply", content_type="multipart/form-data",
                           data={"csrf_token": token, "audio": (BytesIO(samples["webm"]), "r.webm")})
    assert response.status_code == 404
    assert_nothing_stored(db, settings, setup, followups)


def test_reply_by_supervisor_is_403(client, db, settings, setup, samples, followups, make_user) -> None:
    name, password = make_user("supervisor")
    login(client, name, password)
    token = csrf_token(client, f"/inbox/messages/{setup['msg']}")
    response = client.post(f"/inbox/messages/{setup['msg']}/reply", content_type="multipart/form-data",
                           data={"csrf_token": token, "audio": (BytesIO(samples["webm"]), "r.webm")})
    assert response.status_code == 403
    assert_nothing_stored(db, settings, setup, followups)


def test_reply_twice_is_409_and_keeps_the_first(client, db, settings, setup, samples, followups) -> None:
    login(client, setup["manager"], setup["password"])
    assert post_reply(client, setup["msg"], samples["webm"]).status_code == 302
    token = csrf_token(client, "/inbox/")
    second = client.post(f"/inbox/messages/{setup['msg']}/reply", content_type="multipart/form-data",
                         data={"csrf_token": token, "audio": (BytesIO(samples["mp3"]), "r.mp3")})
    assert second.status_code == 409 and "این پیام در انتظار پاسخ نیست." in second.get_data(as_text=True)
    db.expire_all()
    assert len(db.scalars(select(Reply)).all()) == 1
    assert len(db.scalars(select(Recording).where(Recording.purpose == "reply")).all()) == 2
    assert len(stored_files(settings)) == 3
    wait_for(followups)
    assert len(followups) == 1


def test_reply_rolled_back_transaction_leaves_no_files(db, settings, session_factory, setup, samples, followups,
                                                       tmp_path: Path, jobs, monkeypatch) -> None:
    from ivr.services import replies
    from ivr.services.inbox import Viewer
    from tests.test_web_inbox import user_id

    viewer = Viewer(user_id(db, setup["manager"]), "manager", setup["unit"])
    original = replies.record_reply

    def failing(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("database went away")

    monkeypatch.setattr(replies, "record_reply", failing)
    with pytest.raises(RuntimeError):
        replies.send_reply(session_factory, AudioStore(settings.recordings_dir), jobs, viewer, setup["msg"],
                           upload=BytesIO(samples["webm"]), work_root=tmp_path / "work")
    assert_nothing_stored(db, settings, setup, followups)
    assert list((tmp_path / "work").iterdir()) == []


def test_reply_limits_default_to_three_minutes_and_ten_megabytes() -> None:
    limits = ReplyAudioLimits()
    assert (limits.max_seconds, limits.max_bytes) == (180.0, 10 * 1024 * 1024)


def test_reply_due_date_fixture_is_in_the_future(db, setup) -> None:
    referral = db.scalar(select(Referral).where(Referral.message_id == setup["msg"]))
    assert referral.due_at - referral.referred_at == timedelta(days=5)
