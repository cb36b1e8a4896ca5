// The worklist updates itself: every 10 s it asks whether anything changed, and if so fetches the rows again.
(function () {
  var table = document.getElementById("worklist");
  if (!table || table.dataset.live !== "1") return;  // a search's results stay as they are
  var query = "?filter=" + encodeURIComponent(table.dataset.filter) + "&page=" + encodeURIComponent(table.dataset.page) +
    (table.dataset.date ? "&date=" + encodeURIComponent(table.dataset.date) : "");
  function check() {
    fetch("/worklist/version", {credentials: "same-origin"}).then(function (r) {
      if (r.redirected || !r.ok) return null;  // logged out: the next page load shows the login
      return r.json();
    }).then(function (data) {
      if (!data || data.version === table.dataset.version) return;
      return fetch("/worklist/rows" + query, {credentials: "same-origin"}).then(function (r) { return r.text(); })
        .then(function (html) {
          var holder = document.createElement("table");
          holder.innerHTML = html;
          var rows = holder.querySelector("tbody");
          if (rows) { table.replaceChild(rows, document.getElementById("rows")); table.dataset.version = data.version; }
        });
    }).catch(function () {});
  }
  setInterval(check, 10000);
})();
