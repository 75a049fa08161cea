"""The national KP authority's pages (issue 18, SPEC 1): the certificates leaving and
reaching its country with their states (overdue and tainted ones stand out), the flags
touching those coming in (the Atom feed's list), and the forms that validate an export
and confirm an import. The rules (ROLE, JURISDICTION, DATE_ORDER, CERTIFICATE) are the
ledger's: a form only carries what the authority typed."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from werkzeug.wrappers import Response

from ledger import lists, reads
from ledger.certificates import actions
from ledger.i18n import N_
from webui.pages import access, links
from webui.pages.forms import DATE, Field, Form
from webui.pages.paging import listed
from webui.pages.submit import announce, handle
from webui.services import reading

bp = Blueprint("authority", __name__)

VALIDATE = Form("certificate.validated", (
    Field("valuation_usd", lazy_gettext("Your valuation (USD)"), "number",
          hint=lazy_gettext("the authority's own valuation of the parcels")),
    Field("officer", lazy_gettext("Validating official"),
          hint=lazy_gettext("the name of the official who signs it off")),
    Field("date", lazy_gettext("Validated on"), "date", today=True),
))
CONFIRM = Form("import.confirmed", (
    Field("carats_received", lazy_gettext("Carats received"), "number",
          hint=lazy_gettext("as weighed on arrival")),
    Field("parcels_received", lazy_gettext("Parcels received"), "number"),
    Field("importer", lazy_gettext("Importer"), hint=lazy_gettext("who received the goods")),
    DATE,
))
# Whole sentences with the certificate as a value, translated when the page is drawn.
TITLES = {VALIDATE.kind: N_("Validate export %(certificate_no)s"),
          CONFIRM.kind: N_("Confirm the import of %(certificate_no)s")}
NOUNS = {VALIDATE.kind: N_("Validation of %(certificate_no)s"),
         CONFIRM.kind: N_("Import confirmation of %(certificate_no)s")}


@bp.get("/certificates")
@access.reads("bundles")
def certificates() -> str:
    """The KP certificates the caller may read, a page at a time (issue 19: an exporter its
    own, an authority those leaving and reaching its country, an auditor all), each with
    the buttons the ledger's rules let the caller press; an authority's flags feed."""
    with reading(access.principal()) as scope:
        shown = listed(lists.CERTIFICATE_LIST, lists.certificate_page, scope)
        can = actions(scope.conn, scope.actor, [c["certificate_no"] for c in shown.page.rows])
        country = scope.country() if scope.is_authority else None
        feed = reads.flag_feed(scope, country) if country else []
    return render_template("certificates.html", shown=shown, can=can, country=country,
                           overdue_days=reads.OVERDUE_DAYS, desk={"country": country, "feed": feed})


def _round(form: Form, certificate_no: str) -> Response | tuple[str, int]:
    with reading(access.principal()) as scope:
        scope.check_export(certificate_no)
        export = reads.export(scope, certificate_no)
    step = handle(form, certificate_no=certificate_no)
    if step.result is not None:
        announce(step.result, _(NOUNS[form.kind], certificate_no=certificate_no))
        return redirect(links.record("export", certificate_no))
    title = _(TITLES[form.kind], certificate_no=certificate_no)
    return render_template("certificate_form.html", form=form, step=step, export=export,
                           title=title), step.status


@bp.route("/exports/<path:certificate_no>/validate", methods=["GET", "POST"])
@access.writes("certificate.validated")
def validate(certificate_no: str) -> Response | tuple[str, int]:
    return _round(VALIDATE, certificate_no)


@bp.route("/exports/<path:certificate_no>/confirm", methods=["GET", "POST"])
@access.writes("import.confirmed")
def confirm(certificate_no: str) -> Response | tuple[str, int]:
    return _round(CONFIRM, certificate_no)
