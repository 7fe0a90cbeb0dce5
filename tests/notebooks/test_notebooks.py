"""Every notebook runs top to bottom (on the simulator), and is committed without outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from carprice.config import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
pytestmark = pytest.mark.slow


def test_there_are_notebooks_for_exploration_diagnostics_and_monitoring():
    names = [p.name for p in NOTEBOOKS]
    assert names == [
        "1.0-explore-listings.ipynb",
        "2.0-model-diagnostics.ipynb",
        "3.0-monitoring.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_is_stripped_of_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_executes(path: Path, tmp_path, monkeypatch):
    monkeypatch.setenv("CARPRICE_HOME", str(tmp_path / "home"))  # an empty store and registry
    monkeypatch.setenv("CARPRICE_NB_ROWS", "8000")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("CARPRICE_LISTINGS", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=dict(os.environ))
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
