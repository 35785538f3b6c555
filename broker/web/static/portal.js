// Search as you type on the portal's home page: hides the roles that do not match every word.
// Without JavaScript the search box is a plain GET form (?q=), filtered by the server.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
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
