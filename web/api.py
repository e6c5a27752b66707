"""The JSON API under /api/v1: bearer tokens, the same roles as the pages, described by OpenAPI 3.

Authentication is `Authorization: Bearer <token>` (tokens from the admin page or `ivr users token`);
no cookies, so the blueprint is exempt from CSRF. Errors are JSON: {"error": "...", "status": n}.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from flask import Blueprint, Flask, abort, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from ivr.db import transaction
from ivr.models import Message, utcnow
from ivr.services import api_tokens, screening
from ivr.services import window as window_service
from ivr.vocabulary import DEFAULT_DISTRICTS, LINES, MESSAGE_KINDS, NOT_REFERRED_REASONS, ROLES
from web import params
from web.screening import SCREENERS, classification_from, typed_from
from web.window import VIEWERS

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("api", __name__, url_prefix="/api/v1")

QUEUE_LIMIT_MAX = 200


@dataclass(frozen=True)
class ApiUser:
    """Whom a bearer token belongs to."""

    id: int
    username: str
    role: str
    unit_id: int | None


def _sessions() -> Any:
    from web import sessions

    return sessions(current_app)


def _error(status: int, text: str) -> ResponseReturnValue:
    response = jsonify({"error": text, "status": status})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="ivr"'
    return response


def _bearer_user() -> ApiUser | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    with transaction(_sessions()) as session:
        user = api_tokens.user_for_token(session, token.strip(), utcnow())
        return ApiUser(user.id, user.username, user.role, user.unit_id) if user else None


def api_roles(*roles: str) -> Callable[[F], F]:
    """Allow an API call only with a valid token of a user with one of `roles` (401 without, 403 wrong role)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = _bearer_user()
            if user is None:
                return _error(401, "توکن معتبر در سرآیند Authorization نیامده است.")
            if user.role not in roles:
                return _error(403, "این درخواست برای نقش شما مجاز نیست.")
            g.api_user = user
            return view(*args, **kwargs)

        wrapped.allowed_roles = roles  # type: ignore[attr-defined]  # read by the permission tests
        return wrapped  # type: ignore[return-value]

    return decorate


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "بدنه درخواست باید یک شیء JSON باشد.")
    return body


def message_json(message: Message, *, show_caller: bool) -> dict[str, Any]:
    """A message as the API returns it; the caller's number only when `show_caller`."""
    referral = message.referrals[-1] if message.referrals else None
    return {
        "id": message.id,
        "tracking_code": message.tracking_code,
        "line": message.line_code,
        "kind": message.kind,
        "source": message.source,
        "status": message.status,
        "topic_id": message.topic_id,
        "district": message.district,
        "unit_id": message.unit_id,
        "summary": message.summary,
        "body": message.body,
        "caller": (message.citizen.phone if message.citizen else None) if show_caller else None,
        "not_referred_reason": message.not_referred_reason,
        "duplicate_of_id": message.duplicate_of_id,
        "created_at": _iso(message.created_at),
        "claimed_by_id": message.claimed_by_id,
        "claim_expires_at": _iso(message.claim_expires_at),
        "referral": None if referral is None else {
            "id": referral.id, "unit_id": referral.unit_id, "manager_id": referral.manager_id,
            "due_at": _iso(referral.due_at),
        },
    }


