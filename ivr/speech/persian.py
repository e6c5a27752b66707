"""Persian numbers, digits, Jalali dates and money as sequences of fragment prompts.

Asterisk's SAY commands cannot speak Persian, so the call flow plays the fragments these
pure functions return, one after another. The fragment names are a contract with the
catalogue (`recordings/catalogue.yaml`); `fragment_names()` lists every one of them, and
`recordings/FRAGMENTS.md` explains them to whoever records them.

Persian as it is spoken, by the choice of fragments (there is no separate "and" fragment):
- parts of a number are joined by the enclitic "-o" carried by the word before the join:
  23 → `num_20_o num_3` "bist-o se", 1403 → `num_thousand_o num_400_o num_3`
  "hezār-o chahārsad-o se". Only tens, hundreds and scale words are ever followed by a
  join, so only they have an `_o` form. Written out (SMS, console) `_o` is " و ";
- 11-19 are single words; zero groups are skipped: 1_000_005 → یک میلیون و پنج;
- a lone thousand is هزار (not یک هزار), but a lone million or billion keeps its یک:
  یک میلیون, یک میلیارد; a lone hundred is صد (not یکصد);
- 10^12 and above are counted in میلیارد, as Iranian banks, news and tax notices say them:
  2 * 10^12 → دو هزار میلیارد (not دو تریلیون / بیلیون, which callers rarely hear);
- the day of a date is an ordinal with the ezafe "-e", because it always comes before the
  month: `day_15_e month_7` "pānzdahom-e mehr"; 21-29 and 31 carry the "-o" inside
  ("bist-o yekom-e");
- a tracking code is read digit by digit, in groups separated by a short pause (`code_gap`).
"""
from __future__ import annotations

import datetime
import functools
import types
from collections.abc import Iterable, Mapping, Sequence

import jdatetime

MAX_NUMBER = 999_999_999_999_999
# The largest amount in rials that `amount` reads, whatever the currency setting is.
MAX_AMOUNT_RIALS = MAX_NUMBER
CURRENCIES = ("rial", "toman")
# Suffixes of the joined forms: "-o" after a word followed by another part, ezafe "-e".
JOIN = "_o"
EZAFE = "_e"
# Short silence between the groups of a tracking code.
CODE_GAP = "code_gap"

# Largest first; a lone group of one before `num_thousand` is not spoken (هزار, not یک هزار).
# Billions are the largest scale: 10^12 and above are a count of billions (هزار میلیارد).
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
    """Fragments for 1 <= n <= 999, parts joined by "-o"."""
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
    """The chunks in order, the last word before each join taking its "-o" form."""
    out: list[str] = []
    for chunk in chunks:
        if out:
            out[-1] += JOIN
        out.extend(chunk)
    return out


def _read(n: int) -> list[str]:
    """Fragments for 1 <= n <= MAX_NUMBER."""
    chunks: list[list[str]] = []
    rest = n
    for scale, scale_name in _SCALES:
        count, rest = divmod(rest, scale)
        if count == 1 and scale_name == "num_thousand":
            chunks.append([scale_name])
        elif count:
            # A count of billions may reach 999_999: it is read like any number (هزار میلیارد).
            chunks.append([*_read(count), scale_name])
    if rest:
        chunks.append(_group(rest))
    return _joined(chunks)


def number(n: int) -> tuple[str, ...]:
    """Fragments that read the whole number n (0 … 999_999_999_999_999) in Persian."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"number() expects an int, got {type(n).__name__}")
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"number() can read 0 to {MAX_NUMBER:,}, got {n:,}")
    if n == 0:
        return ("num_0",)
    return tuple(_read(n))


def check_groups(groups: Sequence[int]) -> tuple[int, ...]:
    """`groups` as a tuple of sizes from 1 to 20, or ValueError."""
    sizes = tuple(groups)
    if any(isinstance(g, bool) or not isinstance(g, int) or not 1 <= g <= 20 for g in sizes):
        raise ValueError(f"digit groups must be whole numbers from 1 to 20, got {list(sizes)}")
    return sizes


def digits(s: str, groups: Sequence[int] = ()) -> tuple[str, ...]:
    """Fragments that read s digit by digit (ASCII, Persian or Arabic-Indic digits).

    With `groups` (e.g. (3, 3, 3)) the digits are said in groups of those sizes from the
    left, with `code_gap` between groups; digits left after the last size join the last
    group, and a shorter string simply ends early (no trailing gap).
    """
    if not s:
        raise ValueError("digits() needs at least one digit")
    names: list[str] = []
    for ch in s:
        value = _DIGIT_VALUES.get(ch)
        if value is None:
            raise ValueError(f"digits() accepts only digits, got {ch!r} in {s!r}")
        names.append(f"num_{value}")
    sizes = check_groups(groups)
    if not sizes:
        return tuple(names)
    out: list[str] = []
    start = 0
    for i, size in enumerate(sizes):
        if start >= len(names):
            break
        end = len(names) if i == len(sizes) - 1 else start + size
        if out:
            out.append(CODE_GAP)
        out.extend(names[start:end])
        start = end
    return tuple(out)


def _day_of(d: datetime.date, tz: datetime.tzinfo | None) -> datetime.date:
    """The calendar day of d; an aware datetime is first moved to the city's zone `tz`."""
    if not isinstance(d, datetime.datetime):
        return d
    if d.tzinfo is not None and d.utcoffset() is not None:
        if tz is None:
            raise ValueError(
                f"jalali_date() got an aware datetime ({d.isoformat()}) but no time zone to"
                " speak it in: pass tz= (the city's, Settings.timezone) or a date"
            )
        d = d.astimezone(tz)
    # A naive datetime is already local time: its calendar day is the one meant.
    return d.date()


