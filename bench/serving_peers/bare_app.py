"""The bare peer: Flask + gunicorn doing only JSON parse, one numpy row and Booster.predict.

No validation, prediction log, store, metrics or interval: the floor the product is compared
with. Serves the point booster of the bundle named by BARE_BUNDLE.

    BARE_BUNDLE=DIR gunicorn -c bench/serving_peers/bare.conf.py \
        --chdir bench/serving_peers 'bare_app:create_app()'
"""

from __future__ import annotations

import os
from pathlib import Path

import lightgbm as lgb
import numpy as np
import orjson
from flask import Flask, Response, request

from carprice.runtime.features import FeatureSpec


def create_app() -> Flask:
    bundle = Path(os.environ["BARE_BUNDLE"])
    booster = lgb.Booster(model_file=str(bundle / "model.txt"))
    spec = FeatureSpec.load(bundle / "feature_spec.json")
    app = Flask(__name__)

    @app.post("/v1/estimates")
    def estimates():
        listings = orjson.loads(request.get_data())["listings"]
        rows = [{**x, "offerType": x.get("offer_type")} for x in listings]
        prices = np.exp(booster.predict(spec.encode_rows(rows), num_threads=1))
        body = {"estimates": [{"price": round(p, 2)} for p in prices.tolist()]}
        return Response(orjson.dumps(body), mimetype="application/json")

    return app