def _shows_caller(user: ApiUser) -> bool:
    # Managers never get a caller's number from this API (1888 complaints); screeners do.
    return user.role in SCREENERS


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI 3 description of this API (public: it holds no data)."""
    return jsonify(openapi_document(current_app.config["IVR_SETTINGS"].districts))


@bp.get("/screening/queue")
@api_roles(*SCREENERS)
def queue() -> ResponseReturnValue:
    """New messages, oldest first."""
    limit = params.query_int("limit", what="limit", minimum=1, maximum=QUEUE_LIMIT_MAX) or 50
    offset = params.query_int("offset", what="offset", maximum=params.MAX_OFFSET) or 0
    with transaction(_sessions(), readonly=True) as session:
        rows = screening.screening_queue(session, limit=limit, offset=offset)
        total = screening.queue_size(session)
    items = [
        {
            "id": r.id, "tracking_code": r.tracking_code, "line": r.line_code, "kind": r.kind, "source": r.source,
            "caller": r.caller, "seconds": r.seconds, "created_at": _iso(r.created_at),
            "claimed_by_id": r.claimed_by_id, "claim_expires_at": _iso(r.claim_expires_at),
        }
        for r in rows
    ]
    # `total` is counted up to total_cap + 1: more than total_cap means "over total_cap".
    return jsonify({"total": total, "total_cap": screening.QUEUE_COUNT_CAP, "items": items})


@bp.get("/messages/<int:message_id>")
@api_roles(*SCREENERS)
def get_message(message_id: int) -> ResponseReturnValue:
    """One message."""
    try:
        with transaction(_sessions(), readonly=True) as session:
            return jsonify(message_json(screening.get_message(session, message_id), show_caller=_shows_caller(g.api_user)))
    except screening.MessageNotFound:
        abort(404)


@bp.post("/messages/<int:message_id>/claim")
@api_roles(*SCREENERS)
def claim(message_id: int) -> ResponseReturnValue:
    """Claim a message for screening; 409 when someone else holds it or it was screened."""
    try:
        with transaction(_sessions()) as session:
            message = screening.claim(session, message_id, g.api_user.id, utcnow(), ip=request.remote_addr)
            return jsonify(message_json(message, show_caller=True))
    except screening.MessageNotFound:
        abort(404)
    except screening.ClaimConflict as exc:
        return _error(409, str(exc))


@bp.post("/messages/<int:message_id>/release")
@api_roles(*SCREENERS)
def release(message_id: int) -> ResponseReturnValue:
    """Give up one's claim."""
    try:
        with transaction(_sessions()) as session:
            released = screening.release(session, message_id, g.api_user.id, ip=request.remote_addr)
    except screening.MessageNotFound:
        abort(404)
    return jsonify({"released": released})


@bp.post("/messages/<int:message_id>/classify")
@api_roles(*SCREENERS)
def classify(message_id: int) -> ResponseReturnValue:
    """Classify and refer (decision 'refer') or close as not referred (decision 'not_referred')."""
    c = classification_from(_json_body())
    settings = current_app.config["IVR_SETTINGS"]
    try:
        with transaction(_sessions()) as session:
            message = screening.classify(
                session, message_id, g.api_user.id, c, utcnow(), settings.timezone, ip=request.remote_addr,
                districts=settings.districts,
            )
            return jsonify(message_json(message, show_caller=True))
    except screening.MessageNotFound:
        abort(404)
    except screening.ClaimConflict as exc:
        return _error(409, str(exc))
    except screening.ScreeningError as exc:
        return _error(400, str(exc))


@bp.post("/messages")
@api_roles(*SCREENERS)
def typed_message() -> ResponseReturnValue:
    """Register a message typed during a live call; 201 with its tracking code."""
    t = typed_from(_json_body())
    try:
        with transaction(_sessions()) as session:
            message = screening.register_typed(
                session, g.api_user.id, t, utcnow(), ip=request.remote_addr,
                districts=current_app.config["IVR_SETTINGS"].districts,
            )
            body = message_json(message, show_caller=True)
    except screening.ScreeningError as exc:
        return _error(400, str(exc))
    return jsonify(body), 201


@bp.get("/window")
@api_roles(*VIEWERS)
def single_window() -> ResponseReturnValue:
    """A phone number's history on both lines (?phone=...)."""
    try:
        with transaction(_sessions(), readonly=True) as session:
            w = window_service.single_window(session, request.args.get("phone", ""))
            return jsonify({
                "phone": w.phone,
                "calls": [
                    {"id": c.id, "line": c.line_code, "started_at": _iso(c.started_at), "keys": c.keys,
                     "outcome": c.outcome} for c in w.calls
                ],
                "messages": [
                    {**message_json(m, show_caller=True),
                     "replies": [{"id": r.id, "text": r.text, "created_at": _iso(r.created_at),
                                  "heard_at": _iso(r.heard_at)} for r in m.replies]}
                    for m in w.messages
                ],
                "feedback": [
                    {"message_id": f.message_id, "satisfied": f.satisfied, "channel": f.channel,
                     "created_at": _iso(f.created_at)} for f in w.feedback
                ],
                "reminders": [
                    {"message_id": r.message_id, "unit_id": r.unit_id, "reason": r.reason,
                     "created_at": _iso(r.created_at), "resolved_at": _iso(r.resolved_at)} for r in w.reminders
                ],
                "sms": [
                    {"direction": s.direction, "body": s.body, "status": s.status, "created_at": _iso(s.created_at)}
                    for s in w.sms
                ],
            })
    except window_service.WindowError as exc:
        return _error(400, str(exc))


