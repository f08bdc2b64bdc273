/**
 * The API reference page served at GET /docs: one self-contained HTML document whose inline script
 * fetches /openapi.json and renders it (routes, parameters, request and answer schemas, the error
 * table). It loads nothing from anywhere else (no CDN, fonts or images), so it works offline and
 * behind any firewall; the Content-Security-Policy allows exactly its own inline style and script
 * (by hash) and a fetch from its own origin. The document's text is set as textContent, never as
 * HTML, so nothing in it can inject markup.
 */
import { createHash } from "node:crypto";

const STYLE = `
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#fff;--muted:#57606a;--line:#d0d7de;--code:#f3f4f6;--get:#0a6b2d;--post:#0b4fa8;--focus:#b35900}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9da7b3;--line:#30363d;--code:#161b22;--get:#4ac26b;--post:#6cb6ff;--focus:#ffa657}}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
a{color:inherit}:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:var(--bg);padding:4px 8px;z-index:2}
.layout{display:grid;grid-template-columns:minmax(14rem,20rem) 1fr;min-height:100vh}
nav{border-right:1px solid var(--line);padding:1rem;position:sticky;top:0;max-height:100vh;overflow:auto}
nav ul{list-style:none;padding:0;margin:0 0 1rem}nav li a{display:block;padding:2px 4px;text-decoration:none;border-radius:4px}nav li a:hover{background:var(--code)}
main{padding:1rem 2rem;max-width:72rem}section.op{border-top:1px solid var(--line);padding-top:.5rem;margin-top:1.5rem}
.m{display:inline-block;min-width:3.5em;font:600 .8em ui-monospace,monospace;text-transform:uppercase}.m.get{color:var(--get)}.m.post{color:var(--post)}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}code{background:var(--code);padding:0 .25em;border-radius:3px}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}caption{text-align:left;font-weight:600;padding:.25rem 0}
.muted{color:var(--muted)}.schema{margin:.25rem 0 .25rem 1rem;padding-left:.5rem;border-left:2px solid var(--line)}details>summary{cursor:pointer}
label{font-weight:600}input[type=search]{width:100%;padding:.4rem;margin:.25rem 0 1rem;font:inherit;color:inherit;background:var(--bg);border:1px solid var(--line);border-radius:4px}
@media (max-width:50rem){.layout{grid-template-columns:1fr}nav{position:static;max-height:none;border-right:0}}
`;

