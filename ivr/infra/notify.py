"""Sending SMS: the `Notifier` port (ivr.ports) implemented for Twilio and for the local log.

`LocalNotifier` is the embedded default (`IVR_SMS_BACKEND=local`): nothing leaves the
machine, the SMS is logged and its row says it was sent. `TwilioNotifier` sends through
Twilio's REST API and asks for delivery reports at `/twilio/sms/status`.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any

from twilio.base.exceptions import TwilioException, TwilioRestException

from ivr.config import Settings
from ivr.identifiers import InvalidIdentifier, normalize_phone
from ivr.infra.twilio_rest import build_client, rest_error
from ivr.ports import NotifierError

log = logging.getLogger(__name__)

SMS_STATUS_PATH = "/twilio/sms/status"


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

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self._client = client
        self.status_callback = settings.public_base_url + SMS_STATUS_PATH if settings.public_base_url else None

    @property
    def client(self) -> Any:
        """The REST client, made on first use (the composition root builds notifiers it may never use)."""
        if self._client is None:
            self._client = build_client(self.settings)
        return self._client

    def send(self, phone: str, body: str, *, sender_line: str | None = None) -> str:
        """Send through Twilio; NotifierError (permanent or not) when Twilio refuses."""
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
