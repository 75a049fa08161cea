"""Commands on the map and its screening: import-zones, rescreen, flags, export-geojson."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ledger.cli.app import Context, cli, pass_ctx, print_json, terminal_safe
from ledger.errors import InputError, LedgerError


@cli.command("import-zones")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "zone_type", type=click.Choice(["licence", "risk"]), required=True)
@click.option("--actor", default="admin", show_default=True, help="Who registers the zones.")
@click.option("--map", "renames", multiple=True, metavar="FIELD=PROPERTY",
              help="Read FIELD from another property name, e.g. --map licence_no=LIC_NUM.")
@pass_ctx
def import_zones(ctx: Context, file: Path, zone_type: str, actor: str,
                 renames: tuple[str, ...]) -> None:
    """Register every feature of FILE (GeoJSON, GeoPackage, Shapefile; any CRS) as a zone."""
    from ledger.geo.zonefile import read_zone_file
    from ledger.recorder.events import Event

    mapping = {}
    for item in renames:
        field, sep, prop = item.partition("=")
        if not sep or not field or not prop:
            raise click.BadParameter(f"{item!r}: expected FIELD=PROPERTY", param_hint="--map")
        mapping[field] = prop
    payloads = read_zone_file(file, zone_type, mapping)
    with ctx.ledger.session() as session:
        for payload in payloads:
            label = payload.pop("_label")
            try:
                session.write(Event("zone.registered", actor, payload))
            except LedgerError as exc:
                raise InputError(f"{label}: {exc.rule}: {exc}", rule=exc.rule,
                                 field=label) from exc
    click.echo(f"{len(payloads)} {zone_type} zones registered from {file.name}.")


@cli.command()
@pass_ctx
def rescreen(ctx: Context) -> None:
    """Screen the whole history again against today's map; append only new flags."""
    from ledger.recorder.rescreen import rescreen as run

    report = run(ctx.ledger, progress=lambda msg: click.echo(msg, err=True))
    click.echo(f"Rescreened {report.purchases} purchases and {report.sites} sites: "
               f"{report.new_flags} new flags ({report.tainted} tainted descendants).")


@cli.command()
@click.option("--open", "only_open", is_flag=True, help="Only flags not yet resolved.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (SPEC 6).")
@pass_ctx
def flags(ctx: Context, only_open: bool, as_json: bool) -> None:
    """List flags with subject, code, detail and the seq that raised them."""
    import sqlalchemy as sa

    from ledger.projections import flags as table

    query = sa.select(table).order_by(table.c.seq)
    if only_open:
        query = query.where(table.c.status == "open")
    with ctx.engine.connect() as conn:
        rows = list(conn.execute(query))
    listed = [{"flag_id": r.flag_id, "seq": r.seq, "code": r.code,
               "subject": {"type": r.subject_type, "id": r.subject_id}, "detail": r.detail,
               "status": r.status} for r in rows]
    if as_json:
        print_json(listed)
        return
    for f in listed:  # tab-separated fields, each escaped (a tab inside one included)
        subject = terminal_safe(f"{f['subject']['type']} {f['subject']['id']}")
        click.echo(f"{terminal_safe(f['flag_id'])}\tseq {f['seq']}\t{f['status']}\t"
                   f"{terminal_safe(f['code'])}\t{subject}\t{terminal_safe(f['detail'])}")
    click.echo(f"{len(listed)} flags", err=True)


@cli.command("export-geojson")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE instead of standard output.")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="DAY",
              help="The map as it stood on DAY (YYYY-MM-DD): each zone's version in force "
                   "that day, only the zones valid then (default: every zone's latest version).")
@pass_ctx
def export_geojson(ctx: Context, output: Path | None, as_of: Any) -> None:
    """Zones, risk areas, sites and flagged purchases as one GeoJSON FeatureCollection."""
    from ledger.geo.maps import feature_collection

    day = None if as_of is None else as_of.date().isoformat()
    with ctx.engine.connect() as conn:
        text = json.dumps(feature_collection(conn, as_of=day), ensure_ascii=False)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"Wrote {output}", err=True)
