"""The lists (issue 19): parcels, sites, zones, actors and log entries, a page at a time
(``ledger.lists``), sorted and filtered by query parameters, as each role may see them.
Flags and holdings are paged in their own blueprints (audit, trade)."""

from __future__ import annotations

from flask import Blueprint, render_template

from ledger import lists
from webui.pages import access
from webui.pages.paging import listed
from webui.services import reading

bp = Blueprint("lists", __name__)


@bp.get("/parcels")
@access.reads("parcels")
def parcels() -> str:
    with reading(access.principal()) as scope:
        shown = listed(lists.PARCEL_LIST, lists.parcel_page, scope)
    return render_template("list_parcels.html", shown=shown)


@bp.get("/sites")
@access.reads("sites")
def sites() -> str:
    with reading(access.principal()) as scope:
        shown = listed(lists.SITE_LIST, lists.site_page, scope)
    return render_template("list_sites.html", shown=shown)


@bp.get("/zones")
@access.reads("zones")
def zones() -> str:
    with reading(access.principal()) as scope:
        shown = listed(lists.ZONE_LIST, lists.zone_page, scope)
    return render_template("list_zones.html", shown=shown)


@bp.get("/actors")
@access.reads("actors")
def actors() -> str:
    with reading(access.principal()) as scope:
        shown = listed(lists.ACTOR_LIST, lists.actor_page, scope)
    return render_template("list_actors.html", shown=shown)


@bp.get("/entries")
@access.reads("entries")
def entries() -> str:
    with reading(access.principal()) as scope:
        shown = listed(lists.ENTRY_LIST, lists.entry_page, scope)
    return render_template("list_entries.html", shown=shown)
