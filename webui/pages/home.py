"""The dashboard: the log's size and latest checkpoint, open flags and recent entries,
as the signed-in role may see them."""

from __future__ import annotations

from flask import Blueprint, render_template

from ledger import lists, reads
from ledger.stats import counts
from webui.api.log import _checkpoint_json
from webui.pages import access
from webui.services import ledger, reading

bp = Blueprint("home", __name__)


@bp.get("/")
@access.signed_in()
def dashboard() -> str:
    who = access.principal()
    note = ledger().log.latest_checkpoint()
    with reading(who) as scope:
        flags, open_count = lists.open_flags(scope) if access.may_read("flags") else (None, 0)
        return render_template(
            "dashboard.html", checkpoint=_checkpoint_json(note) if note else None,
            counts=counts(scope.conn), flags=flags, open_count=open_count,
            recent=reads.recent_entries(scope), holdings=reads.holdings(scope),
            exports=reads.exports_of(scope), sees_all=scope.sees_all,
            desk=reads.authority_desk(scope) if who.role == "authority" else None)
