"""The one digit rule and the parsers built on it (ivr/parsing.py, ivr.identifiers.ascii_digits)."""
from __future__ import annotations

from datetime import date

import pytest

from ivr.identifiers import InvalidIdentifier, ascii_digits, is_valid_tracking_code, normalize_phone
from ivr.parsing import (
    MAX_ID,
    ParseError,
    parse_district,
    parse_id,
    parse_int,
    parse_jalali_date,
    parse_jalali_month,
    parse_optional_int,
)


def test_ascii_digits_takes_latin_persian_and_arabic_indic_only() -> None:
    assert ascii_digits("۱۲3٤") == "1234"
    assert [ascii_digits(t) for t in ("²", "١²", "", "-1", "1 2", "১২", "①", "1.0")] == [None] * 8


@pytest.mark.parametrize("raw", ["²", "۰۹۱۲²", "+²", "00²"])
def test_normalize_phone_refuses_superscripts(raw: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalize_phone(raw)


def test_tracking_code_with_a_superscript_is_invalid() -> None:
    assert not is_valid_tracking_code("10000001²")


def test_parse_int_bounds_before_building_huge_numbers() -> None:
    assert parse_int("۴۲") == 42 and parse_int(7, maximum=9) == 7
    for bad in ("²", "-1", "9" * 400, "", True, "1e3"):
        with pytest.raises(ParseError):
            parse_int(bad)  # type: ignore[arg-type]
    with pytest.raises(ParseError, match="۱ تا ۶"):
        parse_int("9", minimum=1, maximum=6, what="روز")
    assert parse_optional_int("  ") is None and parse_optional_int(None) is None


def test_parse_id_fits_the_id_columns() -> None:
    assert parse_id(str(MAX_ID)) == MAX_ID
    for bad in ("0", str(MAX_ID + 1), "9" * 20):
        with pytest.raises(ParseError):
            parse_id(bad)


def test_parse_district_follows_the_citys_count() -> None:
    assert parse_district("۲۲", 22) == 22
    with pytest.raises(ParseError, match="منطقه"):
        parse_district("23", 22)


def test_jalali_dates_and_months_within_the_accepted_years() -> None:
    assert parse_jalali_date("۱۴۰۵/۰۹/۰۸") == date(2026, 11, 29) == parse_jalali_date("1405-9-8")
    assert parse_jalali_month("1405/08") == (1405, 8) == parse_jalali_month("۱۴۰۵-۸")
    for bad in ("1/01/01", "0/01/01", "99999/01/01", "1405/13/01", "1405/12/31", "²/01/01", "", "1405/01"):
        with pytest.raises(ParseError):
            parse_jalali_date(bad)
    for bad in ("0/01", "99999/01", "1405/13", "1405/0", "1/01/01", "azar"):
        with pytest.raises(ParseError):
            parse_jalali_month(bad)
