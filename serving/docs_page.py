"""The /docs page: a plain HTML rendering of the OpenAPI document, no scripts, no CDN."""

from __future__ import annotations

import html
import json

EXAMPLE_LISTING = {
    "make": "Volkswagen",
    "model": "Golf",
    "fuel": "Gasoline",
    "gear": "Manual",
    "offer_type": "Used",
    "mileage": 60000,
    "hp": 116,
    "year": 2018,
}
EXAMPLE = {"listings": [{**EXAMPLE_LISTING, "listing_price": 14990}]}


def page(doc: dict) -> str:
    """Render the document as a plain page: operations, then every schema's fields."""
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(doc['info']['title'])}"
        "</title><style>body{font:15px/1.4 sans-serif;max-width:60em;margin:2em auto}"
        "td,th{border-bottom:1px solid #ddd;padding:.2em .6em;text-align:left}"
        "code,pre{background:#f4f4f4}</style></head><body>",
        f"<h1>{e(doc['info']['title'])}</h1><p>{e(doc['info']['description'])} "
        "Machine-readable: <a href='/openapi.json'>/openapi.json</a>.</p><h2>Operations</h2>"
        "<table><tr><th>method</th><th>path</th><th>summary</th><th>answers</th></tr>",
    ]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = ", ".join(op["responses"])
            parts.append(
                f"<tr><td>{method.upper()}</td><td><code>{e(path)}</code></td>"
                f"<td>{e(op['summary'])}</td><td>{codes}</td></tr>"
            )
    parts.append(
        "</table><h2>Example</h2><pre>curl -s localhost:8000/v1/estimates "
        "-H 'Content-Type: application/json' -d '"
        f"{e(json.dumps(EXAMPLE))}'</pre><h2>Schemas</h2>"
    )
    for name, schema in doc["components"]["schemas"].items():
        parts.append(f"<h3>{e(name)}</h3><table><tr><th>field</th><th>schema</th></tr>")
        required = set(schema.get("required", ()))
        for field, spec in schema.get("properties", {}).items():
            mark = " (required)" if field in required else ""
            parts.append(
                f"<tr><td><code>{e(field)}</code>{mark}</td>"
                f"<td><code>{e(json.dumps(spec))}</code></td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
