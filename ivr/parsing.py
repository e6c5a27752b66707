"""Numbers and dates people type, parsed one way everywhere (pages, the API, the services).

Digits may be Latin, Persian or Arabic-Indic and nothing else: `str.isdigit()` is True for
'²' and other characters `int()` refuses, and `int()` builds a 400-digit number that no
database column holds. Every parser here refuses both with a Persian `ParseError` (a
ValueError) that the web layer turns into a 400 and the services into their own errors.
"""
from __future__ import annotations

from datetime import date

import jdatetime

from ivr.identifiers import ascii_digits, persian_digits
from ivr.vocabulary import district_range

# Ids are SERIAL (32-bit) columns, like the other numbers people type here: a larger value names no
# row and fits no column, and SQLite cannot even bind one past 64 bits (OverflowError).
MAX_ID = 2**31 - 1
# Jalali years the console accepts (1921-2121): years 0 or 99999 do not exist in Python's calendar,
# and year 1 would make a period of fourteen centuries.
JALALI_YEARS = range(1300, 1500)


class ParseError(ValueError):
    """A typed value that is not what the field needs; the message is Persian, for the user."""


def parse_int(text: str | int, *, minimum: int = 0, maximum: int = MAX_ID, what: str = "مقدار") -> int:
    """A whole number from `minimum` to `maximum` written in Latin, Persian or Arabic-Indic digits.

    `what` names the field in the message ('شماره صفحه', 'منطقه'). An int passes through the
    same bounds (JSON bodies carry numbers); a bool is not a number.
    """
    if isinstance(text, bool):
        raise ParseError(f"{what} باید عدد باشد.")
    if isinstance(text, int):
        value = text
    else:
        digits = ascii_digits(str(text).strip())
        if digits is None:
            raise ParseError(f"{what} باید عدد باشد.")
        if len(digits.lstrip("0")) > len(str(maximum)):  # refuse before int() builds a huge number
            raise ParseError(_range_text(what, minimum, maximum))
        value = int(digits)
    if not minimum <= value <= maximum:
        raise ParseError(_range_text(what, minimum, maximum))
    return value


def _range_text(what: str, minimum: int, maximum: int) -> str:
    if maximum >= MAX_ID:
        return f"{what} باید عددی از {persian_digits(str(minimum))} به بالا و کوچک‌تر از حد مجاز باشد."
    return f"{what} باید عددی از {persian_digits(str(minimum))} تا {persian_digits(str(maximum))} باشد."


def parse_optional_int(
    text: str | int | None, *, minimum: int = 0, maximum: int = MAX_ID, what: str = "مقدار"
) -> int | None:
    """`parse_int`, with None for an empty or missing value."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    return parse_int(text, minimum=minimum, maximum=maximum, what=what)


def parse_id(text: str | int, what: str = "شناسه") -> int:
    """A row id: 1 to the largest 64-bit integer."""
    return parse_int(text, minimum=1, maximum=MAX_ID, what=what)


def parse_district(text: str | int, districts: int) -> int:
    """A district number of a city with `districts` districts (Settings.districts)."""
    numbers = district_range(districts)
    return parse_int(text, minimum=numbers.start, maximum=numbers.stop - 1, what="منطقه")


def _date_parts(text: str, count: int) -> list[int] | None:
    parts = text.strip().replace("-", "/").split("/")
    if len(parts) != count:
        return None
    digits = [ascii_digits(p) for p in parts]
    if any(d is None or len(d) > 5 for d in digits):
        return None
    return [int(d) for d in digits if d is not None]


def parse_jalali_date(text: str) -> date:
    """A Jalali day typed as 1405/08/01 or 1405-8-1 (any of the three digit scripts) as a Gregorian date."""
    parts = _date_parts(text, 3)
    if parts is None:
        raise ParseError(f"تاریخ «{text}» درست نیست؛ مانند ۱۴۰۵/۰۸/۰۱ بنویسید.")
    if parts[0] not in JALALI_YEARS:
        raise ParseError(f"تاریخ «{text}» در تقویم نیست؛ سال باید از {_years_text()} باشد.")
    try:
        return jdatetime.date(*parts).togregorian()
    except ValueError as exc:
        raise ParseError(f"تاریخ «{text}» در تقویم نیست.") from exc


def parse_jalali_month(text: str) -> tuple[int, int]:
    """A Jalali month typed as 1405/08 or 1405-8 as (year, month)."""
    parts = _date_parts(text, 2)
    if parts is None or not 1 <= parts[1] <= 12:
        raise ParseError(f"ماه «{text}» درست نیست؛ مانند ۱۴۰۵/۰۸ بنویسید.")
    if parts[0] not in JALALI_YEARS:
        raise ParseError(f"ماه «{text}» در تقویم نیست؛ سال باید از {_years_text()} باشد.")
    return parts[0], parts[1]


def _years_text() -> str:
    return persian_digits(f"{JALALI_YEARS.start} تا {JALALI_YEARS.stop - 1}")
