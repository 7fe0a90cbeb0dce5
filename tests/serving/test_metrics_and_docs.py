"""Prometheus metrics, the OpenAPI document and the docs page."""

from __future__ import annotations

import re

import pytest

from tests.serving.conftest import golf


def _value(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in metrics")


def test_metrics_count_requests_estimates_and_prices(client):
    client.post("/v1/estimates", json={"listings": [golf(), golf(model="Phaeton Concept")]})
    client.post("/v1/estimates", json={"listings": [golf(mileage=-1)]})
    text = client.get("/metrics").get_data(as_text=True)
    assert _value(text, "carprice_http_requests_total", route="/v1/estimates", status="200") == 1
    assert _value(text, "carprice_http_requests_total", route="/v1/estimates", status="422") == 1
    assert (
        _value(
            text,
            "carprice_http_request_duration_seconds_count",
            route="/v1/estimates",
            status="422",
        )
        == 1
    )
    assert _value(text, "carprice_estimates_total", status="ok") == 1
    assert _value(text, "carprice_estimates_total", status="unsupported") == 1
    assert _value(text, "carprice_predicted_price_euros_count") == 1
    assert _value(text, "carprice_model_info", role="champion", version="test-1") == 1


def test_unknown_paths_share_one_route_label(client):
    client.get("/a"), client.get("/b")
    text = client.get("/metrics").get_data(as_text=True)
    assert _value(text, "carprice_http_requests_total", route="unmatched", status="404") == 2


def test_the_openapi_document_describes_the_api(client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    assert {"/v1/estimates", "/v1/feedback", "/v1/model", "/healthz", "/readyz", "/metrics"} <= set(
        doc["paths"]
    )
    listing = doc["components"]["schemas"]["Listing"]
    assert listing["additionalProperties"] is False
    assert set(listing["properties"]) == set(golf()) | {"listing_price", "listing_key", "listed_at"}
    assert set(listing["required"]) == set(golf())
    assert (
        doc["components"]["schemas"]["EstimateRequest"]["properties"]["listings"]["maxItems"]
        == 1000
    )


def test_the_docs_page_renders_the_published_document_with_the_services_own_files(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert '"url": "/openapi.json"' in text
    for ref in re.findall(r"(?:src|href)='([^']+)'", text):
        assert ref.startswith("/"), ref  # nothing from another host
        assert client.get(ref).status_code == 200, ref


def test_a_batch_is_counted_as_if_observed_one_by_one():
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from serving.metrics import PRICE_BUCKETS, observe_many

    amounts = [500.0, 1000.0, 1000.5, 7500.0, 12_345.6, 250_000.0, *range(2000, 60000, 997)]
    registries = CollectorRegistry(), CollectorRegistry()
    bulk, single = (Histogram("p", "p", buckets=PRICE_BUCKETS, registry=r) for r in registries)
    observe_many(bulk, amounts)
    for amount in amounts:
        single.observe(amount)

    def buckets(registry) -> list[str]:
        text = generate_latest(registry).decode()
        return [line for line in text.splitlines() if "_bucket" in line or "_count" in line]

    assert buckets(registries[0]) == buckets(registries[1])
    assert bulk._sum.get() == pytest.approx(sum(amounts))
