"""The prompt catalogue and the builder that turns it into audio Asterisk can play.

The catalogue (`recordings/catalogue.yaml`) is the source of every prompt: a Persian text
per name, or a recipe for a generated sound. `build_prompts` makes one 8 kHz mono 16-bit
WAV per entry (espeak-ng voice `fa` + sox) and never overwrites a studio recording that
someone put in its place: a manifest (`.generated.json`) remembers the checksum of every
file the builder wrote, so any other file is somebody's recording and is kept.

Catalogue entries:

    welcome: به سامانه ۱۳۷ خوش آمدید          # spoken text
    num_9: {text: نه, say: نُه}                # text for SMS/console, `say` for the synthesiser
    num_20_o: {text: بیست و, say: بیستُ, hint: bist-o}   # `hint`: how it sounds, for the voice talent
    beep: {tone_hz: 1000, ms: 250}             # a sine tone
    silence_short: {silence_ms: 200}           # silence
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ivr.config import Settings

log = logging.getLogger(__name__)

DEFAULT_CATALOGUE = Path(__file__).resolve().parent.parent / "recordings" / "catalogue.yaml"
MANIFEST_NAME = ".generated.json"
SAMPLE_RATE = 8000

# Bump when the audio pipeline changes so every generated (never studio) file is rebuilt.
RECIPE_VERSION = 1

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_TONE_KEYS = frozenset({"tone_hz", "ms"})
_SILENCE_KEYS = frozenset({"silence_ms"})
_TEXT_KEYS = frozenset({"text", "say", "hint"})
_MAX_MS = 60_000
# Above the 4 kHz Nyquist limit of an 8 kHz file a tone would alias into something else.
_MAX_TONE_HZ = 3_900

_APT_PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox"}


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the entry at fault."""


class PromptBuildError(RuntimeError):
    """Prompt audio could not be built; the message is one line saying why."""


class PromptAudioError(ValueError):
    """Prompt files cannot be joined (unreadable, or not all in one format); the message names the file."""


@dataclass(frozen=True)
class PromptEntry:
    """One catalogue entry: a spoken text, a tone, or a silence."""

    name: str
    text: str | None = None
    tone_hz: int | None = None
    ms: int | None = None
    silence_ms: int | None = None
    # What the synthesiser reads when the written text would be mispronounced (نه → نُه).
    say: str | None = None
    # How it sounds, in Latin letters, for the voice talent (never synthesised).
    hint: str | None = None

    @property
    def kind(self) -> str:
        """'spoken', 'tone' or 'silence'."""
        if self.text is not None:
            return "spoken"
        if self.tone_hz is not None:
            return "tone"
        return "silence"

    @property
    def spoken_text(self) -> str | None:
        """The text given to the synthesiser (None for generated sounds)."""
        return self.say if self.say is not None else self.text


