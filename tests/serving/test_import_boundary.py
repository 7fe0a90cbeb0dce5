"""The service imports only what its container installs."""

from __future__ import annotations

import json
import subprocess
import sys

from carprice.config import PROJECT_ROOT

FORBIDDEN = ("pandas", "pandera", "sklearn", "mlflow", "yaml")  # scipy comes with lightgbm

# lightgbm imports pandas and scikit-learn when they happen to be installed (they are not in the
# container). The probe makes them uninstallable, as in the container: any import of them, by
# our code or not, fails, and the app must still start and answer.
PROBE = """
import importlib.abc, json, sys
FORBIDDEN = {forbidden!r}
attempts = []
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Block())
from serving.app import create_app
app = create_app({{"BUNDLE": {bundle!r}, "CARPRICE_HOME": {home!r}}})
listing = {{"make": "Volkswagen", "model": "Golf", "fuel": "Gasoline", "gear": "Manual",
           "offer_type": "Used", "mileage": 60000, "hp": 116, "year": 2018}}
answer = app.test_client().post("/v1/estimates", json={{"listings": [listing]}})
loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
print(json.dumps({{"status": answer.status_code, "loaded": loaded, "attempts": attempts}}))
"""


def test_the_app_starts_and_answers_without_pandas_sklearn_or_mlflow(bundle_dir, tmp_path):
    code = PROBE.format(forbidden=FORBIDDEN, bundle=str(bundle_dir), home=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
            "CARPRICE_DB_URL": "",
        },
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 200
    assert report["loaded"] == []
    # Only lightgbm's optional probes may have asked for them.
    assert {name.split(".")[0] for name in report["attempts"]} <= {"pandas", "sklearn"}


# The store setup Job runs the store commands from the service image (deploy/k8s/store).
STORE_PROBE = """
import importlib.abc, runpy, sys
FORBIDDEN = {forbidden!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Block())
sys.argv = ["carprice.cli.store", "upgrade"]
runpy.run_module("carprice.cli.store", run_name="__main__")
"""


def test_the_store_commands_run_without_the_tooling_the_image_lacks(tmp_path):
    tooling = (*FORBIDDEN, "tqdm", "jsonschema", "statsmodels", "scipy", "lightgbm", "numpy")
    result = subprocess.run(
        [sys.executable, "-c", STORE_PROBE.format(forbidden=tooling)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "CARPRICE_DB_URL": f"sqlite:///{tmp_path / 'store.db'}"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("-> 0004")
