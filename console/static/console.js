// The console page's live part: fetches the status fragment (rendered and
// escaped on the server, like the first page) every few seconds and swaps it
// in. Forms are plain HTML forms; nothing here builds markup from data.
"use strict";

(() => {
  const body = document.body;
  const target = document.getElementById("status");
  const conn = document.getElementById("conn");
  const url = body.dataset.statusUrl;
  const period = Number(body.dataset.pollMs) || 2000;
  if (!target || !url) return;

  const show = (text, ok) => {
    conn.textContent = text;
    conn.className = ok ? "conn live" : "conn down";
  };

  const refresh = async () => {
    try {
      const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) {
        window.location.assign(body.dataset.loginUrl);
        return;
      }
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      target.innerHTML = await answer.text(); // server-rendered, escaped by Jinja
      show("live", true);
    } catch (err) {
      show("console unreachable", false);
    } finally {
      window.setTimeout(refresh, period);
    }
  };
  show("live", true);
  window.setTimeout(refresh, period);
})();
