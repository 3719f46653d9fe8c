// New and edited entries appear in every open table of the sheet, without reload.
(function () {
  const table = document.getElementById("entries");
  const state = document.getElementById("live-state");
  const slug = table.dataset.sheet;
  const firstPage = !new URLSearchParams(location.search).has("page");
  const voidedShown = new URLSearchParams(location.search).get("voided") || "";  // "", "show" or "only"

  function cell(text) { const td = document.createElement("td"); td.textContent = text ?? ""; return td; }

  function show(entry) {
    if (entry.columns_version > Number(table.dataset.columnsVersion)) {
      location.reload();  // fields were added since this page was drawn: its header is out of date
      return;
    }
    let row = table.querySelector(`tr[data-entry="${CSS.escape(entry.id)}"]`);
    if ((entry.voided && !voidedShown) || (!entry.voided && voidedShown === "only")) {
      row?.remove();  // voided (or restored) elsewhere: out of this table's filter
      return;
    }
    const fresh = document.createElement("tr");
    fresh.dataset.entry = entry.id;
    const link = document.createElement("a");
    link.href = `/sheets/${encodeURIComponent(slug)}/entries/${encodeURIComponent(entry.id)}/`;
    link.textContent = entry.created;  // the lab's time, as the server shows it (zone in the header)
    const first = document.createElement("td"); first.appendChild(link);
    if (entry.voided) {
      const badge = document.createElement("span");
      badge.className = "badge text-bg-warning ms-1"; badge.textContent = "voided"; badge.title = entry.voided;
      first.appendChild(badge); fresh.classList.add("voided");
    }
    fresh.append(first, cell(entry.shot_key), ...entry.values.map(cell), cell(entry.author), cell(entry.comment));
    fresh.classList.add("table-success");
    if (row) { row.replaceWith(fresh); }
    else if (firstPage) {
      table.querySelector("tr.empty")?.remove();
      table.tBodies[0].prepend(fresh);
    }
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/sheets/${slug}/`);
    ws.onopen = () => { state.textContent = "live"; state.className = "badge text-bg-success"; };
    ws.onclose = () => { state.textContent = "reconnecting…"; state.className = "badge text-bg-warning"; setTimeout(connect, 2000); };
    ws.onmessage = (event) => { const m = JSON.parse(event.data); if (m.type === "entry") show(m.entry); };
  }
  connect();
})();
