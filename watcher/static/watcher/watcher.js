// Live figures of the watcher page: one aggregated status per watch process, a few per second.
(function () {
  const state = document.getElementById("live-state");
  const mongoState = document.getElementById("mongo-state");
  const stoppedBox = document.getElementById("stopped");
  const perWatcher = {};  // watcher name -> its latest status
  const STALE_SECONDS = 10;
  const STREAM_LENGTH = 8;
  const HISTORY = 120;  // s of rate history per route
  const rates = {};  // route -> [{at, rate}]

  function render() {
    const now = Date.now() / 1000;
    const totals = {};
    let mongoDown = false;
    for (const [watcher, status] of Object.entries(perWatcher)) {
      if (now - status.at > STALE_SECONDS) { delete perWatcher[watcher]; continue; }
      mongoDown = mongoDown || status.mongo_down;
      for (const [name, route] of Object.entries(status.routes)) {
        const t = totals[name] || (totals[name] = {rate: 0, total: 0, lag: 0, dead_letters: 0, watchers: [], kind: ""});
        t.rate += route.rate; t.total += route.total; t.lag += route.lag; t.dead_letters += route.dead_letters;
        t.watchers.push(`${watcher} [${route.partitions.join(",")}]`);
        t.kind = route.collection_kind;
      }
    }
    mongoState.classList.toggle("d-none", !mongoDown);
    renderStopped();
    for (const [name, t] of Object.entries(totals)) {
      const row = document.querySelector(`tr[data-route="${CSS.escape(name)}"]`);
      if (!row) continue;
      for (const key of ["rate", "total", "lag", "dead_letters"]) {
        row.querySelector(`[data-k="${key}"]`).textContent = key === "rate" ? t.rate.toFixed(1) : t[key];
      }
      row.querySelector('[data-k="watchers"]').textContent = t.watchers.join(", ");
      drawRate(name, row, now, t.rate);
      row.querySelector('[data-k="collection_kind"]').textContent = t.kind ? `(${t.kind})` : "";
    }
  }

  function drawRate(name, row, now, rate) {
    const history = rates[name] || (rates[name] = []);
    history.push({at: now, rate});
    while (history.length && now - history[0].at > HISTORY) history.shift();
    const top = Math.max(1, ...history.map((r) => r.rate));
    row.querySelector(".sparkline polyline").setAttribute("points", history.map((r) =>
      `${(120 * (1 - (now - r.at) / HISTORY)).toFixed(1)},${(24 - 22 * r.rate / top).toFixed(1)}`).join(" "));
  }

  function pretty(text) {  // a stored message, indented; a preview cut at its limit stays as it came
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (error) { return text; }
  }

  function renderStopped() {
    const items = [];
    for (const [watcher, status] of Object.entries(perWatcher)) {
      for (const [name, route] of Object.entries(status.routes)) {
        for (const s of route.stopped || []) {
          const item = document.createElement("li");
          const where = document.createElement("code");
          where.textContent = s.partition;
          item.append(where, ` (route ${name}, ${watcher}) stopped at offset ${s.offset}: ${s.error}`);  // text, never HTML
          items.push(item);
        }
      }
    }
    stoppedBox.querySelector("ul").replaceChildren(...items);
    stoppedBox.classList.toggle("d-none", items.length === 0);
  }

  function addSamples(status) {
    for (const [name, route] of Object.entries(status.routes)) {
      const list = document.querySelector(`tr[data-stream="${CSS.escape(name)}"] .stream`);
      if (!list) continue;
      for (const sample of route.samples || []) {
        const item = document.createElement("li");
        const folded = document.createElement("details");
        const summary = document.createElement("summary");
        const where = document.createElement("span");
        where.className = "text-muted me-2";
        where.textContent = sample.kafka;
        const line = document.createElement("code");
        line.textContent = sample.json;  // text, never HTML
        summary.append(where, line);
        const body = document.createElement("pre");
        body.textContent = pretty(sample.json);
        folded.append(summary, body);
        item.append(folded);
        list.prepend(item);
      }
      while (list.children.length > STREAM_LENGTH) list.lastChild.remove();
    }
  }

  function receive(status) {
    perWatcher[status.watcher] = status;
    addSamples(status);
    render();
  }

  for (const status of JSON.parse(document.getElementById("watcher-statuses").textContent) || []) {
    perWatcher[status.watcher] = status;
  }
  render();

  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/watcher/`);
    ws.onopen = () => { state.textContent = "live"; state.className = "badge text-bg-success"; };
    ws.onclose = () => {
      state.textContent = "reconnecting…"; state.className = "badge text-bg-warning";
      setTimeout(connect, 2000);
    };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "status") receive(message.status);
    };
  }
  connect();
  setInterval(render, 2000);  // drop watchers that went quiet
})();
