"""The buyer's and exporter's pages: holdings and holds, and the forms that log a
purchase, move parcels (transfer, split, merge) and declare an export."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, redirect, render_template, request
from flask_babel import lazy_gettext
from werkzeug.wrappers import Response

from ledger import lists, reads
from ledger.reads import Scope
from webui.pages import access, links
from webui.pages.forms import EXPORT, MERGE, PURCHASE, SPLIT, TRANSFER, Form
from webui.pages.paging import Shown, listed
from webui.pages.submit import Round, announce, handle, preview_map
from webui.services import reading

bp = Blueprint("trade", __name__)
# The forms with a parcel picker: the input it fills, and whether it takes several parcels.
PICKS = {"parcel.transferred": ("parcel_id", False), "parcel.split": ("parent_id", False),
         "parcel.merged": ("parent_ids", True), "export.declared": ("parcel_ids", True)}
PICKER_ROWS = 10
PICKED = 200  # at most this many chosen parcels are read


@dataclass(frozen=True)
class Picker:
    shown: Shown
    chosen: list[dict[str, Any]]
    many: bool
    carats: float  # of the chosen parcels


# After saving, the page that shows what was written: the form -> (record kind, payload path).
SHOWN = {"parcel.purchased": ("parcel", "parcel_id"), "parcel.transferred": ("parcel", "parcel_id"),
         "parcel.split": ("parcel", "parent_id"), "parcel.merged": ("parcel", "child.parcel_id"),
         "export.declared": ("export", "certificate_no")}
# What was written, in the page's language (lazy: looked up when the notice is made).
WRITTEN = {"parcel.purchased": lazy_gettext("Purchase of %(id)s"),
           "parcel.transferred": lazy_gettext("Transfer of %(id)s"),
           "parcel.split": lazy_gettext("Split of %(id)s"),
           "parcel.merged": lazy_gettext("Merge of %(id)s"),
           "export.declared": lazy_gettext("Export of %(id)s")}
TITLES = {"parcel.purchased": lazy_gettext("Log a purchase"),
          "parcel.transferred": lazy_gettext("Transfer a parcel"),
          "parcel.split": lazy_gettext("Split a parcel"),
          "parcel.merged": lazy_gettext("Merge parcels"),
          "export.declared": lazy_gettext("Declare an export under a KP certificate")}


def _round(form: Form) -> Response | tuple[str, int]:
    """A trade form: written -> the record's page; else the form (again), with what you hold."""
    step = handle(form)
    if step.result is not None:
        kind, path = SHOWN[form.kind]
        ident = step.result.entry.payload
        for part in path.split("."):
            ident = ident[part]
        announce(step.result, str(WRITTEN[form.kind]) % {"id": ident})
        return redirect(links.record(kind, str(ident)))
    with reading(access.principal()) as scope:
        picker = pick(scope, form, step)
        return render_template("form.html", form=form, step=step, title=TITLES[form.kind],
                               intro=form.kind, previews=form.kind == "parcel.purchased",
                               picker=picker, around=preview_map(step),
                               suggest=reads.suggestions(scope, parcels=False)), step.status


def pick(scope: Scope, form: Form, step: Round) -> Picker | None:
    """The parcel picker of a form that moves parcels (issue 19): a page of the parcels
    you hold, searched and filtered by a GET form, and the ones chosen (``pick``), which
    fill the form's parcel input when it is first shown."""
    if form.kind not in PICKS:
        return None
    name, many = PICKS[form.kind]
    chosen = lists.held_now(scope, request.args.getlist("pick")[:PICKED])
    if not many:
        chosen = chosen[:1]
    if chosen and request.method != "POST":
        step.values[name] = ", ".join(p["parcel_id"] for p in chosen)
    shown = listed(lists.HOLDING_LIST, lists.holding_page, scope,
                   {"pick": [p["parcel_id"] for p in chosen]}, rows=PICKER_ROWS)
    return Picker(shown, chosen, many, sum(p["points"] for p in chosen) / 100)


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
        shown = listed(lists.HOLDING_LIST, lists.holding_page, scope)
        return render_template(
            "holdings.html", shown=shown, totals=lists.holding_totals(scope),
            holds=lists.holds(scope, [p["parcel_id"] for p in shown.page.rows]),
            exports=reads.exports_of(scope))
