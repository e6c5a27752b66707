"""The demo city's shapes and proportions: units, topics, staff, calendar, traffic shares, texts.

Data only (no rules, no database): `ivr demo` builds the city from it through the services, and
`ivr analysis generate` draws calls and messages at scale with the same shares. The shares follow
PRODUCT.md: 45 % of calls press 4 for a case, 80 % of screened messages are referred, 81 % of
citizens who rate a reply are satisfied.
"""
from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo

TEHRAN = ZoneInfo("Asia/Tehran")
DAYS = 30

# ---- the city ------------------------------------------------------------------------

DEPUTIES = (
    ("deputy-services", "معاونت خدمات شهری"),
    ("deputy-planning", "معاونت شهرسازی و معماری"),
    ("deputy-transport", "معاونت حمل و نقل و ترافیک"),
    ("deputy-technical", "معاونت فنی و عمران"),
    ("deputy-social", "معاونت اجتماعی و فرهنگی"),
    ("deputy-districts", "معاونت هماهنگی و امور مناطق"),
    ("deputy-hr", "معاونت توسعه منابع انسانی"),
    ("deputy-programs", "معاونت برنامه‌ریزی، توسعه شهری و امور شورا"),
)
# (code, name, kind, parent code)
BODIES = (
    ("waste", "سازمان مدیریت پسماند", "organisation", "deputy-services"),
    ("parks", "سازمان بوستان‌ها و فضای سبز", "organisation", "deputy-services"),
    ("roads", "سازمان مهندسی معابر", "organisation", "deputy-technical"),
    ("traffic", "سازمان حمل و نقل و ترافیک", "organisation", "deputy-transport"),
    ("culture", "سازمان فرهنگی هنری", "organisation", "deputy-social"),
    ("lighting", "اداره کل روشنایی معابر", "department", "deputy-technical"),
    ("article100", "دبیرخانه کمیسیون‌های ماده صد", "department", "deputy-planning"),
)
DISTRICTS = range(1, 23)
# Tehran's larger districts send more calls.
DISTRICT_WEIGHTS = tuple(1.6 if d in (2, 4, 5, 15) else 1.0 for d in DISTRICTS)

# (code, menu key, name, unit code, due working days, share of 137 requests)
TOPICS_137 = (
    ("cleaning", "1", "نظافت و پسماند", "waste", 3, 0.30),
    ("roads", "2", "معابر، آسفالت و آب‌های سطحی", "roads", 10, 0.22),
    ("lighting", "3", "روشنایی معابر", "lighting", 5, 0.12),
    ("green", "4", "درختان و فضای سبز", "parks", 7, 0.12),
    ("traffic", "5", "ترافیک و چراغ‌های راهنمایی", "traffic", 5, 0.14),
    ("other_137", "6", "سایر", "deputy-services", 7, 0.10),
)
# (code, name, unit code, due working days, share of 1888 messages)
TOPICS_1888 = (
    ("staff_conduct", "رفتار کارکنان", "deputy-hr", 10, 0.26),
    ("processes", "فرایندها و بوروکراسی", "deputy-programs", 10, 0.20),
    ("projects", "طرح‌ها و پروژه‌ها", "deputy-technical", 14, 0.12),
    ("urban_planning", "شهرسازی", "deputy-planning", 10, 0.24),
    ("city_services", "خدمات شهری", "deputy-services", 7, 0.18),
)
# District municipalities do street cleaning, permits and front-desk work themselves,
# so these topics go to the district office when the district is known.
DISTRICT_TOPICS = frozenset(
    {"cleaning", "other_137", "staff_conduct", "urban_planning", "city_services"}
)
KINDS_1888 = (
    ("1", "criticism", 0.30),
    ("2", "suggestion", 0.18),
    ("3", "complaint", 0.40),
    ("4", "appreciation", 0.12),
)

