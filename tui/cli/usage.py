"""``parley usage``: tokens and cost per day, model or session.

Costs are in the currency of the price table (``providers.<name>.models``); models without
prices, such as local ones, cost 0. Calls whose token counts are estimates (the server
reported none) are counted in the ``est.`` column.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any

import click

from tui.cli.common import info, json_option, open_engine, print_json, run

if TYPE_CHECKING:
    from engine.types import UsageRow

_DAYS = re.compile(r"^(\d{1,5})d$")


def parse_since(value: str | None) -> date | None:
    """``YYYY-MM-DD``, ``today``, or ``Nd`` (the last N days, today included)."""
    from engine.errors import UsageError
    from engine.usage import days_ago

    if value is None:
        return None
    text = value.strip().lower()
    if text == "today":
        return days_ago(0)
    found = _DAYS.match(text)
    if found:
        return days_ago(max(int(found.group(1)) - 1, 0))
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {value!r} is not a date",
                         "use YYYY-MM-DD, 'today', or e.g. 7d for the last seven days") from None


def _total(rows: list[UsageRow]) -> dict[str, Any]:
    return {"calls": sum(r.calls for r in rows),
            "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "completion_tokens": sum(r.completion_tokens for r in rows),
            "embedding_tokens": sum(r.embedding_tokens for r in rows),
            "cost": sum(r.cost for r in rows),
            "estimated_calls": sum(r.estimated_calls for r in rows)}


def print_table(by: str, rows: list[UsageRow]) -> None:
    """The rows and a total as an aligned table on stdout."""
    from engine.usage import money

    width = max([len(r.key) for r in rows] + [len(by), 5])
    head = (f"{by.upper():<{width}}  {'CALLS':>6}  {'PROMPT':>11}  {'COMPLETION':>11}  "
            f"{'EMBEDDING':>11}  {'COST':>10}  {'EST.':>5}")
    click.echo(head + ("  TITLE" if by == "session" else ""))

    def line(key: str, calls: int, prompt: int, completion: int, embedding: int, cost: float,
             estimated: int, title: str | None = None) -> str:
        text = (f"{key:<{width}}  {calls:>6,}  {prompt:>11,}  {completion:>11,}  "
                f"{embedding:>11,}  {money(cost):>10}  {estimated:>5,}")
        return text + (f"  {title[:50]}" if title else "")

    for r in rows:
        click.echo(line(r.key, r.calls, r.prompt_tokens, r.completion_tokens,
                        r.embedding_tokens, r.cost, r.estimated_calls, r.title))
    total = _total(rows)
    click.echo(line("total", total["calls"], total["prompt_tokens"],
                    total["completion_tokens"], total["embedding_tokens"], total["cost"],
                    total["estimated_calls"]))


@click.command("usage")
@click.option("--by", type=click.Choice(["day", "model", "session"]), default="day",
              show_default=True, help="Group the records by local day, model or session.")
@click.option("--since", metavar="DATE",
              help="From this local date on: YYYY-MM-DD, 'today' or Nd (last N days).")
@json_option
@run
async def usage(by: str, since: str | None, as_json: bool) -> None:
    """Token usage and cost of model calls and embedding batches."""
    start = parse_since(since)
    async with open_engine() as engine:
        rows = await engine.usage.report(by=by, since=start)  # type: ignore[arg-type]
    if as_json:
        print_json({"by": by, "since": start.isoformat() if start else None,
                    "rows": rows, "total": _total(rows)})
    elif rows:
        print_table(by, rows)
    else:
        info("no usage recorded" + (f" since {start.isoformat()}" if start else ""))


COMMANDS = [usage]
