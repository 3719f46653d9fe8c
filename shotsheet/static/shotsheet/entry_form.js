// The relay's current shot, live: the shot key follows it until the user types one
// (or the form was opened with a shot key of its own, from a shot's "create one" link).
(function () {
  const badge = document.getElementById("relay-shot");
  const input = document.getElementById("id_shot_key");
  let typed = badge.dataset.follow === "no";
  input?.addEventListener("input", () => { typed = true; });
  document.querySelector("form input:not([type=hidden]), form select, form textarea")?.focus();
  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/sheets/${badge.dataset.sheet}/`);
    ws.onclose = () => setTimeout(connect, 2000);
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "relay" || !message.last_shot) return;
      badge.textContent = `relay: shot ${message.last_shot.shot_key}`;
      if (input && !typed) input.value = message.last_shot.shot_key;
    };
  }
  connect();
})();
