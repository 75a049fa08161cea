"""One round of a form that writes an event: show it, preview it, or write it.

A POST with ``action=preview`` screens the event without writing it
(:mod:`webui.pages.preview`); any other POST writes it through the app's group
writer, exactly as ``POST /api/v1/events`` does. Each form carries an ``event_id``
made when it was first shown, so a form sent twice (a double click, a reload) is
written once (SPEC 4).
"""

from __future__ import annotations

import copy
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from flask import flash, request
from flask_babel import gettext
from werkzeug.datastructures import FileStorage

from ledger import reads
from ledger.errors import InputError, LedgerError
from ledger.geo.zonefile import read_zone_file
from ledger.i18n import N_
from ledger.recorder.events import Event, WriteResult
from ledger.recorder.prepare import check_event
from webui.pages import access, links
from webui.pages.cartography import MapDrawing, draw_map
from webui.pages.forms import Form, Refusal, refusals
from webui.pages.preview import Preview, preview
from webui.services import ledger, reading, services


@dataclass
class Round:
    """What a form shows next: the values, refusals by input, and a preview or a result."""

    values: dict[str, str]
    errors: dict[str, list[Refusal]] = field(default_factory=dict)
    preview: Preview | None = None
    result: WriteResult | None = None

    @property
    def status(self) -> int:
        return 422 if self.errors else 200


def handle(form: Form, **given: str) -> Round:
    """``given``: payload fields the page fixes (the flag a resolution is about)."""
    if request.method != "POST":
        return Round({**form.initial(), "event_id": str(uuid.uuid4())})
    values = request.form.to_dict()
    actor_id = access.principal().actor_id
    try:
        payload = {**form.payload(values, actor_id), **given}
        event = Event.from_json({"kind": form.kind, "payload": payload,
                                 "event_id": values.get("event_id") or None}, actor=actor_id)
        if values.get("action") == "preview":
            return Round(values, preview=preview(ledger(), event))
        # Issue #15: checked here, before it is queued for the writer process.
        return Round(values, result=services().writer.write(check_event(event)))
    except LedgerError as exc:
        return Round(values, errors=refusals(exc, form))


def preview_map(step: Round) -> MapDrawing | None:
    """The screened point or polygon among its licence zones and the risk areas."""
    shown = step.preview
    if shown is None or shown.geometry is None:
        return None
    with reading(access.principal()) as scope:
        features = reads.screened(scope, shown.geometry, shown.licence_no, len(shown.flags))
    return draw_map(features, links.feature_or_none, fit=("site", "licence_zone"), width=700)


def announce(result: WriteResult, what: str) -> None:
    """Tell the next page what was written and which flags screening raised."""
    seq = result.entry.seq
    flash(gettext("%(what)s written as entry %(seq)s.", what=what, seq=seq) if result.created
          else gettext("%(what)s was already written as entry %(seq)s (the form was sent "
                       "twice).", what=what, seq=seq), "written")
    if not result.flags and result.entry.kind in ("site.registered", "parcel.purchased"):
        flash(gettext("Screening raised no flag."), "clean")
    for f in result.flags:
        flash(f"{f['code']} ({f['flag_id']}): {f['detail']}", "flag")


ZONE_FILES = (".geojson", ".json", ".gpkg", ".zip")


def import_zones(upload: FileStorage | None, zone_type: str) -> int:
    """Register every feature of an uploaded zone file, all or nothing (as `import-zones`).

    The file is read by ``ledger.geo.zonefile.read_zone_file`` (any CRS; a zipped
    Shapefile too) from a private temporary folder that is removed afterwards.
    """
    name = (upload.filename or "") if upload is not None else ""
    suffix = Path(name).suffix.lower()
    if upload is None or not name:
        raise InputError.said(N_("choose a zone file to upload."), lead="file: ", field="file")
    if suffix not in ZONE_FILES:
        raise InputError.said(
            N_("%(name)s is not a GeoJSON, GeoPackage or zipped Shapefile (%(suffixes)s)."),
            {"name": repr(name), "suffixes": ", ".join(ZONE_FILES)}, lead="file: ", field="file")
    if zone_type not in ("licence", "risk"):
        raise InputError.said(N_("choose licence or risk."), lead="zone_type: ",
                              field="zone_type")
    actor_id = access.principal().actor_id
    with tempfile.TemporaryDirectory(prefix="alluvial-zones-") as folder:
        path = Path(folder) / f"upload{suffix}"
        upload.save(path)
        try:
            payloads = read_zone_file(path, zone_type)
        except InputError as exc:
            raise _about_file(exc, f"file: {str(exc).replace(str(path), repr(name))}") from exc
    with ledger().session() as session:
        for payload in payloads:
            label = payload.pop("_label")
            try:
                session.write(Event("zone.registered", actor_id, payload))
            except LedgerError as exc:
                raise _about_file(exc, f"file: {label}: {exc}") from exc
    return len(payloads)


def _about_file(exc: LedgerError, message: str) -> LedgerError:
    """``exc`` said about the uploaded file (its rule, ``message``, the input ``file``): a
    copy, so that the marked sentence it ends with stays with it and a page says it in its
    language (webui.i18n.say; it falls back to ``message`` when they no longer agree)."""
    moved = copy.copy(exc)
    moved.message, moved.data = message, {"field": "file"}
    moved.args = (message,)
    return moved
