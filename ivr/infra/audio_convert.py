"""Checking and converting an uploaded spoken reply: real audio, not too long, not silent, affordable.

Nothing here trusts a file name, an extension or a MIME type. ffprobe looks first, reading only
local files (`-protocol_whitelist file`) through an allow-list of demuxers (no playlists, no concat,
no HLS: an `.m3u8` naming a local file is refused) and of codecs; the container, codec, length,
rate and channels it reports are checked before a single sample is decoded. Then ONE ffmpeg
process streams the upload straight to an 8 kHz mono 16-bit WAV for the phone (what Asterisk plays
as `wav`), reading at most a second past the length limit, so memory stays a few megabytes whatever
the rate, width and channels of the upload (a 192 kHz 8-channel FLAC once took 3 GB in Python).

The copy for browsers is the upload itself when it is WebM/Ogg (Opus or Vorbis) or MP3, which is
what MediaRecorder makes and every current browser plays, else an Ogg/Opus encoding made by the
same ffmpeg process. Conversions run at most `ConversionSlots.size` at a time.

Speed: each ffmpeg/ffprobe start costs ~55 ms here (their libraries are linked with BIND_NOW),
about as much as decoding a minute of Opus. So for what a browser uploads (WebM, Ogg, MP3: they
stream without seeking) the ffmpeg process is started before ffprobe runs and waits, blocked on
opening a FIFO, until the probe has accepted the file; only then is the upload fed to it. Both
start-ups overlap and the whole check costs about what the bare ffmpeg command line does.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ivr.infra.storage import AudioError, has_speech, wav_seconds

log = logging.getLogger(__name__)

PHONE_RATE = 8000
BROWSER_FORMAT = "ogg"  # Opus in Ogg: small, played by every current browser

PCM = frozenset({"pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_u8", "pcm_mulaw", "pcm_alaw",
                 "pcm_s16be", "pcm_s24be", "pcm_s32be", "pcm_f32be", "pcm_f64le"})
# Demuxer (ffprobe's first format name) -> the codecs accepted inside it. Nothing that names other
# files (hls, concat, playlists, image2, ...) is here, and ffmpeg itself gets the same lists.
FORMATS: dict[str, frozenset[str]] = {
    "matroska": frozenset({"opus", "vorbis", "flac", "aac", "mp3"}) | PCM,  # WebM/Opus: Chrome, Firefox
    "ogg": frozenset({"opus", "vorbis", "flac"}),
    "wav": PCM | frozenset({"adpcm_ms", "adpcm_ima_wav", "gsm_ms"}),
    "mp3": frozenset({"mp3"}),
    # M4A: phones, Safari's MediaRecorder; 3GP: older Android voice recorders (AMR)
    "mov": frozenset({"aac", "alac", "mp3", "opus", "flac", "amr_nb", "amr_wb"}),
    "flac": frozenset({"flac"}),
    "aac": frozenset({"aac"}),
    "amr": frozenset({"amr_nb", "amr_wb"}),
}
FORMAT_WHITELIST = "matroska,webm,ogg,wav,mp3,mov,flac,aac,amr"
# ffmpeg's whitelist names decoders, which for MP3 and AAC are not the codecs' names.
CODEC_WHITELIST = ",".join(sorted(set().union(*FORMATS.values(), {"mp3float", "aac_fixed", "amrnb", "amrwb"})))
MAX_RATE = 192_000
MAX_CHANNELS = 8
PROBE_TIMEOUT = 20.0  # seconds; a local file of at most 10 MB probes in well under one
DECODE_TIMEOUT = 120.0  # seconds of CPU a single reply may cost at worst (3 minutes of 192 kHz 7.1)

NOT_AUDIO = "این پرونده صدا نیست یا خراب است."
BUSY = "سامانه هم‌اکنون سرگرم آماده‌کردن پاسخ‌های دیگر است؛ چند لحظه بعد دوباره بفرستید."


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


class ConversionSlots:
    """At most `size` conversions at once (each is an ffmpeg process on a core); the rest wait a while.

    Built once per application (the app factory keeps it); `size` comes from IVR_AUDIO_CONVERSIONS.
    """

    def __init__(self, size: int | None = None, wait_seconds: float = 15.0) -> None:
        self.size = max(1, size or os.cpu_count() or 1)
        self.wait_seconds = wait_seconds
        self._semaphore = threading.BoundedSemaphore(self.size)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold one slot; ReplyAudioError (503, Persian "busy, try again") if none frees up in time."""
        if not self._semaphore.acquire(timeout=self.wait_seconds):
            log.warning("reply conversion refused: all %d slots busy for %.0f s", self.size, self.wait_seconds)
            raise ReplyAudioError(BUSY, 503, "busy")
        try:
            yield
        finally:
            self._semaphore.release()


