"""Adding console users: the rules `ivr users add` enforces, and password hashing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.models import Unit, User
from ivr.services.users import UserError, add_user, hash_password, verify_password

GOOD_PASSWORD = "correct-horse-9"


@pytest.fixture
def district_7(db: Session) -> Unit:
    unit = Unit(code="district-07", name="شهرداری منطقه ۷", kind="district_office", district=7)
    db.add(unit)
    db.flush()
    return unit


def user_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(User)) or 0


def test_add_user_manager_with_unit_is_stored_with_hashed_password(
    db: Session, district_7: Unit
) -> None:
    user = add_user(
        db, "mgr-district-07", " مدیر منطقه ۷ ", "manager", "district-07", GOOD_PASSWORD
    )

    stored = db.get(User, user.id)
    assert stored is not None
    assert (stored.username, stored.full_name, stored.role, stored.unit_id) == (
        "mgr-district-07",
        "مدیر منطقه ۷",
        "manager",
        district_7.id,
    )
    assert GOOD_PASSWORD not in stored.password_hash
    assert stored.password_hash.startswith("scrypt:")
    assert verify_password(stored.password_hash, GOOD_PASSWORD)
    assert not verify_password(stored.password_hash, GOOD_PASSWORD + "x")


def test_add_user_operator_without_unit_is_allowed(db: Session) -> None:
    user = add_user(db, "op1", "اپراتور یک", "operator", None, "0123456789")

    assert user.id is not None and user.unit_id is None


@pytest.mark.parametrize(
    ("username", "full_name", "role", "unit_code", "password", "reason"),
    [
        ("ab", "x", "operator", None, GOOD_PASSWORD, "must be 3 to 64 characters"),
        ("Op1", "x", "operator", None, GOOD_PASSWORD, "must be 3 to 64 characters"),
        ("op 1", "x", "operator", None, GOOD_PASSWORD, "must be 3 to 64 characters"),
        ("علی", "x", "operator", None, GOOD_PASSWORD, "must be 3 to 64 characters"),
        ("a" * 65, "x", "operator", None, GOOD_PASSWORD, "must be 3 to 64 characters"),
        ("op1", "  ", "operator", None, GOOD_PASSWORD, "full name is empty"),
        ("op1", "x", "root", None, GOOD_PASSWORD, "role 'root' is not one of operator, manager"),
        ("mgr1", "x", "manager", None, GOOD_PASSWORD, "a manager must belong to a unit"),
        ("mgr1", "x", "manager", "district-99", GOOD_PASSWORD, "no unit with code 'district-99'"),
        ("op1", "x", "operator", None, "123456789", "at least 10 characters"),
    ],
)
def test_add_user_invalid_details_raise_user_error_and_add_nothing(
    db: Session,
    district_7: Unit,
    username: str,
    full_name: str,
    role: str,
    unit_code: str | None,
    password: str,
    reason: str,
) -> None:
    with pytest.raises(UserError, match=reason):
        add_user(db, username, full_name, role, unit_code, password)

    assert user_count(db) == 0


def test_add_user_taken_username_raises_user_error(db: Session) -> None:
    add_user(db, "sup1", "ناظر یک", "supervisor", None, GOOD_PASSWORD)

    with pytest.raises(UserError, match="'sup1' is already taken"):
        add_user(db, "sup1", "ناظر دیگر", "supervisor", None, GOOD_PASSWORD)

    assert user_count(db) == 1


def test_add_user_longest_and_punctuated_usernames_are_accepted(db: Session) -> None:
    add_user(db, "a" * 64, "x", "analyst", None, GOOD_PASSWORD)
    add_user(db, "mgr_x.y-z", "x", "inspector", None, GOOD_PASSWORD)

    assert user_count(db) == 2


def test_hash_password_same_password_gets_different_salts() -> None:
    first, second = hash_password(GOOD_PASSWORD), hash_password(GOOD_PASSWORD)

    assert first != second
    assert verify_password(first, GOOD_PASSWORD) and verify_password(second, GOOD_PASSWORD)
