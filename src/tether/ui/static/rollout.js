// Rollout page charts: canary against stable, one uPlot per [data-rollout-chart], fed by #rollout-series.
(function () {
  "use strict";
  var source = document.getElementById("rollout-series");
  if (!source || typeof uPlot === "undefined") return;
  var data = JSON.parse(source.textContent);
  var pairs = { error: "error", escalation: "escalation", p95: "p95", cost: "cost" };
  document.querySelectorAll("[data-rollout-chart]").forEach(function (el) {
    var key = pairs[el.getAttribute("data-rollout-chart")];
    if (!key) return;
    new uPlot({
      width: Math.max(el.clientWidth, 300), height: 200,
      series: [{}, { label: "canary", stroke: "#d92d20", width: 2, points: { show: true, size: 5 } },
               { label: "stable", stroke: "#2f5bd3", width: 2, points: { show: true, size: 5 } }],
      scales: { x: { time: true } }, legend: { live: true },
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      axes: [{}, { size: 64 }],
    }, [data.x, data[key + "_c"], data[key + "_s"]], el);
  });
})();
