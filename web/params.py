"""Request parameters parsed in one place: ids, pages, limits, numbers, districts and Jalali dates.

Every view reads its query strings and form fields through these helpers, so a hostile or
mistyped value ('²', '-1', a 20-digit id, year 99999, NUL) is a clear Persian 400 (JSON on the
API: {"error": ..., "status": 400}) and never reaches `int()`, the database or the calendar.
Path ids use the `int` converter installed here: one larger than any id column holds names no
row, so it is a 404 like any other missing id.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, NoReturn

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, ValidationError

from ivr.parsing import MAX_ID, ParseError, parse_jalali_date, parse_optional_int

MAX_PAGE = 100_000  # 50 rows a page: five million rows, more than any list here holds
MAX_OFFSET = 10**9


class BadParameter(BadRequest):
    """A 400 whose description is the Persian sentence the user sees."""


def bad_parameter(text: str) -> NoReturn:
    """Stop the request with a 400 that shows `text`."""
    raise BadParameter(description=text)


class IdConverter(IntegerConverter):
    """Werkzeug's `int` converter bounded to the largest id: a larger number is no match (404), never an overflow."""

    regex = "[0-9\u06f0-\u06f9\u0660-\u0669]+"  # the digit rule of ivr.parsing (`\d` takes every script)

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - Werkzeug's signature
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)

    def to_python(self, value: str) -> Any:
        """The id, or no match when it has more digits than the largest id (checked before int() runs)."""
        if len(value) > len(str(MAX_ID)):
            raise ValidationError()
        return super().to_python(value)


def number(value: Any, *, what: str = "مقدار", minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """A submitted value (form field, query argument or JSON member) as a whole number; None when empty."""
    if value is not None and not isinstance(value, (str, int)):
        bad_parameter(f"{what} باید عدد باشد.")
    try:
        return parse_optional_int(value, minimum=minimum, maximum=maximum, what=what)
    except ParseError as exc:
        bad_parameter(str(exc))


def query_int(name: str, *, what: str = "مقدار", minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """A query-string argument as a whole number; None when absent or empty."""
    return number(request.args.get(name), what=what, minimum=minimum, maximum=maximum)


def query_id(name: str, what: str = "شناسه") -> int | None:
    """A query-string argument naming a row (?unit=, ?user=); None when absent or empty."""
    return query_int(name, what=what, minimum=1)


def query_page(name: str = "page") -> int:
    """The page number of a list (?page=), 1 when absent."""
    return query_int(name, what="شماره صفحه", minimum=1, maximum=MAX_PAGE) or 1


def form_int(name: str, *, what: str = "مقدار", minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """A form field as a whole number; None when absent or empty."""
    return number(request.form.get(name), what=what, minimum=minimum, maximum=maximum)


def field_id(fields: Mapping[str, Any], name: str, what: str = "شناسه") -> int | None:
    """A form field or JSON member naming a row (topic_id, unit_id, parent_id); None when empty."""
    return number(fields.get(name), what=what, minimum=1)


def field_district(fields: Mapping[str, Any]) -> int | None:
    """The district field as a number; whether the city has it is the service's rule (its own message)."""
    return number(fields.get("district"), what="منطقه")


def optional_jalali(text: str | None) -> date | None:
    """A Jalali day typed in a filter; None when empty; 400 when not a day of the calendar."""
    if not (text or "").strip():
        return None
    try:
        return parse_jalali_date(text or "")
    except ParseError as exc:
        bad_parameter(str(exc))


def jalali_or_none(text: str | None) -> date | None:
    """A Jalali day typed in a filter; None when empty or not a day (the page says so and shows the rest)."""
    try:
        return optional_jalali(text)
    except BadParameter:
        return None


def _answer(error: BadParameter) -> ResponseReturnValue:
    from web import ERRORS  # web/__init__ imports this module inside create_app

    code = error.code or 400
    if request.path.startswith(("/api/", "/twilio/")) or request.accept_mimetypes.best == "application/json":
        return {"error": error.description, "status": code}, code
    return render_template("error.html", code=code, title=ERRORS[code][0], text=error.description), code


def refuse_nul() -> None:
    """A 400 for a NUL character in any query argument, form field or JSON body.

    No person types one, and PostgreSQL text columns cannot hold it (a DataError, so a 500, at the
    first INSERT of an audit line or a name). Uploaded files are not looked at, nor the signed Twilio
    webhooks: a citizen's SMS may carry one, and the SMS service strips it and still answers.
    """
    if request.blueprint == "twilio":
        return
    if any("\x00" in value for value in request.args.values()) or any(
        "\x00" in key or "\x00" in value for key, value in request.form.items()
    ):
        bad_parameter("نویسه نامعتبر (NUL) در درخواست آمده است.")
    if request.is_json and b"\\u0000" in request.get_data(cache=True):
        bad_parameter("نویسه نامعتبر (NUL) در درخواست آمده است.")


def init_params(app: Flask) -> None:
    """Install the bounded `int` path converter (before any route is added), the NUL check and the Persian 400."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(refuse_nul)
    app.register_error_handler(BadParameter, _answer)

