"""The `carprice` command answers each input mistake in one sentence, with exit code 2.

Each message names the file (or the option and its path), what was expected and what was found;
none shows a traceback.
"""

from __future__ import annotations

import argparse
from importlib.metadata import version

import pytest

from carprice.cli.main import build_parser, main
from carprice.config import PROJECT_ROOT
from carprice.data.schema import CANONICAL_COLUMNS
from tests.conftest import frame, listing, run_cli

PARAMS = str(PROJECT_ROOT / "params.yaml")
HEADER = ",".join(CANONICAL_COLUMNS)


def _fails_naming(capsys, argv: list[str], *names: str) -> str:
    """Run the CLI, expect exit 2 and one error line naming each of `names`; return it."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [x for x in err.splitlines() if "error:" in x]
    for name in names:
        assert name in line, line
    return line


def _validate(tmp_path, listings: str) -> list[str]:
    return ["validate", "--listings", listings, "--out", str(tmp_path / "out"), "--params", PARAMS]


def test_an_empty_file_says_it_is_empty_and_what_it_should_hold(tmp_path, capsys):
    (tmp_path / "empty.csv").write_bytes(b"")
    line = _fails_naming(capsys, _validate(tmp_path, str(tmp_path / "empty.csv")), "empty.csv")
    assert "the file is empty (0 bytes)" in line and "header row" in line


def test_ingest_of_an_empty_file_names_it_too(tmp_path, capsys):
    (tmp_path / "empty.csv").write_bytes(b"")
    argv = ["ingest", "--listings", str(tmp_path / "empty.csv"), "--snapshots", str(tmp_path)]
    assert "0 bytes" in _fails_naming(capsys, [*argv, "--no-feedback"], "empty.csv")


def test_a_semicolon_file_names_the_expected_columns_and_the_delimiter(tmp_path, capsys):
    frame(listing()).to_csv(tmp_path / "wrongcols.csv", index=False, sep=";")
    line = _fails_naming(capsys, _validate(tmp_path, str(tmp_path / "wrongcols.csv")), "wrongcols")
    assert f"expected the columns {', '.join(CANONICAL_COLUMNS)} separated by ','" in line
    assert "found one column 'mileage;make;" in line and "is the delimiter ';'?" in line


def test_unrelated_columns_are_listed_as_found(tmp_path, capsys):
    (tmp_path / "other.csv").write_text("colour,seats\nred,5\n")
    line = _fails_naming(capsys, _validate(tmp_path, str(tmp_path / "other.csv")), "other.csv")
    assert "found the columns colour, seats" in line


def test_a_header_only_file_says_it_has_a_header_and_no_rows(tmp_path, capsys):
    (tmp_path / "header.csv").write_text(HEADER + "\n")
    line = _fails_naming(capsys, _validate(tmp_path, str(tmp_path / "header.csv")), "header.csv")
    assert "a header row and 0 rows" in line and "quarantined" not in line


def test_absent_columns_name_the_file_the_missing_and_the_found_columns(tmp_path, capsys):
    frame(listing()).drop(columns=["hp", "year"]).to_csv(tmp_path / "nohp.csv", index=False)
    line = _fails_naming(capsys, _validate(tmp_path, str(tmp_path / "nohp.csv")), "nohp.csv")
    assert "missing the required columns hp, year" in line
    assert "found mileage, make, model, fuel, gear, offerType, price" in line


def test_a_dirty_row_is_still_quarantined_not_refused(tmp_path, capsys):
    rows = [listing(mileage=1000 + i) for i in range(30)] + [listing(mileage=-5)]
    frame(*rows).to_csv(tmp_path / "dirty.csv", index=False)
    main(_validate(tmp_path, str(tmp_path / "dirty.csv")))  # gate 1 fails: too few rows
    quarantine = (tmp_path / "out" / "quarantine.csv").read_text()
    assert "impossible_mileage" in quarantine and "error:" not in capsys.readouterr().err


def test_a_missing_listings_path_names_the_option(tmp_path, capsys):
    line = _fails_naming(capsys, _validate(tmp_path, str(tmp_path / "nope.csv")), "--listings")
    assert "nope.csv" in line and "no such file, folder or snapshot id" in line


def test_train_on_a_missing_folder_names_the_option_and_the_command_to_run(capsys):
    line = _fails_naming(capsys, ["train", "--data", "/nonexistent"], "--data /nonexistent")
    assert "clean.parquet" in line and "run `carprice validate --out /nonexistent` first" in line


def test_evaluate_without_a_trained_model_says_to_train_first(tmp_path, capsys):
    for name in ("clean.parquet", "supported_models.csv"):  # gate 1's files, present
        (tmp_path / name).write_bytes(b"")
    argv = ["evaluate", "--data", str(tmp_path), "--model", "/nonexistent"]
    line = _fails_naming(capsys, argv, "--model /nonexistent")
    assert "train.json" in line and "carprice train" in line and "Errno" not in line


def test_a_mistake_shows_no_traceback_in_a_real_process(tmp_path):
    (tmp_path / "wrongcols.csv").write_text("make;model\nBMW;316\n")
    argv = ["validate", "--listings", "wrongcols.csv", "--out", "out", "--params", PARAMS]
    proc = run_cli(*argv, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("carprice validate: error: wrongcols.csv: expected the columns")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def _options():
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in [("carprice", parser), *sub.choices.items()]:
        for action in command._actions:
            if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                yield name, action


@pytest.mark.parametrize("command", sorted(build_parser()._subparsers._group_actions[0].choices))
def test_every_option_of_every_subcommand_has_help_text(command):
    missing = [
        "/".join(a.option_strings) or a.dest
        for name, a in _options()
        if name == command and not (a.help or "").strip()
    ]
    assert not missing, f"carprice {command}: options without help: {missing}"


def test_defaults_are_shown_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: data/validated)" in out and "(default: params.yaml)" in out


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"carprice {version('carprice')}"
