"""The architecture holds: districts, import rules, one listing contract, no reads of tests/."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from carprice.config import PROJECT_ROOT

SRC = PROJECT_ROOT / "src" / "carprice"
CODE = [*SRC.rglob("*.py"), *(PROJECT_ROOT / "serving").glob("*.py")]
DISTRICTS = ("runtime", "data", "model", "release", "monitor", "simulator", "cli")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_are_kept():
    result = _lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"Contracts: (\d+) kept, 0 broken", result.stdout)


def test_the_library_is_organised_in_districts():
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    assert set(DISTRICTS) <= packages
    loose = [p.name for p in SRC.glob("*.py")]
    assert len(loose) <= 12, loose


def test_the_mileage_bound_is_written_once():
    hits = [
        f"{path.relative_to(PROJECT_ROOT)}:{n}"
        for path in CODE
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\b990_?000\b", line)
    ]
    assert hits == ["src/carprice/runtime/listing.py:" + hits[0].rsplit(":", 1)[1]], hits


def test_no_code_reads_the_tests_folder():
    pattern = re.compile(r"""["'/]tests["'/]""")
    offenders = [str(p) for p in CODE if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
