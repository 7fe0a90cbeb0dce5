"""Gate 3: the built artifact, running, answers exactly what the offline model answers.

`run_gate3` starts the service image as a container (or, only on explicit request, the same
gunicorn entrypoint as a local process), then checks over HTTP: readiness and the served version,
the non-root user and the image HEALTHCHECK, the scorer and image the service says it runs
(`GET /v1/model`), the image the engine says the container runs from, parity on every golden
case (one listing per request, then in batches: the service's two scoring paths), the
consumers' contracts, the documented problem+json errors, OpenAPI conformance of every answer
and a latency budget.

Parity is exact: the service runs the same encoder, the same boosters and the same float64
arithmetic as the offline path, and both round to cents the same way; `parity_rel_tol` in
params.yaml can loosen it, and the report says which tolerance was applied.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

from carprice.release import checks, container
from carprice.release.checks import Client, wait_ready
from carprice.release.contracts import CONTRACTS_DIR
from carprice.release.golden import read_golden
from carprice.release.target import Target, start_container, start_local
from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor

GATE = "gate 3 (artifact)"
DEFAULT_SCORER = "compiled"  # what production scores with (params.yaml gate3.scorer)
Say = Callable[[str], None]
Steps = Callable[[int, "int | None", str], None]  # (checks done, None, the check running now)


def run_gate3(
    package: Path,
    settings: dict,
    say: Say,
    image: str | None = None,
    local: bool = False,
    contracts_dir: Path = CONTRACTS_DIR,
    steps: Steps | None = None,
    bundle: Path | None = None,
) -> dict:
    """Run gate 3 against `image` (or a local process); return the report (see docs/release.md).

    `say` gets each check's verdict; `steps` is told which check runs before it starts. With
    `bundle` (the package's bundle, or a copy of it), the image serves that bundle mounted
    read-only instead of the one built into it: an A/B challenger in the champion's image.
    """
    package = Path(package)
    meta = json.loads((package / "package.json").read_text(encoding="utf-8"))
    started = time.perf_counter()
    report = {
        "gate": GATE,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model_version": meta["model_version"],
        "registry_version": meta["registry_version"],
        "package": str(package),
        "settings": settings,
        "parity_tolerance": _tolerance(settings["parity_rel_tol"]),
        "checks": [],
    }

    def check(name: str, passed: bool, detail: str, **extra) -> None:
        report["checks"].append({"check": name, "passed": bool(passed), "detail": detail, **extra})
        say(f"{'ok  ' if passed else 'FAIL'} {name}: {detail}")

    def begin(what: str) -> None:
        if steps is not None:
            steps(len(report["checks"]), None, what)

    begin("starting the service")
    if local:
        target = start_local(package / "bundle", settings["workers"])
    else:
        engine = container.detect()
        if engine is None:
            check(
                "container engine",
                False,
                "no container engine: Docker does not answer and "
                "podman is not installed (scripts/container-setup.sh installs it; --local "
                "tests the same entrypoint as a local process instead)",
            )
            return _finish(report, started, "")
        if not image or not engine.image_exists(image):
            check("image", False, f"image {image!r} not found: build it with `make image`")
            return _finish(report, started, "")
        try:
            target = start_container(engine, image, settings["workers"], bundle)
        except container.EngineError as err:
            check("container start", False, f"the container did not start: {err}")
            return _finish(report, started, "")
    report["target"] = {
        "kind": target.kind,
        **{k: v for k, v in target.info.items() if not callable(v)},
    }
    say(f"target: {target.kind} on 127.0.0.1:{target.port}")
    try:
        _checks(target, package, meta, settings, contracts_dir, check, report, begin)
    except Exception as err:  # a gate gives a verdict, whatever broke: the service or the check
        check("service", False, f"gate 3 could not finish: {err!r}")
    finally:
        begin("stopping the service")
        t0 = time.perf_counter()
        log = target.stop()
        report["stop_seconds"] = round(time.perf_counter() - t0, 2)
    check(
        "service log",
        "Traceback" not in log,
        "no traceback in the service log"
        if "Traceback" not in log
        else "the service log holds a traceback",
    )
    return _finish(report, started, log)


def _checks(
    target: Target,
    package: Path,
    meta: dict,
    settings: dict,
    contracts_dir: Path,
    check: Callable,
    report: dict,
    begin: Callable[[str], None],
) -> None:
    begin("ready: waiting for the service")
    client = Client(target.port)
    t0 = time.perf_counter()
    alive = target.info.get("alive", lambda: True)
    ready = wait_ready(client, settings["ready_timeout_s"], alive)
    client.key = target.add_client()  # gate 3 calls as a client with both scopes
    report["startup_seconds"] = round(time.perf_counter() - t0, 2)
    served = ready.get("model_version")
    check(
        "ready",
        served == meta["model_version"],
        f"ready in {report['startup_seconds']} s serving {served} "
        f"(package {meta['model_version']})",
    )
    status, _, doc = client.call("GET", "/openapi.json")
    client.doc = doc if status == 200 else {}
    status, _, _ = client.call("GET", "/healthz")
    check("healthz", status == 200, f"GET /healthz answered {status}")
    container_target = target.engine is not None
    expected = {
        "scorer": settings.get("scorer", DEFAULT_SCORER),
        "image_id": target.info.get("id") if container_target else None,
    }
    passed, detail, reported = checks.runtime(
        client,
        expected["scorer"],
        expected["image_id"],
        "container" if container_target else "local process",
    )
    report["runtime"] = {"expected": expected, "reported": reported}
    check("runtime", passed, detail)
    if target.engine is not None:
        ran = target.engine.container_image(target.container_id)
        report["runtime"]["engine_image"] = ran
        check(
            "image identity",
            container.same_image(ran, expected["image_id"]),
            f"the engine runs the container from image {ran or 'none'}, "
            f"the release's image is {expected['image_id']}",
        )
        uid = target.engine.exec(target.container_id, "id", "-u").strip()
        user = target.info.get("user", "")
        check(
            "non-root user",
            uid != "0" and user not in ("", "0", "root", "0:0"),
            f"image USER {user!r}, process uid {uid}",
        )
        healthy = target.engine.healthcheck(target.container_id)
        check(
            "HEALTHCHECK",
            bool(target.info.get("healthcheck")) and healthy,
            f"{target.info.get('healthcheck')} -> {'healthy' if healthy else 'unhealthy'}",
        )
    cases = read_golden(package / "golden.jsonl")
    heldout = sum(c["kind"] == "heldout" for c in cases)
    check(
        "golden set",
        heldout >= settings["golden_rows"] and len(cases) > heldout,
        f"{heldout} held-out and {len(cases) - heldout} edge cases",
    )
    begin(f"parity on {len(cases)} golden cases")
    t0 = time.perf_counter()
    report["parity"] = checks.parity(
        client, cases, settings["batch_size"], settings["parity_rel_tol"]
    )
    report["parity"]["seconds"] = round(time.perf_counter() - t0, 2)
    for mode, result in report["parity"].items():
        if mode != "seconds":
            counts = result["first_count_errors"]
            more = result["count_errors"] - len(counts[:3])
            check(
                f"parity ({mode})",
                result["mismatches"] == 0 and result["count_errors"] == 0,
                f"{result['cases'] - result['mismatches']} of {result['cases']} golden cases "
                f"identical to the offline model"
                + ("; " + "; ".join(counts[:3]) if counts else "")
                + (f" (and {more} more requests with a wrong answer count)" if more > 0 else ""),
                first=result["first"],
            )
    predictor = Predictor(load_bundle(package / "bundle"))
    begin("consumer contracts")
    t0 = time.perf_counter()
    report["contracts"] = checks.contracts(client, contracts_dir, predictor, served)
    report["contracts_seconds"] = round(time.perf_counter() - t0, 2)
    for consumer, result in report["contracts"].items():
        check(
            f"contract: {consumer}",
            result["passed"],
            "every field as the consumer expects"
            if result["passed"]
            else "; ".join(result["errors"][:5]),
        )
    begin(f"latency over {settings['latency_requests']} requests")
    t0 = time.perf_counter()
    report["latency"] = checks.latency(client, cases, settings["latency_requests"])
    report["latency"]["seconds"] = round(time.perf_counter() - t0, 2)
    p95, bound = report["latency"]["p95_ms"], settings["latency_p95_ms"]
    check(
        "latency",
        p95 <= bound,
        f"p95 {p95} ms over {settings['latency_requests']} "
        f"single-listing requests (bound {bound} ms)",
    )
    check(
        "OpenAPI",
        not client.nonconforming and client.answers > 0,
        f"{client.answers} answers checked against /openapi.json"
        + (": " + "; ".join(client.nonconforming[:5]) if client.nonconforming else ""),
    )


def _tolerance(rel_tol: float) -> str:
    if not rel_tol:
        return (
            "exact: the service runs the offline encoder, boosters and float64 arithmetic, "
            "and both sides round to cents the same way"
        )
    return f"relative {rel_tol:g} on prices (params.yaml gate3.parity_rel_tol)"


def _finish(report: dict, started: float, log: str) -> dict:
    failed = [c for c in report["checks"] if not c["passed"]]
    report["passed"] = bool(report["checks"]) and not failed
    report["reasons"] = [f"{c['check']}: {c['detail']}" for c in failed]
    report["seconds"] = round(time.perf_counter() - started, 2)
    report["service_log"] = log[-20000:]
    return report
