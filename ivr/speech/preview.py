"""Hear a value before callers do: a number, an amount, a date or a code, as the phone says it.

The administrator types a value on the prompts page; `preview_fragments` turns it into the
fragments the call flow would play for it (the same functions and settings: currency, code
groups) and `compose_preview` joins the current fragment files into one WAV. Messages for
the administrator are Persian.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

import jdatetime

from ivr.config import Settings
from ivr.identifiers import latin_digits, persian_digits
from ivr.prompts import PromptAudioError, concatenate_wavs, prompts_out_dir
from ivr.speech import persian

PREVIEW_KINDS = ("number", "amount", "date", "code")
MAX_CODE_DIGITS = 20
# Thousands separators people type: , ٬ (Arabic) and spaces; the Persian comma ، too.
_SEPARATORS = re.compile(r"[,\u066c\u060c\s_]")
_DATE_RE = re.compile(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})")


class PreviewError(ValueError):
    """The typed value cannot be said, or a fragment has no audio; the message is Persian."""


@dataclass(frozen=True)
class Preview:
    """The fragments a value is said with, and the WAV of them played in a row."""

    names: tuple[str, ...]
    wav: bytes


def _whole_number(raw: str, what: str) -> int:
    text = _SEPARATORS.sub("", latin_digits(raw.strip()))
    if not text.isascii() or not text.isdigit():
        raise PreviewError(f"{what} باید عددی صحیح و نامنفی باشد.")
    if len(text) > 18 or int(text) > persian.MAX_NUMBER:
        raise PreviewError(f"{what} بیش از حدی است که سامانه می‌تواند بگوید.")
    return int(text)


def _date(raw: str) -> datetime.date:
    """A Jalali (1403/07/15) or Gregorian (2024-10-06) date, told apart by the year."""
    m = _DATE_RE.fullmatch(latin_digits(raw.strip()))
    if not m:
        raise PreviewError("تاریخ را به صورت ۱۴۰۳/۰۷/۱۵ (شمسی) یا 2024-10-06 (میلادی) وارد کنید.")
    year, month, day = (int(g) for g in m.groups())
    try:
        if year < 1700:
            return jdatetime.date(year, month, day).togregorian()
        return datetime.date(year, month, day)
    except ValueError:
        raise PreviewError("این تاریخ وجود ندارد.") from None


def preview_fragments(kind: str, raw: str, settings: Settings) -> tuple[str, ...]:
    """The fragments the phone plays for `raw` read as `kind` (number, amount, date, code)."""
    if kind == "number":
        return persian.number(_whole_number(raw, "عدد"))
    if kind == "amount":
        return persian.amount(_whole_number(raw, "مبلغ (ریال)"), settings.currency)
    if kind == "date":
        return persian.jalali_date(_date(raw))
    if kind == "code":
        code = latin_digits(raw.strip())
        if not code or not code.isascii() or not code.isdigit() or len(code) > MAX_CODE_DIGITS:
            raise PreviewError(persian_digits(f"کد باید از 1 تا {MAX_CODE_DIGITS} رقم باشد."))
        return persian.digits(code, settings.code_groups)
    raise PreviewError("نوع ورودی را انتخاب کنید: عدد، مبلغ، تاریخ یا کد.")


def compose_preview(kind: str, raw: str, settings: Settings) -> Preview:
    """The value's fragments and one WAV of the current fragment files, as a caller hears them."""
    names = preview_fragments(kind, raw, settings)
    out = prompts_out_dir(settings)
    # The names come from the speech rules, never from the request.
    missing = [name for name in dict.fromkeys(names) if not (out / f"{name}.wav").is_file()]
    if missing:
        raise PreviewError(f"این پاره‌ها ساخته نشده‌اند: {'، '.join(missing)}؛ ivr prompts build را اجرا کنید.")
    try:
        return Preview(names, concatenate_wavs([out / f"{name}.wav" for name in names]))
    except PromptAudioError as exc:
        raise PreviewError(f"فایل‌های صوتی را نمی‌توان پشت هم گذاشت: {exc}") from None
