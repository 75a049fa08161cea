"""Commands on the chain of custody: ingest, trace, rebuild (SPEC 4, 6)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ledger.cli.app import Context, cli, pass_ctx, print_json, terminal_safe


@cli.command()
@click.argument("file", type=click.File("r", encoding="utf-8", lazy=True))
@click.option("--batch", type=click.IntRange(min=1),
              help="Commit every N lines (default: the whole file is one transaction).")
@click.option("--archive", metavar="REASON",
              help="Records kept elsewhere (a paper register, an older system): first write "
                   "archive.imported with the file's SHA-256, its line count and REASON; the "
                   "lines raise no LATE_ENTRY.")
@pass_ctx
def ingest(ctx: Context, file: Any, batch: int | None, archive: str | None) -> None:
    """Write the events of FILE.jsonl, one per line: all or nothing (or per --batch).

    After the first 20,000 lines, a second process reads and checks the lines ahead
    of the one that writes them.
    """
    from tqdm import tqdm

    from ledger.recorder.ingest import LineError, archive_of
    from ledger.recorder.ingest import ingest as run

    ledger = ctx.ledger
    imported = None
    if archive is not None:
        if file.name == "-":
            raise click.UsageError("--archive needs FILE to be a file (its SHA-256 is "
                                   "recorded), not standard input.")
        imported = archive_of(Path(file.name), archive)
    with tqdm(unit="line", file=sys.stderr, disable=None, leave=False) as bar:
        try:
            report = run(ledger, file, batch=batch, progress=bar.update, archive=imported)
        except LineError as exc:
            bar.close()
            click.echo(terminal_safe(str(exc)), err=True)
            written = _written_before(ledger, file.name) if exc.resume_from in (None, 1) \
                else None
            if written is not None:
                click.echo(_resume_note(written, file.name), err=True)
            elif exc.resume_from is not None:
                click.echo(f"Lines before {exc.resume_from} are committed; fix line {exc.line} "
                           f"and resume from line {exc.resume_from}.", err=True)
            else:
                click.echo("Nothing from this file was written.", err=True)
            sys.exit(2)
    if imported is not None:
        click.echo(f"Archive {imported.file_sha256} ({imported.lines} lines) recorded as "
                   f"archive.imported: {terminal_safe(imported.reason)}.")
    click.echo(f"{report.lines} lines: {report.written} entries written, "
               f"{report.repeated} already recorded, {report.flags} flags raised.")
    click.echo(f"Log size {ledger.log.size()}.")


def _written_before(ledger: Any, name: str) -> Any:
    """The file's leading lines an earlier ingest of it wrote (issue 15), or None."""
    from ledger.errors import LedgerError
    from ledger.recorder.resume import already_written

    if name == "-":
        return None  # standard input cannot be read again
    try:
        with open(name, encoding="utf-8") as again:
            return already_written(ledger, again)
    except (OSError, UnicodeDecodeError, LedgerError):
        return None


def _resume_note(written: Any, name: str) -> str:
    lines = (f"all {written.last_line} lines" if not written.more
             else f"lines 1 to {written.last_line}")
    said = (f"Nothing was written by this run: {lines} of {terminal_safe(name)} are already "
            f"in the log (entries {written.first_seq} to {written.last_seq}), written by an "
            "earlier ingest of this file")
    if not written.more:
        return said + "; there is nothing to resume."
    start = written.resume_from
    return (f"{said}. Resume from line {start}: `tail -n +{start} FILE > rest.jsonl`, then "
            f"`alluvial ingest rest.jsonl` (its line 1 is line {start} of FILE).")


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
