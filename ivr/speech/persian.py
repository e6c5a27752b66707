"""Persian numbers, digits, Jalali dates and money as sequences of fragment prompts.

Asterisk's SAY commands cannot speak Persian, so the call flow plays the fragments these
pure functions return, one after another. The fragment names are a contract with the
catalogue (`recordings/catalogue.yaml`); `fragment_names()` lists every one of them.

Persian reading rules followed here:
- groups of three digits are joined by و ("o"/"va"), as are hundreds, tens and units
  inside a group: 1234 → هزار و دویست و سی و چهار;
- 11-19 are single words; zero groups are skipped: 1_000_005 → یک میلیون و پنج;
- a lone thousand is هزار (not یک هزار), but a lone million or billion keeps its یک:
  یک میلیون, یک میلیارد; a lone hundred is صد (not یکصد).
"""
from __future__ import annotations

import datetime
import functools
import types
from collections.abc import Iterable, Mapping

import jdatetime

MAX_NUMBER = 999_999_999_999
AND = "and"
CURRENCIES = ("rial", "toman")

# Largest first; a lone group of one before `num_thousand` is not spoken (هزار, not یک هزار).
_SCALES: tuple[tuple[int, str], ...] = (
    (1_000_000_000, "num_billion"),
    (1_000_000, "num_million"),
    (1_000, "num_thousand"),
)

# ASCII, Persian (U+06F0..) and Arabic-Indic (U+0660..) digits: callers' phones, SMS
# and the console may send any of them.
_DIGIT_VALUES: dict[str, int] = {
    **{str(i): i for i in range(10)},
    **{chr(0x06F0 + i): i for i in range(10)},
    **{chr(0x0660 + i): i for i in range(10)},
}


def _group(n: int) -> list[str]:
    """Fragments for 1 <= n <= 999, parts joined by `and`."""
    parts: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        parts.append(f"num_{hundreds * 100}")
    if 1 <= rest <= 19:
        parts.append(f"num_{rest}")
    elif rest:
        tens, units = divmod(rest, 10)
        parts.append(f"num_{tens * 10}")
        if units:
            parts.append(f"num_{units}")
    return _joined([[p] for p in parts])


def _joined(chunks: list[list[str]]) -> list[str]:
    out: list[str] = []
    for chunk in chunks:
        if out:
            out.append(AND)
        out.extend(chunk)
    return out


def number(n: int) -> tuple[str, ...]:
    """Fragments that read the whole number n (0 … 999_999_999_999) in Persian."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"number() expects an int, got {type(n).__name__}")
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"number() can read 0 to {MAX_NUMBER:,}, got {n:,}")
    if n == 0:
        return ("num_0",)
    chunks: list[list[str]] = []
    rest = n
    for scale, scale_name in _SCALES:
        count, rest = divmod(rest, scale)
        if count == 1 and scale_name == "num_thousand":
            chunks.append([scale_name])
        elif count:
            chunks.append([*_group(count), scale_name])
    if rest:
        chunks.append(_group(rest))
    return tuple(_joined(chunks))


def digits(s: str) -> tuple[str, ...]:
    """Fragments that read s digit by digit (ASCII, Persian or Arabic-Indic digits)."""
    if not s:
        raise ValueError("digits() needs at least one digit")
    out: list[str] = []
    for ch in s:
        value = _DIGIT_VALUES.get(ch)
        if value is None:
            raise ValueError(f"digits() accepts only digits, got {ch!r} in {s!r}")
        out.append(f"num_{value}")
    return tuple(out)


def jalali_date(d: datetime.date) -> tuple[str, ...]:
    """Fragments for the Jalali date of d: ordinal day, month name, year (15 Mehr 1403)."""
    if isinstance(d, datetime.datetime):
        # A datetime's calendar day is the one the caller means; drop the time part.
        d = d.date()
    j = jdatetime.date.fromgregorian(date=d)
    return (f"day_{j.day}", f"month_{j.month}", *number(j.year))


def amount(rials: int, currency: str = "rial") -> tuple[str, ...]:
    """Fragments for an amount held in rials, spoken in rials or in tomans (rials // 10)."""
    if currency not in CURRENCIES:
        raise ValueError(f"currency must be one of {CURRENCIES}, got {currency!r}")
    if isinstance(rials, bool) or not isinstance(rials, int):
        raise TypeError(f"amount() expects an int number of rials, got {type(rials).__name__}")
    if rials < 0:
        raise ValueError(f"amount() cannot read a negative amount, got {rials:,}")
    value = rials // 10 if currency == "toman" else rials
    return (*number(value), currency)


def fragment_names() -> tuple[str, ...]:
    """Every fragment name the functions of this module can return."""
    nums = [f"num_{i}" for i in range(20)]
    nums += [f"num_{t}" for t in range(20, 100, 10)]
    nums += [f"num_{h}" for h in range(100, 1000, 100)]
    return (
        *nums,
        "num_thousand",
        "num_million",
        "num_billion",
        AND,
        *(f"day_{i}" for i in range(1, 32)),
        *(f"month_{i}" for i in range(1, 13)),
        *CURRENCIES,
    )


def to_text(names: Iterable[str], catalogue: Mapping[str, str]) -> str:
    """The fragments' texts as natural Persian text (for SMS and the console)."""
    words: list[str] = []
    for name in names:
        try:
            words.append(catalogue[name])
        except KeyError:
            raise KeyError(f"no catalogue text for fragment {name!r}") from None
    # Every fragment is a whole word, and و is written apart: a single space is right.
    return " ".join(words)


@functools.lru_cache(maxsize=1)
def _default_texts() -> Mapping[str, str]:
    # Imported here so loading the speech rules never needs the catalogue file.
    from ivr.prompts import DEFAULT_CATALOGUE, catalogue_texts

    # Read-only: the cached mapping is shared by every caller.
    return types.MappingProxyType(catalogue_texts(DEFAULT_CATALOGUE))


def number_text(n: int) -> str:
    """n in Persian words, e.g. 1234 → 'هزار و دویست و سی و چهار'."""
    return to_text(number(n), _default_texts())


def date_text(d: datetime.date) -> str:
    """The Jalali date of d in Persian words, e.g. 'پانزدهم مهر هزار و چهارصد و سه'."""
    return to_text(jalali_date(d), _default_texts())


def amount_text(rials: int, currency: str = "rial") -> str:
    """An amount in Persian words, e.g. 'پنج هزار تومان'."""
    return to_text(amount(rials, currency), _default_texts())
