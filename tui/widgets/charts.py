"""A vertical bar chart drawn with block characters (eight steps per cell).

Used by the usage screen for tokens or cost per day. Bars are as wide as the space allows
(one to three cells with a gap), the tallest bar fills the height, the maximum is printed
on the left and the first and last labels under the bars.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

BLOCKS = " ▁▂▃▄▅▆▇█"


def bar_rows(values: Sequence[float], height: int, bar_width: int = 1,
             gap: int = 1) -> list[str]:
    """The chart body, top row first: one column of ``bar_width`` cells per value."""
    top = max(values, default=0.0)
    steps = [round(v / top * height * 8) if top > 0 else 0 for v in values]
    # A value above zero always shows at least a sliver.
    steps = [max(s, 1) if v > 0 else 0 for s, v in zip(steps, values, strict=True)]
    rows = []
    for row in range(height - 1, -1, -1):
        cells = []
        for step in steps:
            fill = min(max(step - row * 8, 0), 8)
            cells.append(BLOCKS[fill] * bar_width + " " * gap)
        rows.append("".join(cells).rstrip())
    return rows


class BarChart(Widget):
    """Values as vertical bars, with a caption for the largest value and the ends."""

    DEFAULT_CSS = """
    BarChart { height: 10; }
    """

    data: reactive[tuple[tuple[str, float], ...]] = reactive((), layout=True)
    """(label, value) pairs, oldest first."""
    unit: reactive[str] = reactive("")

    def render(self) -> Content:
        data = self.data
        height = max(self.size.height - 2, 1)
        if not data:
            return Content.styled("No usage recorded in this period.", "$text-muted")
        values = [v for _, v in data]
        top = max(values)
        axis = f"{_fmt(top)}{self.unit}"
        margin = len(axis) + 1
        room = max(self.size.width - margin, len(data))
        bar_width = max(1, min(3, room // len(data) - 1))
        rows = bar_rows(values, height, bar_width)
        lines: list[Content] = []
        for index, row in enumerate(rows):
            label = axis if index == 0 else ""
            lines.append(Content.assemble((label.rjust(margin - 1) + " ", "$text-muted"),
                                          (row, "$accent")))
        span = len(data) * (bar_width + 1) - 1
        first, last = data[0][0], data[-1][0]
        ends = first + last.rjust(max(span - len(first), len(last) + 1)) if len(data) > 1 \
            else first
        lines.append(Content.styled(" " * margin + "─" * max(span, 1), "$text-muted"))
        lines.append(Content.styled(" " * margin + ends, "$text-muted"))
        return Content("\n").join(lines)


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.4f}".rstrip("0").rstrip(".")
