"""How the console writes numbers, dates and the domain's words: Persian digits, Jalali calendar, labels."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jdatetime

from ivr.identifiers import persian_digits
from ivr.vocabulary import LABELS, LINE_KINDS, label


def fa_digits(value: Any) -> str:
    """Any value as text with Persian digits."""
    return "" if value is None else persian_digits(str(value))


def fa_num(value: Any) -> str:
    """A number with Persian digits and Persian thousands separators ('۱٬۲۳۴')."""
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        text = f"{value:,.1f}".replace(".", "٫")
    else:
        text = f"{int(value):,}"
    return fa_digits(text.replace(",", "٬"))


def to_jalali(value: date | datetime, tz: ZoneInfo) -> jdatetime.date | jdatetime.datetime:
    """A Gregorian date or aware datetime on the Jalali calendar (datetimes in the city's zone)."""
    if isinstance(value, datetime):
        return jdatetime.datetime.fromgregorian(datetime=value.astimezone(tz))
    return jdatetime.date.fromgregorian(date=value)


def jdate(value: date | datetime | None, tz: ZoneInfo) -> str:
    """'۱۴۰۵/۰۹/۰۸'."""
    if value is None:
        return ""
    return fa_digits(to_jalali(value, tz).strftime("%Y/%m/%d"))


def jdatetime_text(value: datetime | None, tz: ZoneInfo) -> str:
    """'۱۴۰۵/۰۹/۰۸ ۱۴:۳۰'."""
    if value is None:
        return ""
    return fa_digits(to_jalali(value, tz).strftime("%Y/%m/%d %H:%M"))


def register_filters(app: Any, tz: ZoneInfo) -> None:
    """Make the filters above available to every template of `app`."""
    app.jinja_env.filters.update(
        fa_digits=fa_digits,
        fa_num=fa_num,
        jdate=lambda v: jdate(v, tz),
        jdatetime=lambda v: jdatetime_text(v, tz),
    )


def fa_label(code: str | None, group: str, default: str | None = None) -> str:
    """The Persian label of a code (`{{ m.kind|fa_label("kind") }}`); the code itself when unknown."""
    return label(group, code, default)


def register_vocabulary(app: Any, districts: range) -> None:
    """Give every template the vocabulary's labels (`fa_labels`, `fa_label`), kinds per line and the city's districts."""
    app.jinja_env.globals.update(fa_labels=LABELS, line_kinds=LINE_KINDS, districts=districts)
    app.jinja_env.filters["fa_label"] = fa_label
