"""The release subcommands of `carprice`: package, image, e2e, promote, rollback, reproduce,
loadtest.

They parse arguments, call the release modules, write files and set the exit code: 1 when a gate
or a release step refuses (with one sentence saying why), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from carprice.cli.args import require_folder, service_store
from carprice.cli.progress import Stage, say
from carprice.config import Paths, load_params

PACKAGE = "data/model/package"
PACKAGE_CMD = "carprice package"  # what writes a package folder


def _gate3_settings(params_file: str) -> dict:
    return dict(load_params(params_file)["gate3"])


def cmd_package(args: argparse.Namespace) -> int:
    from carprice.release.candidate import package

    data = require_folder(
        "--data", args.data, ("clean.parquet",), f"carprice validate --out {args.data}"
    )
    manifest = package(data, Path(args.out), _gate3_settings(args.params), Paths.from_env(), say)
    print(Path(args.out) / "package.json")
    return 0 if manifest else 1


def cmd_image(args: argparse.Namespace) -> int:
    from carprice.release import container
    from carprice.release.candidate import read_json, record_image

    package = require_folder("--package", args.package, ("package.json",), PACKAGE_CMD)
    meta = read_json(package / "package.json")
    tag = args.tag or f"carprice:{meta['model_version']}"
    log_path = Path(args.log or package / "build.log")
    started = time.perf_counter()
    try:
        with open(log_path, "w", encoding="utf-8") as log, Stage("image build") as steps:
            image_id = container.build(package / "bundle", tag, log=log, steps=steps)
    except container.EngineError as err:
        print(f"carprice image: {err} ({log_path})", file=sys.stderr)
        return 1
    engine = container.detect()
    info = record_image(
        Path(args.package),
        image_id,
        tag,
        engine.name if engine else "?",
        time.perf_counter() - started,
    )
    say(f"image {tag} ({image_id[:12]}) built in {info['build_seconds']} s")
    print(image_id)
    return 0


def cmd_e2e(args: argparse.Namespace) -> int:
    from carprice.model import registry
    from carprice.release.candidate import read_json
    from carprice.release.gate3 import run_gate3
    from carprice.release.report import write_report

    package = require_folder("--package", args.package, ("package.json",), PACKAGE_CMD)
    image = args.image
    if image is None and not args.local and (package / "image.json").exists():
        image = read_json(package / "image.json")["id"]
    with Stage("gate 3", unit="check") as steps:
        settings = _gate3_settings(args.params)
        report = run_gate3(package, settings, say, image=image, local=args.local, steps=steps)
    files = write_report(Path(args.out), report)
    verdict = "passed" if report["passed"] else "failed"
    tags = {"gate3": verdict if not args.local else f"{verdict} (local process, not the image)"}
    if report.get("target", {}).get("id"):
        tags["image_id"] = report["target"]["id"]
    registry.configure(Paths.from_env())
    registry.set_tags(report["registry_version"], tags)
    registry.attach_report(report["registry_version"], "gate3", Path(args.out))
    say(f"report: {files['html']} ({report['seconds']} s)")
    if not report["passed"]:
        print("gate 3 (artifact): FAILED: " + " ".join(report["reasons"]), file=sys.stderr)
        return 1
    print(f"gate 3 (artifact): passed on {report['target']['kind']}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from carprice.release.promote import ReleaseError, current_release, history, promote

    paths = Paths.from_env()
    reports = {"gate1": Path(args.gate1), "gate2": Path(args.gate2), "gate3": Path(args.gate3)}
    if args.by_experiment and _experiment_refuses(args, paths):
        return 1
    try:
        manifest = promote(Path(args.package), reports, Path(args.params), paths, say)
    except ReleaseError as err:
        print(f"promote refused: {err}", file=sys.stderr)
        return 1
    entry = history(paths.home)[-1]
    say(
        f"release {manifest['release']} ({manifest['model_version']}) is the champion; "
        f"{entry['reload']}"
    )
    if args.by_experiment:
        _stop_experiment(paths, manifest["model_version"])
    print(current_release(paths.home))
    return 0


def _experiment_refuses(args: argparse.Namespace, paths: Paths) -> bool:
    """Print the A/B experiment's numbers; True (and why, on stderr) when it refuses the
    package's model (carprice.monitor.experiment, release.promote.require_experiment)."""
    from carprice.monitor.experiment import compare
    from carprice.monitor.experiment_text import table_rows
    from carprice.release.candidate import PACKAGE_JSON, read_json
    from carprice.release.promote import ReleaseError, champion_of_record, require_experiment
    from carprice.runtime.logqueries.base import market

    package = require_folder("--package", args.package, (PACKAGE_JSON,), PACKAGE_CMD)
    version = read_json(package / PACKAGE_JSON)["model_version"]
    with service_store(paths.home) as store:
        record = store.latest_experiment(challenger=version)
        # market traffic only, as the monitor judges it
        experiment = compare(market(store), load_params(args.params), record) if record else {}
    for row in table_rows(experiment) if record else ():
        print("  ".join(row), file=sys.stderr)
    try:
        require_experiment(experiment, version, champion_of_record(paths.home))
    except ReleaseError as err:
        print(f"promote refused: {err}", file=sys.stderr)
        return True
    say(f"experiment: {version} is not worse on conversion and realised error")
    return False


