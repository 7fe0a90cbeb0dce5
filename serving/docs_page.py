"""The /docs page: Swagger UI over /openapi.json, its files served by the service itself.

The Swagger UI distribution comes from the `flask-swagger-ui` package (its `dist` folder, located
without importing the package); no file is fetched from anywhere else. The page's
Content-Security-Policy says so to the browser: scripts, styles, images and calls from this origin
only, the one inline script by its hash, no plugins, frames or foreign forms; every docs answer
is sent with `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import importlib.util
import json
import shlex
from pathlib import Path

from flask import Response, send_file

from serving.examples import ESTIMATE_REQUEST

ASSET_PACKAGE = "flask-swagger-ui"
STATIC = "/docs/static/"
ASSET_MAX_AGE = 86_400  # seconds: the files change only with the pinned package
STYLE = (
    "body{margin:0;font:14px/1.4 sans-serif}"
    ".start{max-width:1460px;margin:0 auto;padding:1em 20px 0;box-sizing:border-box}"
    ".start pre{background:#f4f4f4;padding:.8em;white-space:pre-wrap;overflow-wrap:anywhere}"
)


CONFIG = {
    "url": "/openapi.json",
    "dom_id": "#swagger-ui",
    "deepLinking": True,
    "validatorUrl": None,  # the public validator badge would call out of the service
}
BOOT = f"window.ui = SwaggerUIBundle({json.dumps(CONFIG)});"  # the page's only inline script


def _policy() -> str:
    """The page's Content-Security-Policy. Swagger UI sets style attributes as it renders, hence
    'unsafe-inline' for styles only; it draws some icons as data: images."""
    boot = base64.b64encode(hashlib.sha256(BOOT.encode()).digest()).decode()
    return (
        f"default-src 'none'; script-src 'self' 'sha256-{boot}'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


NOSNIFF = {"X-Content-Type-Options": "nosniff"}
PAGE_HEADERS = {"Content-Security-Policy": _policy(), **NOSNIFF}


@functools.cache
def _assets() -> dict[str, Path]:
    """Return the files of the Swagger UI distribution by name (empty when not installed)."""
    spec = importlib.util.find_spec(ASSET_PACKAGE.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations))) / "dist"
    if not folder.is_dir():
        return {}
    return {p.name: p for p in folder.iterdir() if p.is_file()}


def asset_response(name: str) -> Response | None:
    """Return the asset file called `name`, or None: only files of the distribution's folder."""
    path = _assets().get(name)  # a lookup by name: no path is ever joined from the request
    if path is None:
        return None
    response = send_file(path, max_age=ASSET_MAX_AGE)
    response.headers.update(NOSNIFF)
    return response


def curl_example(base_url: str) -> str:
    """Return a curl command posting the estimate example to the service at `base_url`."""
    body = json.dumps(ESTIMATE_REQUEST)
    return (
        f"curl -s {shlex.quote(base_url.rstrip('/') + '/v1/estimates')} \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'"
    )


def page(title: str, base_url: str) -> str:
    """Return the HTML shell that loads Swagger UI and renders /openapi.json in the browser."""
    e = html.escape
    missing = (
        ""
        if _assets()
        else f"<p><b>Swagger UI is not installed here</b> (package {ASSET_PACKAGE}).</p>"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{e(title)}</title>"
        f"<link rel='stylesheet' href='{STATIC}swagger-ui.css'>"
        f"<link rel='icon' type='image/png' href='{STATIC}favicon-32x32.png'>"
        f"<style>{STYLE}</style></head><body>"
        f"<section class='start'>{missing}<p>Estimate a price from a shell (or open an "
        "operation below and press <b>Try it out</b>):</p>"
        f"<pre class='curl'>{e(curl_example(base_url))}</pre></section>"
        "<div id='swagger-ui'><noscript>The interactive page needs JavaScript; the API is "
        "described in <a href='/openapi.json'>/openapi.json</a>.</noscript></div>"
        f"<script src='{STATIC}swagger-ui-bundle.js'></script>"
        f"<script>{BOOT}</script>"
        "</body></html>"
    )
