// Draws every chart of the page from its figure JSON with the locally served plotly.js, and
// marks it (data-rendered, data-points) so browser tests can check that it drew real data.
(function () {
  "use strict";
  function draw(el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || !window.Plotly) { return; }
    var figure = JSON.parse(source.textContent);
    var points = 0;
    figure.data.forEach(function (trace) {
      var values = trace.z || trace.y || trace.x || [];
      values.forEach(function (v) {
        if (Array.isArray(v)) { v.forEach(function (w) { if (w !== null) { points += 1; } }); }
        else if (v !== null) { points += 1; }
      });
    });
    window.Plotly.newPlot(el, figure.data, figure.layout, {
      displayModeBar: false, responsive: true,
    }).then(function () {
      el.dataset.rendered = "true";
      el.dataset.points = String(points);
    });
  }
  function filtersAutoSubmit() {
    var form = document.getElementById("filters");
    if (!form) { return; }
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { form.requestSubmit(); });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("div.chart[data-figure]").forEach(draw);
    filtersAutoSubmit();
  });
})();
