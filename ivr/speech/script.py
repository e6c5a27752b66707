"""The recording script for a voice talent: every prompt with its text, a hint and an example.

`recording_script` lists every catalogue entry in catalogue order: the Persian text, what the
synthesiser reads when it differs, a pronunciation hint, an example sentence it is heard in
(the fragment marked), and where the call flow plays it. `write_csv` (UTF-8 with a BOM, so
spreadsheet tools read the Persian) and `write_html` (a printable page, no script) write it.

Where the flow plays each prompt is passed in (`uses`), since the flow is a layer above speech.
"""
from __future__ import annotations

import csv
import datetime
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import jdatetime

from ivr.prompts import PromptEntry
from ivr.speech import persian

# Where a fragment is heard: (catalogue prompt said before it, what it reads).
_AMOUNT_LEAD = "case_fine"
_DATE_LEAD = "case_next_date"
_CODE_LEAD = "your_tracking_code_is"
SAMPLE_CODE = "123456789"
# Sample values a dynamic prompt of the flow is shown with.
_SAMPLE_VARS: dict[str, Any] = {
    "digits": SAMPLE_CODE,
    "number": 12,
    "amount": 25_000_000,
    "date": datetime.date(2024, 10, 6),
}
_OTHER_PLACES = (
    ("invalid_key", "any menu: a key it does not know (ivr/flow/engine.py)"),
    ("no_input", "any menu: no key pressed in time"),
    ("please_hold", "while a call waits for an operator (drivers)"),
    ("status_", "follow-up: the message's status (ivr/services/messages.py)"),
    ("reason_", "follow-up: why a message was not referred"),
    ("referred_to_", "follow-up: where a message was referred"),
    ("case_kind_", "key 4: the case look-up (ivr/runner.py)"),
    ("stage_", "key 4: the case's stage"),
    ("verdict_", "key 4: the commission's verdict"),
    ("case_next_date", "key 4: before the next date"),
    ("case_fine", "key 4: before the fine"),
)


@dataclass(frozen=True)
class ScriptLine:
    """One line of the recording script."""

    name: str
    kind: str  # fragment, prompt or sound
    text: str
    say: str
    hint: str
    # The example as (word, is this entry) pairs, so a page can mark the entry's word.
    example: tuple[tuple[str, bool], ...]
    used_in: str

    @property
    def example_text(self) -> str:
        """The example sentence, the entry's own words between « »."""
        return " ".join(f"«{w}»" if mine else w for w, mine in self.example)


def _fragment_samples() -> Iterable[tuple[str, tuple[str, ...]]]:
    """(lead prompt, fragments) samples that together use every speech fragment."""
    yield _CODE_LEAD, persian.digits(SAMPLE_CODE, (3, 3, 3))
    yield _CODE_LEAD, persian.digits("908070605", (3, 3, 3))
    for day in range(1, 32):
        month = 1 + (day - 1) % 6  # the first six months have 31 days
        d = jdatetime.date(1403, month, day).togregorian()
        yield _DATE_LEAD, persian.jalali_date(d)
    for month in range(7, 13):
        yield _DATE_LEAD, persian.jalali_date(jdatetime.date(1403, month, 15).togregorian())
    yield _AMOUNT_LEAD, persian.amount(12_345, "toman")
    # The simplest sentence for each fragment comes first.
    numbers = [t + 3 for t in range(20, 100, 10)] + [t * 1000 for t in range(20, 100, 10)]
    numbers += [1403, 1_250_000, 3_000_000, 1_000_000_007, 2_500 * 10**9, 7 * 10**9]
    numbers += [h + 5 for h in range(100, 1000, 100)] + [h * 1000 for h in range(100, 1000, 100)]
    numbers += [1000 + n for n in range(1, 20)]
    for n in numbers:
        yield _AMOUNT_LEAD, persian.amount(n)


def fragment_examples() -> dict[str, tuple[str, ...]]:
    """Fragment name → a sentence (lead prompt + fragments) it is heard in."""
    examples: dict[str, tuple[str, ...]] = {}
    for lead, names in _fragment_samples():
        for name in names:
            examples.setdefault(name, (lead, *names))
    return examples


def _sample_prompts(prompts: Sequence[Any], groups: Sequence[int]) -> tuple[str, ...]:
    """A node's prompts with sample values for its dynamic parts."""
    out: list[str] = []
    for p in prompts:
        if isinstance(p, str):
            out.append(p)
            continue
        kind = p[0]
        if kind == "digits":
            out.extend(persian.digits(SAMPLE_CODE, groups))
        elif kind == "number":
            out.extend(persian.number(_SAMPLE_VARS["number"]))
        elif kind == "amount":
            out.extend(persian.amount(_SAMPLE_VARS["amount"]))
        elif kind == "date":
            out.extend(persian.jalali_date(_SAMPLE_VARS["date"]))
        # {say: var} plays recordings chosen at run time: nothing to show.
    return tuple(out)