@bp.get("/window/handoffs")
@api_roles(*VIEWERS)
def handoffs() -> ResponseReturnValue:
    """Calls the IVR handed to the operators' queue, newest first."""
    with transaction(_sessions(), readonly=True) as session:
        calls = window_service.operator_handoffs(session)
    return jsonify([
        {"id": c.id, "line": c.line_code, "caller": c.caller_number, "started_at": _iso(c.started_at),
         "keys": c.keys} for c in calls
    ])


@bp.get("/topics")
@api_roles(*ROLES)
def topics() -> ResponseReturnValue:
    """Active topics with their deadlines in working days."""
    with transaction(_sessions(), readonly=True) as session:
        rows = screening.topics_for(session)
        return jsonify([
            {"id": t.id, "code": t.code, "line": t.line_code, "name": t.name, "menu_key": t.menu_key,
             "due_working_days": t.due_working_days, "unit_id": t.unit_id} for t in rows
        ])


@bp.get("/units")
@api_roles(*ROLES)
def units() -> ResponseReturnValue:
    """Active units."""
    with transaction(_sessions(), readonly=True) as session:
        rows = screening.active_units(session)
        return jsonify([
            {"id": u.id, "code": u.code, "name": u.name, "kind": u.kind, "parent_id": u.parent_id,
             "district": u.district} for u in rows
        ])


# ---- the OpenAPI document (kept true by tests/test_web_api.py: every route is described) -----------

def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "401": _json(_ref("Error"), "No valid bearer token"),
    "403": _json(_ref("Error"), "The token's user has no role allowed here"),
}
_MESSAGE_ID = [{"name": "message_id", "in": "path", "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": params.MAX_ID}}]
_NOT_FOUND = {"404": _json(_ref("Error"), "No such message")}
_INVALID = {"400": _json(_ref("Error"), "Invalid fields")}


def _op(summary: str, roles: tuple[str, ...], responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": f"Roles: {', '.join(roles)}.",
        "security": [{"bearer": []}],
        "responses": {**responses, **_ERRORS},
        **extra,
    }


