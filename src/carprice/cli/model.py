"""The model subcommands of `carprice`: train, evaluate (gate 2), tune and study."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carprice.cli.args import UsageError, at_least, require_folder
from carprice.cli.progress import Stage, say
from carprice.config import Paths, load_params

GATE1_FILES = ("clean.parquet", "supported_models.csv")  # what `carprice validate` writes
DISTRIBUTED_HELP = "run on Dask partitions (train.distributed in params.yaml, enabled)"


def run_params(args: argparse.Namespace) -> dict:
    """Load --params; `--distributed` switches train.distributed on for this run."""
    params = load_params(args.params)
    if args.distributed:
        settings = {**(params["train"].get("distributed") or {}), "enabled": True}
        params = {**params, "train": {**params["train"], "distributed": settings}}
    return params


def cmd_train(args: argparse.Namespace) -> int:
    from carprice.model.stage import run_training

    data = require_folder("--data", args.data, GATE1_FILES, f"carprice validate --out {args.data}")
    with Stage("training", unit="round") as rounds:
        record = run_training(
            data, Path(args.out), run_params(args), Paths.from_env(), say, rounds=rounds
        )
    print(record["bundle"])
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from carprice.model.stage import run_evaluation

    data = require_folder("--data", args.data, GATE1_FILES, f"carprice validate --out {args.data}")
    trained = require_folder(
        "--model", args.model, ("train.json",), f"carprice train --out {args.model}"
    )
    gate = run_evaluation(
        data,
        trained,
        Path(args.out),
        run_params(args),
        Paths.from_env(),
        say,
    )
    say(f"report: {Path(args.out) / 'evaluation.html'}")
    print(gate.summary(), file=sys.stdout if gate.passed else sys.stderr)
    for reason in gate.reasons:
        print(f"  - {reason}", file=sys.stderr)
    return 0 if gate.passed else 1


def cmd_tune(args: argparse.Namespace) -> int:
    from carprice.model.tune_stage import run_tuning

    data = require_folder(
        "--data",
        args.data,
        ("clean.parquet", "data_report.json"),
        f"carprice validate --out {args.data}",
    )
    params = Path(args.params)
    if not params.is_file():
        raise UsageError(f"--params {args.params}: no such file")
    with Stage("tuning", unit="fit") as steps:
        summary = run_tuning(
            data,
            Path(args.out),
            params,
            Paths.from_env(),
            say,
            candidates=args.candidates,
            folds=args.folds,
            write=args.write,
            steps=steps,
        )
    say(f"report: {Path(summary['folder']) / 'tune.html'} (MLflow run {summary['run_id']})")
    say(
        f"best CV MAPE {summary['best_cv_mape']:.2%} (candidate {summary['best']['candidate']}, "
        f"{summary['best']['source']}); current settings {summary['current_cv_mape']:.2%}"
    )
    print(summary["diff"] or "params.yaml train.lgb: the current settings are the best")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from carprice.model.study_stage import run_quality_study

    listings, params = Path(args.listings), Path(args.params)
    if not listings.exists():
        raise UsageError(f"--listings {args.listings}: no such file or folder")
    if not params.is_file():
        raise UsageError(f"--params {args.params}: no such file")
    command = " ".join(["carprice", "study", *sys.argv[2:]])
    with Stage("quality study", unit="fold") as steps:
        summary = run_quality_study(
            listings,
            Path(args.out),
            params,
            Paths.from_env(),
            say,
            quick=args.quick,
            folds=args.folds,
            jobs=args.jobs,
            command=command,
            steps=steps,
        )
    say(f"report: {Path(summary['folder']) / 'study.md'} (MLflow run {summary['run_id']})")
    for target in summary["targets"]:
        verdict = "met" if target["met"] else "not met"
        print(
            f"{target['target']}: {target['measured']:.2%} (wanted {target['wanted']}): {verdict}"
        )
    return 0


def add_commands(sub) -> None:
    """Register the model subcommands on the `carprice` parser."""
    p = sub.add_parser("train", help="train the challenger on gate 1's clean rows and register it")
    p.add_argument("--data", default="data/validated", help="gate 1 output folder")
    p.add_argument("--out", default="data/model", help="folder for the bundle and train.json")
    p.add_argument("--params", default="params.yaml", help="parameters: train, gate 2")
    p.add_argument("--distributed", action="store_true", help=DISTRIBUTED_HELP)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="gate 2: held-out error vs thresholds, baseline, champion")
    p.add_argument("--data", default="data/validated", help="gate 1 output folder")
    p.add_argument("--model", default="data/model", help="folder written by `carprice train`")
    p.add_argument("--out", default="reports/evaluation", help="folder for the gate 2 report")
    p.add_argument("--params", default="params.yaml", help="parameters: gate 2 thresholds")
    p.add_argument("--distributed", action="store_true", help=DISTRIBUTED_HELP)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("tune", help="grouped-CV search of train.lgb settings (never on test rows)")
    p.add_argument("--data", default="data/validated", help="gate 1 output folder")
    p.add_argument("--params", default="params.yaml", help="parameters: tune, train")
    p.add_argument(
        "--out", default="reports/tune", help="folder for the report (a UTC-stamped run)"
    )
    p.add_argument(
        "--candidates",
        type=at_least(1),
        help="sampled settings to score (default: tune.candidates of --params)",
    )
    p.add_argument(
        "--folds", type=at_least(2), help="grouped CV folds (default: tune.folds of --params)"
    )
    p.add_argument(
        "--write",
        action="store_true",
        help="apply the proposed train.lgb change to --params (default: only print it)",
    )
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("study", help="model quality study: candidates, intervals, learning curve")
    p.add_argument("--listings", required=True, help="listings file or folder (gate 1 rules apply)")
    p.add_argument("--params", default="params.yaml", help="parameters: train, tune, gate 1/2")
    p.add_argument(
        "--out", default="reports/study", help="folder for the report (a UTC-stamped run)"
    )
    p.add_argument(
        "--folds", type=at_least(2), help="grouped CV folds (default: tune.folds; 3 quick)"
    )
    p.add_argument(
        "--jobs",
        type=at_least(1),
        default=1,
        help="fold fits run in parallel (threads; each fit uses train.lgb's num_threads)",
    )
    p.add_argument(
        "--quick", action="store_true", help="few rounds and members: a trial, not a result"
    )
    p.set_defaults(func=cmd_study)
