"""Twilio webhooks under `/twilio/`: voice steps, recording and call status callbacks, SMS.

Every POST must carry a valid `X-Twilio-Signature`, checked with twilio's RequestValidator
against `IVR_PUBLIC_BASE_URL` + the path (the URL Twilio was given, so it works behind a
reverse proxy); anything else is refused with 403 before any work. The views only parse
and hand over to the driver (`ivr.drivers.twilio`) or the SMS service. Prompts are served
by catalogue name only; stored audio (replies only) by a signed token naming the reply's id.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, abort, current_app, request, send_file
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from ivr.db import transaction
from ivr.drivers.twilio.voice import TwilioRequestError, TwilioVoice, build_twilio_voice
from ivr.infra.storage import AudioError, AudioStore
from ivr.models import Reply, utcnow
from ivr.prompts import catalogue_texts, load_catalogue, prompts_out_dir
from ivr.services.messages import mark_reply_heard, reply_phone_audio
from ivr.services.sms import apply_delivery_report, receive_sms
from web import jobs_of, sessions

log = logging.getLogger(__name__)

NOTICE_HEARD_PATH = "/twilio/voice/reply-notice/heard"

bp = Blueprint("twilio", __name__, url_prefix="/twilio")
MAX_WEBHOOK_BYTES = 64 * 1024
EXTENSION = "ivr_twilio"


class TwilioWeb:
    """What the views need, built once per app: the voice driver, prompt names, catalogue texts."""

    def __init__(self, voice: TwilioVoice, prompt_names: frozenset[str], texts: dict[str, str]) -> None:
        self.voice = voice
        self.prompt_names = prompt_names
        self.texts = texts


def init_twilio(app: Flask) -> None:
    """Mount the webhooks; exempt them from CSRF (Twilio signs its requests instead)."""
    settings = app.config["IVR_SETTINGS"]
    # Reply audio links are signed with the app's own secret (IVR_SECRET_KEY or the kept random key).
    voice = build_twilio_voice(settings.with_(secret_key=app.config["SECRET_KEY"]), sessions(app))
    app.extensions[EXTENSION] = TwilioWeb(voice, frozenset(load_catalogue()), catalogue_texts())
    app.register_blueprint(bp)
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)


def _web() -> TwilioWeb:
    return current_app.extensions[EXTENSION]


def _twiml(xml: str) -> Response:
    return Response(xml, status=200, mimetype="text/xml")


@bp.before_request
def check_signature() -> ResponseReturnValue | None:
    """Refuse unsigned, forged or oversized webhooks before any work (GETs of audio are public or token-signed)."""
    if request.method == "GET":
        return None
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        abort(413)
    settings = current_app.config["IVR_SETTINGS"]
    if not settings.twilio_auth_token or not settings.public_base_url:
        log.error("Twilio webhook refused: IVR_TWILIO_AUTH_TOKEN and IVR_PUBLIC_BASE_URL must be set")
        abort(403)
    url = settings.public_base_url + _path()
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not RequestValidator(settings.twilio_auth_token).validate(url, request.form, signature):
        log.warning("Twilio webhook with a bad signature refused: %s", request.path)
        abort(403)
    return None


@bp.errorhandler(TwilioRequestError)
def bad_request(exc: TwilioRequestError) -> ResponseReturnValue:
    """A webhook we cannot act on: a clear 4xx, never a 500."""
    return Response(str(exc), status=exc.status, mimetype="text/plain")


@bp.errorhandler(OperationalError)
@bp.errorhandler(InterfaceError)
@bp.errorhandler(PoolTimeout)
def database_down(exc: Exception) -> ResponseReturnValue:
    """The database is unreachable: a caller hears the apology and goes to the operators; others get 503."""
    log.error("Twilio webhook %s: database unavailable: %s", request.path, exc)
    if request.path.startswith("/twilio/voice"):
        return _twiml(_web().voice.twiml.transfer(("sorry_technical",)))
    return Response("database unavailable", status=503, mimetype="text/plain")


def _form() -> dict[str, str]:
    return {k: v for k, v in request.form.items()}


def _path() -> str:
    return request.full_path.rstrip("?")


@bp.post("/voice")
def voice_by_number() -> ResponseReturnValue:
    """Incoming call; the line is the one the dialled number (`To`) belongs to."""
    line = current_app.config["IVR_SETTINGS"].twilio_line_for(request.form.get("To"))
    if line is None:
        raise TwilioRequestError(404, "the dialled number belongs to no line (IVR_TWILIO_NUMBERS)")
    return _twiml(_web().voice.incoming(line, _form(), _path()))


@bp.post("/voice/<line>")
def voice(line: str) -> ResponseReturnValue:
    """Incoming call on line 137 or 1888."""
    return _twiml(_web().voice.incoming(line, _form(), _path()))


@bp.post("/voice/step")
def voice_step() -> ResponseReturnValue:
    """The caller's answer to the last TwiML (`n` numbers the step)."""
    n = request.args.get("n", "")
    if not (n.isascii() and n.isdigit()) or len(n) > 6:
        raise TwilioRequestError(400, "missing or malformed step number n")
    return _twiml(_web().voice.step(int(n), _form(), _path()))


