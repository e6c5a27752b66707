"""The console's test phone, `/phone/`: call 137 or 1888 from the browser through the same call core.

The views only parse and hand over to the browser driver (`ivr.drivers.browser`): one POST
per step, the next instruction in the JSON answer (see the driver for why not WebSocket).
Each answer's prompts come with their URLs and catalogue texts (the live transcript):
catalogue prompts by name only, stored audio (a spoken reply) by a signed token bound to
the user. The JavaScript (static/phone.js) plays, records, counts time and sends keys.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ivr.db import transaction
from ivr.drivers.browser.phone import Answer, BrowserPhone, PhoneRequestError, build_browser_phone
from ivr.infra.storage import AudioError, AudioStore
from ivr.models import LINES, User
from ivr.prompts import catalogue_texts
from ivr.runner import recording_ref
from ivr.services import admin as admin_svc
from web import params
from web.auth import roles_required
from web.extensions import sessions
from web.home import add_nav

log = logging.getLogger(__name__)

bp = Blueprint("phone", __name__, url_prefix="/phone")
EXTENSION = "ivr_phone"
PHONE_ROLES = ("admin", "supervisor", "operator")
MAX_UPLOAD_BYTES = 12 * 1024 * 1024
AUDIO_SALT = "ivr-phone-audio"
AUDIO_SECONDS = 3600
REC_PREFIX = recording_ref("")
REPLY_TEXT = "«پاسخ صوتی ثبت‌شده»"


class PhoneWeb:
    """What the views need, built once per app: the driver and the catalogue's texts."""

    def __init__(self, phone: BrowserPhone, texts: dict[str, str]) -> None:
        self.phone = phone
        self.texts = texts


def init_phone(app: Flask) -> None:
    """Mount the test phone and link it from the navigation."""
    settings = app.config["IVR_SETTINGS"]
    app.extensions[EXTENSION] = PhoneWeb(build_browser_phone(settings, sessions(app)), catalogue_texts())
    app.register_blueprint(bp)
    add_nav(app, "phone.page", "تلفن آزمایشی", PHONE_ROLES)


def _web() -> PhoneWeb:
    return current_app.extensions[EXTENSION]


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=AUDIO_SALT)


def _prompt(ref: str) -> dict[str, str]:
    """One prompt of an answer: its name, where the browser fetches it and what it says."""
    if ref.startswith(REC_PREFIX):
        token = _serializer().dumps({"p": ref[len(REC_PREFIX):], "u": current_user.id})
        return {"name": "reply", "url": url_for("phone.stored_audio", token=token), "text": REPLY_TEXT}
    return {"name": ref, "url": url_for("phone.prompt", name=ref), "text": _web().texts.get(ref, "")}


def _answer(answer: Answer) -> ResponseReturnValue:
    data: dict[str, Any] = answer.to_dict()
    data["prompts"] = [_prompt(ref) for ref in answer.prompts]
    data["step_url"] = url_for("phone.step", call_id=answer.call)
    data["hangup_url"] = url_for("phone.hangup", call_id=answer.call)
    return jsonify(data)


@bp.errorhandler(PhoneRequestError)
def bad_request(exc: PhoneRequestError) -> ResponseReturnValue:
    """A request the phone cannot act on: a clear 4xx in JSON."""
    return jsonify({"error": str(exc)}), exc.status


@bp.get("/")
@roles_required(*PHONE_ROLES)
def page() -> ResponseReturnValue:
    """The test phone: line, caller number, call, keypad, transcript."""
    with transaction(sessions(current_app), readonly=True) as session:
        user = session.get(User, current_user.id)
        caller = (user.phone if user is not None else None) or ""  # the user's own number by default
    return render_template("phone/phone.html", lines=sorted(LINES), caller=caller)


@bp.post("/calls")
@roles_required(*PHONE_ROLES)
def start() -> ResponseReturnValue:
    """Place a test call; the answer is its first instruction."""
    return _answer(_web().phone.start(request.form.get("line", ""), request.form.get("caller", ""),
                                      current_user.id))


@bp.post("/calls/<call_id>/step")
@roles_required(*PHONE_ROLES)
def step(call_id: str) -> ResponseReturnValue:
    """What the caller did for step `n`: a key, digits, a timeout, the end of the prompts or a recording."""
    if (request.content_length or 0) > MAX_UPLOAD_BYTES:
        abort(413)
    n = params.form_int("n", what="شماره گام", maximum=999_999)
    if n is None:
        raise PhoneRequestError(400, "missing or malformed step number n")
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    upload = request.files.get("audio")
    if upload is None or not upload.filename:
        return _answer(_web().phone.step(call_id, n, form, None, current_user.id))
    work = Path(tempfile.mkdtemp(prefix="phone-upload-"))
    try:
        path = work / "take.upload"
        upload.save(path)
        return _answer(_web().phone.step(call_id, n, form, path, current_user.id))
    finally:
        shutil.rmtree(work, ignore_errors=True)


@bp.post("/calls/<call_id>/hangup")
@roles_required(*PHONE_ROLES)
def hangup(call_id: str) -> ResponseReturnValue:
    """The caller hung up."""
    return _answer(_web().phone.hangup(call_id, current_user.id))


@bp.get("/prompts/<name>.wav")
@roles_required(*PHONE_ROLES)
def prompt(name: str) -> ResponseReturnValue:
    """A prompt by catalogue name (nothing else is ever served), the file Asterisk plays."""
    try:
        path = admin_svc.prompt_file(current_app.config["IVR_SETTINGS"], name)
    except admin_svc.NotFound:
        abort(404)
    return send_file(path, mimetype="audio/wav", conditional=True, max_age=300)


@bp.get("/audio/<token>.wav")
@roles_required(*PHONE_ROLES)
def stored_audio(token: str) -> ResponseReturnValue:
    """Stored audio an answer named (a spoken reply), by a signed token bound to the user."""
    try:
        value = _serializer().loads(token, max_age=AUDIO_SECONDS)
    except BadSignature:
        abort(404)
    if not isinstance(value, dict) or value.get("u") != current_user.id or not isinstance(value.get("p"), str):
        abort(404)
    try:
        path = AudioStore(current_app.config["IVR_SETTINGS"].recordings_dir).path_of(value["p"])
    except AudioError:
        abort(404)
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="audio/wav", conditional=True, max_age=0)