/** Runs in the browser: plain ES2017, no modules, nothing fetched but the document. */
const SCRIPT = `
(function () {
  "use strict";
  var status = document.getElementById("status");
  var doc;
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    (children || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function code(text) { return el("code", {}, [String(text)]); }
  function resolve(s) {
    var seen = 0;
    while (s && s.$ref && seen++ < 16) {
      var path = s.$ref.replace(/^#\\//, "").split("/");
      s = path.reduce(function (o, k) { return o && o[k.replace(/~1/g, "/").replace(/~0/g, "~")]; }, doc);
    }
    return s || {};
  }
  function refName(s) { return s && s.$ref ? s.$ref.split("/").pop() : null; }
  var FACTS = ["format", "minimum", "exclusiveMinimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "maxProperties", "default"];
  function summaryOf(s) {
    var parts = [];
    if (s.const !== undefined) parts.push("= " + JSON.stringify(s.const));
    else if (s.enum) parts.push("one of " + s.enum.map(function (v) { return JSON.stringify(v); }).join(", "));
    else if (s.type) parts.push([].concat(s.type).join(" | "));
    FACTS.forEach(function (f) { if (s[f] !== undefined) parts.push(f + ": " + JSON.stringify(s[f])); });
    return parts.join("; ");
  }
  function schemaView(input, depth) {
    var name = refName(input), s = resolve(input), box = el("div", { class: "schema" });
    var head = summaryOf(s);
    if (name) box.appendChild(el("div", { class: "muted" }, [name + (head ? " — " + head : "")]));
    else if (head) box.appendChild(el("div", { class: "mono" }, [head]));
    if (s.description) box.appendChild(el("div", {}, [s.description]));
    if (depth > 6) return box;
    var alts = s.anyOf || s.oneOf;
    if (alts) {
      var list = el("ol", { "aria-label": s.oneOf ? "exactly one of" : "any of" });
      alts.forEach(function (a) { list.appendChild(el("li", {}, [schemaView(a, depth + 1)])); });
      box.appendChild(el("div", {}, [s.oneOf ? "Exactly one of:" : "Any of:", list]));
    }
    if (s.properties) {
      var req = s.required || [], rows = Object.keys(s.properties).map(function (p) {
        return el("tr", {}, [el("th", { scope: "row" }, [code(p)]), el("td", {}, [req.indexOf(p) >= 0 ? "required" : "optional"]), el("td", {}, [schemaView(s.properties[p], depth + 1)])]);
      });
      var caption = s.additionalProperties === false ? "Fields (no others accepted)" : "Fields";
      box.appendChild(el("table", {}, [el("caption", {}, [caption]), el("thead", {}, [el("tr", {}, [el("th", { scope: "col" }, ["Field"]), el("th", { scope: "col" }, ["Presence"]), el("th", { scope: "col" }, ["Schema"])])]), el("tbody", {}, rows)]));
    } else if (s.additionalProperties && typeof s.additionalProperties === "object") {
      box.appendChild(el("div", {}, ["Each value:", schemaView(s.additionalProperties, depth + 1)]));
    }
    if (s.items) box.appendChild(el("div", {}, ["Each item:", schemaView(s.items, depth + 1)]));
    return box;
  }
  function collapsible(title, body) { return el("details", {}, [el("summary", {}, [title]), body]); }
  function params(op) {
    if (!op.parameters || !op.parameters.length) return null;
    var rows = op.parameters.map(function (p) {
      p = resolve(p);
      return el("tr", {}, [el("th", { scope: "row" }, [code(p.name)]), el("td", {}, [p.in]), el("td", {}, [p.required ? "required" : "optional"]), el("td", {}, [p.description || "", schemaView(p.schema || {}, 1)])]);
    });
    return el("table", {}, [el("caption", {}, ["Parameters"]), el("thead", {}, [el("tr", {}, ["Name", "In", "Presence", "Description"].map(function (h) { return el("th", { scope: "col" }, [h]); }))]), el("tbody", {}, rows)]);
  }
  function answers(op) {
    var box = el("div", {}, [el("h4", {}, ["Answers"])]);
    Object.keys(op.responses).forEach(function (st) {
      var r = resolve(op.responses[st]), body = el("div", {});
      (r.description || "").split("\\n").forEach(function (line) { body.appendChild(el("p", {}, [line])); });
      var headers = Object.keys(r.headers || {});
      if (headers.length) body.appendChild(el("p", {}, ["Headers: "].concat(headers.map(function (h, i) { return el("span", {}, [i ? ", " : "", code(h)]); }))));
      Object.keys(r.content || {}).forEach(function (type) { body.appendChild(el("div", {}, [code(type), schemaView(r.content[type].schema || {}, 1)])); });
      box.appendChild(collapsible(st + (r["x-error-codes"] ? " — " + r["x-error-codes"].join(", ") : " — " + (r.description || "").split("\\n")[0]), body));
    });
    return box;
  }
  function render() {
    document.title = doc.info.title + " — API reference";
    document.getElementById("title").textContent = doc.info.title;
    document.getElementById("intro").textContent = doc.info.description || "";
    var nav = document.getElementById("routes"), ops = document.getElementById("operations");
    Object.keys(doc.paths).forEach(function (path) {
      Object.keys(doc.paths[path]).forEach(function (method) {
        var op = doc.paths[path][method], id = op.operationId;
        nav.appendChild(el("li", { "data-route": (method + " " + path + " " + op.summary).toLowerCase() }, [el("a", { href: "#" + id }, [el("span", { class: "m " + method }, [method]), " " + path])]));
        var sec = el("section", { class: "op", id: id, "aria-labelledby": id + "-h" }, [
          el("h3", { id: id + "-h" }, [el("span", { class: "m " + method }, [method]), " ", el("span", { class: "mono" }, [path])]),
          el("p", {}, [op.summary + (op.description ? ". " + op.description : "")]),
          el("p", { class: "muted" }, [op.security && op.security.length ? "Authentication: " + op.security.map(function (s) { var n = Object.keys(s)[0], d = resolve({ $ref: "#/components/securitySchemes/" + n }); return d.type === "http" ? "Authorization: Bearer <API key>" : "?" + d.name + "=<API key>"; }).join(" or ") : "No authentication."]),
          params(op),
          op.requestBody ? el("div", {}, [el("h4", {}, ["Request body"]), code("application/json"), schemaView(op.requestBody.content["application/json"].schema, 1)]) : null,
          answers(op),
        ]);
        ops.appendChild(sec);
      });
    });
    var codes = doc.components.schemas.ErrorCode["x-errors"] || {};
    var rows = Object.keys(codes).map(function (c) {
      return el("tr", { id: "error-" + c }, [el("th", { scope: "row" }, [code(c)]), el("td", {}, [String(codes[c].status)]), el("td", {}, [codes[c].retryable ? "yes" : "no"]), el("td", {}, [codes[c].doc])]);
    });
    document.getElementById("errors").appendChild(el("table", {}, [el("caption", {}, ["Error codes: error.code in every error answer"]), el("thead", {}, [el("tr", {}, ["Code", "Status", "Retry can succeed", "Meaning"].map(function (h) { return el("th", { scope: "col" }, [h]); }))]), el("tbody", {}, rows)]));
    var shapes = document.getElementById("shapes");
    ["Error", "OpenAIError"].forEach(function (n) { shapes.appendChild(el("div", {}, [el("h3", {}, [n]), schemaView({ $ref: "#/components/schemas/" + n }, 1)])); });
    status.textContent = "";
  }
  document.getElementById("filter").addEventListener("input", function (e) {
    var q = e.target.value.toLowerCase();
    Array.prototype.forEach.call(document.querySelectorAll("#routes li"), function (li) { li.hidden = q !== "" && (li.getAttribute("data-route") || "").indexOf(q) < 0; });
  });
  fetch("openapi.json", { headers: { accept: "application/json" } })
    .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(function (d) { doc = d; render(); })
    .catch(function (e) { status.textContent = "Could not load openapi.json: " + e.message; });
})();
`;

