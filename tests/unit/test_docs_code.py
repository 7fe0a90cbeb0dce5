"""The documents' code runs and the commands they name exist.

Every ```python block of README.md and docs/*.md is executed, each in a fresh namespace, in a
temporary working directory holding a verified bundle at `data/model/package/bundle` (what
`make package` writes) with CARPRICE_HOME pointing to an empty `var/` there. A block that only
illustrates (an excerpt, or one that needs a running service or real data) is marked with an
HTML comment on the line just above its fence, invisible when rendered:

    <!-- illustration -->
    ```python
    ...

Every `make TARGET` and `carprice COMMAND [SUBCOMMAND]` named in those documents, in code spans
or in any code block, must be a target of the Makefile or a command of the CLI's parser.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import pytest

from carprice.cli.main import build_parser
from carprice.config import PROJECT_ROOT

DOCUMENTS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
MARKER = "<!-- illustration -->"
SPAN = re.compile(r"`([^`\n]+)`")
# a command word after a line start, a shell separator or a `$ ` prompt; `.venv/bin/` allowed
MAKE = re.compile(r"(?:^|[;&|(]\s*|\$ )make((?:\s+[^\s;&|)#]+)*)", re.M)
CARPRICE = re.compile(r"(?:^|[;&|(]\s*|\$ |\s)(?:\S*/)?carprice((?:\s+[a-z][\w-]*){0,3})", re.M)


def fenced(text: str) -> list[tuple[str, str, bool]]:
    """(language, body, marked as illustration) of every fenced block."""
    out = []
    for block in re.finditer(r"^```([\w-]*)\n(.*?)^```", text, re.M | re.S):
        before = text[: block.start()].rstrip("\n").rsplit("\n", 1)[-1]
        out.append((block.group(1), block.group(2), before.strip() == MARKER))
    return out


def python_blocks() -> list[tuple[str, str]]:
    """(document:index, source) of every Python block not marked as illustration."""
    found = []
    for doc in DOCUMENTS:
        blocks = fenced(doc.read_text(encoding="utf-8"))
        for i, (lang, body, illustration) in enumerate(blocks):
            if lang == "python" and not illustration:
                found.append((f"{doc.name}:{i}", body))
    return found


def code_text(text: str) -> list[str]:
    """Every code span and every non-Python code block of a document."""
    spans = SPAN.findall(re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    return spans + [body for lang, body, _ in fenced(text) if lang != "python"]


def named_commands(text: str) -> tuple[set[str], set[tuple[str, ...]]]:
    """The make targets and carprice command words named in a piece of code."""
    targets, commands = set(), set()
    for match in MAKE.finditer(text):
        words = [w for w in match.group(1).split() if "=" not in w and not w.startswith("-")]
        targets.update(w for w in words[:1] if re.fullmatch(r"[a-z][\w-]*", w))
    for match in CARPRICE.finditer(text):
        words = match.group(1).split()
        if words:
            commands.add(tuple(words))
    return targets, commands


def make_targets() -> set[str]:
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))


def unknown_command(words: tuple[str, ...]) -> str | None:
    """The command words the parser does not know (None: it knows them, or it takes arguments)."""
    parser = build_parser()
    for i, word in enumerate(words):
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions:
            return None  # the rest are the command's own arguments
        if word not in actions[0].choices:
            return " ".join(words[: i + 1])
        parser = actions[0].choices[word]
    return None


def test_a_marked_block_is_an_illustration_and_commands_are_found():
    text = f"x\n{MARKER}\n```python\nraise SystemExit\n```\n\n```python\nx = 1\n```\n"
    assert [illustration for _, _, illustration in fenced(text)] == [True, False]
    code = "$ make serve PORT=9000 && .venv/bin/carprice clients add shop\nmake LISTINGS=x retrain"
    assert named_commands(code) == ({"serve", "retrain"}, {("clients", "add", "shop")})
    assert unknown_command(("clients", "add", "shop")) is None
    assert unknown_command(("clients", "rename")) == "clients rename"
    assert unknown_command(("deploy",)) == "deploy"


def test_every_make_target_and_carprice_command_the_docs_name_exists():
    targets, missing = make_targets(), []
    for doc in DOCUMENTS:
        for code in code_text(doc.read_text(encoding="utf-8")):
            named, commands = named_commands(code)
            missing += [f"{doc.name}: make {t}" for t in sorted(named - targets)]
            for words in sorted(commands):
                unknown = unknown_command(words)
                if unknown:
                    missing.append(f"{doc.name}: carprice {unknown}")
    assert not missing


@pytest.fixture(scope="module")
def workdir(small_bundle, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    shutil.copytree(small_bundle, folder / "data/model/package/bundle")
    (folder / "var").mkdir()
    return folder


@pytest.mark.parametrize(("where", "source"), python_blocks(), ids=lambda v: v.split("\n")[0])
def test_the_python_block_runs(where, source, workdir, tmp_path, monkeypatch):
    run_in = tmp_path / "run"
    shutil.copytree(workdir, run_in)
    monkeypatch.chdir(run_in)
    monkeypatch.setenv("CARPRICE_HOME", str(run_in / "var"))
    exec(compile(source, where, "exec"), {"__name__": "__docs__"})
