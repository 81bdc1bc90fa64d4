/*
 * docs.js -- /docs: fetch /openapi.json from this server and list its
 * operations. Plain DOM, no library, nothing from another origin; text
 * goes in with textContent, never as HTML.
 */
"use strict";

function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

/* Follow a local "#/components/..." reference. */
function deref(doc, o) {
  var guard = 0;
  while (o && o.$ref && guard++ < 20) {
    var parts = o.$ref.replace(/^#\//, "").split("/");
    o = parts.reduce(function (a, k) { return a ? a[k] : undefined; }, doc);
  }
  return o || {};
}

function table(rows, heads) {
  var t = el("table"), tr = el("tr");
  heads.forEach(function (h) { tr.appendChild(el("th", null, h)); });
  t.appendChild(tr);
  rows.forEach(function (r) {
    var row = el("tr");
    r.forEach(function (c) { row.appendChild(el("td", null, c)); });
    t.appendChild(row);
  });
  return t;
}

function operation(doc, path, method, op) {
  var d = el("details"), s = el("summary");
  s.appendChild(el("span", "method " + method, method.toUpperCase()));
  s.appendChild(el("code", null, path));
  s.appendChild(document.createTextNode(" " + (op.summary || "")));
  if (op.security && op.security.length === 0)
    s.appendChild(el("span", "open", "no API key"));
  d.appendChild(s);
  if (op.description) d.appendChild(el("p", null, op.description));
  var params = (op.parameters || []).map(function (p) {
    p = deref(doc, p);
    var sc = deref(doc, p.schema);
    return [p.name, p["in"], sc.type || "", p.required ? "yes" : "no",
      p.description || ""];
  });
  if (params.length) {
    d.appendChild(el("h4", null, "Parameters"));
    d.appendChild(table(params, ["name", "in", "type", "required",
      "description"]));
  }
  if (op.requestBody) {
    var rb = deref(doc, op.requestBody);
    var media = rb.content && rb.content["application/json"];
    d.appendChild(el("h4", null, "Request body" +
      (rb.required ? "" : " (optional)")));
    if (media && media.schema)
      d.appendChild(el("pre", null,
        JSON.stringify(deref(doc, media.schema), null, 2)));
  }
  var resp = Object.keys(op.responses || {}).map(function (code) {
    var r = deref(doc, op.responses[code]);
    return [code, r.description || ""];
  });
  d.appendChild(el("h4", null, "Responses"));
  d.appendChild(table(resp, ["status", "meaning"]));
  return d;
}

function render(doc) {
  var main = document.getElementById("ops");
  main.textContent = "";
  document.getElementById("title").textContent =
    (doc.info && doc.info.title || "API") + " " +
    (doc.info && doc.info.version || "");
  var groups = {};
  Object.keys(doc.paths || {}).forEach(function (path) {
    var item = doc.paths[path];
    ["get", "post", "put", "patch", "delete"].forEach(function (m) {
      if (!item[m]) return;
      var tag = (item[m].tags && item[m].tags[0]) || "other";
      (groups[tag] = groups[tag] || []).push([path, m, item[m]]);
    });
  });
  Object.keys(groups).forEach(function (tag) {
    main.appendChild(el("h2", null, tag));
    groups[tag].forEach(function (g) {
      main.appendChild(operation(doc, g[0], g[1], g[2]));
    });
  });
}

fetch("/openapi.json", { credentials: "same-origin" })
  .then(function (r) {
    if (!r.ok) throw new Error("/openapi.json: HTTP " + r.status);
    return r.json();
  })
  .then(render)
  .catch(function (e) {
    var main = document.getElementById("ops");
    main.textContent = "";
    main.appendChild(el("p", null, String(e)));
  });
