"""The `alluvial` command line (SPEC 6).

Exit codes live in one table: 0 success, 1 a verification failed, 2 bad usage or
input. Results go to stdout, progress bars and errors to stderr.
"""

from __future__ import annotations

import json
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from ledger.config import Settings
from ledger.db import make_engine
from ledger.errors import LedgerError, VerificationError
from ledger.events import Ledger
from ledger.keys import SigningKey, load_or_create
from ledger.log import Log

# The one place errors become exit codes (SPEC 6).
EXIT_CODES: tuple[tuple[type[LedgerError], int], ...] = (
    (VerificationError, 1),
    (LedgerError, 2),
)


def exit_code(error: LedgerError) -> int:
    return next(code for cls, code in EXIT_CODES if isinstance(error, cls))


class Context:
    """Lazily opened engine, key and log for one command."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> sa.Engine:
        return make_engine(self.settings.database_url)

    def key(self, create: bool = False) -> SigningKey:
        path = self.settings.log_key_path
        if not create and not path.exists():
            raise LedgerError(
                f"ALLUVIAL_LOG_KEY: no log key at {path}; run `alluvial init` first.",
                rule="CONFIG",
            )
        return load_or_create(path, self.settings.origin)

    def close(self) -> None:
        """Return every pooled connection when the command ends."""
        if "engine" in self.__dict__:
            self.engine.dispose()

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.engine, self.key())

    @property
    def log(self) -> Log:
        return self.ledger.log


pass_ctx = click.make_pass_decorator(Context)


class LedgerGroup(click.Group):
    """Turns the ledger's errors into a message on stderr and the exit code of EXIT_CODES."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LedgerError as exc:
            click.echo(f"{exc.rule}: {exc}", err=True)
            ctx.exit(exit_code(exc))
        except sa.exc.OperationalError as exc:
            click.echo(f"database: {exc.orig}", err=True)
            ctx.exit(2)


@click.group(cls=LedgerGroup)
@click.version_option(package_name="alluvial-ledger")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Alluvial Ledger: a tamper-evident custody ledger for rough diamonds."""
    ctx.obj = Context(Settings.from_env())
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@pass_ctx
def init(ctx: Context) -> None:
    """Create the log, its signing key and the actor `admin` (entry 1)."""
    key = ctx.key(create=True)
    entry = Ledger(ctx.engine, key).initialise()
    click.echo(f"Initialised log {key.name} in {ctx.settings.database_url}")
    click.echo(f"Signing key: {ctx.settings.log_key_path}")
    click.echo(f"Entry {entry.seq}: actor.registered admin")
    click.echo(f"Verifier key: {key.verifier.to_vkey()}")


@cli.command()
@click.option("--vkey", is_flag=True, help="Print the log's C2SP verifier key instead.")
@pass_ctx
def checkpoint(ctx: Context, vkey: bool) -> None:
    """Sign a checkpoint of the log as it is now and print the signed note."""
    if vkey:
        click.echo(ctx.key().verifier.to_vkey())
        return
    click.echo(ctx.log.checkpoint(), nl=False)


@cli.group()
def prove() -> None:
    """RFC 9162 inclusion and consistency proofs, as JSON with hex hashes."""


@prove.command("inclusion")
@click.argument("seq", type=click.IntRange(min=1))
@click.option("--size", type=click.IntRange(min=1), help="Tree size (default: the log's size).")
@pass_ctx
def prove_inclusion(ctx: Context, seq: int, size: int | None) -> None:
    """Prove that entry SEQ is in the log of SIZE entries."""
    _print_json(ctx.log.inclusion_proof(seq, size))


@prove.command("consistency")
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1))
@pass_ctx
def prove_consistency(ctx: Context, old: int, new: int) -> None:
    """Prove that the log of NEW entries extends the log of OLD entries."""
    _print_json(ctx.log.consistency_proof(old, new))


@cli.command()
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An earlier signed checkpoint the log must still extend.",
)
@pass_ctx
def verify(ctx: Context, checkpoint_file: Path | None) -> None:
    """Re-derive every entry hash, the Merkle root and check the signed checkpoint."""
    from tqdm import tqdm

    from ledger.verify import verify_log

    earlier = checkpoint_file.read_text(encoding="utf-8") if checkpoint_file else None
    total = ctx.log.size()
    with tqdm(total=total, unit="entry", file=sys.stderr, disable=None, leave=False) as bar:
        report = verify_log(ctx.engine, ctx.key().verifier, earlier, progress=bar.update)
    if not report.ok:
        for line in report.lines():
            click.echo(line)
        sys.exit(1)
    click.echo(f"OK: {report.size} entries, chain and Merkle root verified.")
    click.echo(f"root {report.root.hex()}")
    click.echo(f"latest checkpoint (size {report.checkpoint_size}) signature verified.")
    if earlier is not None:
        click.echo("consistent with the given checkpoint.")


@cli.command()
@click.argument("file", type=click.File("r", encoding="utf-8", lazy=True))
@click.option("--batch", type=click.IntRange(min=1),
              help="Commit every N lines (default: the whole file is one transaction).")
@pass_ctx
def ingest(ctx: Context, file: Any, batch: int | None) -> None:
    """Write the events of FILE.jsonl, one per line: all or nothing (or per --batch)."""
    from tqdm import tqdm

    from ledger.ingest import LineError
    from ledger.ingest import ingest as run

    ledger = ctx.ledger
    with tqdm(unit="line", file=sys.stderr, disable=None, leave=False) as bar:
        try:
            report = run(ledger, file, batch=batch, progress=bar.update)
        except LineError as exc:
            bar.close()
            click.echo(str(exc), err=True)
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
    from ledger.custody import trace as build

    with ctx.engine.connect() as conn:
        graph = build(conn, ident, direction)
    if as_json:
        _print_json(graph.to_json())
    else:
        for line in graph.render():
            click.echo(line)


@cli.command()
@pass_ctx
def rebuild(ctx: Context) -> None:
    """Drop the projections and recreate them from the log."""
    digest = ctx.ledger.rebuild()
    click.echo(f"Projections rebuilt from {ctx.log.size()} entries; digest {digest}")


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
