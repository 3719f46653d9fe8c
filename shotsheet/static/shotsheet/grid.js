// The sheet's entries as a data grid (Tabulator): every filtered row, scrolled virtually; the shot key
// frozen first; columns the user hides, moves and resizes, kept on the server per user and sheet;
// live rows checked against the filters and flashed in. Filters and sort stay in the URL.
(function () {
  const element = document.getElementById("grid");
  if (!element) return;
  const sheetColumns = JSON.parse(document.getElementById("grid-columns").textContent);
  const saved = JSON.parse(document.getElementById("grid-layout").textContent) || {};
  const zone = element.dataset.timeZone;
  const version = Number(element.dataset.columnsVersion);
  const sort = element.dataset.sort;
  const state = document.getElementById("live-state");
  const count = document.getElementById("grid-count");
  const valueField = (key) => `v_${key}`;  // apart from the grid's own fields (id, created, …)
  const rowFields = (names) => [...names, ...sheetColumns.map((c) => valueField(c.field))];

  // The lab's clock, as the server writes it: "2026-11-24 10:00:00" (the zone is in the header).
  const clock = new Intl.DateTimeFormat("sv-SE", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const labTime = (ms) => clock.format(new Date(ms));

  function text(value, type) {
    if (value === null || value === undefined) return "";
    if (type === "boolean") return value ? "yes" : "no";
    if (Array.isArray(value)) return value.join(", ");
    if (type === "datetime" && typeof value === "string") return labTime(Date.parse(value));
    if (typeof value === "object") return JSON.stringify(value);
    if (type === "float" && Number.isInteger(value) && Math.abs(value) < 1e16) return value.toFixed(1);  // 1.0, as typed
    return String(value);
  }
  const textNode = (value) => document.createTextNode(value ?? "");  // never HTML

  // --- sort: a link in each header, to the same page with ?sort= (as the plain table) --------------
  function sortTitle(title, key) {
    return (cell) => {
      const span = document.createElement("span");
      span.append(title, " ");
      if (!key) return span;
      const link = document.createElement("a");
      const params = new URLSearchParams(location.search);
      params.set("sort", sort === key ? `-${key}` : key);
      link.href = `?${params}`;
      link.className = "grid-sort";
      link.textContent = sort === key ? "▲" : sort === `-${key}` ? "▼" : "↕";
      link.title = `sort by ${title}`;
      span.append(link);
      return span;
    };
  }

  function entryLink(cell) {
    const data = cell.getRow().getData();
    const link = document.createElement("a");
    link.href = `${element.dataset.entryUrl}${encodeURIComponent(data.id)}/`;
    link.textContent = labTime(data.created);
    if (!data.voided) return link;
    const span = document.createElement("span");
    const badge = document.createElement("span");
    badge.className = "badge text-bg-warning ms-1";
    badge.textContent = "voided";
    badge.title = data.voided;
    span.append(link, badge);
    return span;
  }

  const definitions = [
    {field: "shot_key", title: "shot", frozen: true, sortKey: "shot_key", formatter: (cell) => textNode(cell.getValue())},
    {field: "created", title: `created [${zone}]`, sortKey: "created", formatter: entryLink},
    ...sheetColumns.map((c) => ({
      field: valueField(c.field), title: c.title, sortKey: c.field, archived: c.archived, layoutKey: c.field,
      hozAlign: c.type === "integer" || c.type === "float" ? "right" : "left",
      formatter: (cell) => textNode(text(cell.getValue(), c.type)),
    })),
    {field: "author", title: "author", sortKey: "author", formatter: (cell) => textNode(cell.getValue())},
    {field: "comment", title: "comment", formatter: (cell) => textNode(cell.getValue()), maxInitialWidth: 400},
  ].map((d) => ({
    ...d, layoutKey: d.layoutKey || d.field, headerSort: false,
    titleFormatter: sortTitle(d.title, d.sortKey), visible: !d.archived,
  }));

  // The user's saved order, widths and hidden columns; new fields where they come, archived ones hidden.
  function arranged() {
    if (!saved.columns) return definitions;
    const byKey = new Map(definitions.map((d) => [d.layoutKey, d]));
    const order = [byKey.get("shot_key")];
    for (const column of saved.columns) {
      const definition = byKey.get(column.field);
      if (!definition || definition.layoutKey === "shot_key") continue;
      definition.visible = column.visible;
      order.push(definition);
    }
    for (const column of saved.columns) {
      const definition = byKey.get(column.field);
      if (definition && column.width) definition.width = column.width;
    }
    for (const [n, definition] of definitions.entries()) {  // a field added since: after its neighbour
      if (!order.includes(definition)) order.splice(order.indexOf(definitions[n - 1]) + 1, 0, definition);
    }
    return order;
  }

  let density = saved.density || "compact";
  element.classList.toggle("grid-compact", density === "compact");
  element.classList.toggle("grid-comfortable", density === "comfortable");

  const firstRows = rows({limit: 100});  // asked for while the grid builds
  firstRows.catch(() => {});  // reported below, once built
  const fresh = new Set();  // ids of rows that just arrived live: they flash
  const table = new Tabulator(element, {
    index: "id",
    columns: arranged().map(({sortKey, archived, layoutKey, ...column}) => ({...column, cssClass: `col-${layoutKey}`})),
    layout: "fitData",
    movableColumns: true,
    selectableRows: 1,
    keybindings: false,  // our own, below: rows, not cells
    placeholder: "No entries",
    rowFormatter: (row) => {
      const data = row.getData();
      const rowElement = row.getElement();
      rowElement.dataset.entry = data.id;
      rowElement.classList.toggle("voided", Boolean(data.voided));
      rowElement.classList.toggle("grid-fresh", fresh.has(data.id));
    },
  });
  const layoutKey = (column) => column.getField().replace(/^v_/, "");

  // --- the layout, kept for this user and sheet -------------------------------------------------------
  let saveTimer = null;
  function saveLayout() {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(async () => {
      const columns = table.getColumns().map((column) => ({
        field: layoutKey(column), visible: column.isVisible(), width: Math.round(column.getWidth()) || null,
      }));
      Object.assign(saved, {columns, density});
      const token = document.querySelector("#grid-layout-form [name=csrfmiddlewaretoken]").value;
      const response = await fetch(document.getElementById("grid-layout-form").action, {
        method: "POST", headers: {"Content-Type": "application/json", "X-CSRFToken": token},
        body: JSON.stringify({columns, density}),
      });
      element.dataset.layoutSaved = response.ok ? "yes" : "no";
    }, 300);
  }
  table.on("columnMoved", saveLayout);
  table.on("columnResized", saveLayout);

  function chooser() {
    const lists = {current: document.getElementById("column-list"), archived: document.getElementById("archived-list")};
    lists.current.textContent = lists.archived.textContent = "";
    for (const column of table.getColumns()) {
      const key = layoutKey(column);
      if (key === "shot_key") continue;  // the row's key: always shown, first
      const definition = definitions.find((d) => d.layoutKey === key);
      const label = document.createElement("label");
      label.className = "d-block text-nowrap";
      const box = document.createElement("input");
      box.type = "checkbox"; box.className = "form-check-input me-1"; box.checked = column.isVisible();
      box.dataset.column = key;
      box.addEventListener("change", () => {
        if (box.checked) column.show(); else column.hide();
        saveLayout();
      });
      label.append(box, definition.title);
      const list = definition.archived ? lists.archived : lists.current;
      if (definition.archived && !list.childElementCount) {
        const heading = document.createElement("div");
        heading.className = "text-muted mt-2"; heading.textContent = "Archived fields";
        list.append(heading);
      }
      list.append(label);
    }
  }

  for (const radio of document.querySelectorAll("input[name=density]")) {
    radio.checked = radio.value === density;
    radio.addEventListener("change", () => {
      density = radio.value;
      element.classList.toggle("grid-compact", density === "compact");
      element.classList.toggle("grid-comfortable", density === "comfortable");
      table.redraw(true);
      saveLayout();
    });
  }

  // --- rows: a first screenful at once, then every filtered row ------------------------------------
  async function rows(extra) {
    const url = new URL(element.dataset.url, location.href);
    for (const [name, value] of Object.entries(extra)) url.searchParams.set(name, value);
    const response = await fetch(url, {headers: {Accept: "application/json"}});
    const payload = await response.json();
    if (!response.ok) throw new Error(payload.error || response.statusText);
    if (payload.columns_version > version) location.reload();  // fields added since this page was drawn
    const names = rowFields(payload.row_fields);
    payload.rows = payload.rows.map((row) => {
      const data = {};
      for (let i = 0; i < names.length; i++) data[names[i]] = row[i];
      return data;
    });
    return payload;
  }

  function showCount() {
    const n = table.getDataCount();
    count.textContent = `${n} entr${n === 1 ? "y" : "ies"}`;
  }

  let loaded = false;
  table.on("tableBuilt", async () => {
    chooser();
    try {
      const first = await firstRows;
      await table.setData(first.rows);
      requestAnimationFrame(() => {
        element.dataset.firstRowsMs = performance.now().toFixed(0);
        document.dispatchEvent(new CustomEvent("sheet:grid-ready"));  // the plot waits for this
      });
      if (first.total > first.rows.length) await table.replaceData((await rows({})).rows);
      showCount();
      loaded = true;
      element.dataset.loaded = performance.now().toFixed(0);  // every row is in the grid
      flushLive();
    } catch (error) {
      table.alert(`The entries could not be read: ${error.message}`, "error");
    }
  });

  // --- keyboard: rows up and down, a page, the ends; Enter opens the entry -----------------------------
  function selectRow(row, position = "nearest") {
    table.deselectRow();
    row.select();
    table.scrollToRow(row, position, false);
  }
  element.addEventListener("keydown", (event) => {
    if (event.target !== element) return;  // typing in a header or a link: not ours
    const selected = table.getSelectedRows()[0];
    if (event.key === "Enter" && selected) {
      location.href = `${element.dataset.entryUrl}${encodeURIComponent(selected.getData().id)}/`;
      return;
    }
    const pageRows = Math.max(1, Math.floor(element.clientHeight / 28) - 2);
    const steps = {ArrowDown: 1, ArrowUp: -1, PageDown: pageRows, PageUp: -pageRows, Home: -Infinity, End: Infinity};
    if (!(event.key in steps)) return;
    event.preventDefault();
    const active = table.getRows("active");
    if (!active.length) return;
    const from = selected ? active.indexOf(selected) : -1;
    const to = Math.min(active.length - 1, Math.max(0, from + steps[event.key]));
    selectRow(active[to], event.key === "End" ? "bottom" : "nearest");
  });
  table.on("rowDblClick", (event, row) => {
    location.href = `${element.dataset.entryUrl}${encodeURIComponent(row.getData().id)}/`;
  });
  table.on("rowClick", () => element.focus({preventScroll: true}));

  // The plot's point clicked: its row, selected and scrolled to.
  document.addEventListener("sheet:select-entry", (event) => {
    const row = table.getRow(event.detail.id);
    if (row) selectRow(row, "center");
  });

  // --- live: changed entries, read again through the grid's filters, in at the top, flashing -----------
  const pending = new Set();
  let liveTimer = null;
  function changed(id) {
    pending.add(id);
    if (!liveTimer) liveTimer = setTimeout(flushLive, 200);  // at most 5 reads a second
  }
  async function flushLive() {
    liveTimer = null;
    if (!loaded || !pending.size) return;
    const ids = [...pending].slice(0, 200);
    ids.forEach((id) => pending.delete(id));
    let payload;
    try {
      payload = await rows({ids: ids.join(",")});
    } catch (error) {
      ids.forEach((id) => pending.add(id));
      liveTimer = setTimeout(flushLive, 2000);
      return;
    }
    const found = new Map(payload.rows.map((data) => [data.id, data]));
    for (const id of ids) {
      const row = table.getRow(id);
      const data = found.get(id);
      if (!data) { if (row) row.delete(); continue; }  // voided, or out of the filters now
      fresh.add(id);
      if (row) await row.update(data); else await table.addData([data], true);
      table.getRow(id)?.reformat();
      setTimeout(() => { fresh.delete(id); table.getRow(id)?.reformat(); }, 3000);
    }
    showCount();
    document.dispatchEvent(new CustomEvent("sheet:entries-changed"));
    if (pending.size) changed(pending.values().next().value);
  }

  let reconnecting = false;
  async function readAgain() {  // changes sent while the connection was down were missed
    if (!loaded) return;
    await table.replaceData((await rows({})).rows);
    showCount();
    document.dispatchEvent(new CustomEvent("sheet:entries-changed"));
  }
  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/sheets/${element.dataset.sheet}/`);
    ws.onopen = () => {
      state.textContent = "live"; state.className = "badge text-bg-success";
      if (reconnecting) readAgain().catch(() => {});
      reconnecting = false;
    };
    ws.onclose = () => {
      state.textContent = "reconnecting…"; state.className = "badge text-bg-warning";
      reconnecting = true;
      setTimeout(connect, 2000);
    };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "entry") return;
      if (message.entry.columns_version > version) { location.reload(); return; }  // a header out of date
      changed(message.entry.id);
    };
  }
  connect();
})();
