// Health page charts: one uPlot per [data-chart], fed by the JSON in #series.
// Clicking a point opens the runs page for that interval (the drill-down from a number to its runs).
(function () {
  "use strict";
  var source = document.getElementById("series");
  if (!source || typeof uPlot === "undefined") return;
  var data = JSON.parse(source.textContent);
  var step = data.x.length > 1 ? data.x[1] - data.x[0] : 3600;
  var charts = {
    volume: [["runs", "#2f5bd3", "runs"], ["failed", "#d92d20", "failed"]],
    rates: [["completion", "#127a3e", "completion %"], ["escalation", "#b54708", "escalation %"],
            ["tool_errors", "#d92d20", "tool errors %"]],
    latency: [["p50", "#2f5bd3", "p50 ms"], ["p95", "#b54708", "p95 ms"], ["p99", "#d92d20", "p99 ms"]],
    cost: [["cost", "#7a5af8", "USD"]],
  };
  function iso(seconds) { return new Date(seconds * 1000).toISOString().slice(0, 16); }
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var lines = charts[el.getAttribute("data-chart")];
    if (!lines) return;
    var series = [{}];
    var columns = [data.x];
    lines.forEach(function (line) {
      series.push({ label: line[2], stroke: line[1], width: 2, spanGaps: false, points: { show: true, size: 5 } });
      columns.push(data[line[0]]);
    });
    var plot = new uPlot({
      width: Math.max(el.clientWidth, 300), height: 200, series: series,
      scales: { x: { time: true } }, legend: { live: true },
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },  // the dashboard speaks UTC
      axes: [{}, { size: 64 }],
    }, columns, el);
    plot.over.addEventListener("click", function () {
      var idx = plot.cursor.idx;
      if (idx == null) return;
      var params = new URLSearchParams({ since: iso(data.x[idx]), until: iso(data.x[idx] + step) });
      window.location.href = "/ui/runs?" + params.toString();
    });
  });
})();
