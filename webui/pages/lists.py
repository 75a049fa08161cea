"""The lists (issue 19): parcels, sites, zones, actors and log entries, a page at a time
(``ledger.lists``), sorted and filtered by query parameters, as each role may see them.
Flags and holdings are paged in their own blueprints (audit, trade)."""

from __future__ import annotations

from flask import Blueprint, render_template

from ledger import lists
from ledger.paging import Listing
from webui.pages import access
from webui.pages.paging import Read, listed
from webui.services import reading

bp = Blueprint("lists", __name__)


def _list_page(name: str, area: str, listing: Listing, read: Read) -> None:
    """GET /<name>: the page of ``listing`` asked for, open to the roles reading ``area``."""
    def view() -> str:
        with reading(access.principal()) as scope:
            shown = listed(listing, read, scope)
        return render_template(f"list_{name}.html", shown=shown)

    view.__name__ = name  # the endpoint, pages.lists.<name>
    bp.add_url_rule(f"/{name}", name, access.reads(area)(view), methods=["GET"])


for _args in (("parcels", "parcels", lists.PARCEL_LIST, lists.parcel_page),
              ("sites", "sites", lists.SITE_LIST, lists.site_page),
              ("zones", "zones", lists.ZONE_LIST, lists.zone_page),
              ("actors", "actors", lists.ACTOR_LIST, lists.actor_page),
              ("entries", "entries", lists.ENTRY_LIST, lists.entry_page)):
    _list_page(*_args)
