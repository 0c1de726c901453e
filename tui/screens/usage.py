"""The usage screen: tokens and cost by day and by model, a chart, and the budget.

Days are local days, as the engine counts them for budgets. Local models cost nothing
unless prices are configured; the chart then shows tokens instead of cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import DataTable, Label, ProgressBar, Static

from engine.types import UsageRow
from tui.screens.base import ParleyScreen, engine_task
from tui.widgets.charts import BarChart
from tui.widgets.format import count

PERIODS = (7, 30, 90, 365)
NO_BUDGET = ("No budget set. Add chat.budget.daily or chat.budget.monthly to the config to "
             "be warned (or stopped) before a call passes it.")
COLUMNS = ("Calls", "Prompt", "Answer", "Embed", "Cost")


def local_today() -> date:
    """Today in local time (a function, so tests can fix the date)."""
    return datetime.now().astimezone().date()


def money(amount: float) -> str:
    """Four decimals below 1, else two (the engine's convention)."""
    return f"{amount:.4f}" if amount < 1 else f"{amount:,.2f}"


def row_cells(row: UsageRow) -> tuple[str | Content, ...]:
    """The numeric cells of a report row (estimated counts marked with ~)."""
    approx = "~" if row.estimated_calls else ""
    return (f"{row.calls:,}", f"{approx}{row.prompt_tokens:,}",
            f"{approx}{row.completion_tokens:,}", f"{row.embedding_tokens:,}", money(row.cost))


def daily_series(rows: Sequence[UsageRow], days: int, today: date,
                 metric: str) -> tuple[tuple[str, float], ...]:
    """(label, value) for each of the last ``days`` days, zero where nothing was used."""
    by_day = {row.key: row for row in rows}
    out = []
    for offset in range(days - 1, -1, -1):
        day = today - timedelta(days=offset)
        row = by_day.get(day.isoformat())
        value = 0.0
        if row is not None:
            value = row.cost if metric == "cost" else float(
                row.prompt_tokens + row.completion_tokens + row.embedding_tokens)
        out.append((day.strftime("%b %d"), value))
    return tuple(out)


class UsageScreen(ParleyScreen):
    """What was used and what it cost."""

    MODE = "usage"
    AUTO_FOCUS = "#by-day"
    BINDINGS = [
        Binding("p", "next_period", "Period", id="usage.period"),
        Binding("t", "toggle_metric", "Tokens / cost", id="usage.metric"),
        Binding("g", "refresh", "Refresh", id="usage.refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.days = 30
        self.metric = "cost"
        self.day_rows: list[UsageRow] = []
        self.today = local_today()

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(id="usage-main"):
            with Horizontal(id="usage-top"):
                with Vertical(id="chart-pane"):
                    yield Label("", id="chart-title", classes="panel-title")
                    yield BarChart(id="chart")
                with Vertical(id="budget-pane"):
                    yield Label("Budget", classes="panel-title")
                    yield Static("", id="budget-day")
                    yield ProgressBar(id="budget-day-bar", show_eta=False, total=1)
                    yield Static("", id="budget-month")
                    yield ProgressBar(id="budget-month-bar", show_eta=False, total=1)
                    yield Static(NO_BUDGET, id="budget-none", classes="empty-state")
            with Horizontal(id="usage-tables"):
                with Vertical():
                    yield Label("By day", classes="panel-title")
                    yield DataTable(id="by-day", cursor_type="row", zebra_stripes=True)
                with Vertical():
                    yield Label("By model", classes="panel-title")
                    yield DataTable(id="by-model", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#by-day", DataTable).add_columns("Day", *COLUMNS)
        self.query_one("#by-model", DataTable).add_columns("Model", *COLUMNS)

    def on_screen_resume(self) -> None:
        self.refresh_usage()

    @engine_task("usage")
    async def refresh_usage(self) -> None:
        """Load the reports for the period (and this month, for the budget)."""
        engine = await self.engine()
        self.today = local_today()
        start = self.today - timedelta(days=self.days - 1)
        month = self.today.replace(day=1)
        self.day_rows = await engine.usage.report("day", since=min(start, month))
        model_rows = await engine.usage.report("model", since=start)
        in_period = [r for r in self.day_rows if r.key >= start.isoformat()]
        self._fill(self.query_one("#by-day", DataTable), sorted(in_period, key=lambda r: r.key,
                                                                 reverse=True))
        self._fill(self.query_one("#by-model", DataTable), model_rows)
        self._show_chart()
        self._show_budget()

    def _fill(self, table: DataTable[str | Content], rows: Sequence[UsageRow]) -> None:
        table.clear()
        for row in rows:
            table.add_row(row.key, *row_cells(row))
        if rows:
            calls = sum(r.calls for r in rows)
            total = UsageRow("total", calls, sum(r.prompt_tokens for r in rows),
                             sum(r.completion_tokens for r in rows),
                             sum(r.embedding_tokens for r in rows), sum(r.cost for r in rows),
                             sum(r.estimated_calls for r in rows))
            table.add_row(*(Content.styled(str(c), "bold") for c in ("Total",
                                                                      *row_cells(total))))

    def _show_chart(self) -> None:
        metric = self.metric
        series = daily_series(self.day_rows, self.days, self.today, metric)
        if metric == "cost" and not any(v for _, v in series):
            metric = "tokens"  # local models cost nothing: tokens say more
            series = daily_series(self.day_rows, self.days, self.today, metric)
        chart = self.query_one(BarChart)
        chart.unit = "" if metric == "tokens" else " cost"
        chart.data = series if any(v for _, v in series) else ()
        total = sum(v for _, v in series)
        shown = count(total) + " tokens" if metric == "tokens" else money(total)
        self.query_one("#chart-title", Label).update(
            f"{'Tokens' if metric == 'tokens' else 'Cost'} per day, last {self.days} days"
            f"  ({shown})")

    def _show_budget(self) -> None:
        budget = self.parley.settings.chat.budget
        today = sum(r.cost for r in self.day_rows if r.key == self.today.isoformat())
        month_key = self.today.strftime("%Y-%m")
        month = sum(r.cost for r in self.day_rows if r.key.startswith(month_key))
        for period, spent, limit in (("day", today, budget.daily),
                                     ("month", month, budget.monthly)):
            text = self.query_one(f"#budget-{period}", Static)
            bar = self.query_one(f"#budget-{period}-bar", ProgressBar)
            text.display = bar.display = limit is not None
            if limit is None:
                continue
            name = "Today" if period == "day" else "This month"
            share = spent / limit if limit else 1.0
            style = "$text-error" if share >= 1 else "$text-warning" if share >= 0.8 else ""
            text.update(Content.assemble(f"{name}: ", (money(spent), f"bold {style}".strip()),
                                         f" of {money(limit)}  ({share:.0%})"))
            bar.update(total=max(limit, 1e-9), progress=min(spent, limit))
        action = "warns" if budget.action == "warn" else "refuses the call"
        none = self.query_one("#budget-none", Static)
        none.display = True
        if budget.daily is None and budget.monthly is None:
            none.update(NO_BUDGET)
        else:
            none.update(f"Passing a limit {action} (chat.budget.action).")

    def action_next_period(self) -> None:
        self.days = PERIODS[(PERIODS.index(self.days) + 1) % len(PERIODS)]
        self.refresh_usage()

    def action_toggle_metric(self) -> None:
        self.metric = "tokens" if self.metric == "cost" else "cost"
        self._show_chart()

    def action_refresh(self) -> None:
        self.refresh_usage()
