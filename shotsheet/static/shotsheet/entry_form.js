// The new-entry form, for fast entry. The shot key follows the relay's current shot until the user
// types one (or the form was opened with a shot key of its own, from a shot's "create one" link);
// for each shot key it says whether the shot has an entry already, and fills the fields mapped to
// a value of the relay's shot envelope (marked, editable: a typed value is never overwritten).
(function () {
  const badge = document.getElementById("relay-shot");
  const form = document.getElementById("entry-form");
  const input = document.getElementById("id_shot_key");
  const taken = document.getElementById("shot-taken");
  let typed = badge.dataset.follow === "no";
  const edited = new Set();  // fields the user changed: the relay never overwrites them

  function mark(name, on) {
    const box = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
    let label = box?.querySelector(".relay-filled");
    if (on && box && !label) {
      label = document.createElement("span");
      label.className = "badge text-bg-info float-end relay-filled";
      label.textContent = "from the relay";
      box.prepend(label);
    } else if (!on) label?.remove();
  }

  function fill(values) {  // the relay's values of this shot; a value of another shot never stays
    for (const field of form.querySelectorAll("[data-relay]")) {
      if (edited.has(field.name)) continue;
      const known = field.name in values;
      if (!known && !form.querySelector(`[data-field="${CSS.escape(field.name)}"] .relay-filled`)) continue;
      if (field.type === "checkbox") field.checked = known && Boolean(values[field.name]);
      else field.value = known ? values[field.name] : "";
      mark(field.name, known);
    }
  }

  function showTaken(entries) {
    const links = document.getElementById("shot-taken-links");
    links.replaceChildren(...entries.flatMap((e, i) => {
      const a = document.createElement("a");
      a.href = e.url; a.textContent = `${e.created} by ${e.author}`;  // text, never HTML
      return i ? [", ", a] : [a];
    }));
    taken.classList.toggle("d-none", entries.length === 0);
  }

  let asked = 0;
  async function check() {
    const ask = ++asked;
    const url = `${form.dataset.checkUrl}?${new URLSearchParams({shot_key: input.value.trim()})}`;
    try {
      const response = await fetch(url, {headers: {Accept: "application/json"}});
      if (!response.ok || ask !== asked) return;  // a later check is on its way
      const shot = await response.json();
      showTaken(shot.entries);
      fill(shot.relay_values);
    } catch (error) { /* the form works without it */ }
  }

  for (const field of form.querySelectorAll("[data-relay]")) {
    field.addEventListener("input", () => { edited.add(field.name); mark(field.name, false); });
  }
  let pause;
  input?.addEventListener("input", () => { typed = true; clearTimeout(pause); pause = setTimeout(check, 300); });
  document.getElementById(form.dataset.focus)?.focus();  // after "Save & next": the first non-sticky field

  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/sheets/${badge.dataset.sheet}/`);
    ws.onclose = () => setTimeout(connect, 2000);
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "relay" || !message.last_shot) return;
      badge.textContent = `relay: shot ${message.last_shot.shot_key}`;
      if (input && !typed && input.value !== message.last_shot.shot_key) {
        input.value = message.last_shot.shot_key;
        check();
      }
    };
  }
  connect();
})();
