"""Identifiers citizens type or are told: tracking codes, phone numbers, national ids.

Tracking codes are nine digits: eight random digits and a Verhoeff check digit, which
catches every single mistyped digit and every swap of two neighbouring digits, so a
mistyped code is refused before any database lookup.
"""
from __future__ import annotations

import re
import secrets

from stdnum import verhoeff

TRACKING_CODE_LENGTH = 9
_PERSIAN_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")


class InvalidIdentifier(ValueError):
    """A code, phone number or national id that cannot be right."""


_TO_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def persian_digits(text: str) -> str:
    """ASCII digits written as Persian digits (what citizens read); other characters kept."""
    return text.translate(_TO_PERSIAN_DIGITS)


def latin_digits(text: str) -> str:
    """Persian and Arabic-Indic digits turned into ASCII digits; other characters kept."""
    return text.translate(_PERSIAN_DIGITS)


_LATIN_DIGITS = re.compile(r"[0-9]+")


def ascii_digits(text: str) -> str | None:
    """`text` as Latin digits when it is one or more Latin, Persian or Arabic-Indic digits; else None.

    The one digit rule of the project: `str.isdigit()` also takes '²', '①' or Bengali digits,
    which `int()` refuses or no person here types.
    """
    latin = text.translate(_PERSIAN_DIGITS)
    return latin if _LATIN_DIGITS.fullmatch(latin) else None


def new_tracking_code() -> str:
    """A fresh random tracking code with its check digit (uniqueness is the caller's job)."""
    body = str(secrets.randbelow(9 * 10 ** (TRACKING_CODE_LENGTH - 2)) + 10 ** (TRACKING_CODE_LENGTH - 2))
    return body + verhoeff.calc_check_digit(body)


def is_valid_tracking_code(code: str) -> bool:
    """True when `code` has the right length and its check digit matches."""
    digits = ascii_digits(code.strip())
    return digits is not None and len(digits) == TRACKING_CODE_LENGTH and verhoeff.is_valid(digits)


def normalize_phone(raw: str) -> str:
    """One form for one number: `0912…`, `+98912…`, `0098912…` and `98912…` become `0912…`.

    Landlines keep their area code (`021…`). Anything else that is all digits is kept
    as it is (short or foreign numbers); an empty or non-numeric value is refused.
    """
    digits = re.sub(r"[\s\-().]", "", latin_digits(raw or ""))
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    if not _LATIN_DIGITS.fullmatch(digits):  # latin_digits ran above; '²' is no digit here
        raise InvalidIdentifier(f"not a phone number: {raw!r}")
    if digits.startswith("98") and len(digits) == 12:
        digits = "0" + digits[2:]
    elif len(digits) == 10 and digits[0] in "123456789":
        digits = "0" + digits
    if len(digits) > 16:
        raise InvalidIdentifier(f"phone number too long: {raw!r}")
    return digits


def is_mobile(phone: str) -> bool:
    """True for a normalised Iranian mobile number (can receive SMS)."""
    return len(phone) == 11 and phone.startswith("09")


def is_valid_national_id(raw: str) -> bool:
    """Check an Iranian national id (کد ملی): ten digits, the last a mod-11 check digit."""
    code = latin_digits(raw.strip())
    if not re.fullmatch(r"[0-9]{8,10}", code):
        return False
    code = code.zfill(10)
    if len(set(code)) == 1:
        return False
    total = sum(int(code[i]) * (10 - i) for i in range(9)) % 11
    check = int(code[9])
    return check == total if total < 2 else check == 11 - total
