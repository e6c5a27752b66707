"""The domain's words, once: every code the system stores or exchanges, with its Persian label where users see it.

Codes are tuples of strings (the order is the order users see); labels are read-only mappings
from code to Persian. The model's CHECK constraints, form choices, templates (through the
`fa_labels` global and the `fa_label` filter of the app factory), exports and the API all read
them from here, so a word is changed in one place. This module imports nothing from `ivr`:
every layer may use it.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


def _labels(codes: tuple[str, ...], labels: dict[str, str]) -> Mapping[str, str]:
    """A read-only code → label mapping in the order of `codes`; every code must have a label."""
    if set(codes) != set(labels):
        raise ValueError(f"labels do not match codes: {sorted(set(codes) ^ set(labels))}")
    return MappingProxyType({code: labels[code] for code in codes})


# ---- lines ---------------------------------------------------------------------------------
LINES = ("137", "1888")
LINE_LABELS = _labels(LINES, {"137": "سامانه ۱۳۷", "1888": "سامانه ۱۸۸۸"})

# ---- messages ------------------------------------------------------------------------------
MESSAGE_KINDS_1888 = ("criticism", "suggestion", "complaint", "appreciation")
MESSAGE_KINDS = (*MESSAGE_KINDS_1888, "request")
KIND_LABELS = _labels(
    MESSAGE_KINDS,
    {
        "criticism": "انتقاد",
        "suggestion": "پیشنهاد",
        "complaint": "شکایت",
        "appreciation": "تقدیر",
        "request": "درخواست",
    },
)
# The kinds a message on each line may have: 1888 takes the four, 137 takes city-problem requests.
LINE_KINDS: Mapping[str, tuple[str, ...]] = MappingProxyType({"137": ("request",), "1888": MESSAGE_KINDS_1888})
MESSAGE_SOURCES = ("phone_voice", "operator", "sms")
SOURCE_LABELS = _labels(MESSAGE_SOURCES, {"phone_voice": "پیام صوتی", "operator": "ثبت کارشناس", "sms": "پیامک"})
MESSAGE_STATUSES = ("new", "screening", "referred", "answered", "closed", "not_referred")
STATUS_LABELS = _labels(
    MESSAGE_STATUSES,
    {
        "new": "جدید",
        "screening": "در پالایش",
        "referred": "ارجاع‌شده",
        "answered": "پاسخ‌داده‌شده",
        "closed": "بسته",
        "not_referred": "ارجاع‌نشده",
    },
)
NOT_REFERRED_REASONS = ("incomplete_message", "incomplete_caller", "duplicate", "irrelevant")
REASON_LABELS = _labels(
    NOT_REFERRED_REASONS,
    {
        "incomplete_message": "پیام ناقص",
        "incomplete_caller": "مشخصات ناقص تماس‌گیرنده",
        "duplicate": "تکراری",
        "irrelevant": "نامرتبط",
    },
)

# ---- calls ---------------------------------------------------------------------------------
CALL_OUTCOMES = (
    "message_registered",
    "follow_up",
    "case_lookup",
    "guidance",
    "operator",
    "dropped",
    "nuisance",
    "irrelevant",
    "failed",
)
OUTCOME_LABELS = _labels(
    CALL_OUTCOMES,
    {
        "message_registered": "ثبت پیام",
        "follow_up": "پیگیری پیام",
        "case_lookup": "استعلام پرونده",
        "guidance": "راهنمایی",
        "operator": "انتقال به کارشناس",
        "dropped": "قطع تماس",
        "nuisance": "مزاحم",
        "irrelevant": "نامرتبط",
        "failed": "خطا",
    },
)

# ---- people and units ----------------------------------------------------------------------
ROLES = ("operator", "manager", "supervisor", "inspector", "analyst", "admin")
ROLE_LABELS = _labels(
    ROLES,
    {
        "operator": "کارشناس پاسخگو",
        "manager": "مدیر واحد",
        "supervisor": "ناظر",
        "inspector": "بازرس میدانی",
        "analyst": "تحلیلگر",
        "admin": "مدیر سامانه",
    },
)
UNIT_KINDS = ("deputy", "organisation", "district_office", "department")
UNIT_KIND_LABELS = _labels(
    UNIT_KINDS,
    {"deputy": "معاونت", "organisation": "سازمان", "district_office": "شهرداری منطقه", "department": "اداره"},
)

# ---- districts -----------------------------------------------------------------------------
# The city's count is configuration (IVR_DISTRICTS, ivr.config); this is its default (Tehran).
DEFAULT_DISTRICTS = 22
# The bound of the database's CHECK constraints: a city with more districts needs a migration.
MAX_DISTRICTS = 22


def district_range(count: int = DEFAULT_DISTRICTS) -> range:
    """The district numbers of a city with `count` districts: 1 to `count`."""
    return range(1, count + 1)


# ---- urban-planning and Article 100 cases --------------------------------------------------
CASE_KINDS = ("urban_planning", "article100")
CASE_KIND_LABELS = _labels(CASE_KINDS, {"urban_planning": "پرونده شهرسازی", "article100": "کمیسیون ماده صد"})
CASE_STAGES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "urban_planning": (
            "received",
            "site_visit",
            "fees_calculated",
            "paid",
            "permit_issued",
            "completion_certificate",
            "rejected",
        ),
        "article100": (
            "violation_reported",
            "referred_to_commission",
            "hearing_scheduled",
            "first_verdict",
            "appeal",
            "final_verdict",
            "executed",
        ),
    }
)
VERDICTS = ("fine", "demolition", "closure")

# ---- follow-through ------------------------------------------------------------------------
FEEDBACK_CHANNELS = ("phone", "sms", "web")
FEEDBACK_CHANNEL_LABELS = _labels(FEEDBACK_CHANNELS, {"phone": "تلفن", "sms": "پیامک", "web": "وب"})
REMINDER_REASONS = ("dissatisfied", "field_check_failed")
NOTICE_CHANNELS = ("sms", "call")
SMS_DIRECTIONS = ("in", "out")
SMS_DIRECTION_LABELS = _labels(SMS_DIRECTIONS, {"in": "دریافتی", "out": "ارسالی"})
SMS_STATUSES = ("queued", "sent", "delivered", "failed", "undelivered", "received")
SMS_STATUS_LABELS = _labels(
    SMS_STATUSES,
    {
        "queued": "در صف",
        "sent": "فرستاده‌شده",
        "delivered": "رسیده",
        "failed": "ناموفق",
        "undelivered": "نرسیده",
        "received": "دریافت‌شده",
    },
)
SMS_BACKENDS = ("local", "twilio")

# ---- Asterisk channel variables (read by dialplan/extensions.conf) -------------------------
LINE_VARIABLE = "IVR_LINE"  # set by the dialplan: 137 or 1888
NEXT_VARIABLE = "IVR_NEXT"  # set by the server: where the dialplan sends the caller after the AGI
NEXT_OPERATOR = "operator"  # IVR_NEXT value: the operators' queue
NEXT_HANGUP = "hangup"  # IVR_NEXT value: the call is over
TRACKING_CODE_VARIABLE = "TRACKING_CODE"  # set by the server when a message is stored; logged in the CDR
REPLY_ID_VARIABLE = "IVR_REPLY_ID"  # set in a reply-notice call file: which reply it announces
REPLY_AUDIO_VARIABLE = "IVR_REPLY_AUDIO"  # set in a reply-notice call file: the reply to play

# ---- labels by group, for templates and exports --------------------------------------------
LABELS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "line": LINE_LABELS,
        "kind": KIND_LABELS,
        "source": SOURCE_LABELS,
        "status": STATUS_LABELS,
        "reason": REASON_LABELS,
        "outcome": OUTCOME_LABELS,
        "role": ROLE_LABELS,
        "unit_kind": UNIT_KIND_LABELS,
        "case_kind": CASE_KIND_LABELS,
        "channel": FEEDBACK_CHANNEL_LABELS,
        "sms_direction": SMS_DIRECTION_LABELS,
        "sms_status": SMS_STATUS_LABELS,
    }
)


def label(group: str, code: str | None, default: str | None = None) -> str:
    """The Persian label of `code` in `group` (e.g. "kind"); `default` (or the code itself) when unknown."""
    if code is None:
        return default or ""
    return LABELS[group].get(code, default if default is not None else code)
