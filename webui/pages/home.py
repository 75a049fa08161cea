"""The dashboard: the log's size and latest checkpoint, open flags and recent entries,
as the signed-in role may see them."""

from __future__ import annotations

from flask import Blueprint, render_template

from ledger.accounts import READ_ALL, Scope
from ledger.stats import counts
from webui.api.log import _checkpoint_json
from webui.pages import access, reads
from webui.services import ledger, reading

bp = Blueprint("home", __name__)


@bp.get("/")
@access.signed_in()
def dashboard() -> str:
    who = access.principal()
    note = ledger().log.latest_checkpoint()
    with reading() as conn:
        sees_all = who.role in READ_ALL
        return render_template(
            "dashboard.html", checkpoint=_checkpoint_json(note) if note else None,
            counts=counts(conn),
            flags=Scope(conn, who).flags("open") if access.may_read("flags") else None,
            recent=reads.recent_entries(conn, None if sees_all else who.actor_id),
            holdings=reads.holdings(conn, who.actor_id),
            exports=reads.exports_of(conn, who.actor_id), sees_all=sees_all)
