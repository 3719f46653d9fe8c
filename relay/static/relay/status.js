// The relay page, live: last shot and counters from the relay's status group.
(function () {
  const state = document.getElementById("live-state");
  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/relay/`);
    ws.onopen = () => { state.textContent = "live"; state.className = "badge text-bg-success"; };
    ws.onclose = () => { state.textContent = "reconnecting…"; state.className = "badge text-bg-warning"; setTimeout(connect, 2000); };
    ws.onmessage = (event) => {
      const status = JSON.parse(event.data).status;
      document.getElementById("last-shot").textContent = status.last_shot ? status.last_shot.shot_key : "none yet";
      for (const cell of document.querySelectorAll("[data-k]")) {
        if (cell.dataset.k in status) cell.textContent = status[cell.dataset.k];
      }
    };
  }
  connect();
})();
