"""The bad-input catalogue, sent over HTTP to the real gunicorn (tests/serving sends most of it
through the Flask test client; here gunicorn's own parsing and limits are in the path too)."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from carprice.runtime import pointer
from tests.serving.conftest import golf, home_key

pytestmark = pytest.mark.slow
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def server(make_bundle, tmp_path_factory):
    from tests.reliability.conftest import Gunicorn

    home = tmp_path_factory.mktemp("catalogue-home")
    pointer.swap_pointer(home, make_bundle("cat-1"))
    server = Gunicorn(home, home / "gunicorn.log", workers=1)
    try:
        server.wait_ready()
        server.key = home_key(home)  # feedback needs an API key
        yield server
    finally:
        server.stop()


def send(server, path, data: bytes | str, headers=None, method="POST"):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        body = data.encode() if isinstance(data, str) else data
        conn.request(
            method,
            path,
            body=body,
            headers={"Content-Type": "application/json"} if headers is None else headers,
        )
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        assert "Traceback" not in text and 'File "' not in text  # never a stack trace
        kind = response.getheader("Content-Type", "")
        return response.status, kind, json.loads(text) if "json" in kind else text
    finally:
        conn.close()


def fields(answer) -> dict:
    status, kind, body = answer
    assert kind == PROBLEM and body["status"] == status
    return {e["field"]: e["message"] for e in body.get("errors", [])}


def _with(field: str, literal: str, **overrides) -> str:
    item = golf(**overrides)
    text = json.dumps({"listings": [item]})
    return text.replace(f'"{field}": {json.dumps(item[field])}', f'"{field}": {literal}')


@pytest.mark.parametrize(
    ("field", "literal", "words"),
    [
        (field, literal, words)
        for field in ("mileage", "hp", "year", "listing_price")
        for literal, words in (
            ("NaN", "finite"),
            ("Infinity", "finite"),
            ("-Infinity", "finite"),
            ("1e400", "finite"),
            ("1e308", "between" if field == "listing_price" else "between"),
            ("-5", "between"),
            ('"60000"', "number" if field == "listing_price" else "integer"),
            ("[1]", "number" if field == "listing_price" else "integer"),
        )
    ],
)
def test_bad_numbers_are_422_naming_the_field(server, field, literal, words):
    answer = send(server, "/v1/estimates", _with(field, literal, listing_price=15000))
    assert answer[0] == 422
    named = fields(answer)
    assert f"listings[0].{field}" in named and words in named[f"listings[0].{field}"], named


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e308", "-5", '"cheap"', "0"])
def test_bad_feedback_prices_are_422_naming_the_field(server, literal):
    text = json.dumps({"prediction_id": "x", "sold_price": 1}).replace(
        '"sold_price": 1', f'"sold_price": {literal}'
    )
    headers = {"Content-Type": "application/json", "X-API-Key": server.key}
    answer = send(server, "/v1/feedback", text, headers)
    assert answer[0] == 422 and "sold_price" in fields(answer)


def test_a_body_over_the_limit_is_413(server):
    big = '{"listings": [' + ",".join([json.dumps(golf())] * 9000) + "]}"  # ~1.2 MiB
    assert len(big) > 1 << 20
    answer = send(server, "/v1/estimates", big)
    assert answer[0] == 413 and "body" in fields(answer)


def test_a_chunked_body_over_the_limit_is_413(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        head = (
            "POST /v1/estimates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        chunk = b"[" + b" " * (64 << 10)
        try:
            for _ in range(40):  # 2.5 MiB, bounded
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may stop reading once over the limit
        reply = b""
        while (part := sock.recv(65536)) and len(reply) < 1 << 16:
            reply += part
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


def test_a_content_length_over_the_limit_is_refused_before_reading(server):
    answer = send(
        server,
        "/v1/estimates",
        b"{}",
        headers={"Content-Type": "application/json", "Content-Length": "2"},
    )
    assert answer[0] == 422
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("POST", "/v1/estimates")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(1 << 30))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
    finally:
        conn.close()


def test_1001_listings_are_422(server):
    answer = send(server, "/v1/estimates", json.dumps({"listings": [golf()] * 1001}))
    assert answer[0] == 422 and "1001" in fields(answer)["listings"]


def test_an_unknown_make_or_model_is_unsupported_not_an_error(server):
    body = {"listings": [golf(make="Trabant", model="601"), golf(model="Golf XXL"), golf()]}
    status, _, answer = send(server, "/v1/estimates", json.dumps(body))
    assert status == 200
    assert [e["status"] for e in answer["estimates"]] == ["unsupported", "unsupported", "ok"]
    assert "Trabant 601" in answer["estimates"][0]["reason"]


@pytest.mark.parametrize("text", ["{", "", "\u00ff", '{"listings": [1,]}', "[] []"])
def test_invalid_json_is_400(server, text):
    answer = send(server, "/v1/estimates", text.encode("latin-1"))
    assert answer[0] == 400 and "body" in fields(answer)


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_wrong_content_type_is_415(server, kind):
    headers = {"Content-Type": kind} if kind else {}
    answer = send(server, "/v1/estimates", json.dumps({"listings": [golf()]}), headers=headers)
    assert answer[0] == 415 and "Content-Type" in fields(answer)


def test_oversize_headers_are_refused_by_gunicorn(server):
    status, _, _ = send(
        server,
        "/healthz",
        b"",
        headers={"X-Junk": "a" * 9000},
        method="GET",
    )
    assert 400 <= status < 500
    many = {f"X-H{i}": "1" for i in range(60)}
    assert 400 <= send(server, "/healthz", b"", headers=many, method="GET")[0] < 500
    assert send(server, "/healthz", b"", headers={}, method="GET")[0] == 200
