"""The registered model as an MLflow pyfunc: a bundle priced by the service's own predictor.

`mlflow.pyfunc.load_model("models:/carprice@champion")` and `mlflow models serve` take a
DataFrame of API listings (the listing contract's API fields, snake_case) and return one row per
listing with status, price, price_low, price_high and reason: the numbers `POST /v1/estimates`
answers, from the same `carprice.runtime` predictor. A listing the API would
refuse (a field outside the listing contract) gets status `invalid` and the field in its reason.

The model is logged "from code" (nothing pickled): an entry script naming `BundleModel`, the
bundle as the artifact `bundle`, and the package's runtime district as code.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from carprice.runtime import listing as contract
from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor

ARTIFACT_PATH = "model"  # name of the logged model
BUNDLE_KEY = "bundle"  # the bundle's folder inside the logged model: artifacts/bundle
OUTPUT_COLUMNS = ("status", "price", "price_low", "price_high", "reason")
INVALID = "invalid"
_REQUIREMENTS = ("mlflow", "lightgbm", "numpy", "pandas")
_ENTRY = (
    '"""MLflow entry point of the carprice model (models from code: nothing is pickled)."""\n'
    "from mlflow.models import set_model\n\n"
    "from carprice.model.pyfunc import BundleModel\n\n"
    "set_model(BundleModel())\n"
)
SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec("long" if f.numeric else "string", f.key, required=f.required)
            for f in contract.API
        ]
    ),
    outputs=Schema(
        [ColSpec("string", "status")]
        + [ColSpec("double", name, required=False) for name in OUTPUT_COLUMNS[1:4]]
        + [ColSpec("string", "reason", required=False)]
    ),
)


class BundleModel(mlflow.pyfunc.PythonModel):
    """Price listings with the bundle logged beside this code."""

    def load_context(self, context) -> None:
        self.predictor = Predictor(load_bundle(Path(context.artifacts[BUNDLE_KEY])))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return estimate_frame(self.predictor, pd.DataFrame(model_input))


def listing_problem(row: dict, year_max: int) -> str | None:
    """Return why a listing breaks the listing contract, as `field: message`, or None.

    The messages are the API's (`carprice.runtime.listing.Field.problem`).
    """
    for f in contract.API:
        value = _native(row.get(f.key))
        if contract.is_missing(value):
            if f.required:
                return f"{f.key}: is required"
            continue
        problem = f.problem(value, year_max)
        if problem is not None:
            return f"{f.key}: {problem}"
    return None


def estimate_frame(predictor: Predictor, frame: pd.DataFrame) -> pd.DataFrame:
    """Return the predictor's estimates for a DataFrame of API listings, one row each."""
    rows = frame.to_dict("records")
    year_max = contract.year_max()
    problems = [listing_problem(row, year_max) for row in rows]
    valid = [i for i, problem in enumerate(problems) if problem is None]
    listings = [
        {f.name: _value(rows[i].get(f.key), f.numeric) for f in contract.API} for i in valid
    ]
    out: list[dict] = [
        {"status": INVALID, "price": None, "price_low": None, "price_high": None, "reason": p}
        for p in problems
    ]
    for i, estimate in zip(valid, predictor.estimate(listings) if listings else [], strict=True):
        out[i] = {name: estimate.get(name) for name in OUTPUT_COLUMNS}
    # Object columns keep None for "no price" (JSON null over HTTP, as the API answers), not NaN.
    return pd.DataFrame(out, columns=list(OUTPUT_COLUMNS), dtype=object)


def _native(value):
    """Return a numpy scalar as the Python value it holds."""
    return value.item() if hasattr(value, "item") and not isinstance(value, str) else value


def _value(value, numeric: bool):
    """Return a valid cell as the predictor takes it: None when absent, integers as int."""
    value = _native(value)
    if contract.is_missing(value):
        return None
    return int(value) if numeric else value


def input_example(predictor: Predictor) -> pd.DataFrame:
    """Two listings: a car model the bundle prices and one it does not."""
    keys = sorted(predictor.bundle.supported) or [
        contract.model_key(contract.EXAMPLE["make"], contract.EXAMPLE["model"])
    ]
    make, model = contract.split_model_key(keys[0])
    return pd.DataFrame(
        [
            {**contract.EXAMPLE, "make": make, "model": model},
            {**contract.EXAMPLE, "make": "Trabant", "model": "601"},
        ],
        columns=list(contract.API_FIELDS),
    )


def _stage_code(folder: Path) -> Path:
    """Copy what the model needs to load into `folder/carprice`: the runtime and this module."""
    package = Path(__file__).resolve().parents[1]
    target = folder / "carprice"
    shutil.copytree(package / "runtime", target / "runtime", ignore=_not_python)
    (target / "model").mkdir()
    for source, dest in (
        (package / "__init__.py", target / "__init__.py"),
        (package / "model" / "__init__.py", target / "model" / "__init__.py"),
        (Path(__file__).resolve(), target / "model" / "pyfunc.py"),
    ):
        shutil.copy2(source, dest)
    return target


def _not_python(folder: str, names: list[str]) -> list[str]:
    return [
        n
        for n in names
        if n == "__pycache__" or (not n.endswith(".py") and not Path(folder, n).is_dir())
    ]


@contextlib.contextmanager
def _quiet_downloads():
    """No download progress bars while MLflow loads the model back to check the input example."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def log_bundle_model(bundle_dir: Path):
    """Log a bundle as a pyfunc model of the active run; return MLflow's ModelInfo."""
    predictor = Predictor(load_bundle(Path(bundle_dir)))
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in _REQUIREMENTS]
    with tempfile.TemporaryDirectory(prefix="carprice-pyfunc-") as tmp, _quiet_downloads():
        entry = Path(tmp) / "carprice_model.py"
        entry.write_text(_ENTRY, encoding="utf-8")
        return mlflow.pyfunc.log_model(
            name=ARTIFACT_PATH,
            python_model=str(entry),
            artifacts={BUNDLE_KEY: str(bundle_dir)},
            code_paths=[str(_stage_code(Path(tmp) / "code"))],
            signature=SIGNATURE,
            input_example=input_example(predictor),
            pip_requirements=pins,
        )
