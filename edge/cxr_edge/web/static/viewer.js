// The study page's viewer: "View at full resolution" opens the image in Cornerstone3D (vendor/cornerstone3d-viewer.js)
// with the box's full-resolution values. Drag: window/level; right-drag or wheel: zoom; middle-drag or two fingers:
// pan. Keys: + and - zoom, arrows pan, i inverts, r resets. The heat layer follows the image at any zoom.
// Its words come from the page, in the reader's language (the panel's data-words, cxr_edge.web.words.viewer_words).
(function () {
  function say(words, key, values) {
    return words[key].replace(/%\((\w+)\)s/g, function (all, name) { return values[name]; }).replace(/%%/g, "%");
  }

  function presets(m, words) {
    var list = m.windows.map(function (w, i) {
      return {name: m.windows.length > 1 ? say(words, "unit_window_n", {number: i + 1}) : say(words, "unit_window", {}), c: w[0], w: w[1]};
    });
    list.push({name: say(words, "middle", {}), c: (m.p1 + m.p99) / 2, w: Math.max(1, m.p99 - m.p1)});
    list.push({name: say(words, "full_range", {}), c: (m.min + m.max) / 2, w: Math.max(1, m.max - m.min)});
    return list;
  }

  function button(text, onClick) {
    var b = document.createElement("button");
    b.type = "button"; b.textContent = text; b.addEventListener("click", onClick);
    return b;
  }

  function start(section) {
    var id = section.dataset.image, panel = section.querySelector(".viewer"), status = panel.querySelector(".viewer-status");
    var words = JSON.parse(panel.dataset.words);
    panel.hidden = false;
    status.textContent = say(words, "loading", {});
    var metaUrl = "/image/" + id + "/full.json", rawUrl = "/image/" + id + "/full.raw";
    Promise.all([fetch(metaUrl, {credentials: "same-origin"}).then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); }),
                 fetch(rawUrl, {credentials: "same-origin"}).then(function (r) { if (!r.ok) throw new Error(r.status); return r.arrayBuffer(); })])
      .then(function (got) {
        var m = got[0], stage = panel.querySelector(".viewer-stage"), tools = panel.querySelector(".viewer-tools");
        return cxrViewer.open(stage.querySelector(".viewer-image"), id, m, got[1]).then(function (v) {
          status.textContent = say(words, m.type === "Float32" ? "size_float" : "size_16bit",
                                   {columns: m.columns, rows: m.rows, min: Math.round(m.min), max: Math.round(m.max)});
          stage.dataset.ready = "1";
          presets(m, words).forEach(function (p) { tools.appendChild(button(p.name, function () { v.window(p.c, p.w); })); });
          var inverted = m.invert;
          tools.appendChild(button(say(words, "invert", {}), function () { inverted = !inverted; v.invert(inverted); }));
          tools.appendChild(button(say(words, "zoom_in", {}), function () { v.zoom(1.25); }));
          tools.appendChild(button(say(words, "zoom_out", {}), function () { v.zoom(0.8); }));
          tools.appendChild(button(say(words, "reset", {}), function () { v.reset(); v.invert(m.invert); inverted = m.invert; }));
          var heat = stage.querySelector(".viewer-heat");
          if (heat) {
            var toggle = panel.querySelector(".heat-toggle"), opacity = panel.querySelector(".heat-opacity");
            var place = function () {
              var b = v.bounds();
              heat.style.left = b.left + "px"; heat.style.top = b.top + "px";
              heat.style.width = b.width + "px"; heat.style.height = b.height + "px";
            };
            var show = function () { heat.hidden = !toggle.checked; heat.style.opacity = opacity.value / 100; place(); };
            toggle.addEventListener("change", show); opacity.addEventListener("input", show);
            v.onRender(place); show();
          }
          stage.tabIndex = 0;
          stage.addEventListener("keydown", function (e) {
            var moves = {"+": function () { v.zoom(1.25); }, "=": function () { v.zoom(1.25); }, "-": function () { v.zoom(0.8); },
                         ArrowLeft: function () { v.pan(-1, 0); }, ArrowRight: function () { v.pan(1, 0); },
                         ArrowUp: function () { v.pan(0, 1); }, ArrowDown: function () { v.pan(0, -1); },
                         i: function () { inverted = !inverted; v.invert(inverted); }, r: function () { v.reset(); }};
            if (moves[e.key]) { moves[e.key](); e.preventDefault(); }
          });
          stage.addEventListener("contextmenu", function (e) { e.preventDefault(); });
          window.addEventListener("resize", function () { v.resize(); });
          window.cxrViewers = window.cxrViewers || {};
          window.cxrViewers[id] = v;  // for the tests: the displayed window and the heat layer's place
        });
      })
      .catch(function (e) { status.textContent = say(words, "failed", {why: e.message}); });
  }

  var library = null;  // the 4 MB bundle, fetched on the first "View" only
  function withLibrary(then) {
    if (!library) {
      library = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = "/static/vendor/cornerstone3d-viewer.js";
        script.onload = resolve; script.onerror = function () { reject(new Error("the viewer did not load (/static/vendor/cornerstone3d-viewer.js)")); };
        document.head.appendChild(script);
      });
    }
    return library.then(then);
  }

  document.querySelectorAll("section.image[data-image]").forEach(function (section) {
    var open = section.querySelector(".open-viewer");
    if (open) open.addEventListener("click", function () {
      open.disabled = true;
      withLibrary(function () { start(section); }).catch(function (e) {
        section.querySelector(".viewer-status").textContent = e.message;
      });
    });
  });
})();
