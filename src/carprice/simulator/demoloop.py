"""`make demo-loop`: a few simulated weeks of the whole loop on one machine.

simulated weeks -> retrain (gates 1-3, promote) -> serve -> replay traffic with feedback ->
monitor (quiet) -> drift injected (price shock, new model launch) -> monitor flags it ->
retrain on the recent weeks plus the sold feedback (gates 1-3, not promoted) -> A/B: the new
model prices half of the listings as challenger, sellers react (carprice.simulator.sellers) ->
monitor compares the arms (realised error, conversion) -> `carprice promote --by-experiment`.

The A/B phase runs in the production image when a container engine answers: `carprice serve`
starts the champion image, and `carprice experiment start` has it serve the challenger's bundle
once that bundle passed gate 3 in it (carprice.release.experiment). Without an engine this
checkout's service serves the experiment (`carprice serve --local` in A/B mode).

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
from carprice.runtime import pointer
from carprice.runtime.clients import ALL_FEEDBACK, UNLIMITED, add_client
from carprice.runtime.store import Store, default_url
from carprice.simulator.demo import serve_local, simulated_week, stop
from carprice.simulator.replay import http_post, replay, replay_sellers
from carprice.simulator.simulate import simulate

START = dt.date(2026, 1, 5)
DRIFT_AT = START + dt.timedelta(weeks=7)
DRIFT = f"shock={DRIFT_AT}:-15%;launch=Tesla/Model Y@{DRIFT_AT}:8%"
PER_WEEK = 5000
TRAFFIC = 1500
PORT = 8777
AB_SHARE = "0.5"
PACKAGE = PROJECT_ROOT / "data" / "model" / "package"


def step(message: str) -> None:
    print(f"\n==== {time.strftime('%H:%M:%S')} {message}", flush=True)


def run(*cmd: str, env: dict, ok=(0,)) -> int:
    rc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, check=False).returncode
    if rc not in ok:
        raise SystemExit(f"demo stopped: {' '.join(cmd)} exited with {rc}")
    return rc


def retrain(listings: Path, env: dict, promote: bool = True) -> None:
    """`make retrain`; with promote=False the chain stops after gate 3 (PROMOTE=0)."""
    env = env if promote else {**env, "PROMOTE": "0"}
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
    try:
        return serve_local(Path(env["CARPRICE_HOME"]), PORT, env=env)
    except RuntimeError as err:
        raise SystemExit(f"demo stopped: {err}") from err


def cli(*args: str, env: dict, ok=(0,)) -> int:
    return run(sys.executable, "-m", "carprice.cli", *args, env=env, ok=ok)


def ab_start(env: dict, home: Path, service: subprocess.Popen) -> subprocess.Popen | None:
    """Stop the local service and start the experiment of the gated package: in the champion
    image as the production container (return None), else in a local service (return it)."""
    params = str(PROJECT_ROOT / "params.yaml")
    start = ["experiment", "start", "--share", AB_SHARE, "--package", str(PACKAGE)]
    start += ["--gate3", str(PROJECT_ROOT / "reports" / "e2e"), "--params", params]
    stop(service)
    if cli("serve", "--port", str(PORT), "--workers", "2", env=env, ok=(0, 1)) == 0:
        cli(*start, env=env)
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/readyz", timeout=5) as answer:
            ready = json.loads(answer.read())
        e = ready["experiment"]
        print(f"   /readyz: experiment {e['id']}, share {e['share']}")
        for arm, what in e["arms"].items():
            print(
                f"   /readyz: {arm} {what['model_version']} in image {what['image_id'][:19]}, "
                f"bundle {what['bundle_checksums_sha256'][:12]}"
            )
        return None
    print("   no production container (no container engine): a local service serves the A/B")
    pointer.swap_pointer(home, PACKAGE / "bundle", pointer.CHALLENGER, note="demo A/B")
    cli(*start, env=env)
    return serve({**env, "CARPRICE_AB_SHARE": AB_SHARE})


def ab_traffic(week: int, drift: str | None, post) -> None:
    """Replay a week in A/B mode: listings carry keys, sellers react to what they were shown."""
    listings, _ = simulated_week(
        100 + week, START + dt.timedelta(weeks=week - 1), TRAFFIC, drift, origin=START
    )
    stats = replay_sellers(post, listings, seed=200 + week)
    arms = ", ".join(f"{n} {arm}" for arm, n in sorted(stats.arms.items()))
    print(
        f"   week {week}: {stats.estimates} estimates ({arms}); sellers: {stats.adjusted} price "
        f"changes, {stats.sold} sold, {stats.withdrawn} withdrawn; {stats.errors} errors"
    )


def experiment(report: dict) -> None:
    """Print the arms side by side from the monitor's report (its `experiment` section)."""
    for line in experiment_lines(report.get("experiment") or {}):
        print("  ", line)


