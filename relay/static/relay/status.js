// The relay page, live: last shot and its age, the shot rate now and over 2 minutes, the Kafka
// backlog and whether it shrinks, from the statuses the relay sends at most twice a second.
(function () {
  const $ = (id) => document.getElementById(id);
  const state = $("live-state");
  const timeZone = $("relay-summary").dataset.timeZone;
  const laserTime = new Intl.DateTimeFormat("sv-SE", {  // sv-SE writes ISO-like dates: 2026-12-02 14:05:03
    timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", fractionalSecondDigits: 3, timeZoneName: "short",
  });
  const RATE_WINDOW = 5;  // s: the "now" rate
  const HISTORY = 120;  // s of rate history drawn
  const samples = [];  // {at, published, backlog}, the statuses of the last HISTORY seconds
  const rates = [];  // {at, rate}
  let lastShotNs = Number($("last-shot-time").dataset.ns) || null;
  let statusAt = Number($("status-age").dataset.at) || null;

  function ago(seconds) {
    if (seconds < 60) return `${seconds.toFixed(1)} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s ago`;
    return `${(seconds / 3600).toFixed(1)} h ago`;
  }

  function sampleAt(seconds) {  // the oldest sample no older than `seconds` before the newest
    const newest = samples[samples.length - 1];
    return samples.find((s) => newest.at - s.at <= seconds) || newest;
  }

  function drawHistory() {
    const line = document.querySelector("#rate-history polyline");
    if (rates.length < 2) { line.setAttribute("points", ""); return; }
    const newest = rates[rates.length - 1].at;
    const top = Math.max(1, ...rates.map((r) => r.rate));
    line.setAttribute("points", rates.map((r) =>
      `${(240 * (1 - (newest - r.at) / HISTORY)).toFixed(1)},${(40 - 38 * r.rate / top).toFixed(1)}`).join(" "));
    $("rate-max").textContent = top.toFixed(1);
  }

  function receive(status) {
    const counted = typeof status.at === "number" && typeof status.published === "number";
    if (counted) {
      statusAt = status.at;
      samples.push({at: status.at, published: status.published, backlog: status.kafka_backlog});
      while (samples.length && status.at - samples[0].at > HISTORY) samples.shift();
    }
    const then = counted ? sampleAt(RATE_WINDOW) : null;
    if (then && then.at < status.at) {
      const rate = Math.max(0, (status.published - then.published) / (status.at - then.at));
      $("rate-now").textContent = rate.toFixed(1);
      rates.push({at: status.at, rate});
      while (rates.length && status.at - rates[0].at > HISTORY) rates.shift();
      const change = status.kafka_backlog - then.backlog;
      const trend = $("backlog-trend");
      trend.textContent = change > 0 ? "growing" : change < 0 ? "shrinking" : "steady";
      trend.className = `badge ${change > 0 ? "text-bg-warning" : "text-bg-light"}`;
    }
    drawHistory();
    if ("rate" in status) $("rate-average").textContent = status.rate;
    if ("kafka_backlog" in status) $("kafka-backlog").textContent = status.kafka_backlog;
    if ("kafka_connected" in status) {
      const kafka = $("kafka-state");
      kafka.textContent = status.kafka_connected ? "connected" : "not connected";
      kafka.className = `badge ${status.kafka_connected ? "text-bg-success" : "text-bg-danger"}`;
    }
    const shot = status.last_shot;
    $("last-shot").textContent = shot ? shot.shot_key : "none yet";
    $("last-shot-number").textContent = shot && shot.shot_number != null ? shot.shot_number : "–";
    lastShotNs = shot && shot.laser_ts_ns ? shot.laser_ts_ns : null;
    $("last-shot-time").textContent = lastShotNs ? laserTime.format(new Date(lastShotNs / 1e6)) : "–";
    for (const cell of document.querySelectorAll("[data-k]")) {
      if (cell.dataset.k in status) cell.textContent = status[cell.dataset.k];
    }
    tick();
  }

  function tick() {  // ages move on between statuses
    const now = Date.now() / 1000;
    $("last-shot-age").textContent = lastShotNs ? `${ago(Math.max(0, now - lastShotNs / 1e9))}` : "";
    $("status-age").textContent = statusAt ? ago(Math.max(0, now - statusAt)) : "never (is manage.py relay running?)";
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/relay/`);
    ws.onopen = () => { state.textContent = "live"; state.className = "badge text-bg-success"; };
    ws.onclose = () => { state.textContent = "reconnecting…"; state.className = "badge text-bg-warning"; setTimeout(connect, 2000); };
    ws.onmessage = (event) => receive(JSON.parse(event.data).status);
  }
  tick();
  setInterval(tick, 1000);
  connect();
})();
