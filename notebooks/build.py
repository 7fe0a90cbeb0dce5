"""Write the notebooks from their cell sources (outputs stay out of git).

    .venv/bin/python notebooks/build.py

The .ipynb files are generated from this file so that their code is reviewed as code; edit the
cells here and rebuild. The test suite executes every notebook.
"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent

SETUP = """\
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from carprice.config import PROJECT_ROOT, Paths, load_params

pd.set_option("display.width", 120)


def from_root(value: str) -> Path:
    \"\"\"A path from the environment; a relative one is taken from the project root.\"\"\"
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


# State and data are found from the project root, whatever the kernel's working directory.
os.environ["CARPRICE_HOME"] = str(from_root(os.environ.get("CARPRICE_HOME", "var")))
paths = Paths.from_env(PROJECT_ROOT)
params = load_params(PROJECT_ROOT / "params.yaml")
ROWS = int(os.environ.get("CARPRICE_NB_ROWS", "30000"))
print(f"project root {PROJECT_ROOT}, CARPRICE_HOME {paths.home}")"""

SOURCE = """\
from carprice.monitor.stage import champion_snapshot

# CARPRICE_LISTINGS when set, else the listings the champion was trained on, else the simulator.
if os.environ.get("CARPRICE_LISTINGS"):
    LISTINGS = from_root(os.environ["CARPRICE_LISTINGS"])
    SOURCE = f"the listings in {LISTINGS} (CARPRICE_LISTINGS)"
else:
    version, LISTINGS, note = champion_snapshot(paths)
    SOURCE = (
        f"the champion's ({version}) {note}"
        if LISTINGS
        else f"{ROWS:,} listings from the market simulator ({note})"
    )
print("data:", SOURCE)"""

LOAD = """\
import datetime as dt

from carprice.data.ingest import read_listings
from carprice.data.rules import ValidationRules, validate
from carprice.simulator.market import generate_listings

if LISTINGS:
    raw, _ = read_listings(LISTINGS)
else:
    raw = generate_listings(ROWS, seed=1, when=dt.date(2026, 6, 1))
    raw = raw.drop(columns=["listing_id", "listed_at"])
