// The scorecard's monthly trend (Chart.js 4 from npm): score and reminders per Jalali month.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("trend-data").textContent);
  var canvas = document.getElementById("trend-chart");
  if (!canvas || typeof Chart === "undefined") { return; }
  new Chart(canvas, {
    type: "line",
    data: {
      labels: data.labels,
      datasets: [
        { label: "امتیاز", data: data.scores, borderColor: "#0b6e4f", yAxisID: "score", spanGaps: true },
        { label: "تذکر", data: data.reminders, borderColor: "#a61b1b", yAxisID: "count", type: "bar" }
      ]
    },
    options: {
      locale: "fa-IR",
      scales: { score: { min: 0, max: 100, position: "left" }, count: { beginAtZero: true, position: "right" } }
    }
  });
})();
