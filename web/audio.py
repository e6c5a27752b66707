"""Serving recordings to the people allowed to hear them.

A player's URL carries a signed, expiring token naming one recording and the user it was made
for; the file's path comes from the Recording row, never from the request. Every listen is audited.
"""
from __future__ import annotations

from flask import Blueprint, Flask, abort, current_app, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ivr.db import transaction
from ivr.infra.storage import AudioError, AudioStore
from ivr.models import Recording
from ivr.services import audit
from ivr.services.inbox import Viewer, may_hear
from ivr.vocabulary import ROLES
from web.auth import roles_required

bp = Blueprint("audio", __name__, url_prefix="/audio")

TOKEN_SALT = "ivr-audio"
TOKEN_SECONDS = 4 * 3600
MIMETYPES = {"wav": "audio/wav", "ogg": "audio/ogg", "webm": "audio/webm", "mp3": "audio/mpeg"}


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def audio_token(recording_id: int, user_id: int | None = None) -> str:
    """A signed token for one recording, bound to a user (default: the signed-in one)."""
    if user_id is None and current_user.is_authenticated:
        user_id = current_user.id
    return _serializer().dumps({"r": int(recording_id), "u": user_id})


def audio_url(recording_id: int) -> str:
    """The player URL of a recording for the signed-in user."""
    return url_for("audio.play", token=audio_token(recording_id))


def viewer_of(user: object) -> Viewer:
    """The services' view of a console user."""
    return Viewer(user.id, user.role, user.unit_id)  # type: ignore[attr-defined]


def _first_request_of_a_listen() -> bool:
    # A browser fetches one playback in several Range requests; only the one from the start counts.
    rng = request.headers.get("Range", "")
    return not rng or rng.replace(" ", "").startswith("bytes=0-")


@bp.get("/<token>")
@roles_required(*ROLES)
def play(token: str) -> ResponseReturnValue:
    """Send the recording named by a valid token to a user allowed to hear it (Range supported)."""
    from web import sessions

    max_age = current_app.config.get("AUDIO_TOKEN_SECONDS", TOKEN_SECONDS)
    try:
        data = _serializer().loads(token, max_age=max_age)
        recording_id, user_id = int(data["r"]), data.get("u")
    except (BadSignature, KeyError, TypeError, ValueError):
        abort(404)
    if user_id is not None and user_id != current_user.id:
        abort(403)
    settings = current_app.config["IVR_SETTINGS"]
    with transaction(sessions(current_app)) as session:
        recording = session.get(Recording, recording_id)
        if recording is None:
            abort(404)
        if not may_hear(session, viewer_of(current_user), recording):
            abort(403)
        try:
            path = AudioStore(settings.recordings_dir).path_of(recording.path)
        except AudioError:
            abort(404)
        if not path.is_file():
            abort(404)
        fmt = recording.format
        if _first_request_of_a_listen():
            object_type, object_id = (
                ("message", recording.message_id) if recording.purpose == "message" else ("reply", recording.reply_id)
            )
            audit.record(session, current_user.id, "listen", object_type, object_id, f"recording={recording.id}",
                         request.remote_addr)
    response = send_file(path, mimetype=MIMETYPES.get(fmt, "application/octet-stream"), conditional=True,
                         max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def init_audio(app: Flask) -> None:
    """Register the audio blueprint and `audio_url()` for templates."""
    app.register_blueprint(bp)
    app.jinja_env.globals["audio_url"] = audio_url