def jalali_date(d: datetime.date, tz: datetime.tzinfo | None = None) -> tuple[str, ...]:
    """Fragments for the Jalali date of d: day with ezafe, month, year (15-e Mehr 1403).

    A date or a naive datetime is spoken as its own calendar day; an aware datetime is
    converted to `tz` (the city's zone) first and refused without one, since between
    midnight and 03:30 in Tehran the UTC day is still the previous one.
    """
    j = jdatetime.date.fromgregorian(date=_day_of(d, tz))
    return (f"day_{j.day}{EZAFE}", f"month_{j.month}", *number(j.year))


def amount(rials: int, currency: str = "rial") -> tuple[str, ...]:
    """Fragments for an amount held in rials, spoken in rials or in tomans.

    In tomans, a remainder that is not a whole toman is said in rials rather than dropped:
    12_345 rials → "hezār-o devist-o si-yo chahār tomān-o panj riāl". Nothing is rounded,
    because a fine read to a citizen must be the amount they owe.
    """
    if currency not in CURRENCIES:
        raise ValueError(f"currency must be one of {CURRENCIES}, got {currency!r}")
    if isinstance(rials, bool) or not isinstance(rials, int):
        raise TypeError(f"amount() expects an int number of rials, got {type(rials).__name__}")
    if rials < 0:
        raise ValueError(f"amount() cannot read a negative amount, got {rials:,}")
    if rials > MAX_AMOUNT_RIALS:
        raise ValueError(f"amount() can read 0 to {MAX_AMOUNT_RIALS:,} rials, got {rials:,}")
    if currency == "rial":
        return (*number(rials), "rial")
    tomans, rest = divmod(rials, 10)
    if not rest:
        return (*number(tomans), "toman")
    if not tomans:
        return (*number(rest), "rial")
    return (*number(tomans), f"toman{JOIN}", *number(rest), "rial")


def speakable_amount(rials: int) -> bool:
    """True when `amount` can read `rials` in either currency."""
    return 0 <= rials <= MAX_AMOUNT_RIALS


def fragment_names() -> tuple[str, ...]:
    """Every fragment name the functions of this module can return."""
    nums = [f"num_{i}" for i in range(20)]
    tens = [f"num_{t}" for t in range(20, 100, 10)]
    hundreds = [f"num_{h}" for h in range(100, 1000, 100)]
    scales = ["num_thousand", "num_million", "num_billion"]
    return (
        *nums,
        *tens,
        *(f"{n}{JOIN}" for n in tens),
        *hundreds,
        *(f"{n}{JOIN}" for n in hundreds),
        *scales,
        *(f"{n}{JOIN}" for n in scales),
        *(f"day_{i}{EZAFE}" for i in range(1, 32)),
        *(f"month_{i}" for i in range(1, 13)),
        *CURRENCIES,
        f"toman{JOIN}",
        CODE_GAP,
    )


def to_text(names: Iterable[str], catalogue: Mapping[str, str]) -> str:
    """The fragments' texts as natural Persian text (for SMS and the console)."""
    words: list[str] = []
    for name in names:
        try:
            words.append(catalogue[name])
        except KeyError:
            raise KeyError(f"no catalogue text for fragment {name!r}") from None
    # Every fragment is whole words, and a "-o" form is written "word و": a single space is right.
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


def date_text(d: datetime.date, tz: datetime.tzinfo | None = None) -> str:
    """The Jalali date of d in Persian words, e.g. 'پانزدهم مهر هزار و چهارصد و سه'."""
    return to_text(jalali_date(d, tz), _default_texts())


def amount_text(rials: int, currency: str = "rial") -> str:
    """An amount in Persian words, e.g. 'پنج هزار تومان'."""
    return to_text(amount(rials, currency), _default_texts())
