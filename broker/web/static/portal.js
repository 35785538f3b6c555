// The portal's only script (the pages' CSP allows no inline code): search as you type on the
// home page, and the Copy buttons beside commands and credential values.
// Without JavaScript the search box is a plain GET form (?q=), filtered by the server, and the
// values can still be selected and copied by hand.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // ---- Copy buttons: <button class="copy" data-copy="ID"> copies the text of element ID ----
  function copied(button, text) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = text;
    button.classList.add("done");
    window.setTimeout(function () { button.textContent = label; button.classList.remove("done"); }, 2000);
  }
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy") : null;
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { copied(button, "Copied"); },
        function () { copied(button, fallbackCopy(text) ? "Copied" : "Select and copy"); });
    } else {
      copied(button, fallbackCopy(text) ? "Copied" : "Select and copy");
    }
  });

  // ---- search as you type: hides the roles that do not match every word ----
  var input = document.getElementById("q");
  if (!input) { return; }
  var count = document.getElementById("count");
  var roles = Array.prototype.slice.call(document.querySelectorAll("#roles .role"));
  var groups = Array.prototype.slice.call(document.querySelectorAll("#roles .account, #roles section"));
  function apply() {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var keys = {};
    roles.forEach(function (li) {
      var text = li.getAttribute("data-search");
      var match = words.every(function (w) { return text.indexOf(w) !== -1; });
      li.hidden = !match;
      if (match) { keys[li.getAttribute("data-key")] = true; }
    });
    groups.forEach(function (g) { g.hidden = !g.querySelector(".role:not([hidden])"); });
    if (count) { count.textContent = Object.keys(keys).length + " of " + count.getAttribute("data-total") + " roles"; }
  }
  if (count) { count.setAttribute("data-total", count.textContent.replace(/^.* of (\d+) roles$/, "$1")); }
  input.addEventListener("input", apply);
  input.form.addEventListener("submit", function (e) { e.preventDefault(); apply(); });
  if (input.value) { apply(); }
})();
