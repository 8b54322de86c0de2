// autosend front-end glue. Loaded with <script src defer> right after htmx,
// so it runs before htmx initialises on DOMContentLoaded. No inline scripts,
// no eval: works under CSP `script-src 'self'; style-src 'self'`.
(function () {
  "use strict";

  var htmx = window.htmx;
  if (!htmx) return;

  // --- htmx configuration -------------------------------------------------
  htmx.config.allowEval = false;
  // Indicator rules live in app.css (inline <style> would violate style-src).
  htmx.config.includeIndicatorStyles = false;

  // Swap 422 (form validation errors); every other 4xx/5xx stays an error.
  // Insert before the first default entry that would match 422 ("[45]..").
  var rules = htmx.config.responseHandling.slice();
  var has422 = rules.some(function (r) { return r.code === "422"; });
  if (!has422) {
    var at = rules.findIndex(function (r) { return new RegExp(r.code).test("422"); });
    rules.splice(at < 0 ? rules.length : at, 0, { code: "422", swap: true });
  }
  htmx.config.responseHandling = rules;

  // --- A restored page's search box says what its list shows -----------------
  // htmx restores Back/Forward from HTML snapshots, which hold no typed values: the box came
  // back empty above a filtered list (or kept text above the whole one). The URL knows.
  document.addEventListener("htmx:historyRestore", function () {
    var q = new URLSearchParams(window.location.search).get("q") || "";
    document.querySelectorAll('input[type="search"][name="q"]').forEach(function (input) {
      input.value = q;
    });
  });

  // --- CSRF token on every htmx request -----------------------------------
  document.addEventListener("htmx:configRequest", function (evt) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) evt.detail.headers["X-CSRF-Token"] = meta.content;
  });

  // --- Error banner -------------------------------------------------------
  function flashBox() {
    var box = document.getElementById("flash");
    if (!box) {
      box = document.createElement("div");
      box.id = "flash";
      box.setAttribute("aria-live", "assertive");
      document.body.appendChild(box);
    }
    return box;
  }

  function showError(text) {
    var msg = document.createElement("div");
    msg.className = "flash error";
    msg.setAttribute("role", "alert");
    var span = document.createElement("span");
    span.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "flash-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    msg.appendChild(span);
    msg.appendChild(close);
    flashBox().appendChild(msg);
  }

  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    var ref = (xhr && xhr.getResponseHeader("X-Request-Id")) || "n/a";
    // 4xx pages say what was wrong; the server repeats it in X-Error-Message for us.
    var said = xhr && xhr.getResponseHeader("X-Error-Message");
    if (said) {
      try { said = decodeURIComponent(said); } catch (e) { said = null; }
    }
    showError(said ? said : "Request failed (" + (xhr ? xhr.status : "?") + "). Reference: " + ref);
  });
  document.addEventListener("htmx:sendError", function () {
    showError("Request failed (network error). Please check your connection and retry.");
  });
  document.addEventListener("htmx:timeout", function () {
    showError("Request failed (timeout). Please retry.");
  });

  // Any `.flash-close` button (JS-made or server-rendered) dismisses its flash.
  document.addEventListener("click", function (evt) {
    var btn = evt.target.closest && evt.target.closest(".flash-close");
    if (!btn) return;
    var flash = btn.closest(".flash");
    if (flash) flash.remove();
  });
})();
