"""The auditor's pages: search, flags to resolve, verification of the whole log, and
the flags as CSV."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, stream_template
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from ledger import lists, reads
from ledger.errors import InputError
from webui.http import choice_arg
from webui.pages import access, links, verification
from webui.pages.forms import RESOLVE
from webui.pages.paging import listed
from webui.pages.submit import Round, announce, handle
from webui.services import ledger, reading

bp = Blueprint("audit", __name__)
KINDS = {"parcels": "parcel", "sites": "site", "actors": "actor", "exports": "export",
         "zones": "zone"}


@bp.get("/audit")
@access.reads_all()
def overview() -> str:
    with reading(access.principal()) as scope:
        flags = scope.flags("open")
    return render_template("audit.html", flags=flags, note="")


@bp.post("/audit/verify")
@access.reads_all()
def verify() -> Response | tuple[str, int]:
    """SPEC 6 `verify`: the chain, the Merkle root against the latest signed checkpoint,
    the triggers; and consistency with a checkpoint the auditor saved earlier, if pasted.
    Issue 19: streamed with its progress; a malformed paste is refused line by line."""
    note = request.form.get("checkpoint", "")
    with reading(access.principal()) as scope:
        flags = scope.flags("open")
    try:
        checkpoint = verification.pasted(note)
    except InputError as exc:
        return render_template("audit.html", flags=flags, note=note,
                               note_errors=exc.data["errors"]), 422
    steps = verification.run(ledger(), checkpoint)
    return Response(stream_template("audit.html", flags=flags, note=note, steps=steps),
                    mimetype="text/html")


@bp.get("/search")
@access.reads_all()
def search() -> Response | str:
    """By parcel, site, actor, certificate, zone or flag: one exact match opens its page."""
    text = request.args.get("q", "").strip()
    with reading(access.principal()) as scope:
        found = reads.search(scope, text) if text else {}
    exact = [(KINDS[k], text) for k, ids in found.items() if text in ids and k in KINDS]
    if len(exact) == 1:
        return redirect(links.record(*exact[0]))
    return render_template("search.html", q=text, found=found)


@bp.get("/flags")
@access.reads("flags")
def flags() -> str:
    """The flags the caller may read, a page at a time; ``group=parcel``: by parcel."""
    by_parcel = choice_arg("group", ("parcel",)) is not None
    with reading(access.principal()) as scope:
        shown = listed(lists.FLAG_LIST, lists.flag_page, scope,
                       {"group": "parcel"} if by_parcel else {}, by_parcel=by_parcel)
    return render_template("flags.html", shown=shown, by_parcel=by_parcel)


@bp.route("/flags/<path:flag_id>/resolve", methods=["GET", "POST"])
@access.writes("flag.resolved")
def resolve(flag_id: str) -> Response | tuple[str, int]:
    with reading(access.principal()) as scope:
        flag = reads.flag(scope, flag_id)
    step: Round = handle(RESOLVE, flag_id=flag_id)
    if step.result is not None:
        announce(step.result, _("Resolution of flag %(flag)s", flag=flag_id))
        return redirect(links.record(flag["subject_type"], flag["subject_id"]))
    return render_template("resolve.html", form=RESOLVE, step=step, flag=flag), step.status


@bp.get("/flags.csv")
@access.reads("flags")
def flags_csv() -> Response:
    with reading(access.principal()) as scope:
        listed = scope.flags()
    return links.csv_download(
        ["flag_id", "seq", "code", "subject_type", "subject_id", "status", "detail"],
        ([f["flag_id"], f["seq"], f["code"], f["subject"]["type"], f["subject"]["id"],
          f["status"], f["detail"]] for f in listed), "alluvial-flags.csv")
