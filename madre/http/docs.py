"""`GET /docs`: one self-contained HTML page that fetches `/openapi.json` and renders it.

No CDN and no vendored bundle: the machines Madre runs on may have no internet, and the
renderer shipped on PyPI (swagger-ui-bundle, Swagger UI 4) cannot read OpenAPI 3.1. The page
lists every operation (method, path, whether it needs the token, parameters, request body,
responses with their error codes, a curl line) and every schema (properties, types,
constraints), built with DOM calls only: text from the document is never parsed as HTML.

The inline style and script are allowed by their hashes in the page's Content-Security-Policy,
which forbids loading anything from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib

STYLE = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dde5; --bg:#ffffff; --panel:#f6f7f9;
  --get:#1f6feb; --post:#1a7f37; --put:#9a6700; --delete:#cf222e; --patch:#8250df; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--fg); background:var(--bg); }
header { padding:24px 32px 12px; border-bottom:1px solid var(--line); }
header h1 { margin:0 0 4px; font-size:26px; }
header .version { font-size:14px; color:var(--muted); font-weight:normal; margin-left:8px; }
main { display:flex; align-items:flex-start; }
nav { position:sticky; top:0; width:290px; flex:none; max-height:100vh; overflow:auto;
  padding:16px 12px 32px 24px; border-right:1px solid var(--line); font-size:14px; }
nav h2 { font-size:12px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted);
  margin:16px 0 6px; }
nav a { display:block; padding:2px 0; color:var(--fg); text-decoration:none;
  overflow-wrap:anywhere; }
nav a:hover { text-decoration:underline; }
#content { flex:1; min-width:0; padding:8px 32px 64px; }
section.op, section.schema { border:1px solid var(--line); border-radius:8px; margin:18px 0;
  padding:14px 18px; }
section.schema { background:var(--panel); }
.op-head { display:flex; align-items:center; gap:10px; flex-wrap:wrap; }
.method { font:bold 12px/1 ui-monospace,SFMono-Regular,Menlo,monospace; color:#fff;
  padding:5px 8px; border-radius:4px; min-width:54px; text-align:center; }
.method.get { background:var(--get); } .method.post { background:var(--post); }
.method.put { background:var(--put); } .method.delete { background:var(--delete); }
.method.patch { background:var(--patch); }
.path { font:600 15px ui-monospace,SFMono-Regular,Menlo,monospace; }
.badge { font-size:12px; border:1px solid var(--line); border-radius:10px; padding:1px 8px;
  color:var(--muted); }
.badge.lock { border-color:#d4a72c; color:#7d4e00; }
.badge.deprecated { border-color:var(--delete); color:var(--delete); }
h2.group { margin:32px 0 0; font-size:20px; }
h3 { margin:10px 0 4px; font-size:17px; }
h4 { margin:14px 0 6px; font-size:13px; text-transform:uppercase; letter-spacing:.05em;
  color:var(--muted); }
p { margin:6px 0; }
code, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:13px; }
p code, td code { background:var(--panel); padding:0 4px; border-radius:3px; }
table { border-collapse:collapse; width:100%; font-size:14px; }
th, td { text-align:left; vertical-align:top; padding:5px 10px 5px 0;
  border-bottom:1px solid var(--line); }
th { font-size:12px; color:var(--muted); font-weight:600; }
td.name { white-space:nowrap; font-family:ui-monospace,SFMono-Regular,Menlo,monospace; }
.req { color:var(--delete); font-size:12px; margin-left:4px; }
.muted { color:var(--muted); }
pre { background:#0d1117; color:#e6edf3; padding:10px 12px; border-radius:6px;
  overflow:auto; font-size:13px; margin:6px 0; }
a { color:var(--get); }
#status { padding:24px 32px; }
#status.error { color:var(--delete); }
"""

