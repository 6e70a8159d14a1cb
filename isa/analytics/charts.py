"""A chart for a query result when it suits one: bar (text x), line (time x) or scatter (number x), as PNG.

matplotlib with the Agg backend renders off-screen in a worker thread; a Figure object (not pyplot's global
state) keeps concurrent renders apart.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from isa.analytics.engine import kind_of


@dataclass(frozen=True)
class ChartSpec:
    kind: str  # bar, line or scatter
    x: str
    y: str


def choose(columns: tuple[str, ...], types: tuple[str, ...], rows: int) -> ChartSpec | None:
    """The chart the column types call for: first time/text/number column as x, first other number as y."""
    if rows < 2 or len(columns) < 2:
        return None
    kinds = [kind_of(t) for t in types]
    numbers = [i for i, k in enumerate(kinds) if k == "number"]
    for wanted, chart in (("time", "line"), ("text", "bar")):
        x = next((i for i, k in enumerate(kinds) if k == wanted), None)
        if x is not None and numbers:
            return ChartSpec(chart, columns[x], columns[numbers[0]])
    if len(numbers) >= 2:
        return ChartSpec("scatter", columns[numbers[0]], columns[numbers[1]])
    return None


def render_png(spec: ChartSpec, columns: tuple[str, ...], rows: list[tuple[Any, ...]], title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xi, yi = columns.index(spec.x), columns.index(spec.y)
    points = [(r[xi], r[yi]) for r in rows if r[xi] is not None and r[yi] is not None]
    xs = [p[0] for p in points]
    ys = [float(p[1]) for p in points]
    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if spec.kind == "bar":
        axes.bar([str(x)[:30] for x in xs], ys, color="#3b6ea5")
        axes.tick_params(axis="x", labelrotation=45)
    elif spec.kind == "line":
        ordered = sorted(zip(xs, ys, strict=True), key=lambda p: p[0])
        axes.plot([p[0] for p in ordered], [p[1] for p in ordered], marker="o", color="#3b6ea5")
        figure.autofmt_xdate()
    else:
        axes.scatter([float(x) for x in xs], ys, s=12, color="#3b6ea5")
    axes.set_xlabel(spec.x)
    axes.set_ylabel(spec.y)
    axes.set_title(title[:90])
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
