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
