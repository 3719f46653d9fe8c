// The admin's form designer: a live preview of the entry form as the fields being edited make it.
// The change form is sent (nothing saved) to the preview view, which draws it with the entry
// page's own form code; the answer goes into a sandboxed frame that runs no script.
window.addEventListener("load", () => {
  const panel = document.getElementById("form-preview");
  const form = document.getElementById("sheet_form");
  if (!panel || !form) return;
  const frame = document.getElementById("form-preview-frame");
  let pause, asked = 0;

  async function refresh() {
    const ask = ++asked;
    const data = new FormData(form);
    try {
      const response = await fetch(panel.dataset.url, {
        method: "POST", body: data, headers: {"X-CSRFToken": data.get("csrfmiddlewaretoken")},
      });
      if (response.ok && ask === asked) frame.srcdoc = await response.text();
    } catch (error) { /* the designer works without its preview */ }
  }

  function soon() { clearTimeout(pause); pause = setTimeout(refresh, 300); }
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  // Dragging a field (adminsortable2 renumbers the hidden positions) or adding one changes no input.
  const fields = document.getElementById("fields-group");
  if (fields) new MutationObserver(soon).observe(fields, {childList: true, subtree: true});
  refresh();
});
