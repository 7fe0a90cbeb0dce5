"""No carprice module chooses a plotting backend: notebooks keep their inline plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import matplotlib
    calls = []
    matplotlib.use = lambda *a, **k: calls.append(a)
    import carprice
    names = [
        m.name
        for m in pkgutil.walk_packages(carprice.__path__, "carprice.")
        # __main__ runs the CLI; the locustfile is a locust script (gevent patches ssl on import);
        # the migrations are Alembic's scripts, run by `carprice store upgrade`, not imported
        if m.name.rsplit(".", 1)[-1] not in ("__main__", "locustfile")
        and not m.name.startswith("carprice.runtime.migrations.")
    ]
    for name in names:
        importlib.import_module(name)
    print(json.dumps({
        "modules": len(names),
        "backend": matplotlib.get_backend(),
        "use_calls": calls,
        "pyplot": "matplotlib.pyplot" in sys.modules,
    }))
    """
)


def test_importing_every_carprice_module_leaves_the_backend_alone():
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["modules"] > 40  # every district was walked
    assert seen["backend"] == "svg"
    assert seen["use_calls"] == []
    assert not seen["pyplot"]  # reports draw on Figure objects, not pyplot's global state