result = validate(raw, ValidationRules.from_params(params["validation"]))
clean = result.clean
print(f"{len(raw):,} rows: {len(clean):,} clean, {len(result.quarantine):,} quarantined")"""

EXPLORE = [
    "# Exploring the listings\n\nData quality, distributions and depreciation. Runs on the "
    "listings the champion was trained on when there is one, else on the market simulator; "
    "`CARPRICE_LISTINGS` names other listings (see notebooks/README.md). The first cells print "
    "which.",
    SETUP,
    SOURCE,
    LOAD,
    "## Data quality: why rows were quarantined",
    "pd.Series(result.reason_counts).sort_values(ascending=False).plot.barh(figsize=(6, 4))\n"
    "plt.title('quarantined rows per reason'); plt.show()",
    "## Distributions of clean rows",
    "fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))\n"
    "clean['price'].clip(upper=80_000).hist(bins=60, ax=axes[0])\n"
    "axes[0].set_title('price (EUR)')\n"
    "(clean['mileage'] / 1000).hist(bins=60, ax=axes[1]); axes[1].set_title('mileage (1,000 km)')\n"
    "clean['hp'].clip(upper=400).hist(bins=60, ax=axes[2]); axes[2].set_title('hp')\n"
    "plt.show()",
    "clean['make'].value_counts().head(15)",
    "## Depreciation curves: median price by age for the largest makes",
    "ref = clean['year'].max()\n"
    "top = clean['make'].value_counts().index[:6]\n"
    "curves = (clean[clean['make'].isin(top)].assign(age=lambda d: ref - d['year'])\n"
    "          .groupby(['age', 'make'])['price'].median().unstack())\n"
    "curves.plot(logy=True, marker='o', figsize=(7, 4))\n"
    "plt.ylabel('median price (EUR)'); plt.show()\n"
    "curves.round(0)",
]

DIAGNOSTICS = [
    "# Model diagnostics\n\nErrors by segment, interval coverage, feature importance and the "
    "champion vs challenger comparison. Trains a quick model on the same data as the "
    "exploration notebook (the champion's listings, else the simulator; a few hundred rounds, "
    "where the pipeline uses params.yaml as is).",
    SETUP,
    SOURCE,
    LOAD,
    "import dataclasses\n\n"
    "from carprice.runtime.bundle import write_bundle, load_bundle\n"
    "from carprice.model.evaluate import evaluate\n"
    "from carprice.runtime.predictor import Predictor\n"
    "from carprice.data.sufficiency import sufficiency\n"
    "from carprice.model.calibration import supported_keys\n"
    "from carprice.model.train import TEST, TRAIN, TrainParams, split_of, train\n\n"
    "tp = TrainParams.from_params(params['train'])\n"
    "tp = dataclasses.replace(tp, num_boost_round=300, quantile_boost_round=150,\n"
    "                         lgb={**tp.lgb, 'learning_rate': 0.08})\n"
    "split = split_of(clean, tp.test_share, tp.calibration_share)\n"
    "model = train(clean, split, tp)\n"
    "table = sufficiency(clean, result.quarantine, params['gate1']['min_rows_per_model'])\n"
    "import tempfile\n"
    "bundle_dir = Path(tempfile.mkdtemp()) / 'bundle'\n"
    "write_bundle(bundle_dir, boosters=model.boosters, spec=model.spec,\n"
    "             supported=[tuple(k.split('|', 1)) for k in supported_keys(table)],\n"
    "             interval=model.interval, metadata={'model_version': 'notebook'})\n"
    "challenger = Predictor(load_bundle(bundle_dir))\n"
    "ev = evaluate(challenger, None, clean[split == TRAIN], clean[split == TEST])\n"
    "pd.Series(ev.metrics)",
    "## Errors and bias by segment",
    "from carprice.model.report import ordered_segments\n\n"
    "# segments below gate 2's min_segment_rows are listed, not judged (and not plotted)\n"
    "seg = ordered_segments(ev.segments, params['gate2']['min_segment_rows'])\n"
    "judged = seg[seg['judged']]\n"
    "judged.set_index(judged['segment'] + '=' + judged['value'].astype(str))['bias']"
    ".plot.barh(figsize=(6, 6))\n"
    "plt.xlabel('median signed error'); plt.show()\n"
    "seg.sort_values('mape', ascending=False).head(15)",
    "## Interval coverage by estimated price",
    "s = ev.scored[ev.scored['ok']]\n"
    "inside = (s['price'] >= s['low']) & (s['price'] <= s['high'])\n"
    "inside.groupby(pd.qcut(s['pred'], 5)).mean().plot.bar(figsize=(6, 3))\n"
    "plt.axhline(0.8, color='red'); plt.ylabel('coverage'); plt.show()",
    "## Feature importance (gain)",
    "pd.Series(model.point.feature_importance('gain'), index=model.spec.features)"
    ".sort_values().plot.barh(figsize=(6, 4)); plt.show()",
    "## Champion vs challenger\n\nThe registry's champion, when there is one, scored on the same "
    "held-out rows.",
    "from carprice.model import registry\n\n"
    "champ = None\n"
    "if (paths.home / 'mlflow.db').exists():\n"
    "    registry.configure(paths)\n"
    "    champ = registry.by_alias(registry.CHAMPION, paths.home / 'registry-cache')\n"
    "if champ is None:\n"
    "    print('no champion in the registry yet')\n"
    "else:\n"
    "    both = evaluate(challenger, Predictor(load_bundle(champ.path)), clean[split == TRAIN],\n"
    "                    clean[split == TEST])\n"
    "    print(pd.DataFrame(both.champion))",
]

MONITORING = [
    "# Monitoring: drift and realised error from the store\n\nReads the prediction log and "
    "feedback under `CARPRICE_HOME`. With an empty store it first replays two simulated weeks "
    "(the second with a price shock) over HTTP through a local `carprice serve --local` into a "
    "temporary store, so the views have something to show. The cells print which store they "
    "read.",
    SETUP,
    "import tempfile\n\n"
    "from carprice.monitor.drift import empty_reference\n"
    "from carprice.monitor.stage import champion_reference\n"
    "from carprice.monitor.verdict import MonitorThresholds\n"
    "from carprice.monitor.views import monitor_store, realised\n"
    "from carprice.runtime.logqueries.monitor import window\n"
    "from carprice.runtime.store import Store, default_url\n\n"
    "store = Store(default_url(paths.home)); store.create()\n"
    "print(f\"{window(store, None)['estimates']:,} logged estimates in {paths.home}\")",
    "reference = None\n"
    "if not window(store, None)['estimates']:\n"
    "    from carprice.simulator.demo import replay_demo_store\n"
    "    replayed = Path(tempfile.mkdtemp())\n"
    "    store, reference = replay_demo_store(replayed, rows=min(ROWS, 8000))\n"
    "    print(f'the log is empty: reading two simulated weeks replayed into {replayed}')\n"
    "window(store, None)",
    "thresholds = MonitorThresholds.from_params(params['monitor'])\n"
    "if reference is None:\n"
    "    _, reference, note = champion_reference(paths)\n"
    "result = monitor_store(store, reference if reference is not None else empty_reference(),\n"
    "                       thresholds)\n"
    "print('retrain recommended' if result.retrain else 'no retrain needed')\n"
    "for reason in result.reasons:\n"
    "    print(' -', reason)",
    "## Input drift (PSI against the training data)",
    "result.drift.set_index('feature')['psi'].plot.barh(figsize=(6, 3))\n"
    "plt.axvline(thresholds.psi_alert, color='red'); plt.xlabel('PSI'); plt.show()\n"
    "result.drift",
    "## Realised error on sold prices, per model version and segment",
    "result.realised",
    "result.segments.sort_values('mape', ascending=False).head(10)",
    "## Realised error over time (by the day of the estimate)",
    "daily = realised(store, 'day', None).set_index('day')\n"
    "if not daily.empty:\n"
    "    daily['bias'].plot(marker='o', figsize=(6, 3))\n"
    "    plt.ylabel('median signed error vs sold price'); plt.show()",
]


NOTEBOOKS = {
    "1.0-explore-listings.ipynb": EXPLORE,
    "2.0-model-diagnostics.ipynb": DIAGNOSTICS,
    "3.0-monitoring.ipynb": MONITORING,
}


def notebook(cells: list[str]) -> nbf.NotebookNode:
    """Return a notebook (no outputs) of markdown cells (starting with #) and code cells."""
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbf.v4.new_markdown_cell(c) if c.startswith("#") else nbf.v4.new_code_cell(c) for c in cells
    ]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: rebuilding changes nothing unless a cell does
    return nb


if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        nbf.write(notebook(cells), HERE / name)
