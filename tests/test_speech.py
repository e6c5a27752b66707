"""Persian numbers, digits, Jalali dates and money as fragment sequences.

The expected Persian text comes from `num2fawords` (an independent implementation) and the
expected calendar from `jdatetime`'s own month names and a table of known Nowruz dates.
num2fawords follows two conventions we deliberately do not, normalised explicitly below:

- it writes a lone hundred as یکصد ("one hundred"); spoken Persian, and we, say صد;
- it writes a lone thousand as یک هزار; we say هزار (but یک میلیون / یک میلیارد, like it);
- its ordinal for 30 is the colloquial سیم (which also means "wire"); we write سی‌ام.
"""
from __future__ import annotations

import datetime
import re

import jdatetime
import num2fawords
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.prompts import DEFAULT_CATALOGUE, catalogue_texts
from ivr.speech.persian import (
    MAX_NUMBER,
    amount,
    amount_text,
    date_text,
    digits,
    fragment_names,
    jalali_date,
    number,
    number_text,
    to_text,
)

ZWNJ = "\u200c"
SCALE_VALUES = {"num_thousand": 1_000, "num_million": 1_000_000, "num_billion": 1_000_000_000}


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return catalogue_texts(DEFAULT_CATALOGUE)


def _norm_space(s: str) -> str:
    return " ".join(s.split())


def expected_words(n: int) -> str:
    """num2fawords' reading of n, with only its two documented conventions changed."""
    words = _norm_space(num2fawords.words(n))
    words = words.replace("یکصد", "صد")
    # Only a thousands group of exactly one: at the start or right after a larger scale.
    # "بیست و یک هزار" (21 000) must keep its یک.
    words = re.sub(r"(^|(?:میلیارد|میلیون) و )یک هزار", r"\1هزار", words)
    return words


def expected_ordinal(day: int) -> str:
    """num2fawords' ordinal for a day of the month, with 30 as سی‌ام."""
    words = _norm_space(num2fawords.ordinal_words(day))
    return f"سی{ZWNJ}ام" if words == "سیم" else words


def evaluate(names: tuple[str, ...]) -> int:
    """An independent reading of fragment names back into an integer."""
    total = 0
    group = 0
    for name in names:
        if name == "and":
            continue
        if name in SCALE_VALUES:
            # A scale with no number before it means one of it (هزار = 1000).
            total += (group or 1) * SCALE_VALUES[name]
            group = 0
            continue
        m = re.fullmatch(r"num_(\d+)", name)
        assert m, f"unexpected fragment {name!r}"
        group += int(m.group(1))
    return total + group


def assert_well_formed(names: tuple[str, ...]) -> None:
    """`and` never starts, ends or doubles; parts inside a group are in falling order."""
    assert names, "empty reading"
    assert names[0] != "and" and names[-1] != "and", names
    for a, b in zip(names, names[1:], strict=False):
        assert not (a == "and" and b == "and"), names
        # Two parts side by side without و is only allowed for a number and its scale.
        if a != "and" and b != "and":
            assert b in SCALE_VALUES and a not in SCALE_VALUES, names
    scales = [n for n in names if n in SCALE_VALUES]
    assert scales == sorted(scales, key=SCALE_VALUES.__getitem__, reverse=True), names
    assert len(scales) == len(set(scales)), names


# Numbers with many zero groups and ones, where the reading rules bite.
group_values = st.sampled_from([0, 1, 2, 9, 10, 11, 19, 20, 21, 99, 100, 101, 110, 111, 120, 999])
shaped_numbers = st.lists(group_values, min_size=4, max_size=4).map(
    lambda gs: gs[0] * 10**9 + gs[1] * 10**6 + gs[2] * 10**3 + gs[3]
)
all_numbers = st.integers(min_value=0, max_value=MAX_NUMBER) | shaped_numbers


@settings(max_examples=500, deadline=None)
@given(all_numbers)
def test_number_text_any_value_matches_num2fawords(texts: dict[str, str], n: int) -> None:
    assert to_text(number(n), texts) == expected_words(n)


@settings(max_examples=500, deadline=None)
@given(all_numbers)
def test_number_fragments_any_value_evaluate_back_and_are_well_formed(n: int) -> None:
    names = number(n)
    assert evaluate(names) == n
    assert_well_formed(names)


@pytest.mark.parametrize(
    ("n", "names"),
    [
        (0, ("num_0",)),
        (7, ("num_7",)),
        (15, ("num_15",)),
        (40, ("num_40",)),
        (100, ("num_100",)),
        (105, ("num_100", "and", "num_5")),
        (1000, ("num_thousand",)),
        (1234, ("num_thousand", "and", "num_200", "and", "num_30", "and", "num_4")),
        (21_000, ("num_20", "and", "num_1", "num_thousand")),
        (1_000_000, ("num_1", "num_million")),
        (1_000_005, ("num_1", "num_million", "and", "num_5")),
        (1_001_000, ("num_1", "num_million", "and", "num_thousand")),
        (1_000_000_000, ("num_1", "num_billion")),
        (
            MAX_NUMBER,
            (
                "num_900", "and", "num_90", "and", "num_9", "num_billion", "and",
                "num_900", "and", "num_90", "and", "num_9", "num_million", "and",
                "num_900", "and", "num_90", "and", "num_9", "num_thousand", "and",
                "num_900", "and", "num_90", "and", "num_9",
            ),
        ),
    ],
)
def test_number_known_values_give_exact_fragments(n: int, names: tuple[str, ...]) -> None:
    assert number(n) == names


def test_number_text_1234_reads_naturally() -> None:
    assert number_text(1234) == "هزار و دویست و سی و چهار"