def experiment_lines(result: dict) -> list[str]:
    """The experiment and its window, the sample-ratio check, one line per arm (conversion,
    days to sell, adjustments, realised error, with their intervals), then per metric the
    challenger's difference, interval, margin, n against the planned n and verdict, and the
    promotion decision with why."""
    lines = []
    e, check = result.get("experiment"), result.get("srm")
    if e:
        lines.append(
            f"experiment {e['id']}: {e['started_at']} to {e['stopped_at'] or 'now'}, "
            f"challenger share {e['share']}; {e['both_arms']} listings in both arms left out"
        )
    if check:
        p_value = "-" if check["p_value"] is None else format(check["p_value"], ".3g")
        lines.append(
            f"sample ratio: {check['counts'][0]} champion, {check['counts'][1]} challenger "
            f"listings, p = {p_value}: {'passed' if check['passed'] else 'BLOCKS the verdict'}"
        )
    for arm in result.get("arms") or []:
        conv, days = arm["conversion"], arm["days_to_sell"]
        adjusted, mape = arm["adjusted"], arm["realised_mape"]
        lines.append(
            f"{arm['arm']:<10} {arm['model_version']}: {arm['listings']} listings; "
            f"sold within {result['settings']['sold_within_days']} days "
            f"{_share(conv['share'])} {_ci(conv['ci'], '.1%')}; "
            f"median days to sell {_num(days['median'], '.0f')} {_ci(days['ci'], '.0f')}; "
            f"adjusted {_share(adjusted['share'])}; "
            f"realised MAPE {_share(mape['value'])} {_ci(mape['ci'], '.1%')} (n={mape['n']})"
        )
    for name, entry in (result.get("comparison") or {}).items():
        lines.append(
            f"challenger - champion, {name}: {_num(entry['difference'], '+.4f')} "
            f"{_ci(entry['ci'], '+.4f')}, margin {entry['margin']:.4g}, n "
            f"{entry['rows'][0]}/{entry['rows'][1]} of {entry['planned'][0]}/"
            f"{entry['planned'][1]} planned: {entry['verdict']}"
        )
    decision = result.get("promotion") or {}
    if decision:
        lines.append(
            "experiment: "
            + (
                "promotion allowed: the checks passed and conversion and realised error are "
                "not worse than their margins"
                if decision["allowed"]
                else "promotion refused: " + "; ".join(decision["reasons"])
            )
        )
    return lines or ["no A/B experiment in the log"]


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _share(value) -> str:
    return _num(value, ".1%")


def _ci(ci, spec: str) -> str:
    return "" if ci is None else f"[{format(ci[0], spec)}, {format(ci[1], spec)}]"


def traffic(week: int, drift: str | None, post) -> None:
    listings, sales = simulated_week(
        100 + week, START + dt.timedelta(weeks=week - 1), TRAFFIC, drift, origin=START
    )
    stats = replay(post, listings, sales)
    print(
        f"   week {week}: {stats.estimates} estimates ({stats.unsupported} unsupported), "
        f"{stats.feedback} sales fed back, {stats.errors} errors"
    )


def promote_args() -> list[str]:
    """The package and gate reports `make promote` passes (see the Makefile)."""
    reports = PROJECT_ROOT / "reports"
    return [
        "--package",
        str(PACKAGE),
        "--gate1",
        str(PROJECT_ROOT / "data" / "validated"),
        "--gate2",
        str(reports / "evaluation"),
        "--gate3",
        str(reports / "e2e"),
        "--params",
        str(PROJECT_ROOT / "params.yaml"),
    ]


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
    scopes = f"estimate,{ALL_FEEDBACK}"  # the marketplace's sales pipeline reports every sale
    key = add_client(store, f"demo-{int(time.time())}", scopes, UNLIMITED, UNLIMITED)
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
        retrain(data / "weeks-8-11", env, promote=False)
        step(f"A/B: the new model as challenger for {float(AB_SHARE):.0%} of listings")
        service = ab_start(env, home, service)
        step("weeks 12-13: A/B traffic; sellers change prices, sell or withdraw")
        ab_traffic(12, DRIFT, post)
        ab_traffic(13, DRIFT, post)
        report = monitor(env)
        step("the experiment: the new version next to the old one")
        experiment(report)
        step("promote by experiment")
        promoted = cli("promote", "--by-experiment", *promote_args(), env=env, ok=(0, 1))
        print("   promoted" if promoted == 0 else "   not promoted: the champion stays")
    finally:
        if service is not None:
            stop(service)
        cli("serve", "--stop", env=env, ok=(0, 1))  # the production container, if it ran
        cli("experiment", "stop", env=env, ok=(0, 1))  # the next demo starts its own
    step("demo finished; reports under reports/demo-monitoring/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
