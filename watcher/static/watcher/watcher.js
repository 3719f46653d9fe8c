// Live figures of the watcher page: one aggregated status per watch process, a few per second.
(function () {
  const state = document.getElementById("live-state");
  const perWatcher = {};  // watcher name -> its latest status

  function render() {
    const totals = {};
    for (const status of Object.values(perWatcher)) {
      for (const [name, route] of Object.entries(status.routes)) {
        const t = totals[name] || (totals[name] = {rate: 0, total: 0, lag: 0, dead_letters: 0, sample: null});
        t.rate += route.rate; t.total += route.total; t.lag += route.lag; t.dead_letters += route.dead_letters;
        if (route.sample) t.sample = route.sample;
      }
    }
    for (const [name, t] of Object.entries(totals)) {
      const row = document.querySelector(`tr[data-route="${CSS.escape(name)}"]`);
      if (!row) continue;
      for (const key of ["rate", "total", "lag", "dead_letters"]) {
        row.querySelector(`[data-k="${key}"]`).textContent = key === "rate" ? t.rate.toFixed(1) : t[key];
      }
      if (t.sample) row.querySelector('[data-k="sample"]').textContent = t.sample.json;
    }
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/watcher/`);
    ws.onopen = () => { state.textContent = "live"; state.className = "badge text-bg-success"; };
    ws.onclose = () => {
      state.textContent = "reconnecting…"; state.className = "badge text-bg-warning";
      setTimeout(connect, 2000);
    };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "status") { perWatcher[message.status.watcher] = message.status; render(); }
    };
  }
  connect();
})();