STAFF = (
    ("op1", "operator"),
    ("op2", "operator"),
    ("op3", "operator"),
    ("op4", "operator"),
    ("op5", "operator"),
    ("op6", "operator"),
    ("sup1", "supervisor"),
    ("sup2", "supervisor"),
    ("inspector1", "inspector"),
    ("analyst1", "analyst"),
    ("admin", "admin"),
)
# fmt: off
FIRST_NAMES = (
    "علی", "محمد", "حسین", "رضا", "مهدی", "امیر", "سعید", "حمید", "مجید", "بهرام",
    "فاطمه", "زهرا", "مریم", "سارا", "نرگس", "لیلا", "الهام", "شیرین", "مینا", "پریسا",
)
LAST_NAMES = (
    "محمدی", "حسینی", "احمدی", "رضایی", "کریمی", "موسوی", "جعفری", "صادقی", "رحیمی", "کاظمی",
    "قاسمی", "نوری", "تهرانی", "اکبری", "شریفی", "طاهری", "عباسی", "یزدانی", "فراهانی", "نجفی",
)
# fmt: on

# Saturday..Wednesday 07:00-19:00, Thursday 07:00-13:00, Friday closed (Python: Monday = 0).
WORKING_HOURS = {
    5: (time(7), time(19)),
    6: (time(7), time(19)),
    0: (time(7), time(19)),
    1: (time(7), time(19)),
    2: (time(7), time(19)),
    3: (time(7), time(13)),
}
FRIDAY = 4
# (Jalali month, day, name)
JALALI_HOLIDAYS = (
    (1, 1, "نوروز"),
    (1, 2, "نوروز"),
    (1, 3, "نوروز"),
    (1, 4, "نوروز"),
    (1, 12, "روز جمهوری اسلامی"),
    (1, 13, "روز طبیعت"),
    (3, 14, "رحلت امام خمینی"),
    (3, 15, "قیام ۱۵ خرداد"),
    (11, 22, "پیروزی انقلاب اسلامی"),
    (12, 29, "ملی شدن صنعت نفت"),
)

# ---- the traffic ---------------------------------------------------------------------

CALL_OUTCOME_SHARES = {
    "case_lookup": 0.45,
    "message_registered": 0.22,
    "follow_up": 0.10,
    "operator": 0.08,
    "guidance": 0.06,
    "dropped": 0.05,
    "nuisance": 0.02,
    "irrelevant": 0.02,
}
# Seconds from answer to hang-up, per outcome.
CALL_SECONDS = {
    "case_lookup": (45, 150),
    "message_registered": (90, 260),
    "follow_up": (40, 140),
    "operator": (60, 420),
    "guidance": (15, 70),
    "dropped": (2, 25),
    "nuisance": (3, 40),
    "irrelevant": (20, 120),
}
# Calls per Tehran hour of the day: a morning peak and an evening one.
# fmt: off
HOUR_WEIGHTS = (
    1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 3.0, 6.0, 8.0, 9.0, 8.5,
    7.0, 5.5, 5.0, 5.5, 6.0, 6.5, 6.0, 5.0, 4.0, 3.0, 2.0, 1.5,
)
# fmt: on
WEEKDAY_WEIGHTS = {FRIDAY: 0.55, 3: 0.8}
# Keys of a call that left no message and looked nothing up, as callers press them, per outcome
# ("irrelevant" and any other outcome: OTHER_CALL_KEYS). Only case lookups start with 4.
PLAIN_CALL_KEYS = {
    "operator": ("0", "0", "0", "10", "20"),
    "guidance": ("", "9", "99", "*"),
    "dropped": ("", "", "1", "2", "13"),
    "nuisance": ("*", "7", "5555", "#*#", "123"),
}
OTHER_CALL_KEYS = ("", "0", "1")
REFERRED_SHARE = 0.80
NOT_REFERRED_SHARES = {
    "incomplete_message": 0.35,
    "incomplete_caller": 0.20,
    "duplicate": 0.25,
    "irrelevant": 0.20,
}
UNSCREENED_SHARE = 0.07
PENDING_SHARE = 0.15
FEEDBACK_SHARE = 0.60
SATISFIED_SHARE = 0.81

