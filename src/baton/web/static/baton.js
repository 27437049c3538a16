// Baton's own enhancements; every page works without them.
// - forms with data-confirm ask before they are sent;
// - an element with data-poll="<url>" is refreshed from that URL every
//   data-interval ms (the inbox), keeping the keyboard focus when it can.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

function startPolling(region) {
  const url = region.dataset.poll;
  const every = Number(region.dataset.interval || "5000");
  let busy = false;
  const refresh = async () => {
    if (busy || document.hidden) return;
    // Never swap the list under someone using it (focus in it, a form opened): their
    // place and what they typed would be lost. The next tick after they leave it will do.
    const active = document.activeElement;
    if (active && active !== document.body && region.contains(active)) return;
    if (region.querySelector("details[open]")) return;
    busy = true;
    try {
      const response = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (response.redirected || !response.ok) return;
      const html = await response.text();
      if (html !== region.dataset.last) {
        region.dataset.last = html;
        region.innerHTML = html;
      }
    } catch (error) {
      // offline for a moment: try again at the next tick
    } finally {
      busy = false;
    }
  };
  window.setInterval(refresh, every);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-poll]").forEach(startPolling);
  document.querySelectorAll(".js-only").forEach((el) => { el.hidden = false; });
  document.querySelectorAll(".no-js").forEach((el) => { el.hidden = true; });
});
