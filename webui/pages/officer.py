"""The officer's forms: register a site (with its screening shown before and after
saving), import a zone file, register an actor."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.wrappers import Response

from ledger.errors import LedgerError
from webui.pages import access, links
from webui.pages.forms import ACTOR, SITE, refusals
from webui.pages.submit import announce, handle, import_zones, preview_map

bp = Blueprint("officer", __name__)


@bp.route("/sites/new", methods=["GET", "POST"])
@access.writes("site.registered")
def new_site() -> Response | tuple[str, int]:
    step = handle(SITE)
    if step.result is not None:
        announce(step.result, _("Site %(id)s", id=step.result.entry.payload["site_id"]))
        return redirect(links.record("site", step.result.entry.payload["site_id"]))
    return render_template("form.html", form=SITE, step=step, title=_("Register a mine site"),
                           intro="site", previews=True, around=preview_map(step)), step.status


@bp.route("/actors/new", methods=["GET", "POST"])
@access.writes("actor.registered")
def new_actor() -> Response | tuple[str, int]:
    step = handle(ACTOR)
    if step.result is not None:
        announce(step.result, _("Actor %(id)s", id=step.result.entry.payload["actor_id"]))
        return redirect(links.record("actor", step.result.entry.payload["actor_id"]))
    return render_template("form.html", form=ACTOR, step=step, title=_("Register an actor"),
                           intro="actor"), step.status


@bp.route("/zones/import", methods=["GET", "POST"])
@access.writes("zone.registered")
def import_zones_page() -> Response | tuple[str, int]:
    zone_type = request.form.get("zone_type", "licence")
    if request.method == "POST":
        try:
            count = import_zones(request.files.get("file"), zone_type)
        except LedgerError as exc:
            errors = refusals(exc, None, known=("file", "zone_type"))
            return render_template("zones_import.html", zone_type=zone_type,
                                   errors=errors), 422
        flash(ngettext("%(num)d risk zones registered.", "%(num)d risk zones registered.", count)
              if zone_type == "risk" else
              ngettext("%(num)d licence zones registered.", "%(num)d licence zones registered.",
                       count), "written")
        return redirect(url_for("pages.map.world"))
    return render_template("zones_import.html", zone_type=zone_type, errors={}), 200
