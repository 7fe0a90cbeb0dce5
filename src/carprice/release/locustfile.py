"""Realistic traffic for the carprice service (run by `make loadtest`, not collected by pytest).

Three kinds of callers, drawn from the market simulator:
- sellers filling the listing form: one listing with its asking price (most traffic);
- a bulk re-pricing job: 1,000 listings per call (rare, heavy);
- feedback: listing and sold prices posted against prediction ids the sellers received.

    CARPRICE_API_KEY=cp_... locust -f src/carprice/release/locustfile.py --headless \
        -H http://127.0.0.1:8000 -u 8 -r 4 -t 30s
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections import deque

from locust import FastHttpUser, between, events, task

from carprice.simulator.market import generate_listings
from carprice.simulator.replay import api_listing

# The caller's API key (scopes estimate and feedback); `carprice loadtest` sets it.
HEADERS = (
    {"X-API-Key": os.environ["CARPRICE_API_KEY"]} if os.environ.get("CARPRICE_API_KEY") else {}
)
POOL: list[dict] = []
ISSUED: deque[tuple[str, float]] = deque(maxlen=10_000)  # (prediction_id, asking price)


@events.test_start.add_listener
def _load_pool(environment, **_kwargs):
    """Draw the listings once per load-generator process (deterministic seed)."""
    frame = generate_listings(5_000, seed=2024, when=dt.date(2026, 6, 1), dirty=False)
    frame["hp"] = frame["hp"].astype("int64")
    POOL[:] = [api_listing(row) for row in frame.to_dict("records")]


def _check_estimates(response, expected: int) -> list[dict]:
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
        return []
    body = response.json()
    estimates = body.get("estimates", [])
    if len(estimates) != expected or not body.get("model_version"):
        response.failure(f"expected {expected} estimates with a model_version")
        return []
    response.success()
    return estimates


class Seller(FastHttpUser):
    """A seller asking for an estimate of one car, then (sometimes) reporting the sale."""

    weight = 20
    wait_time = between(0.05, 0.2)
    default_headers = HEADERS

    @task(10)
    def estimate(self):
        listing = random.choice(POOL)
        with self.client.post(
            "/v1/estimates", json={"listings": [listing]}, name="estimate (1)", catch_response=True
        ) as response:
            for est in _check_estimates(response, 1):
                if est["status"] == "ok":
                    ISSUED.append((est["prediction_id"], listing["listing_price"]))

    @task(3)
    def feedback(self):
        if not ISSUED:
            return
        prediction_id, asking = ISSUED.popleft()
        body = {
            "prediction_id": prediction_id,
            "listing_price": asking,
            "sold_price": round(asking * random.uniform(0.88, 0.99)),
            "sold_at": dt.date.today().isoformat(),
        }
        with self.client.post(
            "/v1/feedback", json=body, name="feedback", catch_response=True
        ) as response:
            if response.status_code == 202:
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")


class RepricingJob(FastHttpUser):
    """A nightly job re-pricing 1,000 listings per call."""

    fixed_count = 1  # exactly one such job, whatever the number of users
    wait_time = between(1.0, 2.0)
    default_headers = HEADERS

    @task
    def reprice(self):
        batch = random.sample(POOL, 1_000)
        with self.client.post(
            "/v1/estimates", json={"listings": batch}, name="estimate (1,000)", catch_response=True
        ) as response:
            _check_estimates(response, 1_000)
