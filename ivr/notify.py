"""Sending SMS: one notifier interface, a Twilio implementation and a local one.

`LocalNotifier` is the embedded default (`IVR_SMS_BACKEND=local`): nothing leaves the
machine, the SMS is logged and its row says it was sent. `TwilioNotifier` sends through
Twilio's REST API and asks for delivery reports at `/twilio/sms/status`.
"""
from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Protocol

from ivr.config import Settings
from ivr.identifiers import InvalidIdentifier, normalize_phone

if TYPE_CHECKING:
    from twilio.rest import Client

log = logging.getLogger(__name__)

SMS_STATUS_PATH = "/twilio/sms/status"


class NotifierError(Exception):
    """An SMS that could not be sent; `permanent` when retrying cannot help (bad number...)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Notifier(Protocol):
    """Sends one SMS and returns the provider's id for it."""

    def send(self, phone: str, body: str, *, sender_line: str | None = None) -> str:
        """Send `body` to `phone` (normalised, e.g. 0912…); the provider's message id."""
        ...


def e164(phone: str) -> str:
    """A normalised Iranian number as E.164 (`0912…` → `+98912…`); others get a `+`."""
    try:
        number = normalize_phone(phone)
    except InvalidIdentifier as exc:
        raise NotifierError(str(exc), permanent=True) from None
    if number.startswith("0") and len(number) == 11:
        return "+98" + number[1:]
    return "+" + number.lstrip("0")


class LocalNotifier:
    """Logs the SMS instead of sending it (the embedded default and development)."""

    def send(self, phone: str, body: str, *, sender_line: str | None = None) -> str:
        """Log the SMS; a local id stands in for the provider's."""
        sid = f"local-{uuid.uuid4().hex}"
        log.info("SMS %s to %s (line %s): %s", sid, phone, sender_line or "-", body)
        return sid


class TwilioNotifier:
    """Sends SMS with Twilio's REST client, with delivery reports to the status callback."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        from ivr.drivers.twilio.rest import build_client

        self.settings = settings
        self.client = client or build_client(settings)
        self.status_callback = settings.public_base_url + SMS_STATUS_PATH if settings.public_base_url else None

    def send(self, phone: str, body: str, *, sender_line: str | None = None) -> str:
        """Send through Twilio; NotifierError (permanent or not) when Twilio refuses."""
        from twilio.base.exceptions import TwilioException, TwilioRestException

        from ivr.drivers.twilio.rest import rest_error

        sender = self.settings.twilio_number_of(sender_line)
        if sender is None:
            raise NotifierError("IVR_TWILIO_NUMBERS names no number to send SMS from", permanent=True)
        options = {"status_callback": self.status_callback} if self.status_callback else {}
        try:
            msg = self.client.messages.create(to=e164(phone), from_=sender, body=body, **options)
        except TwilioRestException as exc:
            err = rest_error(exc)
            raise NotifierError(str(err), permanent=err.permanent) from None
        except (TwilioException, OSError) as exc:  # refused, timed out (requests' errors are OSErrors)
            raise NotifierError(f"Twilio unreachable: {exc}", permanent=False) from None
        return str(msg.sid)


def build_notifier(settings: Settings) -> Notifier:
    """The notifier `IVR_SMS_BACKEND` asks for."""
    if settings.sms_backend == "twilio":
        return TwilioNotifier(settings)
    return LocalNotifier()
