"""The admin's page: user accounts, their web passwords and their API tokens (SPEC 1)."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from ledger import accounts, reads
from ledger.errors import LedgerError
from webui import login
from webui.pages import access
from webui.pages.forms import Refusal, refusals
from webui.services import ledger, reading

bp = Blueprint("admin", __name__)
USER_FIELDS = ("name", "role", "actor", "password")


def _users(values: dict[str, str], errors: Mapping[str, list[Refusal]], token: str = "",
           status: int = 200) -> tuple[str, int]:
    with reading(access.principal()) as scope:
        listed, tokens = reads.users(scope), reads.tokens(scope)
    return render_template("users.html", users=listed, tokens=tokens, values=values,
                           errors=errors, token=token, roles=accounts.ROLES), status


@bp.get("/admin/users")
@access.administers()
def users() -> tuple[str, int]:
    return _users({"role": "buyer"}, {})


@bp.post("/admin/users")
@access.administers()
def add_user() -> Response | tuple[str, int]:
    """`alluvial users add`, with a web password; the account and the password go together."""
    values = {k: request.form.get(k, "").strip() for k in USER_FIELDS}
    try:
        login.check_new_password(request.form.get("password", ""))
        accounts.add_user(ledger().engine, values["name"], values["role"],
                          values["actor"] or None, password=request.form.get("password", ""))
    except LedgerError as exc:
        return _users({**values, "password": ""}, refusals(exc, None, USER_FIELDS), status=422)
    flash(_("User %(name)s added; it can sign in now.", name=values["name"]), "written")
    return redirect(url_for("pages.admin.users"))


@bp.post("/admin/users/<name>/token")
@access.administers()
def new_token(name: str) -> tuple[str, int]:
    """`alluvial tokens create`: the token is shown on this page once and never again."""
    token = accounts.create_token(ledger().engine, name)
    return _users({"role": "buyer"}, {}, token=f"{name}: {token}")


@bp.post("/admin/users/<name>/disable")
@access.administers()
def disable(name: str) -> Response:
    """`alluvial users disable`: its tokens and web sessions stop counting at once."""
    accounts.disable_user(ledger().engine, name)
    flash(_("User %(name)s disabled: its API tokens and web sessions no longer count.", name=name),
          "written")
    return redirect(url_for("pages.admin.users"))


@bp.post("/admin/tokens/<token_id>/revoke")
@access.administers()
def revoke(token_id: str) -> Response:
    """`alluvial tokens revoke`: the token's next request gets 401."""
    accounts.revoke_token(ledger().engine, token_id)
    flash(_("Token %(id)s revoked.", id=token_id), "written")
    return redirect(url_for("pages.admin.users"))
