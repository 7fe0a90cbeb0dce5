"""Self-contained HTML reports: plots embedded as PNG data URIs, no external assets.

Figures are `matplotlib.figure.Figure` objects rendered straight to PNG: no pyplot, no global
figure registry and no backend chosen here, so a notebook that imports a report module keeps
its own (inline) backend.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} .pass{color:#11772d} .fail{color:#b3261e}
.banner{background:#fdecea;border:2px solid #b3261e;color:#b3261e;padding:.6rem 1rem;margin:1rem 0}
.about{color:#555;margin:.2rem 0 1rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.25rem .6rem}
th{background:#f3f3f3;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.5rem} img{max-width:520px}
"""


def new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    """Return a figure with one axes, outside pyplot (nothing to close, no backend needed)."""
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def figure(fig: Figure) -> str:
    """Render a figure as an <img> tag with an embedded PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<figure><img alt="plot" src="data:image/png;base64,{data}"></figure>'


def barh(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    xlabel: str = "rows",
    colors: Sequence[str] | None = None,
    lines: Sequence[tuple[float, str, str]] = (),
) -> str:
    """Return a horizontal bar chart (first label on top) as an <img> tag.

    Args:
        lines: (x, label, color) of vertical reference lines, e.g. thresholds, with a legend.
    """
    fig, ax = new_figure(6, max(1.5, 0.28 * len(labels) + 0.8))
    color = list(colors)[::-1] if colors is not None else "#3f6fb5"
    ax.barh(list(labels)[::-1], list(values)[::-1], color=color)
    for x, label, line_color in lines:
        ax.axvline(x, color=line_color, linestyle="--", label=label)
    if lines:
        ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return figure(fig)


def paired_barh(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    title: str,
    xlabel: str,
) -> str:
    """Return horizontal bars of two or more series side by side per label (first on top)."""
    fig, ax = new_figure(6, max(1.8, 0.4 * len(labels) + 0.9))
    height = 0.8 / len(series)
    positions = range(len(labels))[::-1]
    for i, (name, values) in enumerate(series):
        ax.barh([p + 0.4 - height * (i + 0.5) for p in positions], values, height, label=name)
    ax.set_yticks(list(positions), list(labels))
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return figure(fig)


def hist(values, title: str, xlabel: str, bins: int = 50, log: bool = False) -> str:
    """Return a histogram as an <img> tag."""
    fig, ax = new_figure(6, 3)
    ax.hist(values, bins=bins, color="#3f6fb5", log=log)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return figure(fig)


def table(rows: Iterable[Sequence], header: Sequence[str]) -> str:
    """Return an HTML table; numbers are right-aligned."""

    def cell(value) -> str:
        if isinstance(value, bool):
            return f"<td>{'yes' if value else 'no'}</td>"
        if isinstance(value, int | float):
            text = f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"
            return f'<td class="n">{text}</td>'
        return f"<td>{html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page(
    title: str,
    verdict: tuple[bool, str],
    sections: Sequence[tuple[str, str]],
    *,
    banner: str | None = None,
    about: Sequence[tuple[str, str]] = (),
) -> str:
    """Assemble a complete HTML document from (heading, html) sections.

    Args:
        banner: a warning shown above everything else (e.g. "this run failed").
        about: (label, value) facts printed under the title: when, what, which versions.
    """
    passed, sentence = verdict
    css = "pass" if passed else "fail"
    top = f"<div class='banner' role='alert'>{html.escape(banner)}</div>" if banner else ""
    facts = " · ".join(f"{html.escape(k)}: <b>{html.escape(v)}</b>" for k, v in about)
    facts = f"<p class='about'>{facts}</p>" if facts else ""
    parts = [f"<h2>{html.escape(h)}</h2>{body}" for h, body in sections]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{top}<h1>{html.escape(title)}</h1>{facts}"
        f"<p class='{css}'><b>{html.escape(sentence)}</b></p>{''.join(parts)}</body></html>\n"
    )
