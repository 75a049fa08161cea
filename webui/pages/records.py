"""One record a page: parcel and export (with the custody graph and the origin map),
site, zone, actor, and a log entry with its inclusion proof."""

from __future__ import annotations

import json
from dataclasses import replace

import segno
from flask import Blueprint, Response, render_template, request, url_for
from markupsafe import Markup

from ledger import reads
from ledger.certificates import actions
from ledger.custody.trace import Trace
from ledger.errors import NotFound
from ledger.i18n import N_
from ledger.paper import paper
from ledger.reads import Scope
from webui.api.log import _checkpoint_json
from webui.openapi import MAX_SEQ
from webui.pages import access, links
from webui.pages.cartography import draw_map
from webui.pages.graph import GraphDrawing, draw_graph
from webui.services import ledger, reading

bp = Blueprint("records", __name__)


def _graph(scope: Scope, graph: Trace) -> GraphDrawing:
    """The drawing, and the page of its steps that ``?backward_after=SEQ`` (or forward)
    asks for, with the link to the next page keeping the page's other arguments."""
    key = f"{graph.direction}_after"
    drawing = draw_graph(graph, reads.node_seqs(scope, graph.nodes),
                         reads.flagged_nodes(scope, graph.nodes), links.node,
                         after=request.args.get(key, type=int))
    if drawing.next_after is None:
        return drawing
    wanted = {**request.args.to_dict(), **(request.view_args or {}), key: drawing.next_after}
    return replace(drawing, next_href=url_for(str(request.endpoint), **wanted,
                                              _anchor=f"steps-{graph.direction}"))


@bp.get("/parcels/<path:parcel_id>")
@access.reads("parcels")
def parcel(parcel_id: str) -> str:
    with reading(access.principal()) as scope:
        record = scope.parcel(parcel_id)
        back, forward = scope.custody(parcel_id, "backward"), scope.custody(parcel_id, "forward")
        return render_template(
            "parcel.html", parcel=record, back=back, forward=forward,
            back_drawing=_graph(scope, back), forward_drawing=_graph(scope, forward),
            origins=draw_map(reads.origin_features(scope, back), links.feature,
                             fit=("licence_zone", "site", "dig_point", "flagged_purchase")))


@bp.get("/exports/<path:certificate_no>")
@access.reads("bundles")
def export(certificate_no: str) -> str:
    with reading(access.principal()) as scope:
        scope.check_export(certificate_no)
        record = reads.export(scope, certificate_no)
        back = reads.export_custody(scope, certificate_no)
        return render_template(
            "export.html", export=record, back=back, back_drawing=_graph(scope, back),
            can=actions(scope.conn, scope.actor, [certificate_no]),
            origins=draw_map(reads.origin_features(scope, back), links.feature,
                             fit=("licence_zone", "site", "dig_point", "flagged_purchase")))


@bp.get("/exports/<path:certificate_no>/bundle.json")
@access.reads("bundles")
def bundle(certificate_no: str) -> Response:
    """The provenance bundle (SPEC 7), as `GET /api/v1/exports/{no}/bundle` gives it."""
    with reading(access.principal()) as scope:
        scope.check_export(certificate_no)
    from ledger.bundle.build import build_bundle, dumps  # loaded on first use, as the API does

    return links.download(dumps(build_bundle(ledger().log, certificate_no)),
                          f"{links.safe(certificate_no)}.bundle.json", "application/json")


@bp.get("/exports/<path:certificate_no>/print")
@access.reads("bundles")
def printable(certificate_no: str) -> str:
    """The KP certificate on A4 (issue 18): its fields, origins and validation, and a QR
    code of the certificate, the log and the SHA-256 of its provenance bundle."""
    with reading(access.principal()) as scope:
        scope.check_export(certificate_no)
        record = reads.export(scope, certificate_no)
        sheet = paper(ledger().log, scope.conn, certificate_no)
    return render_template("certificate_print.html", export=record, paper=sheet,
                           qr=Markup(segno.make(sheet.qr_text, error="m").svg_inline(
                               border=4, dark="#000", light="#fff", omitsize=True)))


@bp.get("/sites/<path:site_id>")
@access.reads("sites")
def site(site_id: str) -> str:
    with reading(access.principal()) as scope:
        record = reads.site(scope, site_id)
        features = reads.near(reads.map_features(scope, site_ids=[site_id]), record["zones"],
                              [site_id])
        sees_all = scope.sees_all
    return render_template("site.html", site=record, sees_all=sees_all,
                           drawing=draw_map(features, links.feature, fit=("site", "licence_zone")))


@bp.get("/zones/<path:zone_id>")
@access.reads("zones")
def zone(zone_id: str) -> str:
    with reading(access.principal()) as scope:
        record = reads.zone(scope, zone_id)
        features = reads.near(reads.map_features(scope), [zone_id], record["sites"])
    return render_template("zone.html", zone=record,
                           drawing=draw_map(features, links.feature, fit=("licence_zone",)))


@bp.get("/actors/<path:actor_id>")
@access.signed_in()
def actor(actor_id: str) -> str:
    with reading(access.principal()) as scope:
        record = reads.actor(scope, actor_id)
        recent = reads.recent_entries(scope, actor_id) if access.may_read("entries") else []
    return render_template("actor.html", actor=record, recent=recent)


@bp.get("/entries/<int:seq>")
@access.reads("entries")
def entry(seq: int) -> str:
    if seq > MAX_SEQ:
        raise NotFound.said(N_("entry %(seq)s does not exist."), {"seq": seq}, seq=seq)
    log = ledger().log
    found, note = log.entry(seq), log.latest_checkpoint()
    checkpoint = _checkpoint_json(note) if note else None
    # The proof is against the latest signed checkpoint, so the two can be checked together.
    size = checkpoint["size"] if checkpoint and checkpoint["size"] >= seq else None
    return render_template("entry.html", entry=found, checkpoint=checkpoint,
                           text=json.dumps(found.to_json(), indent=2, ensure_ascii=False),
                           about=reads.summary(found.kind, found.payload),
                           proof=log.inclusion_proof(seq, size))