@pytest.mark.parametrize("n", [-1, MAX_NUMBER + 1, 10**15])
def test_number_out_of_range_raises_value_error(n: int) -> None:
    with pytest.raises(ValueError, match="0 to"):
        number(n)


@pytest.mark.parametrize("n", [1.0, "12", True])
def test_number_not_an_int_raises_type_error(n: object) -> None:
    with pytest.raises(TypeError):
        number(n)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- digits


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        ("0912", ("num_0", "num_9", "num_1", "num_2")),
        ("۰۹۱۲", ("num_0", "num_9", "num_1", "num_2")),
        ("٠٩١٢", ("num_0", "num_9", "num_1", "num_2")),
        ("1۲3", ("num_1", "num_2", "num_3")),
        ("۵", ("num_5",)),
    ],
)
def test_digits_ascii_persian_and_arabic_digits_read_one_by_one(
    s: str, expected: tuple[str, ...]
) -> None:
    assert digits(s) == expected


@given(st.text(alphabet="0123456789۰۱۲۳۴۵۶۷۸۹", min_size=1, max_size=30))
def test_digits_any_digit_string_reads_each_digit_value(s: str) -> None:
    values = [int(ch) if ch.isascii() else ord(ch) - 0x06F0 for ch in s]
    assert digits(s) == tuple(f"num_{v}" for v in values)


@pytest.mark.parametrize("s", ["", "12a4", "12 34", "-1", "½", "١٢x", "²"])
def test_digits_non_digit_raises_value_error(s: str) -> None:
    with pytest.raises(ValueError):
        digits(s)


# ---------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("gregorian", "day", "month", "year"),
    [
        (datetime.date(2024, 3, 20), 1, 1, 1403),  # Nowruz 1403
        (datetime.date(2025, 3, 21), 1, 1, 1404),  # Nowruz 1404
        (datetime.date(2023, 3, 21), 1, 1, 1402),  # Nowruz 1402
        (datetime.date(2024, 3, 19), 29, 12, 1402),  # last day of Esfand 1402
        (datetime.date(2024, 10, 6), 15, 7, 1403),
        (datetime.date(2024, 9, 21), 31, 6, 1403),  # 31 Shahrivar
    ],
)
def test_jalali_date_known_dates_give_day_month_year(
    gregorian: datetime.date, day: int, month: int, year: int
) -> None:
    assert jalali_date(gregorian) == (f"day_{day}", f"month_{month}", *number(year))


def test_date_text_15_mehr_1403_reads_naturally() -> None:
    assert date_text(datetime.date(2024, 10, 6)) == "پانزدهم مهر هزار و چهارصد و سه"


def test_jalali_date_datetime_uses_its_calendar_day() -> None:
    assert jalali_date(datetime.datetime(2024, 3, 20, 23, 59)) == jalali_date(
        datetime.date(2024, 3, 20)
    )


@settings(max_examples=300, deadline=None)
@given(st.dates(min_value=datetime.date(1990, 1, 1), max_value=datetime.date(2060, 12, 31)))
def test_jalali_date_any_date_matches_jdatetime_and_catalogue(
    texts: dict[str, str], d: datetime.date
) -> None:
    j = jdatetime.date.fromgregorian(date=d)
    names = jalali_date(d)
    assert all(name in texts for name in names), names
    day, month, *year = names
    assert texts[day] == expected_ordinal(j.day)
    assert texts[month] == jdatetime.date.j_months_fa[j.month - 1]
    assert to_text(year, texts) == expected_words(j.year)


# ---------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("rials", "currency", "text"),
    [
        (1_250_000, "rial", "یک میلیون و دویست و پنجاه هزار ریال"),
        (1_250_000, "toman", "صد و بیست و پنج هزار تومان"),
        (10_000, "toman", "هزار تومان"),
        (19, "toman", "یک تومان"),
        (0, "rial", "صفر ریال"),
    ],
)
def test_amount_text_known_amounts_read_naturally(rials: int, currency: str, text: str) -> None:
    assert amount_text(rials, currency) == text


@given(st.integers(min_value=0, max_value=MAX_NUMBER))
def test_amount_any_rials_toman_reads_tenth_then_toman(rials: int) -> None:
    names = amount(rials, "toman")
    assert names[-1] == "toman"
    assert evaluate(names[:-1]) == rials // 10


@given(st.integers(min_value=0, max_value=MAX_NUMBER))
def test_amount_any_rials_default_reads_rials(rials: int) -> None:
    names = amount(rials)
    assert names[-1] == "rial"
    assert evaluate(names[:-1]) == rials


def test_amount_unknown_currency_raises_value_error() -> None:
    with pytest.raises(ValueError, match="dollar"):
        amount(100, "dollar")


def test_amount_negative_raises_value_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        amount(-10)


# ---------------------------------------------------------------------------- catalogue


def test_fragment_names_every_one_has_catalogue_text(texts: dict[str, str]) -> None:
    missing = [name for name in fragment_names() if name not in texts]
    assert missing == []


def test_fragment_names_cover_everything_the_functions_emit() -> None:
    emitted: set[str] = set()
    for n in [*range(0, 1000), 1000, 10**6, 10**9]:
        emitted.update(number(n))
    emitted.update(digits("0123456789"))
    for offset in range(0, 366):
        emitted.update(jalali_date(datetime.date(2024, 3, 20) + datetime.timedelta(days=offset)))
    emitted.update(amount(10, "rial") + amount(10, "toman"))
    assert emitted == set(fragment_names())


def test_to_text_unknown_fragment_raises_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="num_42"):
        to_text(("num_1", "num_42"), {"num_1": "یک"})


def test_to_text_joins_conjunction_with_spaces() -> None:
    assert to_text(("num_20", "and", "num_1"), {"num_20": "بیست", "and": "و", "num_1": "یک"}) == (
        "بیست و یک"
    )