@dataclass(frozen=True)
class AudioProbe:
    """What ffprobe found in an upload (its first audio stream)."""

    container: str
    codec: str
    seconds: float | None  # None when the container does not say (MediaRecorder's WebM)
    rate: int
    channels: int
    streams: int


def probe_audio(path: Path) -> AudioProbe:
    """ffprobe `path` (a local file, allowed formats only); ReplyAudioError 400 if it is not audio we take."""
    cmd = [
        "ffprobe", "-v", "error", "-hide_banner",
        # No -codec_whitelist here: ffprobe gives up on a whole file when one stream's decoder is not
        # on it (an MP3's cover picture, a phone video's picture); the audio codec is checked below
        # and the decoding ffmpeg has the whitelist.
        "-protocol_whitelist", "file", "-format_whitelist", FORMAT_WHITELIST,
        "-show_entries", "format=format_name,duration:stream=codec_type,codec_name,sample_rate,channels,duration",
        "-of", "json", f"file:{path}",
    ]
    info: dict[str, Any] = {}
    errors = b""
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=PROBE_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
        errors = done.stderr
        if done.returncode == 0:
            info = json.loads(done.stdout or b"{}")
    except (subprocess.TimeoutExpired, ValueError):
        errors = b"ffprobe timed out or wrote no JSON"
    streams = [s for s in info.get("streams") or [] if isinstance(s, dict)]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    fmt = info.get("format") or {}
    container = str(fmt.get("format_name") or "").split(",")[0]
    if not audio or container not in FORMATS:
        log.info("reply upload refused by the probe: %s", _first_line(errors) or container)
        raise ReplyAudioError(NOT_AUDIO, 400, "not_audio")
    first = audio[0]
    codec = str(first.get("codec_name") or "")
    rate, channels = _int(first.get("sample_rate")), _int(first.get("channels"))
    if codec not in FORMATS[container] or not 1 <= channels <= MAX_CHANNELS or not 1 <= rate <= MAX_RATE:
        log.info("reply upload refused: %s/%s at %d Hz, %d channels", container, codec, rate, channels)
        raise ReplyAudioError(NOT_AUDIO, 400, "not_audio")
    durations = [d for d in (_float(fmt.get("duration")), _float(first.get("duration"))) if d is not None]
    return AudioProbe(container, codec, max(durations) if durations else None, rate, channels, len(streams))


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _float(value: object) -> float | None:
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return seconds if seconds >= 0 and seconds == seconds else None  # not NaN


def _first_line(data: bytes | None) -> str:
    text = (data or b"").decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else ""


def _playable_as_is(probe: AudioProbe) -> str | None:
    """The extension to keep the upload under when browsers play it as it is (what MediaRecorder makes)."""
    if probe.streams != 1:
        return None
    for container, ext, allowed in (("matroska", "webm", {"opus", "vorbis"}), ("ogg", "ogg", {"opus", "vorbis"}),
                                    ("mp3", "mp3", {"mp3"})):
        if probe.container == container and probe.codec in allowed:
            return ext
    return None


