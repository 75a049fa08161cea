"""The buyer's and exporter's pages: holdings and holds, and the forms that log a
purchase, move parcels (transfer, split, merge) and declare an export."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template
from werkzeug.wrappers import Response

from ledger import reads
from webui.pages import access, links
from webui.pages.forms import EXPORT, MERGE, PURCHASE, SPLIT, TRANSFER, Form
from webui.pages.submit import announce, handle, preview_map
from webui.services import reading

bp = Blueprint("trade", __name__)
# After saving, the page that shows what was written: the form -> (record kind, payload path).
SHOWN = {"parcel.purchased": ("parcel", "parcel_id"), "parcel.transferred": ("parcel", "parcel_id"),
         "parcel.split": ("parcel", "parent_id"), "parcel.merged": ("parcel", "child.parcel_id"),
         "export.declared": ("export", "certificate_no")}
NOUNS = {"parcel.purchased": "Purchase", "parcel.transferred": "Transfer", "parcel.split": "Split",
         "parcel.merged": "Merge", "export.declared": "Export"}
TITLES = {"parcel.purchased": "Log a purchase", "parcel.transferred": "Transfer a parcel",
          "parcel.split": "Split a parcel", "parcel.merged": "Merge parcels",
          "export.declared": "Declare an export under a KP certificate"}


def _round(form: Form) -> Response | tuple[str, int]:
    """A trade form: written -> the record's page; else the form (again), with what you hold."""
    step = handle(form)
    if step.result is not None:
        kind, path = SHOWN[form.kind]
        ident = step.result.entry.payload
        for part in path.split("."):
            ident = ident[part]
        announce(step.result, f"{NOUNS[form.kind]} of {ident}")
        return redirect(links.record(kind, str(ident)))
    with reading(access.principal()) as scope:
        return render_template("form.html", form=form, step=step, title=TITLES[form.kind],
                               intro=form.kind, previews=form.kind == "parcel.purchased",
                               holdings=reads.holdings(scope), around=preview_map(step),
                               suggest=reads.suggestions(scope)), step.status


@bp.route("/purchases/new", methods=["GET", "POST"])
@access.writes("parcel.purchased")
def purchase() -> Response | tuple[str, int]:
    return _round(PURCHASE)


@bp.route("/transfers/new", methods=["GET", "POST"])
@access.writes("parcel.transferred")
def transfer() -> Response | tuple[str, int]:
    return _round(TRANSFER)


@bp.route("/splits/new", methods=["GET", "POST"])
@access.writes("parcel.split")
def split() -> Response | tuple[str, int]:
    return _round(SPLIT)


@bp.route("/merges/new", methods=["GET", "POST"])
@access.writes("parcel.merged")
def merge() -> Response | tuple[str, int]:
    return _round(MERGE)


@bp.route("/exports/new", methods=["GET", "POST"])
@access.writes("export.declared")
def declare_export() -> Response | tuple[str, int]:
    return _round(EXPORT)


@bp.get("/holdings")
@access.writes("parcel.transferred")
def holdings() -> str:
    """The parcels you hold; those on hold with the open flags that hold them."""
    with reading(access.principal()) as scope:
        return render_template("holdings.html", held=reads.holdings(scope),
                               flags=scope.flags("open"), exports=reads.exports_of(scope))
