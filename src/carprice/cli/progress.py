"""Progress of the `carprice` command: the one place that decides between a bar and lines.

Progress goes to stderr, results to stdout. On a terminal (stderr is a tty) a long stage draws a
tqdm bar; anywhere else (make, CI, a log file) it prints plain lines, without carriage returns
or escape codes. The districts never import this module: their stage functions take optional
callbacks, `say(message)` and `steps(done, total, note)`, and the subcommands pass these.
Libraries that draw bars of their own (MLflow's artifact downloads) are told to draw none off a
terminal (`quiet_library_bars`, called by the command's entry point).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable

from tqdm import tqdm

Steps = Callable[[int, "int | None", str], None]
PREFIX = "[carprice]"
_open_bars: list[tqdm] = []  # bars on screen: messages are written above them


def interactive() -> bool:
    """Return whether progress may draw bars: stderr is a terminal."""
    return sys.stderr.isatty()


def quiet_library_bars() -> None:
    """Off a terminal, turn off the bars libraries draw themselves (they write carriage returns
    into make's output and logs); a setting already in the environment is kept."""
    if not interactive():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def say(message: str) -> None:
    """Print one progress line to stderr, at once (above a running bar)."""
    line = f"{PREFIX} {message}"
    if _open_bars:
        tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


class Stage:
    """The progress of one long stage, passed to a district as its `steps` callback.

    `stage(done, total, note)`: `done` steps of `total` (None when unknown), `note` says what
    runs now. A bar on a terminal; otherwise a line whenever the note changes and at each tenth
    of the total, so a 2,000-round training prints ten lines, not two thousand.
    """

    def __init__(self, label: str, unit: str = "step", bar: bool | None = None) -> None:
        self.label = label
        self.unit = unit
        self.bar = interactive() if bar is None else bar
        self._tqdm: tqdm | None = None
        self._note: str | None = None
        self._total: int | None = None
        self._next = 0

    def __call__(self, done: int, total: int | None = None, note: str = "") -> None:
        if self.bar:
            self._draw(done, total, note)
        else:
            self._line(done, total, note)

    def _line(self, done: int, total: int | None, note: str) -> None:
        changed = note != self._note or total != self._total
        if not changed and done < self._next and not (total and done == total):
            return
        self._note, self._total = note, total
        self._next = done + max(1, (total or 0) // 10)
        count = f" {done}/{total}" if total else ""
        say(f"{self.label}{count}: {note}" if note else f"{self.label}{count}")

    def _draw(self, done: int, total: int | None, note: str) -> None:
        if self._tqdm is None:
            # A terminal that reports no size (some pseudo-terminals) still gets a visible bar.
            size = shutil.get_terminal_size()
            self._tqdm = tqdm(
                total=total,
                desc=self.label,
                unit=self.unit,
                file=sys.stderr,
                ncols=size.columns or 80,
                nrows=size.lines or 24,
            )
            _open_bars.append(self._tqdm)
        elif total != self._tqdm.total or done < self._tqdm.n:
            self._tqdm.reset(total=total)
        self._tqdm.set_postfix_str(" ".join(note.split())[:60], refresh=False)
        self._tqdm.update(done - self._tqdm.n)

    def close(self) -> None:
        """Finish the bar (if any) so that later output starts on a new line."""
        if self._tqdm is not None:
            self._tqdm.close()
            _open_bars.remove(self._tqdm)
            self._tqdm = None

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