def _words(
    names: Sequence[str], catalogue: Mapping[str, PromptEntry], target: str
) -> tuple[tuple[str, bool], ...]:
    """The written words of a prompt sequence, a code's pauses as ·, `target` marked."""
    words: list[tuple[str, bool]] = []
    for name in names:
        if name == persian.CODE_GAP:
            words.append(("·", False))
            continue
        entry = catalogue.get(name)
        if entry is not None and entry.text is not None:
            words.append((entry.text, name == target))
    return tuple(words)


def recording_script(
    catalogue: Mapping[str, PromptEntry],
    uses: Mapping[str, Sequence[tuple[str, Sequence[Any]]]],
    code_groups: Sequence[int] = (3, 3, 3),
) -> list[ScriptLine]:
    """Every catalogue entry with its text, hint, an example sentence and where it is played.

    `uses` maps a prompt name to (where, the node's prompts) for every node that plays it,
    e.g. {"welcome_137": [("137/start", ("welcome_137", "call_may_be_recorded"))]}.
    """
    fragments = set(persian.fragment_names())
    examples = fragment_examples()
    lines: list[ScriptLine] = []
    for name, entry in catalogue.items():
        places = list(uses.get(name, ()))
        if name in fragments:
            kind = "fragment" if entry.kind == "spoken" else "sound"
            sentence: Sequence[str] = examples.get(name, (name,))
            used_in = "numbers, dates, amounts and codes (ivr/speech/persian.py)"
        else:
            kind = "prompt" if entry.kind == "spoken" else "sound"
            sentence = _sample_prompts(places[0][1], code_groups) if places else (name,)
            used_in = ", ".join(where for where, _ in places) or next(
                (what for prefix, what in _OTHER_PLACES if name.startswith(prefix)), ""
            )
        lines.append(
            ScriptLine(
                name=name,
                kind=kind,
                text=entry.text or "",
                say=entry.say or "",
                hint=entry.hint or _default_hint(entry),
                example=_words(sentence, catalogue, name) if entry.kind == "spoken" else (),
                used_in=used_in,
            )
        )
    return lines


def _default_hint(entry: PromptEntry) -> str:
    if entry.kind == "spoken":
        # Whole sentences: the vowelled `say`, if any, shows the reading; else read as written.
        return "as written" if entry.say is None else "as vowelled under «say»"
    if entry.kind == "tone":
        return f"generated: {entry.tone_hz} Hz tone, {entry.ms} ms (not recorded)"
    return f"generated: {entry.silence_ms} ms of silence (not recorded)"


CSV_COLUMNS = ("name", "kind", "text", "say", "hint", "example", "used_in")


def write_csv(lines: Iterable[ScriptLine], out: TextIO) -> None:
    """The script as CSV; open `out` with encoding 'utf-8-sig' so the file starts with a BOM."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in lines:
        writer.writerow(
            [line.name, line.kind, line.text, line.say, line.hint, line.example_text, line.used_in]
        )


_PAGE_HEAD = """<!doctype html>
<html lang="fa" dir="rtl">
<head>
<meta charset="utf-8">
<title>متن ضبط پیام‌های صوتی سامانه</title>
<style>
body { font-family: Vazirmatn, Tahoma, sans-serif; font-size: 12pt; margin: 1.5cm; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #999; padding: 4pt 6pt; vertical-align: top; }
th { background: #eee; }
tr { page-break-inside: avoid; }
.latin { direction: ltr; text-align: left; font-family: monospace; }
.text { font-size: 15pt; }
mark { background: #ffe58a; font-weight: bold; }
.sound { color: #777; }
@media print { body { margin: 1cm; } }
</style>
</head>
<body>
<h1>متن ضبط پیام‌های صوتی</h1>
<p>هر ردیف یک فایل است. متن را همان‌گونه بخوانید که در جمله نمونه شنیده می‌شود؛ بخش علامت‌خورده
همین فایل است. پاره‌هایی که با «_o» تمام می‌شوند با «ـُ» چسبیده (بیستُ) و روزها با کسره اضافه
(پانزدهمِ) ضبط شوند. قواعد کامل: recordings/FRAGMENTS.md</p>
<table>
<thead><tr><th>نام فایل</th><th>نوع</th><th>متن</th><th>تلفظ</th><th>جمله نمونه</th><th>کجا پخش می‌شود</th></tr></thead>
<tbody>
"""

_KIND_FA = {"fragment": "پاره", "prompt": "پیام", "sound": "صدای ساختگی"}


def write_html(lines: Iterable[ScriptLine], out: TextIO) -> None:
    """The script as a printable right-to-left HTML page (no script, one table)."""
    e = html.escape
    out.write(_PAGE_HEAD)
    for line in lines:
        example = " ".join(f"<mark>{e(w)}</mark>" if mine else e(w) for w, mine in line.example)
        hint = e(line.hint) + (f"<br>{e(line.say)}" if line.say else "")
        css = ' class="sound"' if line.kind == "sound" else ""
        out.write(
            f"<tr{css}><td class=\"latin\">{e(line.name)}</td><td>{e(_KIND_FA[line.kind])}</td>"
            f"<td class=\"text\">{e(line.text)}</td><td class=\"latin\">{hint}</td>"
            f"<td>{example}</td><td class=\"latin\">{e(line.used_in)}</td></tr>\n"
        )
    out.write("</tbody>\n</table>\n</body>\n</html>\n")
