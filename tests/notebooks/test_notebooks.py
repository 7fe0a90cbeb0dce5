"""Every notebook runs top to bottom (on the simulator), from the project root and from
notebooks/, finds its state from the project root, shows its plots, and is committed without
outputs."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from carprice.config import PROJECT_ROOT
from carprice.runtime.store import DB_FILE

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
pytestmark = pytest.mark.slow
# A cell that draws: pandas/matplotlib/seaborn plotting calls, or displaying a figure.
PLOTS = re.compile(r"\.plot(\(|\.)|\bplt\.|\bsns\.|\.hist\(|\.imshow\(|display\(\s*fig")


def plotting_cells_without_an_image(nb) -> list[str]:
    """Return the first line of every executed code cell that plots but shows no PNG."""
    missing = []
    for cell in nb.cells:
        if cell.cell_type != "code" or not PLOTS.search(cell.source):
            continue
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        if not images:
            missing.append(cell.source.splitlines()[0])
    return missing


def test_a_plotting_cell_without_an_image_is_caught():
    cells = [
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nx = 1"),
        nbformat.v4.new_code_cell("df.plot.barh(); plt.show()"),
        nbformat.v4.new_code_cell("df['a'].hist(bins=3)"),
    ]
    cells[2].outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "fig"})
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    assert plotting_cells_without_an_image(nb) == ["df.plot.barh(); plt.show()"]


def test_there_are_notebooks_for_exploration_diagnostics_and_monitoring():
    names = [p.name for p in NOTEBOOKS]
    assert names == [
        "1.0-explore-listings.ipynb",
        "2.0-model-diagnostics.ipynb",
        "3.0-monitoring.ipynb",
    ]


def test_the_notebooks_are_what_build_py_writes():
    spec = importlib.util.spec_from_file_location("nb_build", PROJECT_ROOT / "notebooks/build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert sorted(build.NOTEBOOKS) == [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        written = nbformat.writes(build.notebook(build.NOTEBOOKS[path.name])) + "\n"
        assert written == path.read_text(encoding="utf-8"), f"rebuild {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_is_stripped_of_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.parametrize("where", ["root", "notebooks"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_executes(path: Path, where: str, tmp_path, monkeypatch):
    home = tmp_path / "home"
    # Relative to the project root: a notebook resolving it from notebooks/ would miss it.
    monkeypatch.setenv("CARPRICE_HOME", os.path.relpath(home, PROJECT_ROOT))
    monkeypatch.setenv("CARPRICE_NB_ROWS", "3000")
    # The kernel's own default (inline): a module that switched the backend would blank the plots.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.delenv("CARPRICE_LISTINGS", raising=False)
    cwd = PROJECT_ROOT if where == "root" else PROJECT_ROOT / "notebooks"
    strays = set((PROJECT_ROOT / "notebooks").iterdir())
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(env=dict(os.environ))
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    assert plotting_cells_without_an_image(nb) == []
    printed = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert f"CARPRICE_HOME {home.resolve()}" in printed
    if path.stem != "3.0-monitoring":  # no champion in an empty home: the simulator, said so
        assert "data: 3,000 listings from the market simulator (no deployed champion)" in printed
    else:  # the store it reads is the one under CARPRICE_HOME
        assert (home / DB_FILE).is_file()
    assert set((PROJECT_ROOT / "notebooks").iterdir()) == strays
