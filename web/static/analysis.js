/* The analysis desk's charts: Chart.js (from npm, served by the app) over the tables embedded in the page.
   Every chart's numbers are also in the table next to it. Labels use Persian digits and Jalali dates. */
(function () {
  "use strict";
  if (typeof Chart === "undefined") { return; }
  var FA = "۰۱۲۳۴۵۶۷۸۹";
  function fa(text) { return String(text).replace(/[0-9]/g, function (d) { return FA[+d]; }); }
  function faNum(n) { return n === null || n === undefined ? "—" : fa(Number(n).toLocaleString("en-US")).replace(/,/g, "٬"); }
  function data(name) {
    var node = document.getElementById("data-" + name);
    return node ? JSON.parse(node.textContent) : null;
  }
  var COLORS = ["#0b6e4f", "#2f80ed", "#b44d12", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d4ac0d", "#34495e", "#e67e22"];
  Chart.defaults.font.family = "Vazirmatn, Tahoma, sans-serif";
  Chart.defaults.locale = "fa-IR";
  var numberTicks = { callback: function (v) { return faNum(v); } };
  var tooltip = { rtl: true, callbacks: { label: function (c) { return c.dataset.label + ": " + faNum(c.parsed.y !== undefined ? c.parsed.y : c.parsed); } } };

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) { new Chart(canvas, config); }
  }
  function bars(id, labels, datasets, horizontal) {
    draw(id, {
      type: "bar",
      data: { labels: labels.map(fa), datasets: datasets },
      options: {
        indexAxis: horizontal ? "y" : "x", responsive: true, maintainAspectRatio: false,
        plugins: { legend: { rtl: true, position: "bottom" }, tooltip: tooltip },
        scales: horizontal ? { x: { ticks: numberTicks } } : { y: { ticks: numberTicks } }
      }
    });
  }

  var daily = data("calls-daily");
  if (daily) {
    draw("chart-calls-daily", {
      type: "line",
      data: {
        labels: daily.rows.map(function (r) { return fa(r.day); }),
        datasets: [
          { label: "۱۳۷", data: daily.rows.map(function (r) { return r.calls_137; }), borderColor: COLORS[0], tension: 0.2 },
          { label: "۱۸۸۸", data: daily.rows.map(function (r) { return r.calls_1888; }), borderColor: COLORS[1], tension: 0.2 },
          { label: "کلید ۴", data: daily.rows.map(function (r) { return r.key4; }), borderColor: COLORS[2], borderDash: [4, 4], tension: 0.2 }
        ]
      },
      options: { responsive: true, maintainAspectRatio: false, plugins: { legend: { rtl: true, position: "bottom" }, tooltip: tooltip },
                 scales: { x: { ticks: { maxRotation: 60 } }, y: { ticks: numberTicks } } }
    });
  }
  var outcomes = data("calls-outcomes");
  if (outcomes) {
    bars("chart-calls-outcomes", outcomes.rows.map(function (r) { return r.outcome; }), [
      { label: "دوره", data: outcomes.rows.map(function (r) { return r.calls; }), backgroundColor: COLORS[0] },
      { label: "دوره قبل", data: outcomes.rows.map(function (r) { return r.previous_calls; }), backgroundColor: "#c7d2dc" }
    ], true);
  }
  var keys = data("calls-keys");
  if (keys) {
    draw("chart-calls-keys", {
      type: "doughnut",
      data: { labels: keys.rows.map(function (r) { return "کلید " + fa(r.key); }),
              datasets: [{ label: "تماس", data: keys.rows.map(function (r) { return r.calls; }), backgroundColor: COLORS }] },
      options: { responsive: true, maintainAspectRatio: false, plugins: { legend: { rtl: true, position: "bottom" }, tooltip: tooltip } }
    });
  }
  var funnel = data("funnel");
  if (funnel) {
    var steps = [["registered", "ثبت‌شده"], ["referred", "ارجاع‌شده"], ["not_referred", "ارجاع‌نشده"], ["answered", "پاسخ‌داده‌شده"], ["feedback", "نظرسنجی"], ["satisfied", "راضی"], ["reminders", "تذکر"]];
    bars("chart-funnel", steps.map(function (s) { return s[1]; }), funnel.rows.map(function (row, i) {
      return { label: row.period, data: steps.map(function (s) { return row[s[0]]; }), backgroundColor: i === 0 ? COLORS[0] : "#c7d2dc" };
    }), false);
  }
  ["kind", "topic", "district", "unit"].forEach(function (by) {
    var t = data("breakdown-" + by);
    if (!t) { return; }
    var rows = t.rows.slice(0, 25);
    bars("chart-breakdown-" + by, rows.map(function (r) { return r.group; }), [
      { label: "ثبت‌شده", data: rows.map(function (r) { return r.registered; }), backgroundColor: COLORS[0] },
      { label: "ثبت‌شده دوره قبل", data: rows.map(function (r) { return r.previous_registered; }), backgroundColor: "#c7d2dc" },
      { label: "تذکر", data: rows.map(function (r) { return r.reminders; }), backgroundColor: COLORS[2] }
    ], by !== "district");
  });
})();
