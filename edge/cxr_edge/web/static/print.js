// The study's print view: the page's own print stylesheet, from a button (no inline script: CSP default-src 'self').
(function () {
  var link = document.getElementById("print");
  if (link) link.addEventListener("click", function (e) { e.preventDefault(); window.print(); });
})();