@dataclass
class BuildReport:
    """What `build_prompts` did, name by name."""

    generated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kept_studio: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- catalogue


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and keeps keys as written.

    PyYAML silently lets a later duplicate win, which would hide a copy-paste mistake in a
    catalogue of hundreds of prompts. Keys are kept as the literal scalar text so a prompt
    named `no` or `on` does not turn into the boolean False/True (YAML 1.1).
    """


def _construct_mapping(
    loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise CatalogueError(
                f"line {key_node.start_mark.line + 1}: a key must be a plain name"
            )
        key = key_node.value
        if key in result:
            raise CatalogueError(
                f"duplicate entry {key!r} at line {key_node.start_mark.line + 1}"
                " (it is already defined above)"
            )
        result[key] = loader.construct_object(value_node, deep=deep)
    return result


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def _positive_int(name: str, key: str, value: object, hi: int) -> int:
    # bool is an int subclass; `ms: yes` must not slip through as 1.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
        raise CatalogueError(f"entry {name!r}: {key} must be a whole number from 1 to {hi}")
    return value


def _text(name: str, key: str, value: object) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CatalogueError(f"entry {name!r}: {key} is empty")
    if not isinstance(value, str):
        raise CatalogueError(f"entry {name!r}: {key} must be text, got {value!r} (quote it)")
    return " ".join(value.split())


def _entry(name: str, value: object) -> PromptEntry:
    if not _NAME_RE.match(name):
        raise CatalogueError(
            f"entry {name!r}: bad name"
            " (use lower-case letters, digits and _, starting with a letter)"
        )
    if not isinstance(value, dict):
        return PromptEntry(name=name, text=_text(name, "text", value))
    keys = frozenset(value)
    if keys == _TONE_KEYS:
        return PromptEntry(
            name=name,
            tone_hz=_positive_int(name, "tone_hz", value["tone_hz"], _MAX_TONE_HZ),
            ms=_positive_int(name, "ms", value["ms"], _MAX_MS),
        )
    if keys == _SILENCE_KEYS:
        return PromptEntry(
            name=name, silence_ms=_positive_int(name, "silence_ms", value["silence_ms"], _MAX_MS)
        )
    if "text" in keys and keys <= _TEXT_KEYS:
        say = value.get("say")
        hint = value.get("hint")
        return PromptEntry(
            name=name,
            text=_text(name, "text", value["text"]),
            say=None if say is None and "say" not in keys else _text(name, "say", say),
            hint=None if hint is None and "hint" not in keys else _text(name, "hint", hint),
        )
    raise CatalogueError(
        f"entry {name!r}: expected a text, {{text, say, hint}}, {{tone_hz, ms}} or {{silence_ms}},"
        f" got keys {sorted(map(str, keys))}"
    )


def load_catalogue(path: Path | str = DEFAULT_CATALOGUE) -> dict[str, PromptEntry]:
    """Read and validate a catalogue file; raise CatalogueError naming the entry at fault."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read the catalogue: {exc.strerror}") from None
    try:
        data = yaml.load(raw, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except CatalogueError as exc:
        raise CatalogueError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise CatalogueError(f"{path}: expected a mapping of prompt name to text, found no entries")
    entries: dict[str, PromptEntry] = {}
    for name, value in data.items():
        try:
            entries[name] = _entry(name, value)
        except CatalogueError as exc:
            raise CatalogueError(f"{path}: {exc}") from None
    return entries


def catalogue_texts(path: Path | str = DEFAULT_CATALOGUE) -> dict[str, str]:
    """Name → written text of every spoken entry (what SMS and the console show)."""
    return {
        name: entry.text for name, entry in load_catalogue(path).items() if entry.text is not None
    }


def prompts_out_dir(settings: Settings) -> Path:
    """Where Asterisk looks for the prompts: `<prompts_dir>/<language>`."""
    return settings.prompts_dir / settings.prompt_language


def check_prompt_files(names: Iterable[str], out_dir: Path | str) -> list[str]:
    """The names (in the given order, once each) whose `<name>.wav` is missing from out_dir."""
    out = Path(out_dir)
    missing: list[str] = []
    for name in dict.fromkeys(names):
        if not (out / f"{name}.wav").is_file():
            missing.append(name)
    return missing


def concatenate_wavs(paths: Sequence[Path]) -> bytes:
    """One PCM WAV of the given prompt files played back to back, as a caller hears them in a row.

    Every file must have the same rate, channels and sample width (what `build_prompts`
    writes: 8 kHz mono 16-bit); a studio file in another format is named in the error.
    """
    if not paths:
        raise PromptAudioError("nothing to join")
    params: tuple[int, int, int] | None = None
    frames: list[bytes] = []
    for path in paths:
        try:
            with wave.open(str(path), "rb") as w:
                these = (w.getnchannels(), w.getsampwidth(), w.getframerate())
                data = w.readframes(w.getnframes())
        except (OSError, EOFError, wave.Error) as exc:
            raise PromptAudioError(f"{path.name}: not a readable PCM WAV ({exc})") from None
        if params is None:
            params = these
        elif these != params:
            raise PromptAudioError(
                f"{path.name}: {these[2]} Hz, {these[0]} channel(s), {8 * these[1]}-bit;"
                f" the others are {params[2]} Hz, {params[0]} channel(s), {8 * params[1]}-bit"
            )
        frames.append(data)
    assert params is not None
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(params[0])
        out.setsampwidth(params[1])
        out.setframerate(params[2])
        out.writeframes(b"".join(frames))
    return buf.getvalue()


# ---------------------------------------------------------------------------- builder


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(65536), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _recipe_sha256(entry: PromptEntry, voice: str) -> str:
    """Checksum of everything the audio is made from, so any change triggers a rebuild."""
    if entry.kind == "spoken":
        recipe: dict[str, object] = {"say": entry.spoken_text, "voice": voice}
    elif entry.kind == "tone":
        recipe = {"tone_hz": entry.tone_hz, "ms": entry.ms}
    else:
        recipe = {"silence_ms": entry.silence_ms}
    recipe["v"] = RECIPE_VERSION
    blob = json.dumps(recipe, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _read_manifest(out_dir: Path) -> dict[str, dict[str, str]]:
    path = out_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        # Forgetting the manifest is the safe direction: every existing file is then
        # treated as a studio recording and kept, never overwritten.
        log.warning(
            "prompt manifest %s unreadable (%s); treating existing files as studio", path, exc
        )
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        k: v
        for k, v in data.items()
        if isinstance(v, dict) and isinstance(v.get("wav_sha256"), str)
    }


def _write_atomically(path: Path, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _require(program: str, role: str) -> str:
    found = shutil.which(program)
    if found is None:
        package = _APT_PACKAGES.get(role, role)
        raise PromptBuildError(
            f"{role} not found (looked for {program!r}); install it with: apt-get install {package}"
        )
    return found


def _run(cmd: list[str], *, name: str, timeout: float, stdin: bytes | None = None) -> None:
    try:
        subprocess.run(
            cmd, input=stdin, capture_output=True, check=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise PromptBuildError(
            f"prompt {name!r}: {Path(cmd[0]).name} took longer than {timeout:g}s"
        ) from None
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        last = detail[-1] if detail else f"exit status {exc.returncode}"
        raise PromptBuildError(f"prompt {name!r}: {Path(cmd[0]).name} failed: {last}") from None


# sox output options shared by every recipe: what Asterisk's lower-case `wav` format plays.
_SOX_OUT = ["-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer"]


def _speak(
    text: str, raw: Path, target: Path, *, name: str, espeak: str, sox: str, voice: str, timeout: float
) -> None:
    """Speak `text` with espeak-ng into `raw`, then write it as an 8 kHz mono 16-bit WAV to `target`."""
    # Text goes through stdin so a text starting with '-' is never read as an option;
    # -z drops the end-of-sentence pause that would slow down chained fragments.
    _run(
        [espeak, "-v", voice, "-b", "1", "-z", "-w", str(raw), "--stdin"],
        name=name,
        timeout=timeout,
        stdin=text.encode("utf-8"),
    )
    _run(
        [
            sox, str(raw), *_SOX_OUT, str(target),
            # Trim espeak's leading/trailing silence so fragments chain without gaps,
            # keeping a few ms so playback does not start with a click.
            "silence", "1", "0.01", "-45d", "reverse",
            "silence", "1", "0.01", "-45d", "reverse",
            "pad", "0.01", "0.02",
            "gain", "-n", "-3",
        ],
        name=name,
        timeout=timeout,
    )


def synthesize_speech(
    text: str, target: Path, *, espeak: str = "espeak-ng", sox: str = "sox", voice: str = "fa",
    timeout: float = 30.0,
) -> Path:
    """Persian speech for `text` as an 8 kHz mono 16-bit WAV at `target` (the demo city's voices)."""
    espeak_path, sox_path = _require(espeak, "espeak-ng"), _require(sox, "sox")
    raw = target.with_name(f".{target.name}.raw.wav")
    try:
        _speak(text, raw, target, name=target.stem, espeak=espeak_path, sox=sox_path, voice=voice, timeout=timeout)
    finally:
        raw.unlink(missing_ok=True)
    return target


def _generate(
    entry: PromptEntry, out_dir: Path, *, espeak: str, sox: str, voice: str, timeout: float
) -> str:
    """Write `<name>.wav` atomically and return its sha256."""
    target = out_dir / f"{entry.name}.wav"
    # sox picks the format from the suffix, so the temporary file must end in .wav;
    # being in out_dir makes the final os.replace atomic.
    fd, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=f".{entry.name}.", suffix=".wav")
    os.close(fd)
    tmp = Path(tmp_name)
    raw: Path | None = None
    try:
        if entry.kind == "spoken":
            fd, raw_name = tempfile.mkstemp(
                dir=out_dir, prefix=f".{entry.name}.raw.", suffix=".wav"
            )
            os.close(fd)
            raw = Path(raw_name)
            _speak(entry.spoken_text or "", raw, tmp, name=entry.name, espeak=espeak, sox=sox,
                   voice=voice, timeout=timeout)
        elif entry.kind == "tone":
            seconds = f"{(entry.ms or 0) / 1000:.3f}"
            _run(
                [
                    # -D: no dither, so silence is digital zero and tones are clean.
                    sox, "-D", "-n", *_SOX_OUT, str(tmp),
                    "synth", seconds, "sine", str(entry.tone_hz),
                    # Short fades avoid clicks at the ends of the tone; -6 dB leaves headroom.
                    "fade", "q", "0.005", seconds, "0.005",
                    "gain", "-6",
                ],
                name=entry.name,
                timeout=timeout,
            )
        else:
            seconds = f"{(entry.silence_ms or 0) / 1000:.3f}"
            _run(
                [sox, "-D", "-n", *_SOX_OUT, str(tmp), "trim", "0", seconds],
                name=entry.name,
                timeout=timeout,
            )
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; Asterisk runs as another user
        digest = _sha256_file(tmp)
        os.replace(tmp, target)
        return digest
    finally:
        tmp.unlink(missing_ok=True)
        if raw is not None:
            raw.unlink(missing_ok=True)


def build_prompts(
    catalogue_path: Path | str,
    out_dir: Path | str,
    *,
    force: bool = False,
    names: Iterable[str] | None = None,
    progress: Callable[[str, str], None] | None = None,
    espeak: str = "espeak-ng",
    sox: str = "sox",
    voice: str = "fa",
    workers: int = 4,
    timeout: float = 60.0,
) -> BuildReport:
    """Generate `<out_dir>/<name>.wav` for the catalogue, keeping studio recordings.

    `names` limits the build to some entries; `force` regenerates generated files even if
    unchanged (studio recordings are still kept: delete one to get the generated file back).
    `progress(name, outcome)` is called once per entry from the calling thread, with outcome
    'generated', 'skipped' or 'kept_studio'.
    """
    catalogue = load_catalogue(catalogue_path)
    out = Path(out_dir)
    if names is None:
        selected = list(catalogue.values())
    else:
        wanted = list(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in catalogue]
        if unknown:
            raise PromptBuildError(f"no catalogue entry for: {', '.join(unknown)}")
        selected = [catalogue[n] for n in wanted]

    report = BuildReport()
    out.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out)

    todo: list[tuple[PromptEntry, str]] = []
    for entry in selected:
        recipe = _recipe_sha256(entry, voice)
        path = out / f"{entry.name}.wav"
        known = manifest.get(entry.name)
        if path.exists():
            if known is None or known["wav_sha256"] != _sha256_file(path):
                report.kept_studio.append(entry.name)
                if progress:
                    progress(entry.name, "kept_studio")
                continue
            if not force and known.get("text_sha256") == recipe:
                report.skipped.append(entry.name)
                if progress:
                    progress(entry.name, "skipped")
                continue
        todo.append((entry, recipe))

    if todo:
        # Checked only when there is work, so a site running on studio recordings alone
        # can still verify its prompts without the synthesiser installed.
        sox_path = _require(sox, "sox")
        espeak_path = (
            _require(espeak, "espeak-ng") if any(e.kind == "spoken" for e, _ in todo) else espeak
        )
        try:
            _run_jobs(
                todo, out, manifest, report, progress,
                espeak=espeak_path, sox=sox_path, voice=voice,
                workers=workers, timeout=timeout,
            )
        finally:
            _save_manifest(out, manifest)

    report.orphans = sorted(
        p.stem for p in out.glob("*.wav") if not p.name.startswith(".") and p.stem not in catalogue
    )
    return report


def _run_jobs(
    todo: list[tuple[PromptEntry, str]],
    out: Path,
    manifest: dict[str, dict[str, str]],
    report: BuildReport,
    progress: Callable[[str, str], None] | None,
    *,
    espeak: str,
    sox: str,
    voice: str,
    workers: int,
    timeout: float,
) -> None:
    """Run the generation jobs in a small pool; stop at the first failure."""
    order = {entry.name: i for i, (entry, _) in enumerate(todo)}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, 8))) as pool:
        futures: dict[Future[str], tuple[PromptEntry, str]] = {
            pool.submit(
                _generate, entry, out, espeak=espeak, sox=sox, voice=voice, timeout=timeout
            ): (entry, recipe)
            for entry, recipe in todo
        }
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for fut in pending:
            fut.cancel()
        # Jobs already running finish; record them too so the manifest matches the disk.
        done |= {f for f in wait(pending).done if not f.cancelled()}
        error: BaseException | None = None
        for fut in sorted(done, key=lambda f: order[futures[f][0].name]):
            entry, recipe = futures[fut]
            exc = fut.exception()
            if exc is not None:
                error = error or exc
                continue
            manifest[entry.name] = {"text_sha256": recipe, "wav_sha256": fut.result()}
            report.generated.append(entry.name)
            if progress:
                progress(entry.name, "generated")
        if error is not None:
            raise error


def _save_manifest(out: Path, manifest: Mapping[str, Mapping[str, str]]) -> None:
    # Entries whose file is gone would only mislead the next build.
    kept = {k: dict(v) for k, v in sorted(manifest.items()) if (out / f"{k}.wav").exists()}
    _write_atomically(
        out / MANIFEST_NAME,
        (json.dumps(kept, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"),
    )
