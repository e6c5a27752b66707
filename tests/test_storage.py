"""Audio storage and the speech check that keeps silent recordings out of the inboxes."""
from __future__ import annotations

import array
import math
import wave
from pathlib import Path

import pytest

from ivr.infra.storage import AudioError, AudioStore, has_speech, wav_seconds
from tests.fakes import silence_samples, speech_samples, write_speech_wav, write_wav


def test_speech_check_speech_passes_silence_fails(tmp_path: Path) -> None:
    assert has_speech(write_speech_wav(tmp_path / "s.wav", 2.0))
    silent = tmp_path / "q.wav"
    write_wav(silent, silence_samples(1.0))
    assert not has_speech(silent)


def test_speech_check_short_blip_is_not_a_message(tmp_path: Path) -> None:
    blip = tmp_path / "b.wav"
    samples = silence_samples(1.0)
    samples[4000:4800] = speech_samples(0.1)  # 100 ms of sound in a second of silence
    write_wav(blip, samples)
    assert not has_speech(blip, min_speech_ms=300)
    assert has_speech(blip, min_speech_ms=50)


def test_speech_check_quiet_tone_against_threshold(tmp_path: Path) -> None:
    tone = tmp_path / "t.wav"
    amp = 32767 * 10 ** (-40 / 20) * math.sqrt(2)  # a sine whose RMS is -40 dBFS
    write_wav(tone, array.array("h", (int(amp * math.sin(2 * math.pi * 400 * i / 8000)) for i in range(8000))))
    assert has_speech(tone, threshold_dbfs=-45.0)
    assert not has_speech(tone, threshold_dbfs=-35.0)


def test_speech_check_garbage_file_is_no_speech(tmp_path: Path) -> None:
    junk = tmp_path / "j.wav"
    junk.write_bytes(b"RIFF\x00\x00not really audio" * 10)
    assert not has_speech(junk)


def test_store_moves_file_and_fingerprints_it(tmp_path: Path) -> None:
    src = write_speech_wav(tmp_path / "incoming" / "c-1.wav", 1.5)
    stored = AudioStore(tmp_path / "rec").store(src)
    assert not src.exists()
    dest = AudioStore(tmp_path / "rec").path_of(stored.rel_path)
    assert dest.is_file() and stored.format == "wav" and stored.seconds == pytest.approx(1.5, abs=0.01)
    with wave.open(str(dest)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)


def test_store_refuses_empty_file_and_paths_outside_root(tmp_path: Path) -> None:
    empty = tmp_path / "e.wav"
    empty.write_bytes(b"")
    store = AudioStore(tmp_path / "rec")
    with pytest.raises(AudioError):
        store.store(empty)
    with pytest.raises(AudioError):
        store.path_of("../../etc/passwd")
    with pytest.raises(AudioError):
        wav_seconds(tmp_path / "missing.wav")
