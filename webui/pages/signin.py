"""Signing in with a name and password, and out (issue 7)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from webui import login
from webui.services import ledger

bp = Blueprint("signin", __name__)


def _local(target: str | None) -> str:
    """Only a path on this site may be where signing in leads (no open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return url_for("pages.home.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login_page() -> BaseResponse | tuple[str, int]:
    name = request.form.get("name", "").strip()
    if request.method == "POST":
        who = login.check_password(ledger().engine, name, request.form.get("password", ""))
        if who is not None:
            session.clear()  # a new session for the new user
            session["user"] = who.user
            session["mark"] = login.session_mark(ledger().engine, who.user)
            return redirect(_local(request.args.get("next")))
    failed = request.method == "POST"
    return render_template("login.html", name=name, failed=failed), 401 if failed else 200


@bp.post("/logout")
def logout() -> BaseResponse:
    session.clear()
    return redirect(url_for("pages.signin.login_page"))
