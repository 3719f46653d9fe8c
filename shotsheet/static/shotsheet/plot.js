// Numeric fields against time or shot number, one point per entry, for the table's current filters
// (uPlot). Hovering names the entry; clicking a point selects its row in the grid; it redraws as
// entries arrive (the grid says so with "sheet:entries-changed").
(function () {
  const panel = document.getElementById("plot-panel");
  if (!panel) return;
  const target = document.getElementById("plot");
  const missing = document.getElementById("plot-missing");
  const hover = document.getElementById("plot-hover");
  const zone = panel.dataset.timeZone;
  const colours = ["#0d6efd", "#d63384", "#198754", "#fd7e14", "#6f42c1", "#20c997", "#dc3545", "#6c757d"];
  const boxes = () => [...document.querySelectorAll("input[name=plot-y]")];
  const axesNote = document.getElementById("plot-axes");
  let chart = null;
  let data = null;
  let drawn = 0;  // the latest draw: an older answer arriving late is dropped

  function axisLabel(series) {
    const units = [...new Set(series.map((s) => s.unit))];
    return units.length === 1 && units[0] ? series.map((s) => s.label.replace(` [${s.unit}]`, "")).join(", ") + ` [${units[0]}]`
      : series.map((s) => s.label).join(", ");
  }

  function showEntry(index) {
    if (index === null || index === undefined || !data) { hover.textContent = "\u00a0"; return; }
    const values = data.series.map((s) => (s.y[index] === null ? null : `${s.label.replace(` [${s.unit}]`, "")} ${s.y[index]}${s.unit ? ` ${s.unit}` : ""}`))
      .filter(Boolean);
    const x = document.getElementById("plot-x").value === "time"
      ? uPlot.fmtDate("{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}")(uPlot.tzDate(new Date(data.x[index] * 1e3), zone)) + ` ${zone}`
      : `shot number ${data.x[index]}`;
    hover.textContent = `${data.shots[index] || "(no shot key)"} · ${x} · ${values.join(" · ")}`;
    hover.dataset.entry = data.ids[index];
  }

  async function draw() {
    if (!boxes().some((box) => box.checked) && boxes().length) boxes()[0].checked = true;
    const x = document.getElementById("plot-x").value;
    const url = new URL(panel.dataset.url, location.href);
    url.searchParams.set("x", x);
    url.searchParams.set("y", boxes().filter((box) => box.checked).map((box) => box.value).join(","));
    const asked = ++drawn;
    const response = await fetch(url);
    const payload = await response.json();
    if (asked !== drawn) return;
    if (chart) chart.destroy();
    chart = null;
    target.textContent = "";
    missing.textContent = payload.missing || "";  // entries without a value for an axis, counted
    if (!response.ok) { target.textContent = payload.error; return; }
    data = payload;
    // One scale per unit: the first on the left, the others on the right.
    const units = [...new Set(data.series.map((s) => s.unit))];
    const axes = [{label: x === "time" ? `time [${zone}]` : "shot number"}];
    units.forEach((unit, n) => axes.push({
      scale: `u${n}`, side: n === 0 ? 3 : 1, grid: {show: n === 0},
      label: axisLabel(data.series.filter((s) => s.unit === unit)),
    }));
    axesNote.textContent = `x: ${axes[0].label}; y: ${axes.slice(1).map((a, n) => `${a.label} (${n ? "right" : "left"})`).join(", ")}`;
    chart = new uPlot({
      width: Math.max(280, target.parentElement.clientWidth - 8), height: 320,
      scales: {x: {time: x === "time"}},
      tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1e3), zone),  // the lab's clock
      axes,
      cursor: {points: {size: 9}},
      hooks: {setCursor: [(u) => showEntry(u.cursor.idx)]},
      series: [
        {label: x === "time" ? `time [${zone}]` : "shot"},
        ...data.series.map((s, n) => ({
          label: s.label, scale: `u${units.indexOf(s.unit)}`, stroke: colours[n % colours.length],
          paths: () => null, points: {show: true, size: 5, fill: colours[n % colours.length]},  // points, not lines
        })),
      ],
    }, [data.x, ...data.series.map((s) => s.y)], target);
    chart.over.addEventListener("click", () => {
      const index = chart.cursor.idx;
      if (index === null || index === undefined) return;
      document.dispatchEvent(new CustomEvent("sheet:select-entry", {detail: {id: data.ids[index]}}));
    });
  }

  let redraw = null;
  document.addEventListener("sheet:entries-changed", () => {  // live: at most one redraw a second
    if (!redraw) redraw = setTimeout(() => { redraw = null; draw(); }, 1000);
  });
  boxes().forEach((box) => box.addEventListener("change", draw));
  document.getElementById("plot-x").addEventListener("change", draw);
  // Beside the grid, after its first rows: the server answers one request of a page at a time.
  if (document.getElementById("grid")) document.addEventListener("sheet:grid-ready", draw, {once: true});
  else draw();
})();
