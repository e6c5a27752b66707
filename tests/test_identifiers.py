"""Tracking codes, phone numbers and national ids."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.identifiers import (
    TRACKING_CODE_LENGTH,
    InvalidIdentifier,
    is_valid_national_id,
    is_valid_tracking_code,
    latin_digits,
    new_tracking_code,
    normalize_phone,
)


def test_tracking_code_new_is_valid_and_keypad_sized() -> None:
    codes = {new_tracking_code() for _ in range(500)}
    assert len(codes) == 500
    assert all(len(c) == TRACKING_CODE_LENGTH and c.isdigit() and c[0] != "0" for c in codes)
    assert all(is_valid_tracking_code(c) for c in codes)


@given(st.integers(min_value=0, max_value=TRACKING_CODE_LENGTH - 1), st.integers(1, 9))
def test_tracking_code_single_wrong_digit_is_caught(pos: int, delta: int) -> None:
    code = new_tracking_code()
    wrong = code[:pos] + str((int(code[pos]) + delta) % 10) + code[pos + 1 :]
    assert not is_valid_tracking_code(wrong)


@given(st.integers(min_value=0, max_value=TRACKING_CODE_LENGTH - 2))
def test_tracking_code_swapped_neighbours_are_caught(pos: int) -> None:
    code = new_tracking_code()
    if code[pos] == code[pos + 1]:
        return
    swapped = code[:pos] + code[pos + 1] + code[pos] + code[pos + 2 :]
    assert not is_valid_tracking_code(swapped)


def test_tracking_code_persian_digits_and_wrong_length() -> None:
    code = new_tracking_code()
    persian = code.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    assert is_valid_tracking_code(persian)
    assert not is_valid_tracking_code(code[:-1])
    assert not is_valid_tracking_code(code + "0")
    assert not is_valid_tracking_code("")


@pytest.mark.parametrize(
    "raw",
    ["09121234567", "+989121234567", "989121234567", "00989121234567", "9121234567",
     "0912 123 4567", "۰۹۱۲۱۲۳۴۵۶۷", "+98 (912) 123-4567"],
)
def test_phone_forms_of_one_mobile_normalise_to_one(raw: str) -> None:
    assert normalize_phone(raw) == "09121234567"


def test_phone_landline_keeps_area_code() -> None:
    assert normalize_phone("+982188776655") == "02188776655"


@pytest.mark.parametrize("raw", ["", "anonymous", "0912abc", "1" * 20])
def test_phone_garbage_is_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalize_phone(raw)


@pytest.mark.parametrize("code", ["0499370899", "0790419904", "0084575948"])
def test_national_id_valid(code: str) -> None:
    assert is_valid_national_id(code)


@pytest.mark.parametrize("code", ["0499370898", "1111111111", "12345", "abcdefghij"])
def test_national_id_invalid(code: str) -> None:
    assert not is_valid_national_id(code)


def test_latin_digits_mixed_scripts() -> None:
    assert latin_digits("کد ۱۲۳ و ٤٥6") == "کد 123 و 456"
