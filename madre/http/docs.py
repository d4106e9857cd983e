"""`GET /docs`: one self-contained HTML page that fetches `/openapi.json` and renders it.

No CDN and no vendored bundle: the machines Madre runs on may have no internet, and the
renderer shipped on PyPI (swagger-ui-bundle, Swagger UI 4) cannot read OpenAPI 3.1. The page
lists every operation (method, path, whether it needs the token, parameters, request body,
responses with their error codes, a curl line) and every schema (properties, types,
constraints), built with DOM calls only: text from the document is never parsed as HTML.

Its markup, style and script are files beside this module (`static/docs.*`), put together
once into one page: the style and script are inline, allowed by their hashes in the page's
Content-Security-Policy, which forbids loading anything from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources


def _asset(name: str) -> str:
    return resources.files("madre.http").joinpath("static", name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def docs_page() -> tuple[str, str]:
    """The page's HTML and its Content-Security-Policy: nothing but its own style and
    script, and fetches to this server."""
    style, script = _asset("docs.css"), _asset("docs.js")
    html = _asset("docs.html").replace("{style}", style).replace("{script}", script)
    policy = "; ".join([
        "default-src 'none'",
        "connect-src 'self'",
        f"script-src {_csp_hash(script)}",
        f"style-src {_csp_hash(style)}",
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])
    return html, policy