def openapi_document(districts: int = DEFAULT_DISTRICTS) -> dict[str, Any]:
    """The OpenAPI 3.0 description of /api/v1 (for a city of `districts` districts)."""
    nullable_int = {"type": "integer", "nullable": True}
    classification = {
        "type": "object",
        "required": ["decision", "kind"],
        "properties": {
            "decision": {"type": "string", "enum": list(screening.DECISIONS)},
            "kind": {"type": "string", "enum": list(MESSAGE_KINDS)},
            "topic_id": nullable_int, "district": {"type": "integer", "minimum": 1, "maximum": districts, "nullable": True},
            "unit_id": nullable_int, "summary": {"type": "string", "maxLength": screening.SUMMARY_MAX},
            "reason": {"type": "string", "enum": list(NOT_REFERRED_REASONS)},
            "duplicate_of": {"type": "string", "description": "Tracking code of the original (reason duplicate)"},
        },
    }
    typed = {
        "type": "object",
        "required": ["line", "kind", "caller", "body"],
        "properties": {
            "line": {"type": "string", "enum": list(LINES)}, "kind": {"type": "string", "enum": list(MESSAGE_KINDS)},
            "caller": {"type": "string"}, "body": {"type": "string", "maxLength": screening.BODY_MAX},
            "topic_id": nullable_int, "district": nullable_int, "unit_id": nullable_int, "summary": {"type": "string"},
        },
    }
    string, nullable_string = {"type": "string"}, {"type": "string", "nullable": True}
    stamp, nullable_stamp = {"type": "string", "format": "date-time"}, {**nullable_string, "format": "date-time"}
    message = {
        "type": "object",
        "required": ["id", "tracking_code", "line", "kind", "source", "status", "created_at"],
        "properties": {
            "id": {"type": "integer"}, "tracking_code": string, "line": {"type": "string", "enum": list(LINES)},
            "kind": string, "source": string, "status": string, "topic_id": nullable_int, "district": nullable_int,
            "unit_id": nullable_int, "summary": nullable_string, "body": nullable_string,
            "caller": {**nullable_string, "description": "Never given to managers"},
            "not_referred_reason": nullable_string, "duplicate_of_id": nullable_int, "created_at": stamp,
            "claimed_by_id": nullable_int, "claim_expires_at": nullable_stamp,
            "referral": {"type": "object", "nullable": True, "properties": {
                "id": {"type": "integer"}, "unit_id": {"type": "integer"}, "manager_id": nullable_int,
                "due_at": nullable_stamp}},
        },
    }
    conflict = {"409": _json(_ref("Error"), "Claimed by someone else or already screened")}
    return {
        "openapi": "3.0.3",
        "info": {"title": "IVR 137/1888 console API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
                "Message": message, "Classification": classification, "TypedMessage": typed,
            },
        },
        "paths": {
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3 document"}}}},
            "/screening/queue": {"get": _op(
                "Screening queue, oldest first", SCREENERS,
                {"200": _json({"type": "object", "properties": {"total": {"type": "integer"}, "total_cap": {"type": "integer"}, "items": {
                    "type": "array", "items": {"type": "object"}}}}, "Queue page"),
                 "400": _json(_ref("Error"), "limit or offset is not a whole number in range")},
                parameters=[{"name": "limit", "in": "query",
                             "schema": {"type": "integer", "minimum": 1, "maximum": QUEUE_LIMIT_MAX, "default": 50}},
                            {"name": "offset", "in": "query",
                             "schema": {"type": "integer", "minimum": 0, "maximum": params.MAX_OFFSET, "default": 0}}],
            )},
            "/messages": {"post": _op(
                "Register a message typed during a live call", SCREENERS,
                {"201": _json(_ref("Message"), "Registered, with its tracking code"),
                 "400": _json(_ref("Error"), "Invalid fields")},
                requestBody={"required": True, "content": {"application/json": {"schema": _ref("TypedMessage")}}},
            )},
            "/messages/{message_id}": {"get": _op(
                "One message", SCREENERS, {"200": _json(_ref("Message"), "The message"),
                                           "404": _json(_ref("Error"), "No such message")},
                parameters=_MESSAGE_ID,
            )},
            "/messages/{message_id}/claim": {"post": _op(
                "Claim a message for screening (10 minutes)", SCREENERS,
                {"200": _json(_ref("Message"), "Claimed"), **conflict, **_NOT_FOUND}, parameters=_MESSAGE_ID,
            )},
            "/messages/{message_id}/release": {"post": _op(
                "Give up one's claim", SCREENERS,
                {"200": _json({"type": "object", "properties": {"released": {"type": "boolean"}}}, "Done"),
                 **_NOT_FOUND},
                parameters=_MESSAGE_ID,
            )},
            "/messages/{message_id}/classify": {"post": _op(
                "Classify and refer, or close as not referred", SCREENERS,
                {"200": _json(_ref("Message"), "Saved"), **_INVALID, **conflict, **_NOT_FOUND},
                parameters=_MESSAGE_ID,
                requestBody={"required": True, "content": {"application/json": {"schema": _ref("Classification")}}},
            )},
            "/window": {"get": _op(
                "Single window: a phone number's history on both lines", VIEWERS,
                {"200": _json({"type": "object"}, "Calls, messages, replies, feedback, reminders, SMS"),
                 "400": _json(_ref("Error"), "Not a phone number")},
                parameters=[{"name": "phone", "in": "query", "required": True, "schema": {"type": "string"}}],
            )},
            "/window/handoffs": {"get": _op(
                "Callers handed to the operators' queue, newest first", VIEWERS,
                {"200": _json({"type": "array", "items": {"type": "object"}}, "Calls")},
            )},
            "/topics": {"get": _op("Active topics and deadlines", ROLES,
                                   {"200": _json({"type": "array", "items": {"type": "object"}}, "Topics")})},
            "/units": {"get": _op("Active units", ROLES,
                                  {"200": _json({"type": "array", "items": {"type": "object"}}, "Units")})},
        },
    }


def init_api(app: Flask) -> None:
    """Register the API (exempt from CSRF: it uses bearer tokens, never cookies)."""
    app.register_blueprint(bp)
    app.extensions["csrf"].exempt(bp)
