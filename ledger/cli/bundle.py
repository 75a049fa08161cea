"""Provenance bundles (SPEC 7): `bundle` builds one, `verify-bundle` checks one offline."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger.cli.app import Context, cli, pass_ctx, terminal_safe


@cli.command()
@click.argument("certificate_no")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              required=True, help="Write the bundle to FILE ('-': standard output).")
@click.option("--since", type=click.IntRange(min=1), metavar="SIZE",
              help="Add a consistency proof from this earlier log size (the size of the "
              "checkpoint the importer saved).")
@pass_ctx
def bundle(ctx: Context, certificate_no: str, output: Path, since: int | None) -> None:
    """Write the provenance bundle of the export under KP certificate CERTIFICATE_NO."""
    from ledger.bundle.build import build_bundle, dumps

    made = build_bundle(ctx.log, certificate_no, since)  # ctx.log: the log's own key only
    text = dumps(made)
    if str(output) == "-":
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    size = made.checkpoint.split("\n")[1]
    click.echo(f"Wrote {output}: the provenance bundle of {certificate_no}, {len(made.items)} "
               f"entries against the checkpoint of size {size}.")


@cli.command("verify-bundle")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "vkey", metavar="VKEY",
              help="The log's published verifier key (`alluvial checkpoint --vkey`), or a "
              "file holding it.")
@click.option("--trust-bundle-key", is_flag=True,
              help="Accept the bundle's own key instead (proves nothing about who made it).")
@click.option("--checkpoint", "checkpoint_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint of the log you saved earlier, which the bundle must extend.")
def verify_bundle(file: Path, vkey: str | None, trust_bundle_key: bool,
                  checkpoint_file: Path | None) -> None:
    """Verify the provenance bundle FILE offline: no database, no network, no file written."""
    from ledger.bundle.verify import verify_bundle as run
    from ledger.errors import InputError
    from ledger.log.keys import VerifierKey

    if (vkey is None) == (not trust_bundle_key):
        raise click.UsageError("give the log's published key with --key VKEY, or accept the "
                               "bundle's own key with --trust-bundle-key (not both).")
    key = None
    if vkey is not None:
        text = Path(vkey).read_text(encoding="utf-8") if Path(vkey).is_file() else vkey
        try:
            key = VerifierKey.from_vkey(text)
        except InputError as exc:
            raise click.BadParameter(str(exc), param_hint="--key") from exc
    earlier = checkpoint_file.read_text(encoding="utf-8") if checkpoint_file else None
    report = run(file.read_bytes(), key, earlier)
    if key is None and report.key:
        click.echo(f"WARNING: key not pinned: accepting the bundle's own key "
                   f"{terminal_safe(report.key)}; "
                   "anyone can make a bundle that verifies under its own key. Pin the log's "
                   "published key with --key.", err=True)
    for line in report.lines():
        click.echo(terminal_safe(line))
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.option("--unconfirmed", is_flag=True,
              help="Only certificates whose import nobody has confirmed (expired ones included).")
@click.option("--older-than", "older_than", type=click.IntRange(min=0), metavar="DAYS",
              help="Only certificates issued more than DAYS days before today (UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (SPEC 6).")
@pass_ctx
def certificates(ctx: Context, unconfirmed: bool, older_than: int | None, as_json: bool) -> None:
    """KP certificates, each with its state (declared, validated, confirmed, mismatched)
    and whether an open flag taints it."""
    from ledger.certificates import certificate_list
    from ledger.cli.app import print_json

    with ctx.engine.connect() as conn:
        listed = certificate_list(conn, unconfirmed=unconfirmed, older_than=older_than)
    if as_json:
        print_json(listed)
        return
    for c in listed:  # tab-separated; a tainted certificate says so in its own column
        click.echo("\t".join(terminal_safe(str(v)) for v in (
            c["certificate_no"], c["exporter"], c["destination"], c["date"], c["expires"],
            f"{c['carats']:.2f} ct", f"{c['value_usd']:.2f} USD", c["state"],
            "TAINTED" if c["tainted"] else "")).rstrip("\t"))
    click.echo(f"{len(listed)} certificates", err=True)
