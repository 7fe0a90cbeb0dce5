"""`make demo-loop`: a few simulated weeks of the whole loop on one machine.

simulated weeks -> retrain (gates 1-3, promote) -> serve -> replay traffic with feedback ->
monitor (quiet) -> drift injected (price shock, new model launch) -> monitor flags it ->
retrain on the recent weeks plus the sold feedback -> promote (graceful reload) -> replay ->
monitor shows the new version's realised error next to the old one's.

State lives under CARPRICE_HOME (default var/demo) and data/demo/; the service listens on
127.0.0.1 only and is stopped at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from carprice.config import PROJECT_ROOT
from carprice.runtime.clients import UNLIMITED, add_client
from carprice.runtime.store import Store, default_url
from carprice.simulator.demo import simulated_week
from carprice.simulator.replay import http_post, replay
from carprice.simulator.simulate import simulate

START = dt.date(2026, 1, 5)
DRIFT_AT = START + dt.timedelta(weeks=7)
DRIFT = f"shock={DRIFT_AT}:-15%;launch=Tesla/Model Y@{DRIFT_AT}:8%"
PER_WEEK = 5000
TRAFFIC = 1500
PORT = 8777


def step(message: str) -> None:
    print(f"\n==== {time.strftime('%H:%M:%S')} {message}", flush=True)


def run(*cmd: str, env: dict, ok=(0,)) -> int:
    rc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, check=False).returncode
    if rc not in ok:
        raise SystemExit(f"demo stopped: {' '.join(cmd)} exited with {rc}")
    return rc


def retrain(listings: Path, env: dict) -> None:
    run("make", "--no-print-directory", "retrain", f"LISTINGS={listings}", env=env)


def monitor(env: dict) -> dict:
    rc = run(
        sys.executable,
        "-m",
        "carprice.cli",
        "monitor",
        "--out",
        "reports/demo-monitoring",
        env=env,
        ok=(0, 10),
    )
    latest = sorted((PROJECT_ROOT / "reports" / "demo-monitoring").iterdir())[-1]
    report = json.loads((latest / "monitoring.json").read_text())
    for row in report["realised_by_version"]:
        print(
            f"   realised on sold prices: {row['model_version']}: {row['sold']} sold, "
            f"MAPE {row['mape']:.1%}, bias {row['bias']:+.1%}"
        )
    print("   verdict:", "RETRAIN" if rc == 10 else "quiet")
    return report


def serve(env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "carprice.cli",
            "serve",
            "--local",
            "--port",
            str(PORT),
            "--host",
            "127.0.0.1",
            "--workers",
            "2",
        ],
        cwd=PROJECT_ROOT,
        env=env,
    )
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("demo stopped: the service did not become ready")


def traffic(week: int, drift: str | None, post) -> None:
    listings, sales = simulated_week(
        100 + week, START + dt.timedelta(weeks=week - 1), TRAFFIC, drift, origin=START
    )
    stats = replay(post, listings, sales)
    print(
        f"   week {week}: {stats.estimates} estimates ({stats.unsupported} unsupported), "
        f"{stats.feedback} sales fed back, {stats.errors} errors"
    )


def main() -> int:
    home = Path(os.environ.get("CARPRICE_HOME") or PROJECT_ROOT / "var" / "demo").resolve()
    data = PROJECT_ROOT / "data" / "demo"
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "CARPRICE_HOME": str(home)}
    step(f"simulating 6 weeks from {START} ({PER_WEEK:,} listings a week)")
    simulate(
        weeks=6,
        start=START,
        seed=7,
        out_dir=data / "weeks-1-6",
        listings_per_week=PER_WEEK,
        progress=lambda m: None,
    )
    step("retrain on weeks 1-6: gates 1-3 and promote")
    retrain(data / "weeks-1-6", env)
    step(f"serving the champion on 127.0.0.1:{PORT}")
    service = serve(env)
    store = Store(default_url(home))
    store.create()
    key = add_client(store, f"demo-{int(time.time())}", "estimate,feedback", UNLIMITED, UNLIMITED)
    store.dispose()
    post = http_post(f"http://127.0.0.1:{PORT}", key)
    try:
        step("week 7: normal traffic and sales feedback")
        traffic(7, None, post)
        monitor(env)
        step(f"weeks 8-9: drift injected ({DRIFT})")
        traffic(8, DRIFT, post)
        traffic(9, DRIFT, post)
        report = monitor(env)
        for reason in report["reasons"]:
            print("   -", reason)
        step("retrain on the recent weeks 8-11 plus the sold feedback in the store")
        simulate(
            weeks=4,
            start=DRIFT_AT,
            seed=8,
            out_dir=data / "weeks-8-11",
            listings_per_week=PER_WEEK,
            drift=DRIFT.replace(str(DRIFT_AT), str(DRIFT_AT)),
            progress=lambda m: None,
        )
        retrain(data / "weeks-8-11", env)
        step("week 12: traffic served by the new champion")
        traffic(12, DRIFT, post)
        monitor(env)
    finally:
        service.terminate()
        service.wait(timeout=60)
    step("demo finished; reports under reports/demo-monitoring/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