SCRIPT = r"""
"use strict";
(function () {
  var statusBox = document.getElementById("status");

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") { node.textContent = attrs[k]; }
        else if (k === "cls") { node.className = attrs[k]; }
        else { node.setAttribute(k, attrs[k]); }
      });
    }
    for (var i = 2; i < arguments.length; i++) { add(node, arguments[i]); }
    return node;
  }
  function add(node, child) {
    if (child === null || child === undefined || child === false) { return; }
    if (Array.isArray(child)) { child.forEach(function (c) { add(node, c); }); return; }
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  // Text with `code` spans, as the document's descriptions write them.
  function prose(text, tag) {
    var node = el(tag || "p");
    String(text || "").split("`").forEach(function (part, i) {
      add(node, i % 2 ? el("code", {text: part}) : part);
    });
    return node;
  }
  function paragraphs(text) {
    return String(text || "").split(/\n\s*\n/).filter(Boolean).map(function (t) {
      return prose(t);
    });
  }
  // A path that may wrap after each slash, not inside a word.
  function breakable(path) {
    var out = [];
    path.split("/").forEach(function (part, i) {
      if (i) { out.push("/"); out.push(el("wbr")); }
      out.push(part);
    });
    return out;
  }
  function refName(ref) { return ref.split("/").pop(); }
  function schemaLink(name) { return el("a", {href: "#schema-" + name, text: name}); }

  function typeOf(s) {
    if (!s) { return "any"; }
    if (s.$ref) { return schemaLink(refName(s.$ref)); }
    var alts = s.anyOf || s.oneOf;
    if (alts) {
      var out = [];
      alts.forEach(function (a, i) { if (i) { out.push(" | "); } out.push(typeOf(a)); });
      return el("span", null, out);
    }
    if (s.allOf && s.allOf.length === 1) { return typeOf(s.allOf[0]); }
    if (s.enum) {
      return "one of " + s.enum.map(function (v) { return JSON.stringify(v); }).join(", ");
    }
    if (s.const !== undefined) { return JSON.stringify(s.const); }
    if (s.type === "array") { return el("span", null, "array of ", typeOf(s.items)); }
    if (s.type === "object" && s.additionalProperties && s.additionalProperties !== true) {
      return el("span", null, "object of ", typeOf(s.additionalProperties));
    }
    var t = Array.isArray(s.type) ? s.type.join(" | ") : (s.type || "any");
    return s.format ? t + " (" + s.format + ")" : t;
  }

  function constraints(s) {
    var parts = [];
    var labels = {minLength: "min length", maxLength: "max length", minimum: "≥",
                  maximum: "≤", exclusiveMinimum: ">", exclusiveMaximum: "<",
                  pattern: "pattern", minItems: "min items", maxItems: "max items"};
    Object.keys(labels).forEach(function (k) {
      if (s && s[k] !== undefined) { parts.push(labels[k] + " " + s[k]); }
    });
    if (s && s["default"] !== undefined) { parts.push("default " + JSON.stringify(s["default"])); }
    return parts.join("; ");
  }

  function propertiesTable(schema) {
    var props = schema.properties || {};
    var required = schema.required || [];
    var names = Object.keys(props);
    if (!names.length) { return el("p", {cls: "muted", text: "No fields."}); }
    return el("table", null,
      el("thead", null, el("tr", null, el("th", {text: "field"}), el("th", {text: "type"}),
        el("th", {text: "constraints"}), el("th", {text: "description"}))),
      el("tbody", null, names.map(function (name) {
        var p = props[name];
        return el("tr", null,
          el("td", {cls: "name"}, name,
             required.indexOf(name) >= 0 ? el("span", {cls: "req", text: "required"}) : null),
          el("td", null, typeOf(p)),
          el("td", {cls: "muted", text: constraints(p)}),
          el("td", null, p.description ? prose(p.description, "span") : ""));
      })));
  }

  function paramsTable(params) {
    return el("table", null,
      el("thead", null, el("tr", null, el("th", {text: "name"}), el("th", {text: "in"}),
        el("th", {text: "type"}), el("th", {text: "constraints"}),
        el("th", {text: "description"}))),
      el("tbody", null, params.map(function (p) {
        return el("tr", null,
          el("td", {cls: "name"}, p.name,
             p.required ? el("span", {cls: "req", text: "required"}) : null,
             p.deprecated ? el("span", {cls: "req", text: "deprecated"}) : null),
          el("td", {text: p["in"]}),
          el("td", null, typeOf(p.schema)),
          el("td", {cls: "muted", text: constraints(p.schema)}),
          el("td", null, prose(p.description, "span")));
      })));
  }

  function exampleBody(schema, spec) {
    var body = {};
    (schema.required || []).forEach(function (name) {
      var p = (schema.properties || {})[name] || {};
      if (p.$ref) { p = resolve(spec, p.$ref); }
      body[name] = p.enum ? p.enum[0] : p.type === "integer" || p.type === "number" ? 1 :
        p.type === "boolean" ? false : p.type === "object" ? {} : p.type === "array" ? [] : "…";
    });
    return body;
  }
  function resolve(spec, ref) { return spec.components.schemas[refName(ref)] || {}; }

  function curl(method, path, op, spec) {
    var line = "curl";
    if (method !== "get") { line += " -X " + method.toUpperCase(); }
    line += " \"$MADRE_URL" + path + "\"";
    if (!op.security || op.security.length) { line += " \\\n  -H \"X-VX11-Token: $VX11_TOKEN\""; }
    var content = op.requestBody && op.requestBody.content["application/json"];
    if (content) {
      var body = exampleBody(resolve(spec, content.schema.$ref), spec);
      line += " \\\n  -H \"Content-Type: application/json\" -d '" + JSON.stringify(body) + "'";
    }
    return el("pre", {text: line});
  }

  function operation(method, path, op, spec) {
    var open = op.security && op.security.length === 0;
    var section = el("section", {cls: "op", id: "op-" + (op.operationId || method + path)},
      el("div", {cls: "op-head"},
        el("span", {cls: "method " + method, text: method.toUpperCase()}),
        el("span", {cls: "path", text: path}),
        el("span", {cls: open ? "badge" : "badge lock",
                    text: open ? "open: no token" : "needs X-VX11-Token"}),
        op.deprecated ? el("span", {cls: "badge deprecated", text: "deprecated"}) : null),
      el("h3", {text: op.summary || ""}),
      paragraphs(op.description));
    if (op.parameters && op.parameters.length) {
      add(section, [el("h4", {text: "Parameters"}), paramsTable(op.parameters)]);
    }
    if (op.requestBody) {
      var media = op.requestBody.content["application/json"];
      var name = refName(media.schema.$ref);
      add(section, [
        el("h4", {text: "Request body"}),
        el("p", null, el("code", {text: "application/json"}), " ", schemaLink(name),
           op.requestBody.required ? " (required)" : " (optional)"),
        propertiesTable(resolve(spec, media.schema.$ref))]);
    }
    var responses = op.responses || {};
    add(section, [el("h4", {text: "Responses"}), el("table", null,
      el("thead", null, el("tr", null, el("th", {text: "status"}), el("th", {text: "body"}),
        el("th", {text: "description"}))),
      el("tbody", null, Object.keys(responses).map(function (code) {
        var r = responses[code];
        var m = r.content && r.content["application/json"];
        var other = r.content && !m ? Object.keys(r.content).join(", ") : "";
        return el("tr", null,
          el("td", {cls: "name", text: code}),
          el("td", null, m ? typeOf(m.schema) : el("code", {text: other}),
             m && m.example
               ? el("div", null, el("code", {text: JSON.stringify(m.example)})) : null),
          el("td", null, prose(r.description, "span")));
      })))]);
    add(section, [el("h4", {text: "Try it"}), curl(method, path, op, spec)]);
    return section;
  }

  function schema(name, s) {
    var section = el("section", {cls: "schema", id: "schema-" + name},
      el("h3", {cls: "mono", text: name}),
      s.description ? paragraphs(s.description) : null);
    if (s.enum) {
      add(section, el("p", null, typeOf(s)));
    } else if (s.properties) {
      add(section, propertiesTable(s));
    } else {
      add(section, el("p", null, typeOf(s)));
    }
    return section;
  }

  function render(spec) {
    var info = spec.info || {};
    document.title = (info.title || "API") + " " + (info.version || "") + " — API";
    var header = el("header", null,
      el("h1", null, info.title || "API", el("span", {
        cls: "version", text: "v" + (info.version || "?") + " · OpenAPI " + spec.openapi})),
      info.summary ? prose(info.summary) : null,
      paragraphs(info.description),
      el("p", null, "The document: ", el("a", {href: "openapi.json", text: "openapi.json"}),
         ". In the curl lines, set ", el("code", {text: "MADRE_URL"}), " and ",
         el("code", {text: "VX11_TOKEN"}), "."));
    var nav = el("nav");
    var content = el("div", {id: "content"});
    var methods = ["get", "post", "put", "patch", "delete"];
    var tags = (spec.tags || []).map(function (t) { return t.name; });
    var byTag = {};
    Object.keys(spec.paths || {}).forEach(function (path) {
      methods.forEach(function (m) {
        var op = spec.paths[path][m];
        if (!op) { return; }
        var tag = (op.tags && op.tags[0]) || "other";
        if (tags.indexOf(tag) < 0) { tags.push(tag); }
        (byTag[tag] = byTag[tag] || []).push([m, path, op]);
      });
    });
    tags.forEach(function (tag) {
      if (!byTag[tag]) { return; }
      var meta = (spec.tags || []).filter(function (t) { return t.name === tag; })[0] || {};
      add(nav, el("h2", {text: tag}));
      add(content, el("h2", {cls: "group", text: tag}));
      if (meta.description) { add(content, prose(meta.description)); }
      byTag[tag].forEach(function (entry) {
        var section = operation(entry[0], entry[1], entry[2], spec);
        add(content, section);
        add(nav, el("a", {href: "#" + section.id, title: entry[2].summary || ""},
          el("span", {cls: "mono", text: entry[0].toUpperCase() + " "}), breakable(entry[1])));
      });
    });
    var schemas = (spec.components && spec.components.schemas) || {};
    add(nav, el("h2", {text: "schemas"}));
    add(content, el("h2", {cls: "group", text: "schemas"}));
    Object.keys(schemas).sort().forEach(function (name) {
      add(nav, el("a", {href: "#schema-" + name, text: name}));
      add(content, schema(name, schemas[name]));
    });
    statusBox.remove();
    document.body.appendChild(header);
    document.body.appendChild(el("main", null, nav, content));
    if (location.hash) {
      var target = document.getElementById(location.hash.slice(1));
      if (target) { target.scrollIntoView(); }
    }
  }

  fetch("openapi.json", {headers: {Accept: "application/json"}})
    .then(function (resp) {
      if (!resp.ok) { throw new Error("GET openapi.json answered HTTP " + resp.status); }
      return resp.json();
    })
    .then(render)
    .catch(function (err) {
      statusBox.className = "error";
      statusBox.textContent = "Could not load the API document: " + err.message;
    });
})();
"""


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


DOCS_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Madre — API</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body>
<div id="status">Loading the API document (openapi.json)…</div>
<noscript><p>This page needs JavaScript to render the document;
the document itself is at <a href="openapi.json">openapi.json</a>.</p></noscript>
<script>{SCRIPT}</script>
</body>
</html>
"""

DOCS_CSP = "; ".join([
    "default-src 'none'",
    "connect-src 'self'",
    f"script-src {_csp_hash(SCRIPT)}",
    f"style-src {_csp_hash(STYLE)}",
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])
"""Nothing but this page's own style and script, and fetches to this server."""
