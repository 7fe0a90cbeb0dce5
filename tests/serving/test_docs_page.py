"""The /docs page: Swagger UI from the service's own files, rendered by a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from carprice.runtime import pointer

BROWSER = "chromium"  # Debian package: chromium
REQUIRE_BROWSER = "CARPRICE_REQUIRE_BROWSER"
REQUESTS = "carprice_http_requests_total{"
ESTIMATES_BLOCK = re.compile(r'<div class="opblock opblock-post[^"]*"[^>]*>(.*?)</button>', re.S)


def test_the_curl_example_names_the_host_and_port_the_page_was_asked_on(client):
    text = client.get("/docs", base_url="http://prices.example:9123").get_data(as_text=True)
    assert "curl -s http://prices.example:9123/v1/estimates" in text
    assert "localhost:8000" not in text
    assert re.search(r"\.start pre\{[^}]*white-space:pre-wrap", text)  # it wraps


@pytest.mark.parametrize(
    ("name", "mimetype"),
    [("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css")],
)
def test_the_swagger_ui_files_are_served_by_the_service(client, name, mimetype):
    response = client.get(f"/docs/static/{name}")
    assert response.status_code == 200 and response.mimetype == mimetype
    assert len(response.data) > 10_000
    assert "max-age" in response.headers["Cache-Control"]


@pytest.mark.parametrize(
    "name",
    [
        "nope.js",
        "../__init__.py",
        "..%2f__init__.py",
        "%2e%2e/flask_swagger_ui.py",
        "dist/swagger-ui.css",
        "/etc/passwd",
        "..",
    ],
)
def test_only_files_of_the_swagger_ui_folder_are_served(client, name):
    response = client.get(f"/docs/static/{name}", follow_redirects=True)  # `//` is merged
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def _browser() -> str:
    path = shutil.which(BROWSER)
    if path is None:
        reason = f"{BROWSER} is not installed (Debian: apt-get install chromium)"
        if os.environ.get(REQUIRE_BROWSER):
            pytest.fail(f"{reason}, and {REQUIRE_BROWSER} is set")
        pytest.skip(reason)
    return path


def _dump_dom(browser: str, url: str, profile) -> str:
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_a_headless_browser_renders_the_estimates_operation_with_its_examples(
    make_bundle, tmp_path
):
    from tests.serving.test_gunicorn import Server

    browser = _browser()
    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("docs-1"))
    server = Server(home, tmp_path / "gunicorn.log")
    try:
        server.wait_ready()
        status, shell = server.call("GET", "/docs")
        assert status == 200 and "opblock" not in shell  # only the browser renders operations
        url = f"http://127.0.0.1:{server.port}/docs#/default/post_v1_estimates"
        dom = _dump_dom(browser, url, tmp_path / "profile")
        _, metrics = server.call("GET", "/metrics")
    finally:
        server.stop()
    blocks = ESTIMATES_BLOCK.findall(dom)
    assert any('data-path="/v1/estimates"' in block for block in blocks), dom[-3000:]
    assert "One listing with its asking price" in dom  # the request example, opened by the link
    served = [line for line in metrics.splitlines() if line.startswith(REQUESTS)]
    for route in ("/openapi.json", "/docs/static/<path:name>"):  # fetched from the service
        assert any(f'route="{route}"' in s and 'status="200"' in s for s in served), route


def test_the_page_sends_a_content_security_policy_that_allows_its_one_inline_script(client):
    import base64
    import hashlib

    response = client.get("/docs")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = dict(
        (d.split(" ", 1) + [""])[:2]
        for d in response.headers["Content-Security-Policy"].split("; ")
    )
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self'" and policy["base-uri"] == "'none'"
    inline = re.findall(r"<script>(.*?)</script>", response.get_data(as_text=True), re.S)
    assert len(inline) == 1  # every other script is a file of this origin
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert policy["script-src"].split() == ["'self'", f"'sha256-{digest}'"]
    assert "unsafe" not in policy["script-src"] and "http" not in policy["script-src"]
    asset = client.get("/docs/static/swagger-ui-bundle.js")
    assert asset.headers["X-Content-Type-Options"] == "nosniff"
