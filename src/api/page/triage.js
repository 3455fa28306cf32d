// The triage page's buttons: each POSTs to the control API with the token
// typed above (kept for this tab only, in sessionStorage) and shows the
// type's new status when the running engine has applied and saved it.
"use strict";
(function () {
  const token = document.getElementById("token");
  const message = document.getElementById("message");
  token.value = sessionStorage.getItem("faultline-token") || "";
  token.addEventListener("input", () => sessionStorage.setItem("faultline-token", token.value));

  function say(text, error) {
    message.textContent = text;
    message.className = error ? "error" : "";
  }

  async function act(button) {
    const fp = button.dataset.fp;
    const action = button.dataset.action;
    button.disabled = true;
    say(action + " " + fp + "…", false);
    try {
      const res = await fetch("/api/v1/types/" + fp + "/" + action, {
        method: "POST",
        headers: { "Authorization": "Bearer " + token.value, "Content-Type": "application/json" },
        body: "{}",
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) {
        say(action + " failed (" + res.status + "): " + (body.error || res.statusText), true);
        return;
      }
      document.querySelectorAll('[data-status="' + fp + '"]').forEach((el) => { el.textContent = body.status; });
      const row = document.getElementById("t-" + fp);
      if (row) { row.classList.remove("active", "muted", "resolved"); row.classList.add(body.status); }
      // The buttons that make sense now.
      document.querySelectorAll('button[data-fp="' + fp + '"]').forEach((b) => {
        if (b.dataset.action === "mute" && body.status === "muted") { b.dataset.action = "unmute"; b.textContent = "Unmute"; }
        else if (b.dataset.action === "unmute" && body.status !== "muted") { b.dataset.action = "mute"; b.textContent = "Mute"; }
        else if (b.dataset.action === "resolve" && body.status === "resolved") { b.hidden = true; }
      });
      say(fp + " is " + body.status, false);
    } catch (e) {
      say(action + " failed: " + e, true);
    } finally {
      button.disabled = false;
    }
  }

  // The filter applies on change (the page allows no inline handlers).
  document.querySelectorAll("form.filter select, form.filter input").forEach((el) => {
    el.addEventListener("change", () => el.form.submit());
  });

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (b) { act(b); }
  });
})();
