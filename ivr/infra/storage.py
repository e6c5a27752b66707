"""Audio storage: recordings are moved atomically into a dated tree and fingerprinted."""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
import warnings
import wave
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType


class AudioError(ValueError):
    """An audio file that cannot be stored or read."""


@dataclass(frozen=True)
class StoredAudio:
    """A file now in storage: its path relative to the storage root, and its facts."""

    rel_path: str
    format: str
    seconds: float
    sha256: str
    size_bytes: int


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def wav_seconds(path: Path) -> float:
    """The duration of a PCM WAV file; AudioError if it is not one."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate() or 1)
    except (wave.Error, EOFError, OSError) as exc:
        raise AudioError(f"{path.name}: not a readable WAV file ({exc})") from None


def _audioop() -> ModuleType:
    with warnings.catch_warnings():  # deprecated since 3.11, still shipped; pydub needs it too
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    return audioop


def has_speech(path: Path, *, min_speech_ms: int = 300, threshold_dbfs: float = -45.0) -> bool:
    """True when the recording holds at least `min_speech_ms` of sound above the threshold.

    A caller who says nothing leaves about a second of line noise: that must not
    become a message. PCM WAV (what Asterisk writes) is measured in 10 ms windows
    straight from its frames, which is cheap enough to run between two prompts;
    anything else goes through pydub/ffmpeg.
    """
    try:
        with wave.open(str(path), "rb") as w:
            width, rate, channels = w.getsampwidth(), w.getframerate(), w.getnchannels()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError):
        return _has_speech_pydub(path, min_speech_ms, threshold_dbfs)
    audioop = _audioop()
    if channels > 1:
        frames = audioop.tomono(frames, width, 0.5, 0.5)
    window = max(1, rate // 100) * width  # 10 ms
    floor = (2 ** (8 * width - 1)) * 10 ** (threshold_dbfs / 20)
    loud = sum(
        1 for i in range(0, len(frames) - window + 1, window) if audioop.rms(frames[i : i + window], width) > floor
    )
    return loud * 10 >= min_speech_ms


def _has_speech_pydub(path: Path, min_speech_ms: int, threshold_dbfs: float) -> bool:
    from pydub import AudioSegment
    from pydub.silence import detect_nonsilent

    try:
        with path.open("rb") as f:  # pydub leaves files it opens itself unclosed
            audio = AudioSegment.from_file(f, format=path.suffix.lstrip(".") or None)
    except Exception:  # pydub raises bare exceptions from ffmpeg / wave
        return False
    if len(audio) < min_speech_ms:
        return False
    spans = detect_nonsilent(audio, min_silence_len=200, silence_thresh=threshold_dbfs, seek_step=10)
    return sum(end - start for start, end in spans) >= min_speech_ms


class AudioStore:
    """Stored audio under one root: `<root>/YYYY/MM/DD/<uuid>.<ext>`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, rel_path: str) -> Path:
        """The absolute path of a stored file; refuses paths that leave the root."""
        p = (self.root / rel_path).resolve()
        if not p.is_relative_to(self.root.resolve()):
            raise AudioError(f"path outside storage: {rel_path!r}")
        return p

    def store(self, src: Path, *, now: datetime | None = None) -> StoredAudio:
        """Move `src` into storage (atomically: same-filesystem rename, else copy+fsync+rename)."""
        if not src.is_file() or src.stat().st_size == 0:
            raise AudioError(f"{src}: no audio file to store")
        ext = src.suffix.lstrip(".").lower() or "wav"
        seconds = wav_seconds(src) if ext == "wav" else 0.0
        digest = sha256_of(src)
        size = src.stat().st_size
        now = now or datetime.now(UTC)
        rel = f"{now:%Y/%m/%d}/{uuid.uuid4().hex}.{ext}"
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dest)
        except OSError:
            tmp = dest.with_suffix(dest.suffix + ".part")
            with src.open("rb") as fin, tmp.open("wb") as fout:
                shutil.copyfileobj(fin, fout)
                fout.flush()
                os.fsync(fout.fileno())
            os.replace(tmp, dest)
            src.unlink()
        return StoredAudio(rel_path=rel, format=ext, seconds=round(seconds, 3), sha256=digest, size_bytes=size)
