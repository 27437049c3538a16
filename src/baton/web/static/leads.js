// The lead list: results follow the search box as one types (the form still works
// without this: it is a plain GET form). Our own code, no library.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("lead-search");
  const box = form && form.querySelector("[data-live-search]");
  const region = document.getElementById("lead-results");
  if (!form || !box || !region) return;
  let timer = 0;
  let asked = 0;
  const refresh = async () => {
    const params = new URLSearchParams(new FormData(form));
    params.delete("offset");
    const mine = ++asked;
    try {
      params.set("partial", "1");
      const response = await fetch("/leads?" + params.toString(), {
        headers: { Accept: "text/html" }, credentials: "same-origin",
      });
      if (mine !== asked || response.redirected || !response.ok) return;
      region.innerHTML = await response.text();
      params.delete("partial");
      window.history.replaceState(null, "", "/leads?" + params.toString());
    } catch (error) {
      // offline for a moment: the Search button still works
    }
  };
  box.addEventListener("input", () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 250);
  });
});
