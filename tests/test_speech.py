"""Persian numbers, digits, Jalali dates and money as fragment sequences.

The expected Persian text comes from `num2fawords` (an independent implementation) and the
expected calendar from `jdatetime`'s own month names and a table of known Nowruz dates.
num2fawords follows two conventions we deliberately do not, normalised explicitly below:

- it writes a lone hundred as یکصد ("one hundred"); spoken Persian, and we, say صد;
- it writes a lone thousand as یک هزار; we say هزار (but یک میلیون / یک میلیارد, like it);
- its ordinal for 30 is the colloquial سیم (which also means "wire"); we write سی‌ام;
- it names 10^12 بیلیون; we count billions (هزار میلیارد), as Iranian usage has it, so above
  10^12 the reference is num2fawords' reading of the count of billions, then میلیارد, then
  num2fawords' reading of the rest.

The joins are checked against the same reference: a fragment ending in `_o` is written
"word و", so the text equals num2fawords' only if "-o" sits exactly where its و does.
"""
from __future__ import annotations

import datetime
import re
from zoneinfo import ZoneInfo

import jdatetime
import num2fawords
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.config import ConfigError, load_settings
from ivr.flow.definition import load_flow
from ivr.flow.engine import CallState, Engine
from ivr.prompts import DEFAULT_CATALOGUE, catalogue_texts, load_catalogue
from ivr.speech.persian import (
    CODE_GAP,
    MAX_NUMBER,
    amount,
    amount_text,
    date_text,
    digits,
    fragment_names,
    jalali_date,
    number,
    number_text,
    speakable_amount,
    to_text,
)

ZWNJ = "\u200c"
SCALE_VALUES = {"num_thousand": 1_000, "num_million": 1_000_000, "num_billion": 1_000_000_000}
TEHRAN = ZoneInfo("Asia/Tehran")


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return catalogue_texts(DEFAULT_CATALOGUE)


def _norm_space(s: str) -> str:
    return " ".join(s.split())


def expected_words(n: int) -> str:
    """num2fawords' reading of n, with only its documented conventions changed."""
    if n >= 10**12:
        billions, rest = divmod(n, 10**9)
        head = f"{expected_words(billions)} میلیارد"
        return f"{head} و {expected_words(rest)}" if rest else head
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
        name = name.removesuffix("_o")
        if name == "num_billion":
            # The largest scale: everything before it counts billions (هزار میلیارد).
            total = ((total + group) or 1) * SCALE_VALUES[name]
            group = 0
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
    """The last word has no "-o"; words meet without a join only before their scale."""
    assert names, "empty reading"
    assert not names[-1].endswith("_o"), names
    assert "and" not in names, names
    for a, joined_b in zip(names, names[1:], strict=False):
        b = joined_b.removesuffix("_o")
        if not a.endswith("_o"):
            # Side by side without "-o": a number and its scale, or هزار counting billions.
            assert b in SCALE_VALUES, names
            assert a not in SCALE_VALUES or (a, b) == ("num_thousand", "num_billion"), names
    # After the billions, the smaller scales come once each, largest first.
    tail = [n.removesuffix("_o") for n in names]
    if "num_billion" in tail:
        tail = tail[tail.index("num_billion") + 1:]
    scales = [n for n in tail if n in SCALE_VALUES]
    assert scales == sorted(scales, key=SCALE_VALUES.__getitem__, reverse=True), names
    assert len(scales) == len(set(scales)), names


