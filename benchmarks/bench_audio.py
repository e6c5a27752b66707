"""Spoken-reply conversion speed: the service's check and conversion next to the bare ffmpeg command line.

    .venv/bin/python benchmarks/bench_audio.py                 # 60 s and 4 s replies, 15 rounds each
    .venv/bin/python benchmarks/bench_audio.py --seconds 60 --rounds 31

Makes a WebM/Opus reply as Chrome's MediaRecorder does (48 kHz mono Opus, 32 kb/s) with ffmpeg,
from espeak-ng Persian speech looped to the length (a sine with a syllable-like envelope when
espeak-ng is missing). Then, in alternating rounds in this one process:

- service: `ivr.infra.audio_convert.convert_reply_audio` on a fresh copy named `upload` in a fresh
  work folder, as `send_reply` calls it: ffprobe through the allow-lists, one ffmpeg process to the
  8 kHz mono WAV, the length and silence checks, the browser copy;
- ffmpeg: `ffmpeg -nostdin -v error -y -i reply.webm -ac 1 -ar 8000 out.wav`, the command line alone.

Prints each one's median and best time, as times real time (audio seconds / wall seconds), their
ratio, and the load average before and after (the figures mean little on a busy machine).
Target: the service at >= 300x real time on a 60 s reply.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.infra.audio_convert import convert_reply_audio  # noqa: E402 (after the path is set)

TARGET_X = 300.0
SPEECH = "شهروند گرامی، پیام شما بررسی شد و مأموران برای رفع مشکل به محل اعزام شدند. با سپاس از تماس شما. "


def make_reply(folder: Path, seconds: float) -> Path:
    """A WebM/Opus reply of `seconds`, made with ffmpeg (from espeak-ng speech when it is installed)."""
    out = folder / f"reply-{seconds:g}s.webm"
    encode = ["-t", f"{seconds}", "-ac", "1", "-ar", "48000", "-c:a", "libopus", "-b:a", "32k", str(out)]
    if shutil.which("espeak-ng"):
        speech = folder / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "fa", "-s", "150", "-w", str(speech), SPEECH * 4], check=True)
        source = ["-stream_loop", "-1", "-i", str(speech)]
    else:
        source = ["-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000,volume='0.5+0.5*sin(2*PI*4*t)':eval=frame"]
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *source, *encode], check=True)
    return out


def cpu_seconds() -> float:
    """CPU time (user + system) used so far by this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def time_service(reply: Path, scratch: Path) -> tuple[float, float]:
    """One conversion as the service does it; its wall and CPU time in seconds."""
    work = Path(tempfile.mkdtemp(dir=scratch))
    src = work / "upload"
    shutil.copyfile(reply, src)
    cpu, start = cpu_seconds(), time.perf_counter()
    converted = convert_reply_audio(src, work)
    elapsed, used = time.perf_counter() - start, cpu_seconds() - cpu
    assert converted.phone_wav.is_file() and converted.browser.is_file()
    shutil.rmtree(work)
    return elapsed, used


def time_cli(reply: Path, scratch: Path) -> tuple[float, float]:
    """The bare ffmpeg command line to an 8 kHz mono WAV; its wall and CPU time in seconds."""
    out = scratch / "cli.wav"
    cpu, start = cpu_seconds(), time.perf_counter()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(reply), "-ac", "1", "-ar", "8000", str(out)],
                   check=True)
    elapsed, used = time.perf_counter() - start, cpu_seconds() - cpu
    out.unlink()
    return elapsed, used


def bench(reply: Path, seconds: float, rounds: int, scratch: Path) -> float:
    """Alternate the two for `rounds` rounds; print both and return the service's median times real time."""
    service: list[tuple[float, float]] = []
    cli: list[tuple[float, float]] = []
    time_service(reply, scratch)  # warm the page cache and Python's imports
    time_cli(reply, scratch)
    for _ in range(rounds):
        service.append(time_service(reply, scratch))
        cli.append(time_cli(reply, scratch))
    rows = (("service (probe + one ffmpeg + checks + browser copy)", service), ("ffmpeg command line alone", cli))
    print(f"{seconds:g} s WebM/Opus reply ({reply.stat().st_size:,} bytes), {rounds} rounds each:")
    for name, pairs in rows:
        walls = [w for w, _ in pairs]
        med, best, cpu = statistics.median(walls), min(walls), statistics.median(c for _, c in pairs)
        print(f"  {name:<53} median {med * 1000:6.1f} ms = {seconds / med:5.0f}x real time,"
              f" best {best * 1000:6.1f} ms = {seconds / best:5.0f}x, CPU {cpu * 1000:5.1f} ms")
    ratio = statistics.median(w for w, _ in service) / statistics.median(w for w, _ in cli)
    print(f"  service / command line (median wall times): {ratio:.2f}")
    return seconds / statistics.median(w for w, _ in service)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, action="append", help="reply lengths (default: 60 and 4)")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    lengths = args.seconds or [60.0, 4.0]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as tmp:
        scratch = Path(tmp)
        speeds = {s: bench(make_reply(scratch, s), s, args.rounds, scratch) for s in lengths}
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if 60.0 in speeds:
        verdict = "meets" if speeds[60.0] >= TARGET_X else "misses"
        print(f"target: the service at >= {TARGET_X:.0f}x real time on a 60 s reply: {verdict} it "
              f"({speeds[60.0]:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
