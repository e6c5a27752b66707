"""The engine's instructions as TwiML (twilio's VoiceResponse), one step per webhook.

Every answer ends by sending Twilio back to `/twilio/voice/step?n=<step>`: `n` numbers
the steps of a call, so a retried webhook is recognised (same `n`, same parameters) and a
legitimately repeated key ("9" to hear it again) is not. Prompts are played from the app:
catalogue names from `/twilio/prompts/<name>.wav`, stored audio (a manager's reply) from
`/twilio/audio/<token>.wav` with a token signed with the application's secret, expiring, and
naming the reply by id, never a path: no other recording (a citizen's message) can be named.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker
from twilio.twiml.voice_response import VoiceResponse

from ivr.config import Settings
from ivr.db import transaction
from ivr.flow.steps import Play, ReadDigits, ReadKey, Record
from ivr.services.replies import phone_audio_of_reply, reply_of_phone_audio

log = logging.getLogger(__name__)

STEP_PATH = "/twilio/voice/step"
RECORDING_CALLBACK_PATH = "/twilio/recording"
AUDIO_TOKEN_MAX_AGE = 6 * 3600  # a reply link outlives any call that plays it
HOLD_SECONDS = 1


@dataclass(frozen=True)
class Expect:
    """What the TwiML just sent waits for, so the next webhook can be read as the right event."""

    kind: str  # key | digits | record | play | wait | end
    max_digits: int = 0


class AudioTokens:
    """Signed, expiring tokens naming a manager's reply by id; the stored path never leaves the server.

    Signed with the application's secret (IVR_SECRET_KEY, or the key the app keeps in its data
    folder), not with the Twilio auth token: knowing the one must not open stored audio. Both
    directions go through the database, so only a reply's phone WAV can ever be named.
    """

    SALT = "ivr-twilio-reply-audio"

    def __init__(self, settings: Settings, factory: sessionmaker[Session] | None = None,
                 max_age: int = AUDIO_TOKEN_MAX_AGE) -> None:
        self._serializer = URLSafeTimedSerializer(settings.secret_key or "unset", salt=self.SALT)
        self.enabled = bool(settings.secret_key) and factory is not None
        self.factory = factory
        self.max_age = max_age

    def token(self, rel_path: str) -> str | None:
        """A token for the reply whose phone WAV is `rel_path`; None when no reply has that audio."""
        if not self.enabled or self.factory is None:
            return None
        with transaction(self.factory, readonly=True) as session:
            reply_id = reply_of_phone_audio(session, rel_path)
        return None if reply_id is None else self.for_reply(reply_id)

    def for_reply(self, reply_id: int) -> str:
        """A token naming reply `reply_id`."""
        return self._serializer.dumps({"reply": reply_id})

    def reply_id(self, token: str) -> int | None:
        """The reply a token names, or None if forged, expired, malformed or tokens are off."""
        if not self.enabled:
            return None
        try:
            value = self._serializer.loads(token, max_age=self.max_age)
        except BadData:  # forged, expired (SignatureExpired) or undecodable
            return None
        reply_id = value.get("reply") if isinstance(value, dict) else None
        return reply_id if type(reply_id) is int and reply_id > 0 else None

    def rel_path(self, token: str) -> str | None:
        """The stored phone WAV of the reply a token names (looked up now), or None."""
        reply_id = self.reply_id(token)
        if reply_id is None or self.factory is None:
            return None
        with transaction(self.factory, readonly=True) as session:
            return phone_audio_of_reply(session, reply_id)


class TwimlRenderer:
    """Builds the TwiML for each kind of step."""

    def __init__(self, settings: Settings, tokens: AudioTokens) -> None:
        self.base = settings.public_base_url
        self.operator = settings.twilio_operator
        self.tokens = tokens

    def url(self, path: str) -> str:
        """An absolute URL Twilio is given (from the public base URL)."""
        return self.base + path

    def step_url(self, n: int) -> str:
        """Where Twilio reports the outcome of step `n`."""
        return self.url(f"{STEP_PATH}?n={n}")

    def prompt_url(self, name: str) -> str:
        """The URL of a prompt: a catalogue file, or a stored recording by signed token."""
        if name.startswith("rec:"):
            token = self.tokens.token(name[4:])
            if token is None:  # not a reply's audio, or no secret: a URL that answers 404, never a path
                log.error("no audio token for %r: not a reply's phone audio, or tokens are off", name)
                token = "none"
            return self.url(f"/twilio/audio/{token}.wav")
        return self.url(f"/twilio/prompts/{name}.wav")

    def instruction(self, step: Play | ReadKey | ReadDigits | Record, n: int) -> tuple[str, Expect]:
        """TwiML for a step that talks to the caller, and what its answer will be."""
        r = VoiceResponse()
        action = self.step_url(n)
        if isinstance(step, ReadKey):
            # finishOnKey="" because '#' is a menu key here, not an end-of-input mark.
            g = r.gather(action=action, method="POST", num_digits=1, finish_on_key="",
                         timeout=_seconds(step.timeout_ms), action_on_empty_result=True)
            for name in step.prompts:
                g.play(self.prompt_url(name))
            return r.to_xml(), Expect("key")
        if isinstance(step, ReadDigits):
            g = r.gather(action=action, method="POST", num_digits=step.max_digits, finish_on_key="#",
                         timeout=_seconds(step.timeout_ms), action_on_empty_result=True)
            for name in step.prompts:
                g.play(self.prompt_url(name))
            return r.to_xml(), Expect("digits", step.max_digits)
        if isinstance(step, Record):
            for name in step.prompts:
                r.play(self.prompt_url(name))
            r.record(action=action, method="POST", max_length=step.max_seconds, timeout=step.silence_seconds,
                     finish_on_key="#", play_beep=True,
                     recording_status_callback=self.url(RECORDING_CALLBACK_PATH),
                     recording_status_callback_method="POST",
                     recording_status_callback_event="completed absent")
            r.redirect(action, method="POST")  # reached only when nothing was recorded
            return r.to_xml(), Expect("record")
        # A Play is never inside a <Gather>: Twilio hears no key during it, so its redirect
        # (the next webhook) means it played to its end. A question asked after it (the
        # satisfaction question after a reply) is the next step's <Gather>.
        for name in step.prompts:
            r.play(self.prompt_url(name))
        r.redirect(action, method="POST")
        return r.to_xml(), Expect("play")

    def hold(self, n: int) -> str:
        """Wait a moment for work in the background (a recording being fetched), then ask again."""
        r = VoiceResponse()
        r.pause(length=HOLD_SECONDS)
        r.redirect(self.step_url(n), method="POST")
        return r.to_xml()

    def transfer(self, prompts: tuple[str, ...] = ()) -> str:
        """Hand the caller to the operators: `<Dial>` a number or `<Enqueue>` a queue."""
        r = VoiceResponse()
        for name in prompts:
            r.play(self.prompt_url(name))
        if re.fullmatch(r"\+?\d{3,15}", self.operator):
            r.dial(self.operator)
        else:
            r.enqueue(self.operator)
        return r.to_xml()

    def announce(self, prompts: tuple[str, ...], *, then: str | None = None) -> str:
        """Play `prompts` in order, then hang up, or (`then`, an app path) ask it what next.

        Twilio fetches `then` only once every <Play> before it has ended, so it is how the app
        learns that the caller heard them all (a hang-up ends the call before it).
        """
        r = VoiceResponse()
        for name in prompts:
            r.play(self.prompt_url(name))
        if then is None:
            r.hangup()
        else:
            r.redirect(self.url(then), method="POST")
        return r.to_xml()

    def hangup(self) -> str:
        """End the call."""
        r = VoiceResponse()
        r.hangup()
        return r.to_xml()


def _seconds(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))