# Numbers with many zero groups and ones, where the reading rules bite.
group_values = st.sampled_from([0, 1, 2, 9, 10, 11, 19, 20, 21, 99, 100, 101, 110, 111, 120, 999])
shaped_numbers = st.lists(group_values, min_size=5, max_size=5).map(
    lambda gs: gs[0] * 10**12 + gs[1] * 10**9 + gs[2] * 10**6 + gs[3] * 10**3 + gs[4]
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
        (23, ("num_20_o", "num_3")),
        (105, ("num_100_o", "num_5")),
        (1000, ("num_thousand",)),
        (1234, ("num_thousand_o", "num_200_o", "num_30_o", "num_4")),
        (1403, ("num_thousand_o", "num_400_o", "num_3")),
        (21_000, ("num_20_o", "num_1", "num_thousand")),
        (1_000_000, ("num_1", "num_million")),
        (1_000_005, ("num_1", "num_million_o", "num_5")),
        (1_001_000, ("num_1", "num_million_o", "num_thousand")),
        (1_000_000_000, ("num_1", "num_billion")),
        (10**12, ("num_thousand", "num_billion")),
        (1_001 * 10**9 + 5, ("num_thousand_o", "num_1", "num_billion_o", "num_5")),
        (25 * 10**12, ("num_20_o", "num_5", "num_thousand", "num_billion")),
        (
            MAX_NUMBER,
            (
                "num_900_o", "num_90_o", "num_9", "num_thousand_o",
                "num_900_o", "num_90_o", "num_9", "num_billion_o",
                "num_900_o", "num_90_o", "num_9", "num_million_o",
                "num_900_o", "num_90_o", "num_9", "num_thousand_o",
                "num_900_o", "num_90_o", "num_9",
            ),
        ),
    ],
)
def test_number_known_values_give_exact_fragments(n: int, names: tuple[str, ...]) -> None:
    assert number(n) == names


def test_number_text_1234_reads_naturally() -> None:
    assert number_text(1234) == "هزار و دویست و سی و چهار"


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (10**12, "هزار میلیارد"),
        (2_500 * 10**9, "دو هزار و پانصد میلیارد"),
        (MAX_NUMBER, "نهصد و نود و نه هزار و نهصد و نود و نه میلیارد و نهصد و نود و نه میلیون"
                     " و نهصد و نود و نه هزار و نهصد و نود و نه"),
    ],
)
def test_number_text_trillions_counted_in_billions(n: int, text: str) -> None:
    assert number_text(n) == text


@settings(max_examples=300, deadline=None)
@given(all_numbers)
def test_number_joins_only_tens_hundreds_and_scales_carry_o(n: int) -> None:
    for name in number(n):
        if name.endswith("_o"):
            base = name.removesuffix("_o")
            assert base in SCALE_VALUES or (
                base.startswith("num_") and int(base[4:]) % 10 == 0 and int(base[4:]) >= 20
            ), name


def test_number_joined_fragments_say_o_not_va(texts: dict[str, str]) -> None:
    catalogue = load_catalogue(DEFAULT_CATALOGUE)
    joined = [name for name in fragment_names() if name.endswith("_o")]
    assert len(joined) == 8 + 9 + 3 + 1  # tens, hundreds, scales, toman
    for name in joined:
        entry = catalogue[name]
        base = entry.text.removesuffix(" و")
        # Written "word و"; spoken as the word with a damma ("-o"), never the word "va".
        assert entry.text == f"{base} و", name
        assert entry.say is not None and entry.say.endswith("\u064f") and " و" not in entry.say, name


@pytest.mark.parametrize("n", [-1, MAX_NUMBER + 1, 10**16])
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


@pytest.mark.parametrize(
    ("s", "groups", "expected"),
    [
        ("123456789", (3, 3, 3), "123|456|789"),
        ("۱۲۳۴۵۶۷۸۹", (3, 3, 3), "123|456|789"),
        ("1234567890", (3, 3, 3), "123|456|7890"),  # left over joins the last group
        ("12345", (3, 3, 3), "123|45"),
        ("12", (3, 3, 3), "12"),
        ("123456789", (4, 5), "1234|56789"),
        ("123456789", (), "123456789"),
    ],
)
def test_digits_groups_separated_by_code_gap(s: str, groups: tuple[int, ...], expected: str) -> None:
    want = tuple(CODE_GAP if ch == "|" else f"num_{ch}" for ch in expected)
    assert digits(s, groups) == want