const BODY = `<a class="skip" href="#main">Skip to the reference</a>
<div class="layout">
<nav aria-label="Routes"><h2>Routes</h2><label for="filter">Filter routes</label><input id="filter" type="search" autocomplete="off">
<ul id="routes"></ul><a href="#errors-h">Error codes</a></nav>
<main id="main" tabindex="-1"><h1 id="title">API reference</h1><p id="intro"></p><p id="status" role="status" aria-live="polite">Loading openapi.json…</p>
<p><a href="openapi.json">The OpenAPI 3.1 document (JSON)</a></p>
<h2>Routes</h2><div id="operations"></div>
<h2 id="errors-h">Errors</h2><div id="errors"></div><h2>Error shapes</h2><div id="shapes"></div></main>
</div>`;

const sha256 = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

/** The page and the Content-Security-Policy that goes with it (it allows this page's inline code and nothing else). */
export function docsPage(): { html: string; csp: string } {
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>API reference</title><style>${STYLE}</style></head>
<body>${BODY}<script>${SCRIPT}</script></body></html>`;
  const csp = [
    "default-src 'none'",
    `style-src ${sha256(STYLE)}`,
    `script-src ${sha256(SCRIPT)}`,
    "connect-src 'self'",
    "img-src 'none'",
    "font-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
  return { html, csp };
}