@bp.post("/voice/reply-notice")
def reply_notice() -> ResponseReturnValue:
    """An outbound reply-notice call (Twilio's Calls API) was answered: play the manager's spoken reply."""
    reply_id = _reply_id()
    with transaction(sessions(current_app), readonly=True) as session:
        reply = session.get(Reply, reply_id)
        audio = reply_phone_audio(reply) if reply is not None else None
    if audio is None:
        raise TwilioRequestError(404, "no reply with audio by that id")
    # Heard only once the reply has played to its end: Twilio asks for the next step then.
    then = f"{NOTICE_HEARD_PATH}?reply_id={reply_id}"
    return _twiml(_web().voice.twiml.announce(("reply_follows", f"rec:{audio}"), then=then))


@bp.post("/voice/reply-notice/heard")
def reply_notice_heard() -> ResponseReturnValue:
    """The reply of a notice call played to its end: it counts as heard; goodbye."""
    reply_id = _reply_id()
    with transaction(sessions(current_app)) as session:
        if session.get(Reply, reply_id) is None:
            raise TwilioRequestError(404, "no reply by that id")
        mark_reply_heard(session, reply_id, utcnow())
    return _twiml(_web().voice.twiml.announce(("goodbye",)))


def _reply_id() -> int:
    reply_id = request.args.get("reply_id", "")
    if not (reply_id.isascii() and reply_id.isdigit()) or len(reply_id) > 12:
        raise TwilioRequestError(400, "missing or malformed reply_id")
    return int(reply_id)


@bp.post("/recording")
def recording_status() -> ResponseReturnValue:
    """Recording status callback: noted, and the fetch queued for a background job."""
    _web().voice.recording_status(_form(), jobs_of(current_app))
    return Response(status=204)


@bp.post("/status")
def call_status() -> ResponseReturnValue:
    """Call status callback: closes a call still in the flow (hang-up, busy, no-answer, failed)."""
    _web().voice.call_status(_form())
    return Response(status=204)


@bp.post("/sms")
def sms_in() -> ResponseReturnValue:
    """An SMS from a citizen: feedback, a tracking-code query or a new message; a Persian reply."""
    form = request.form
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not sid or len(sid) > 64:
        raise TwilioRequestError(400, "missing or malformed MessageSid")
    phone = form.get("From", "")
    if not phone:
        raise TwilioRequestError(400, "missing From")
    settings = current_app.config["IVR_SETTINGS"]
    line = settings.twilio_line_for(form.get("To")) or "137"
    with transaction(sessions(current_app)) as session:
        reply = receive_sms(session, provider_sid=sid, phone=phone, line=line, body=form.get("Body"),
                            texts=_web().texts)
    response = MessagingResponse()
    response.message(reply.text)
    return _twiml(response.to_xml())


@bp.post("/sms/status")
def sms_status() -> ResponseReturnValue:
    """Delivery report of an SMS we sent."""
    sid = request.form.get("MessageSid") or ""
    status = request.form.get("MessageStatus") or ""
    if not sid or not status:
        raise TwilioRequestError(400, "missing MessageSid or MessageStatus")
    with transaction(sessions(current_app)) as session:
        apply_delivery_report(session, sid, status, request.form.get("ErrorCode"))
    return Response(status=204)


@bp.get("/prompts/<name>.wav")
def prompt(name: str) -> ResponseReturnValue:
    """A prompt by catalogue name (nothing else is ever served)."""
    if name not in _web().prompt_names:
        abort(404)
    path = prompts_out_dir(current_app.config["IVR_SETTINGS"]) / f"{name}.wav"
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="audio/wav", max_age=3600)


@bp.get("/audio/<token>.wav")
def stored_audio(token: str) -> ResponseReturnValue:
    """A manager's spoken reply, named by a signed, expiring token holding its id (looked up in the database)."""
    rel = _web().voice.twiml.tokens.rel_path(token)
    if rel is None:
        abort(404)
    try:
        path = AudioStore(current_app.config["IVR_SETTINGS"].recordings_dir).path_of(rel)
    except AudioError:
        abort(404)
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="audio/wav", max_age=0)