@given(st.text(alphabet="0123456789", min_size=1, max_size=20),
       st.lists(st.integers(min_value=1, max_value=5), max_size=5))
def test_digits_any_grouping_keeps_every_digit_in_order(s: str, groups: list[int]) -> None:
    names = digits(s, groups)
    assert tuple(n for n in names if n != CODE_GAP) == digits(s)
    assert names[0] != CODE_GAP and names[-1] != CODE_GAP
    assert names.count(CODE_GAP) <= max(len(groups) - 1, 0)


@pytest.mark.parametrize("groups", [(0, 3), (3, -1), (21,)])
def test_digits_bad_groups_raise_value_error(groups: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="digit groups"):
        digits("123", groups)


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
    assert jalali_date(gregorian) == (f"day_{day}_e", f"month_{month}", *number(year))


def test_date_text_15_mehr_1403_reads_naturally() -> None:
    assert date_text(datetime.date(2024, 10, 6)) == "پانزدهم مهر هزار و چهارصد و سه"


@pytest.mark.parametrize(
    ("gregorian", "names"),
    [
        # pānzdahom-e mehr, hezār-o chahārsad-o se
        (datetime.date(2024, 10, 6), ("day_15_e", "month_7", "num_thousand_o", "num_400_o", "num_3")),
        # bist-o yekom-e farvardin
        (datetime.date(2024, 4, 9), ("day_21_e", "month_1", "num_thousand_o", "num_400_o", "num_3")),
    ],
)
def test_jalali_date_day_takes_ezafe_and_year_joins(
    gregorian: datetime.date, names: tuple[str, ...]
) -> None:
    assert jalali_date(gregorian) == names


def test_jalali_date_day_fragments_spoken_with_ezafe_and_o() -> None:
    catalogue = load_catalogue(DEFAULT_CATALOGUE)
    for day in range(1, 32):
        entry = catalogue[f"day_{day}_e"]
        assert entry.say is not None and entry.say.endswith("\u0650"), day  # kasra: -e
        if 21 <= day <= 29 or day == 31:
            assert "\u064f " in entry.say and " و " in entry.text, day  # bist-o yekom-e


def test_jalali_date_naive_datetime_uses_its_calendar_day() -> None:
    assert jalali_date(datetime.datetime(2024, 3, 20, 23, 59)) == jalali_date(
        datetime.date(2024, 3, 20)
    )


@pytest.mark.parametrize("minutes", [0, 1, 60, 150, 209])
def test_jalali_date_aware_utc_in_tehran_early_hours_is_tehrans_day(minutes: int) -> None:
    # 00:00-03:29 in Tehran is still the previous day in UTC (UTC+03:30).
    tehran = datetime.datetime(2024, 3, 20, 0, 0, tzinfo=TEHRAN) + datetime.timedelta(minutes=minutes)
    utc = tehran.astimezone(datetime.UTC)
    assert utc.date() == datetime.date(2024, 3, 19)
    assert jalali_date(utc, TEHRAN)[:2] == ("day_1_e", "month_1")  # Nowruz 1403, not 29 Esfand
    assert jalali_date(tehran, TEHRAN) == jalali_date(datetime.date(2024, 3, 20))


def test_jalali_date_aware_after_0330_tehran_same_day_as_utc() -> None:
    utc = datetime.datetime(2024, 3, 20, 0, 0, tzinfo=datetime.UTC)  # 03:30 Tehran
    assert jalali_date(utc, TEHRAN) == jalali_date(datetime.date(2024, 3, 20))


def test_jalali_date_aware_datetime_without_zone_refused() -> None:
    utc = datetime.datetime(2024, 3, 19, 21, 0, tzinfo=datetime.UTC)
    with pytest.raises(ValueError, match="aware datetime.*tz="):
        jalali_date(utc)
    with pytest.raises(ValueError, match="aware datetime"):
        date_text(utc)


