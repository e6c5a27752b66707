"""Audio storage: recordings are moved atomically into a dated tree and fingerprinted."""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
import wave
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


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


def has_speech(path: Path, *, min_speech_ms: int = 300, threshold_dbfs: float = -45.0) -> bool:
    """True when the recording holds at least `min_speech_ms` of sound above the threshold.

    A caller who says nothing leaves about a second of line noise: that must not
    become a message.
    """
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