def _streams_without_seeking(head: bytes) -> bool:
    """WebM, Ogg or MP3 by their first bytes: ffmpeg can read them from a FIFO (no MP4 `moov` at the end)."""
    return head.startswith((b"\x1a\x45\xdf\xa3", b"OggS", b"ID3")) or (
        len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    )


class _Decoder:
    """One ffmpeg process: the upload (first audio stream) to the phone WAV, and the browser copy if asked."""

    def __init__(self, source: Path, phone_wav: Path, browser: Path | None, max_seconds: float) -> None:
        self.log: IO[bytes] = tempfile.TemporaryFile()  # stderr: a pipe left unread could fill and stall it
        cmd = [
            "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y",
            "-protocol_whitelist", "file", "-format_whitelist", FORMAT_WHITELIST, "-codec_whitelist", CODEC_WHITELIST,
            "-t", f"{max_seconds + 1:.3f}", "-i", f"file:{source}",
            # ffmpeg resamples and downmixes; a plain 44-byte WAV header, as the wave module writes it.
            "-map", "0:a:0", "-ac", "1", "-ar", str(PHONE_RATE), "-c:a", "pcm_s16le", "-map_metadata", "-1",
            "-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", "wav", f"file:{phone_wav}",
        ]
        if browser is not None:
            # Speech needs no more than 16 kHz; a lower Opus complexity keeps a 3-minute file quick.
            cmd += ["-map", "0:a:0", "-ac", "1", "-ar", "16000", "-c:a", "libopus", "-b:a", "24k",
                    "-compression_level", "3", "-map_metadata", "-1", "-f", "ogg", f"file:{browser}"]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)

    def feed(self, fifo: Path, src: Path) -> None:
        """Give a waiting process its input through `fifo` (it stops reading at the length cap)."""
        fd = self._open_writer(fifo)
        if fd is None:
            return  # it ended before opening its input: finish() reports the failure
        # A process that stalls without reading would block this write for ever: stop it in time.
        watchdog = threading.Timer(DECODE_TIMEOUT, self.process.kill)
        watchdog.start()
        try:
            with os.fdopen(fd, "wb") as out, src.open("rb") as data:
                shutil.copyfileobj(data, out, 1 << 16)
        except BrokenPipeError:  # ffmpeg had read enough (the length cap) or gave up on the data
            pass
        finally:
            watchdog.cancel()

    def _open_writer(self, fifo: Path) -> int | None:
        # A blocking open would wait forever if ffmpeg died before opening the FIFO; poll instead.
        deadline = time.monotonic() + PROBE_TIMEOUT
        while True:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO or self.process.poll() is not None or time.monotonic() > deadline:
                    return None
                time.sleep(0.002)  # still starting up
                continue
            os.set_blocking(fd, True)
            return fd

    def finish(self) -> bool:
        """Wait for the process; True when it succeeded."""
        try:
            code: int | None = self.process.wait(timeout=DECODE_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("reply conversion took over %.0f s: stopped", DECODE_TIMEOUT)
            code = None
        self.stop()
        if code != 0:
            self.log.seek(0)
            log.info("reply upload not decodable (ffmpeg exit %s): %s", code, _first_line(self.log.read(4096)))
        self.log.close()
        return code == 0

    def stop(self) -> None:
        """End the process now if it still runs (it is not wanted, or took too long)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def convert_reply_audio(
    src: Path, work_dir: Path, limits: ReplyAudioLimits | None = None, slots: ConversionSlots | None = None
) -> ConvertedAudio:
    """Check `src` for real and write the phone WAV and the browser copy into `work_dir`.

    Raises ReplyAudioError (413 for a file too big, 503 when every conversion slot stays busy,
    400 otherwise) and then leaves nothing behind in `work_dir` except `src` itself.
    """
    limits = limits or ReplyAudioLimits()
    size = src.stat().st_size if src.is_file() else 0
    if size == 0:
        raise ReplyAudioError("پرونده صوتی فرستاده نشد یا خالی است.", 400, "missing")
    if size > limits.max_bytes:
        megabytes = f"{round(limits.max_bytes / (1024 * 1024), 2):g}".replace(".", "٫")
        raise ReplyAudioError(f"پرونده بزرگ‌تر از حد مجاز ({megabytes} مگابایت) است.", 413, "too_big")
    with (slots.held() if slots is not None else _no_slot()):
        return _convert(src, work_dir, limits)


@contextmanager
def _no_slot() -> Iterator[None]:
    yield


def _too_long(limits: ReplyAudioLimits) -> ReplyAudioError:
    return ReplyAudioError(
        f"پاسخ صوتی بیش از {int(limits.max_seconds // 60)} دقیقه است؛ کوتاه‌ترش کنید.", 400, "too_long"
    )


def _made_fifo(path: Path) -> bool:
    try:
        os.mkfifo(path, 0o600)
    except OSError as exc:  # a file system without FIFOs: ffmpeg reads the file after the probe instead
        log.warning("no FIFO for reply conversion in %s: %s", path.parent, exc)
        return False
    return True


def _convert(src: Path, work_dir: Path, limits: ReplyAudioLimits) -> ConvertedAudio:
    phone_wav = work_dir / "reply.wav"
    fifo = work_dir / "upload.fifo"
    with src.open("rb") as f:
        head = f.read(16)
    started: list[_Decoder] = []  # stopped (if still running) whatever happens
    browser: Path | None = None
    try:
        early: _Decoder | None = None
        if _streams_without_seeking(head) and _made_fifo(fifo):
            # Started now so its start-up overlaps ffprobe's; it blocks opening the FIFO until fed.
            early = _Decoder(fifo, phone_wav, None, limits.max_seconds)
            started.append(early)
        probe = probe_audio(src)
        if probe.seconds is not None and probe.seconds > limits.max_seconds + 0.5:
            raise _too_long(limits)  # before decoding a single sample
        keep_as = _playable_as_is(probe)
        browser = work_dir / f"reply.{keep_as or BROWSER_FORMAT}"
        if early is not None and keep_as is not None:
            decoder = early
            decoder.feed(fifo, src)
        else:
            if early is not None:
                early.stop()  # MP4 needs seeking, or the browser copy must be encoded too
            decoder = _Decoder(src, phone_wav, None if keep_as else browser, limits.max_seconds)
            started.append(decoder)
        if not decoder.finish() or not phone_wav.is_file():
            raise ReplyAudioError(NOT_AUDIO, 400, "not_audio")
        try:
            seconds = wav_seconds(phone_wav)
        except AudioError:
            seconds = 0.0
        if seconds == 0:
            raise ReplyAudioError(NOT_AUDIO, 400, "not_audio")
        if seconds > limits.max_seconds:
            raise _too_long(limits)
        if seconds < limits.min_seconds:
            raise ReplyAudioError("پاسخ صوتی خیلی کوتاه است.", 400, "too_short")
        if not has_speech(phone_wav, min_speech_ms=limits.min_speech_ms, threshold_dbfs=limits.silence_threshold_dbfs):
            raise ReplyAudioError("در این پرونده صدایی شنیده نمی‌شود (سکوت است).", 400, "silent")
        if keep_as:
            shutil.copyfile(src, browser)
        elif not browser.is_file() or browser.stat().st_size == 0:
            raise ReplyAudioError(NOT_AUDIO, 400, "not_audio")
    except BaseException:
        for process in started:
            process.stop()
        phone_wav.unlink(missing_ok=True)
        if browser is not None:
            browser.unlink(missing_ok=True)
        raise
    finally:
        for process in started:
            if not process.log.closed:
                process.log.close()
        fifo.unlink(missing_ok=True)
    return ConvertedAudio(phone_wav=phone_wav, browser=browser, seconds=round(seconds, 3))