def test_date_text_aware_datetime_converted() -> None:
    utc = datetime.datetime(2024, 3, 19, 21, 0, tzinfo=datetime.UTC)  # 00:30 Tehran
    assert date_text(utc, TEHRAN).startswith("یکم فروردین")


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
        (19, "toman", "یک تومان و نه ریال"),
        (12_345, "toman", "هزار و دویست و سی و چهار تومان و پنج ریال"),
        (5, "toman", "پنج ریال"),
        (0, "toman", "صفر تومان"),
        (0, "rial", "صفر ریال"),
        (10**15 - 1, "rial", number_text(MAX_NUMBER) + " ریال"),
    ],
)
def test_amount_text_known_amounts_read_naturally(rials: int, currency: str, text: str) -> None:
    assert amount_text(rials, currency) == text


@given(st.integers(min_value=0, max_value=MAX_NUMBER))
def test_amount_any_rials_toman_says_whole_amount(rials: int) -> None:
    names = amount(rials, "toman")
    tomans, rest = divmod(rials, 10)
    if rest == 0:
        assert names[-1] == "toman" and evaluate(names[:-1]) == tomans
    elif tomans == 0:
        assert names[-1] == "rial" and evaluate(names[:-1]) == rest
    else:
        cut = names.index("toman_o")
        assert evaluate(names[:cut]) == tomans
        assert names[-1] == "rial" and evaluate(names[cut + 1:-1]) == rest


def test_amount_beyond_speakable_raises_value_error() -> None:
    assert speakable_amount(MAX_NUMBER) and not speakable_amount(MAX_NUMBER + 1)
    for currency in ("rial", "toman"):
        with pytest.raises(ValueError, match="rials"):
            amount(MAX_NUMBER + 1, currency)


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
    missing = [name for name in fragment_names() if name not in texts and name != CODE_GAP]
    assert missing == []
    assert load_catalogue(DEFAULT_CATALOGUE)[CODE_GAP].kind == "silence"


def test_fragment_names_cover_everything_the_functions_emit() -> None:
    emitted: set[str] = set()
    for n in [*range(0, 1000), 1000, 1001, 10**6, 10**6 + 1, 10**9, 10**9 + 1]:
        emitted.update(number(n))
    emitted.update(digits("0123456789", (3, 3, 3)))
    for offset in range(0, 366):
        emitted.update(jalali_date(datetime.date(2024, 3, 20) + datetime.timedelta(days=offset)))
    emitted.update(amount(10, "rial") + amount(10, "toman") + amount(15, "toman"))
    assert emitted == set(fragment_names())


def test_to_text_unknown_fragment_raises_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="num_42"):
        to_text(("num_1", "num_42"), {"num_1": "یک"})


def test_to_text_joined_form_written_with_separate_va() -> None:
    assert to_text(("num_20_o", "num_1"), {"num_20_o": "بیست و", "num_1": "یک"}) == "بیست و یک"


# ---------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("raw", "groups"),
    [(None, (3, 3, 3)), ("", (3, 3, 3)), ("4,5", (4, 5)), ("3, 3, 3", (3, 3, 3)), ("none", ())],
)
def test_settings_code_groups_parsed(raw: str | None, groups: tuple[int, ...]) -> None:
    env = {} if raw is None else {"IVR_CODE_GROUPS": raw}
    assert load_settings(env, dotenv=False).code_groups == groups


@pytest.mark.parametrize("raw", ["3;3", "0,3", "x", "3,21"])
def test_settings_code_groups_malformed_names_setting(raw: str) -> None:
    with pytest.raises(ConfigError, match="IVR_CODE_GROUPS"):
        load_settings({"IVR_CODE_GROUPS": raw}, dotenv=False)


def test_engine_code_groups_reach_digits_prompt() -> None:
    engine = Engine(load_flow(), code_groups=(3, 3, 3))
    state = CallState(line="1888", node="x", vars={"tracking_code": "123456789"})
    spoken = engine._resolve(state, (("digits", "tracking_code"),))
    assert spoken == digits("123456789", (3, 3, 3))
    assert spoken.count(CODE_GAP) == 2
