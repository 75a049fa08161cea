"""Signing in with a name and password, and out (issue 7, issue 15).

Sign-in is throttled per account and per client address (``ledger.signin``): a locked
try is answered 429 with Retry-After, whatever the password.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ledger import signin
from webui import login
from webui.services import ledger

bp = Blueprint("signin", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login_page() -> BaseResponse | tuple[str, int] | tuple[str, int, dict[str, str]]:
    name = request.form.get("name", "").strip()
    if request.method == "GET":
        return render_template("login.html", name=name, failed=False), 200
    try:
        signed = signin.sign_in(ledger().engine, name, request.form.get("password", ""),
                                request.remote_addr)
    except signin.TooManyAttempts as exc:
        wait = exc.data["retry_after"]
        return (render_template("login.html", name=name, failed=False, throttled=wait), 429,
                {"Retry-After": str(wait)})
    if signed is None:
        return render_template("login.html", name=name, failed=True), 401
    login.begin(signed)
    target = login.local_path(request.args.get("next"))
    return redirect(target or url_for("pages.home.dashboard"))


@bp.post("/logout")
def logout() -> BaseResponse:
    login.end(ledger().engine)
    return redirect(url_for("pages.signin.login_page"))
