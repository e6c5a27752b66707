"""Checking and converting an uploaded spoken reply: real audio, not too long, not silent.

Nothing here trusts a file name, an extension or a MIME type: ffprobe must find an audio
stream and ffmpeg (through pydub) must decode it. The result is two files: an 8 kHz mono
16-bit WAV for the phone (what Asterisk plays as `wav`) and a copy for browsers: the upload
itself when it is WebM/Ogg (Opus or Vorbis) or MP3, which is what MediaRecorder makes and every
current browser plays, else an Ogg/Opus encoding of it.
"""
from __future__ import annotations

import logging
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.infra.storage import has_speech

log = logging.getLogger(__name__)

PHONE_RATE = 8000
BROWSER_FORMAT = "ogg"  # Opus in Ogg: small, played by every current browser


@dataclass(frozen=True)
class ReplyAudioLimits:
    """What an uploaded reply may be."""

    max_bytes: int = 10 * 1024 * 1024
    max_seconds: float = 180.0
    min_seconds: float = 1.0
    min_speech_ms: int = 300
    silence_threshold_dbfs: float = -45.0


class ReplyAudioError(ValueError):
    """An upload that is not an acceptable spoken reply; `text` is the Persian message for the user."""

    def __init__(self, text: str, status: int = 400, reason: str = "invalid") -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ConvertedAudio:
    """A checked reply: the phone WAV, the browser copy (both in the work folder) and its length."""

    phone_wav: Path
    browser: Path
    seconds: float


def _probe(path: Path) -> dict[str, Any]:
    from pydub.utils import mediainfo_json

    try:
        return mediainfo_json(str(path)) or {}
    except Exception:  # ffprobe's JSON missing or malformed: not something we can read
        return {}


def _audio_streams(info: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in info.get("streams") or [] if s.get("codec_type") == "audio"]


def _playable_as_is(info: dict[str, Any]) -> str | None:
    """The extension to keep the upload under when browsers play it as it is (what MediaRecorder makes)."""
    names = set((info.get("format") or {}).get("format_name", "").split(","))
    streams = info.get("streams") or []
    codecs = {s.get("codec_name") for s in streams}
    if len(streams) != 1:
        return None
    for container, ext, allowed in (("webm", "webm", {"opus", "vorbis"}), ("ogg", "ogg", {"opus", "vorbis"}),
                                    ("mp3", "mp3", {"mp3"})):
        if container in names and codecs <= allowed:
            return ext
    return None


def _write_phone_wav(audio: Any, path: Path) -> None:
    phone = audio.set_channels(1).set_frame_rate(PHONE_RATE).set_sample_width(2)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(PHONE_RATE)
        w.writeframes(phone.raw_data)


def convert_reply_audio(src: Path, work_dir: Path, limits: ReplyAudioLimits | None = None) -> ConvertedAudio:
    """Check `src` for real and write the phone WAV and the browser copy into `work_dir`.

    Raises ReplyAudioError (413 for a file too big, 400 otherwise) and then leaves nothing behind
    in `work_dir` except `src` itself.
    """
    from pydub import AudioSegment

    limits = limits or ReplyAudioLimits()
    size = src.stat().st_size if src.is_file() else 0
    if size == 0:
        raise ReplyAudioError("پرونده صوتی فرستاده نشد یا خالی است.", 400, "missing")
    if size > limits.max_bytes:
        megabytes = f"{round(limits.max_bytes / (1024 * 1024), 2):g}".replace(".", "٫")
        raise ReplyAudioError(f"پرونده بزرگ‌تر از حد مجاز ({megabytes} مگابایت) است.", 413, "too_big")
    info = _probe(src)
    if not _audio_streams(info):
        raise ReplyAudioError("این پرونده صدا نیست یا خراب است.", 400, "not_audio")
    try:
        # Decode at most a second past the limit: a very long file costs no more than that.
        audio = AudioSegment.from_file(str(src), format=None, duration=limits.max_seconds + 1)
    except Exception as exc:  # pydub raises CouldntDecodeError, IndexError, ... from ffmpeg output
        log.info("reply upload not decodable: %s", str(exc).splitlines()[0] if str(exc) else exc)
        raise ReplyAudioError("این پرونده صدا نیست یا خراب است.", 400, "not_audio") from None
    seconds = len(audio) / 1000.0
    if seconds > limits.max_seconds:
        raise ReplyAudioError(
            f"پاسخ صوتی بیش از {int(limits.max_seconds // 60)} دقیقه است؛ کوتاه‌ترش کنید.", 400, "too_long"
        )
    if seconds < limits.min_seconds:
        raise ReplyAudioError("پاسخ صوتی خیلی کوتاه است.", 400, "too_short")
    phone_wav = work_dir / "reply.wav"
    keep_as = _playable_as_is(info)
    browser = work_dir / f"reply.{keep_as or BROWSER_FORMAT}"
    try:
        _write_phone_wav(audio, phone_wav)
        if not has_speech(
            phone_wav, min_speech_ms=limits.min_speech_ms, threshold_dbfs=limits.silence_threshold_dbfs
        ):
            raise ReplyAudioError("در این پرونده صدایی شنیده نمی‌شود (سکوت است).", 400, "silent")
        if keep_as:
            shutil.copyfile(src, browser)
        else:
            # Speech needs no more than 16 kHz; a lower Opus complexity keeps a 3-minute file quick.
            audio.set_channels(1).set_frame_rate(16000).export(
                str(browser), format=BROWSER_FORMAT, codec="libopus", bitrate="24k",
                parameters=["-compression_level", "3"],
            ).close()
    except BaseException:
        phone_wav.unlink(missing_ok=True)
        browser.unlink(missing_ok=True)
        raise
    return ConvertedAudio(phone_wav=phone_wav, browser=browser, seconds=round(seconds, 3))
