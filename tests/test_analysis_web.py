"""The analysis desk in the browser's place: who sees what, a manager's own unit only, exports, errors."""
from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from ivr.models import Call, Message, Referral, Topic, Unit, utcnow
from tests.conftest import login

DESK = ["/analysis/", "/analysis/api/funnel", "/analysis/api/hotspots", "/analysis/export/funnel.csv", "/analysis/report"]
CALLS = ["/analysis/api/calls-summary", "/analysis/api/calls-heatmap", "/analysis/export/calls-daily.xlsx"]


@pytest.fixture
def city(session_factory: sessionmaker[Session]) -> dict[str, Any]:
    """Two units with messages yesterday (3 and 2, one referred each), and five calls."""
    with session_factory() as s:
        units = [Unit(code=f"an-u{i}", name=f"واحد {i}", kind="department") for i in (1, 2)]
        s.add_all(units)
        s.flush()
        topic = Topic(code="an-t", line_code="137", name="آسفالت", menu_key="8", unit_id=units[0].id)
        s.add(topic)
        s.flush()
        when = utcnow() - timedelta(days=1)
        n = 0
        for unit, count in ((units[0], 3), (units[1], 2)):
            for k in range(count):
                n += 1
                m = Message(tracking_code=f"90000000{n}", line_code="137", kind="request", topic_id=topic.id,
                            district=4, unit_id=unit.id, source="sms", status="referred", created_at=when)
                s.add(m)
                s.flush()
                if k == 0:
                    s.add(Referral(message_id=m.id, unit_id=unit.id, due_at=when + timedelta(days=3)))
        for k in range(5):
            s.add(Call(line_code="1888", channel_id=f"an-{k}", driver="agi", started_at=when,
                       keys="41" if k < 2 else "1", outcome="case_lookup" if k < 2 else "message_registered"))
        s.commit()
        return {"units": [u.id for u in units]}


@pytest.mark.parametrize("role", ["analyst", "supervisor", "admin"])
def test_analysis_city_roles_open_every_page(client: Any, make_user: Any, city: dict[str, Any], role: str) -> None:
    login(client, *make_user(role))
    for url in DESK + CALLS:
        assert client.get(url).status_code == 200, url
    funnel = client.get("/analysis/api/funnel").get_json()["table"]["rows"][0]
    assert (funnel["registered"], funnel["referred"]) == (5, 2)
    summary = client.get("/analysis/api/calls-summary").get_json()["table"]["rows"][-1]
    assert (summary["calls"], summary["key4"], summary["key4_share"]) == (5, 2, 40.0)


@pytest.mark.parametrize("role", ["operator", "inspector"])
def test_analysis_other_roles_get_403(client: Any, make_user: Any, role: str) -> None:
    login(client, *make_user(role))
    for url in DESK + CALLS:
        assert client.get(url).status_code == 403, url


def test_analysis_signed_out_is_sent_to_login(client: Any) -> None:
    response = client.get("/analysis/api/funnel")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_analysis_manager_sees_only_their_unit(client: Any, make_user: Any, city: dict[str, Any]) -> None:
    own = city["units"][1]
    login(client, *make_user("manager", unit_id=own))
    for url in DESK:
        assert client.get(url).status_code == 200, url
    for url in CALLS:
        assert client.get(url).status_code == 403, url
    body = client.get(f"/analysis/api/funnel?unit_id={city['units'][0]}").get_json()
    assert body["unit_id"] == own
    assert (body["table"]["rows"][0]["registered"], body["table"]["rows"][0]["referred"]) == (2, 1)
    units = client.get("/analysis/api/breakdown-unit").get_json()["table"]["rows"]
    assert [(r["code"], r["registered"]) for r in units] == [(own, 2)]
    page = client.get("/analysis/").get_data(as_text=True)
    assert "فقط پیام‌های واحد شما" in page and "chart-calls-daily" not in page


def test_analysis_page_has_jalali_filters_charts_and_tables(client: Any, make_user: Any, city: dict[str, Any]) -> None:
    login(client, *make_user("analyst"))
    page = client.get("/analysis/?from=۱۴۰۵/۰۸/۰۱&to=1405/08/30&line=137").get_data(as_text=True)
    assert 'value="۱۴۰۵/۰۸/۰۱"' in page and 'value="۱۴۰۵/۰۸/۳۰"' in page
    assert "/static/vendor/chart.umd.min.js" in page and "/static/analysis.js" in page
    assert 'id="chart-funnel"' in page and 'id="table-funnel"' in page and 'id="data-calls-daily"' in page
    assert "۱۴۰۵/۰۸/۰۱" in page  # the daily table's first Jalali day
    assert page.count('class="district') == 22 + 1  # the grid and its 22 districts


def test_analysis_bad_dates_are_explained_and_kept(client: Any, make_user: Any) -> None:
    login(client, *make_user("analyst"))
    response = client.get("/analysis/api/funnel?from=1405/13/40")
    assert response.status_code == 400
    assert "در تقویم نیست" in response.get_json()["error"] or "درست نیست" in response.get_json()["error"]
    page = client.get("/analysis/?from=1405/09/08&to=1405/09/01")
    assert page.status_code == 400
    text = page.get_data(as_text=True)
    assert "تاریخ شروع بعد از تاریخ پایان است" in text and 'value="۱۴۰۵/۰۹/۰۸"' in text
    assert client.get("/analysis/export/funnel.pdf").status_code == 404
    assert client.get("/analysis/api/nothing").status_code == 404
    assert client.get("/analysis/report?month=1405/13").status_code == 400


def test_analysis_exports_csv_and_xlsx_hold_the_table(client: Any, make_user: Any, city: dict[str, Any]) -> None:
    login(client, *make_user("analyst"))
    response = client.get("/analysis/export/breakdown-unit.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows[0][:3] == ["واحد", "ثبت‌شده", "ارجاع‌شده"]
    assert sorted((r[0], r[1], r[2]) for r in rows[1:]) == [("واحد 1", "3", "1"), ("واحد 2", "2", "1")]
    response = client.get("/analysis/export/breakdown-unit.xlsx")
    sheet = load_workbook(io.BytesIO(response.get_data())).active
    assert sheet["A1"].value == "پیام‌ها به تفکیک واحد"
    assert sheet["A2"].value == "واحد"
    assert sorted((sheet.cell(r, 1).value, sheet.cell(r, 2).value) for r in (3, 4)) == [("واحد 1", 3), ("واحد 2", 2)]
    assert sheet.sheet_view.rightToLeft


def test_analysis_monthly_report_prints_every_table(client: Any, make_user: Any, city: dict[str, Any]) -> None:
    login(client, *make_user("analyst"))
    page = client.get("/analysis/report?month=1405/08").get_data(as_text=True)
    assert "گزارش ماهانه" in page and "از ۱۴۰۵/۰۸/۰۱ تا ۱۴۰۵/۰۸/۳۰" in page
    assert 'id="table-funnel"' in page and 'id="table-calls-heatmap"' in page
    assert "data-print" in page  # the print button (console.js opens the print dialog; no inline script)
