// A numeric field against time or shot number, for the table's current filters (uPlot).
(function () {
  const panel = document.getElementById("plot-panel");
  if (!panel) return;
  const target = document.getElementById("plot");
  const missing = document.getElementById("plot-missing");
  let chart = null;

  async function draw() {
    const y = document.getElementById("plot-y").value;
    const x = document.getElementById("plot-x").value;
    const response = await fetch(`${panel.dataset.url}&y=${encodeURIComponent(y)}&x=${x}`);
    const data = await response.json();
    if (chart) chart.destroy();
    target.textContent = "";
    missing.textContent = data.missing || "";  // entries without a value for an axis, counted
    if (!response.ok) { target.textContent = data.error; return; }
    chart = new uPlot({
      width: Math.min(target.parentElement.clientWidth, 1100), height: 320,
      scales: {x: {time: x === "time"}},
      tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1e3), panel.dataset.timeZone),  // the lab's clock
      series: [{label: x === "time" ? `time [${panel.dataset.timeZone}]` : "shot"},
               {label: data.label, stroke: "#0d6efd", points: {show: true, size: 5}, width: 1}],
    }, [data.x, data.y], target);
  }
  panel.addEventListener("toggle", () => { if (panel.open) draw(); });
  document.getElementById("plot-y").addEventListener("change", draw);
  document.getElementById("plot-x").addEventListener("change", draw);
})();