REQUEST_TEXTS = {
    "cleaning": (
        "زباله‌های کوچه از سه روز پیش جمع‌آوری نشده و بوی بد همه جا را گرفته است.",
        "مخزن زباله سر کوچه شکسته و زباله‌ها در پیاده‌رو پخش شده است.",
        "نخاله‌های ساختمانی کنار جوی آب رها شده است.",
        "چند هفته است خیابان جارو نشده است.",
    ),
    "roads": (
        "چاله بزرگی وسط خیابان ایجاد شده که برای موتورسواران خطرناک است.",
        "آسفالت کوچه بعد از حفاری لوله‌کشی گاز ترمیم نشده است.",
        "دریچه آب‌های سطحی گرفته و با هر بارندگی آب در تقاطع جمع می‌شود.",
        "جدول کنار پیاده‌رو شکسته و عابران زمین می‌خورند.",
    ),
    "lighting": (
        "چراغ‌های پارک محله چند شب است خاموش است.",
        "چراغ تیر برق کوچه خاموش است و شب‌ها کوچه کاملاً تاریک است.",
        "روشنایی زیرگذر عابر پیاده قطع شده است.",
    ),
    "green": (
        "درخت کهنسال کنار خیابان کج شده و ممکن است روی خودروها بیفتد.",
        "فضای سبز بلوار آبیاری نمی‌شود و درختچه‌ها در حال خشک شدن هستند.",
        "شاخه‌های درختان به سیم‌های برق رسیده و نیاز به هرس دارد.",
    ),
    "traffic": (
        "چراغ راهنمایی تقاطع از صبح چشمک‌زن زرد است و ترافیک سنگینی ایجاد شده است.",
        "خط‌کشی عابر پیاده جلوی مدرسه پاک شده است.",
        "تابلوی ورود ممنوع سر خیابان افتاده است.",
    ),
    "other_137": (
        "نیمکت‌های ایستگاه اتوبوس شکسته است.",
        "دیوارنویسی روی دیوار مدرسه نیاز به پاک‌سازی دارد.",
        "سگ‌های بلاصاحب در پارک محله باعث ترس کودکان شده‌اند.",
    ),
}
MESSAGE_TEXTS = {
    "criticism": (
        "روند صدور پروانه ساختمانی بسیار طولانی است و باید چند بار به منطقه مراجعه کرد.",
        "کارمند باجه پاسخگویی با مراجعان برخورد مناسبی ندارد.",
        "پروژه پیاده‌روسازی خیابان ماه‌هاست نیمه‌کاره رها شده است.",
    ),
    "suggestion": (
        "پیشنهاد می‌کنم نوبت‌دهی دفاتر خدمات الکترونیک شهر اینترنتی شود.",
        "بهتر است برنامه جمع‌آوری زباله هر محله روی سایت شهرداری منطقه اعلام شود.",
        "پیشنهاد می‌کنم در بوستان محله وسایل ورزشی برای سالمندان نصب شود.",
    ),
    "complaint": (
        "سه ماه است برای پاسخ استعلام پرونده‌ام منتظرم و کسی پاسخگو نیست.",
        "مأموران اجرائیات منطقه بدون اخطار قبلی مغازه را پلمب کردند.",
        "پیمانکار شهرداری مصالح را در پیاده‌رو رها کرده و راه عبور بسته شده است.",
        "برای صدور گواهی پایان کار مبلغی خارج از تعرفه از من خواسته شد.",
    ),
    "appreciation": (
        "از رفتار محترمانه و پیگیری کارشناس شهرسازی منطقه تشکر می‌کنم.",
        "از نیروهای خدمات شهری که بعد از بارندگی معابر را سریع باز کردند قدردانی می‌کنم.",
        "از رسیدگی سریع به درخواستم سپاسگزارم.",
    ),
}
NOT_REFERRED_NOTES = {
    "incomplete_message": "پیام نیمه‌کاره قطع شده و موضوع آن مشخص نیست.",
    "incomplete_caller": "نشانی محل یا مشخصات تماس‌گیرنده کامل نیست.",
    "duplicate": "همان موضوع پیام قبلی است.",
    "irrelevant": "موضوع پیام به شهرداری مربوط نیست (قبض آب و برق).",
}
REPLY_TEXTS = {
    "137": (
        "درخواست شما بررسی شد و اکیپ اجرایی مشکل را برطرف کرد.",
        "کارشناسان ما از محل بازدید کردند و ترمیم در برنامه همین هفته قرار گرفت.",
        "مورد اعلام‌شده رفع شد. از همراهی شما سپاسگزاریم.",
    ),
    "1888": (
        "پیام شما بررسی شد و اصلاح روند به واحد مربوط ابلاغ شد.",
        "با همکار مربوط گفت‌وگو و تذکر لازم داده شد. از اطلاع‌رسانی شما متشکریم.",
        "پیشنهاد شما در کمیته بهبود فرایندها مطرح شد و در دست بررسی است.",
        "از قدردانی شما سپاسگزاریم؛ پیام شما به همکاران ابلاغ شد.",
    ),
}