def _stop_experiment(paths: Paths, version: str) -> None:
    """End the running experiment whose challenger was just promoted (its window closes)."""
    with service_store(paths.home, create=False) as store:
        running = store.running_experiment()
        if running is not None and running["challenger_version"] == version:
            store.stop_experiment()
            say(f"experiment {running['experiment_id']} stopped: its challenger is the champion")


def cmd_rollback(args: argparse.Namespace) -> int:
    from carprice.release.promote import ReleaseError
    from carprice.release.rollback import rollback

    try:
        ok, entry = rollback(
            args.version, Paths.from_env(), _gate3_settings(args.params), say, local=args.local
        )
    except ReleaseError as err:
        print(f"rollback refused: {err}", file=sys.stderr)
        return 1
    if not ok:
        print(f"rollback refused: {entry['why']}; see {entry['gate3']}", file=sys.stderr)
        return 1
    say(
        f"release {entry['release']} is back in production ({entry['model_version']}); "
        f"{entry['reload']}"
    )
    print(entry["release"])
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from carprice.release.reproduce import reproduce

    paths = Paths.from_env()
    result = reproduce(args.version, paths, say)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"release-{args.version}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    say(f"report: {path}")
    if not result["identical"]:
        differ = [k for k, same in result["files"].items() if not same]
        differ += [k for k, p in result["predictions"].items() if not p["identical"]]
        print(f"reproduce {args.version}: NOT identical: {', '.join(differ)}", file=sys.stderr)
        return 1
    print(f"reproduce {args.version}: identical ({result['code']})")
    return 0


def cmd_loadtest(args: argparse.Namespace) -> int:
    from carprice.release.loadtest import run

    return run(
        args.host, args.users, args.duration, load_params(args.params), args.bundle, Path(args.out)
    )


def add_commands(sub) -> None:
    """Register the release subcommands on the `carprice` parser."""
    p = sub.add_parser("package", help="export the challenger as a bundle with its golden set")
    p.add_argument("--data", default="data/validated", help="gate 1 output folder")
    p.add_argument("--out", default=PACKAGE, help="folder for the package (bundle, golden set)")
    p.add_argument("--params", default="params.yaml", help="parameters: gate 3 settings")
    p.set_defaults(func=cmd_package)

    p = sub.add_parser("image", help="build the service image with the packaged bundle")
    p.add_argument("--package", default=PACKAGE, help="folder written by `carprice package`")
    p.add_argument("--tag", help="image tag (default: carprice:<model_version>)")
    p.add_argument("--log", help="file for the build output (default: PACKAGE/build.log)")
    p.set_defaults(func=cmd_image)

    p = sub.add_parser("e2e", help="gate 3: the built container against the offline model")
    p.add_argument("--package", default=PACKAGE, help="folder written by `carprice package`")
    p.add_argument("--image", help="image id or tag (default: the package's image.json)")
    p.add_argument(
        "--local",
        action="store_true",
        help="opt-in: test the entrypoint as a local process, not the container",
    )
    p.add_argument("--out", default="reports/e2e", help="folder for the gate 3 report")
    p.add_argument("--params", default="params.yaml", help="parameters: gate 3 settings")
    p.set_defaults(func=cmd_e2e)

    p = sub.add_parser("promote", help="make the gated package the champion and deploy it")
    p.add_argument("--package", default=PACKAGE, help="the gated package")
    p.add_argument("--gate1", default="data/validated", help="gate 1 output folder")
    p.add_argument("--gate2", default="reports/evaluation", help="gate 2 report folder")
    p.add_argument("--gate3", default="reports/e2e", help="gate 3 report folder")
    p.add_argument(
        "--params", default="params.yaml", help="the parameters the model was trained with"
    )
    p.add_argument(
        "--by-experiment",
        action="store_true",
        help="only when the A/B experiment of the package's model against the champion of "
        "record passed its checks and shows it not worse on conversion and realised error, "
        "each at its own margin (params `experiment:`)",
    )
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="gate 3 on an earlier release, then switch back to it")
    p.add_argument("--version", help="release to return to (default: the previous one)")
    p.add_argument("--local", action="store_true", help="opt-in local gate 3 (then refuses)")
    p.add_argument("--params", default="params.yaml", help="parameters: gate 3 settings")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("reproduce", help="rebuild a release and check identical predictions")
    p.add_argument("version", help="release to rebuild (see `make releases`)")
    p.add_argument("--out", default="reports/reproduce", help="folder for the comparison report")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("loadtest", help="locust against a service; fails outside the budgets")
    p.add_argument("--host", help="base URL of a running service (default: start one)")
    p.add_argument("--users", type=int, help="concurrent users (default: params.yaml)")
    p.add_argument("--duration", help="e.g. 30s or 2m (default: params.yaml)")
    p.add_argument("--bundle", help="bundle for the service started here (default: champion)")
    p.add_argument("--out", default="reports/load", help="folder for the load-test report")
    p.add_argument("--params", default="params.yaml", help="parameters: load-test budgets")
    p.set_defaults(func=cmd_loadtest)
