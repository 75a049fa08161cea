"""Commands on the log itself: init, checkpoint, prove, verify (SPEC 3, 6)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger.cli.app import Context, cli, pass_ctx, print_json, terminal_safe


@cli.command()
@pass_ctx
def init(ctx: Context) -> None:
    """Create the log, its signing key and the actor `admin` (entry 1)."""
    from ledger.recorder.events import Ledger

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
    print_json(ctx.log.inclusion_proof(seq, size))


@prove.command("consistency")
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1))
@pass_ctx
def prove_consistency(ctx: Context, old: int, new: int) -> None:
    """Prove that the log of NEW entries extends the log of OLD entries."""
    print_json(ctx.log.consistency_proof(old, new))


@cli.command()
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An earlier signed checkpoint the log must still extend.",
)
@click.option("--projections", "projections", is_flag=True,
              help="Also make the projections again from the log, aside, and compare them "
              "with the live ones (holds the write lock meanwhile).")
@pass_ctx
def verify(ctx: Context, checkpoint_file: Path | None, projections: bool) -> None:
    """Re-derive every entry hash, the Merkle root and check the signed checkpoint."""
    import sqlalchemy as sa
    from tqdm import tqdm

    from ledger.log.store import Log
    from ledger.log.verify import verify_log

    earlier = checkpoint_file.read_text(encoding="utf-8") if checkpoint_file else None
    # Not ctx.log: verify reports a key or a trigger that is wrong, it neither refuses nor
    # repairs them (Log.check_store).
    log = Log(ctx.engine, ctx.key())
    try:
        total: int | None = log.size()
    except sa.exc.DBAPIError:
        total = None  # a damaged store: verify_log says how
    with tqdm(total=total, unit="entry", file=sys.stderr, disable=None,
              leave=False) as bar:
        report = verify_log(ctx.engine, log.verifier, earlier, progress=bar.update,
                            signer=log.key)
    if report.ok and projections:
        from ledger.recorder.audit import compare_projections

        # SPEC 6 verify --projections: a projection edited by hand (a hold released) fails.
        if (difference := compare_projections(ctx.engine)) is not None:
            report.problems.append(difference)
    if not report.ok:
        for line in report.lines():
            click.echo(terminal_safe(line))
        sys.exit(1)
    click.echo(f"OK: {report.size} entries, chain and Merkle root verified.")
    click.echo(f"root {report.root.hex()}")
    click.echo(f"latest checkpoint (size {report.checkpoint_size}) signature verified.")
    if earlier is not None:
        click.echo("consistent with the given checkpoint.")
    if projections:
        click.echo("projections: equal to those made again from the log.")


@cli.command()
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def backup(ctx: Context, dest: Path) -> None:
    """Copy a SQLite ledger to DEST while it runs, verify the copy, print its checkpoint."""
    from ledger.backup import backup as copy_ledger

    note = copy_ledger(ctx.engine, ctx.log.key, dest)
    click.echo(f"Backed up to {dest}, verified against the live log's checkpoint.",
               err=True)
    click.echo(note, nl=False)
