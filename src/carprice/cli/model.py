"""The model subcommands of `carprice`: train and evaluate (gate 2)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carprice.cli.args import require_folder
from carprice.cli.progress import Stage, say
from carprice.config import Paths, load_params

GATE1_FILES = ("clean.parquet", "supported_models.csv")  # what `carprice validate` writes


def cmd_train(args: argparse.Namespace) -> int:
    from carprice.model.stage import run_training

    data = require_folder("--data", args.data, GATE1_FILES, f"carprice validate --out {args.data}")
    with Stage("training", unit="round") as rounds:
        record = run_training(
            data, Path(args.out), load_params(args.params), Paths.from_env(), say, rounds=rounds
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
        load_params(args.params),
        Paths.from_env(),
        say,
    )
    say(f"report: {Path(args.out) / 'evaluation.html'}")
    print(gate.summary(), file=sys.stdout if gate.passed else sys.stderr)
    for reason in gate.reasons:
        print(f"  - {reason}", file=sys.stderr)
    return 0 if gate.passed else 1


def add_commands(sub) -> None:
    """Register the model subcommands on the `carprice` parser."""
    p = sub.add_parser("train", help="train the challenger on gate 1's clean rows and register it")
    p.add_argument("--data", default="data/validated", help="gate 1 output folder")
    p.add_argument("--out", default="data/model", help="folder for the bundle and train.json")
    p.add_argument("--params", default="params.yaml", help="parameters: train, gate 2")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="gate 2: held-out error vs thresholds, baseline, champion")
    p.add_argument("--data", default="data/validated", help="gate 1 output folder")
    p.add_argument("--model", default="data/model", help="folder written by `carprice train`")
    p.add_argument("--out", default="reports/evaluation", help="folder for the gate 2 report")
    p.add_argument("--params", default="params.yaml", help="parameters: gate 2 thresholds")
    p.set_defaults(func=cmd_evaluate)
