"""`alluvial stats` (SPEC 6): the KP statistics, as a table or as RFC 4180 CSV."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ledger.cli.app import Context, cli, pass_ctx, terminal_safe

if TYPE_CHECKING:  # imported when the command runs (start-up time, issue 19)
    from ledger.stats import Table


@cli.command()
@click.option("--period", metavar="P",
              help="YYYY, YYYY-H1|H2 or YYYY-Q1..Q4, or a range FROM..TO of those "
                   "(default: every year).")
@click.option("--by", "by", metavar="KEY",
              help="Group by country (the default); production also by zone, site or buyer, "
                   "trade by hs or partner.")
@click.option("--kind", metavar="KIND",
              help="production: purchases (first sales, the default); trade: exports and "
                   "confirmed imports.")
@click.option("--csv", "as_csv", is_flag=True, help="RFC 4180 CSV with a header row.")
@pass_ctx
def stats(ctx: Context, period: str | None, by: str | None, kind: str | None,
          as_csv: bool) -> None:
    """Production or trade statistics by period and key, exact to the cent and the
    hundredth of a carat."""
    from ledger.stats import Query, QueryError, table

    try:
        query = Query.parse(period, by, kind)
    except QueryError as exc:  # exit 2, naming the option
        raise click.BadParameter(str(exc.data["reason"]),
                                 param_hint=f"'--{exc.data['field']}'") from exc
    with ctx.ledger.engine.connect() as conn:
        result = table(conn, query)
    click.echo(result.to_csv() if as_csv else readable(result), nl=not as_csv)


NUMERIC = frozenset({"purchases", "carats", "stones", "value_usd", "usd_per_ct",
                     "flagged_carats", "certificates"})


def readable(result: Table) -> str:
    """Aligned columns, figures right-aligned; a line saying so when nothing matched."""
    rows = [[terminal_safe(c) for c in row] for row in result.csv_rows()]
    if not rows:
        return "No figures for this period."
    head = list(result.columns)
    widths = [max(len(x) for x in column) for column in zip(head, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if name in NUMERIC else c.ljust(w)
                         for c, w, name in zip(cells, widths, head, strict=True)).rstrip()

    return "\n".join([line(head), *(line(r) for r in rows)])
