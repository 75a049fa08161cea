"""Commands on the chain of custody: ingest, trace, rebuild (SPEC 4, 6)."""

from __future__ import annotations

import sys
from typing import Any

import click

from ledger.cli.app import Context, cli, pass_ctx, print_json, terminal_safe


@cli.command()
@click.argument("file", type=click.File("r", encoding="utf-8", lazy=True))
@click.option("--batch", type=click.IntRange(min=1),
              help="Commit every N lines (default: the whole file is one transaction).")
@pass_ctx
def ingest(ctx: Context, file: Any, batch: int | None) -> None:
    """Write the events of FILE.jsonl, one per line: all or nothing (or per --batch).

    After the first 20,000 lines, a second process reads and checks the lines ahead
    of the one that writes them.
    """
    from tqdm import tqdm

    from ledger.recorder.ingest import LineError
    from ledger.recorder.ingest import ingest as run

    ledger = ctx.ledger
    with tqdm(unit="line", file=sys.stderr, disable=None, leave=False) as bar:
        try:
            report = run(ledger, file, batch=batch, progress=bar.update)
        except LineError as exc:
            bar.close()
            click.echo(terminal_safe(str(exc)), err=True)
            if exc.resume_from is not None:
                click.echo(f"Lines before {exc.resume_from} are committed; fix line {exc.line} "
                           f"and resume from line {exc.resume_from}.", err=True)
            else:
                click.echo("Nothing from this file was written.", err=True)
            sys.exit(2)
    click.echo(f"{report.lines} lines: {report.written} entries written, "
               f"{report.repeated} already recorded, {report.flags} flags raised.")
    click.echo(f"Log size {ledger.log.size()}.")


@cli.command()
@click.argument("ident", metavar="ID")
@click.option("--backward", "direction", flag_value="backward", default=True,
              help="Back to the sites (default).")
@click.option("--forward", "direction", flag_value="forward", help="Forward to the exports.")
@click.option("--json", "as_json", is_flag=True, help="Print the graph as JSON (SPEC 6).")
@pass_ctx
def trace(ctx: Context, ident: str, direction: str, as_json: bool) -> None:
    """The custody graph of a parcel or a KP certificate number."""
    from ledger.custody.trace import trace as build

    with ctx.engine.connect() as conn:
        graph = build(conn, ident, direction)
    if as_json:
        print_json(graph.to_json())
    else:
        for line in graph.render():
            click.echo(terminal_safe(line))


@cli.command()
@pass_ctx
def rebuild(ctx: Context) -> None:
    """Drop the projections and recreate them from the log."""
    digest = ctx.ledger_as_stored.rebuild()
    click.echo(f"Projections rebuilt from {ctx.log.size()} entries; digest {digest}")
