"""Issue 19: the refusal sentences a page shows, in French.

The core raises its refusals in English (the API, the CLI and the log keep those words);
each sentence a page shows also carries its template, marked with ``N_``, and the named
values that fill it, so the page says the catalogue's French filled with the same values.

- A refused form shown in French says the French sentence: custody rules (HOLDER, HOLD)
  next to the input, the schema's findings as one French sentence per input; in English
  the same form says exactly what it said before.
- The API answers in English whatever language the browser asks for.
- A refusal found by the ingest helper process (pickled across) keeps its template.
- Every template's placeholders are filled at every raise site of the core, and the French
  of the templates fills with the English values.
"""

from __future__ import annotations

import ast
import pickle
import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

from ledger import accounts
from ledger.errors import InputError, LedgerError, Problem
from ledger.recorder.events import Event, Ledger
from tests.test_pages import (  # noqa: F401 - world is a fixture
    PURCHASE,
    SEGUELA,
    buy,
    refusal,
    send,
    sign_in,
    size,
    token_of,
    with_size,
    world,
)
from tests.test_plain_errors import shown_by

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "webui" / "translations" / "fr" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")

EXPORT = {"certificate_no": "GH-2008-1", "importer": "Antwerp NV", "destination": "BE",
          "hs_code": "7102.31", "parcel_ids": "P-0", "carats": "12.5", "value_usd": "100",
          "date": "2008-04-01", "expires": "2008-06-01"}
TRANSFER = {"parcel_id": "P-1", "to_actor": "exp-gh", "date": "2008-03-17",
            "price.amount": "1", "price.currency": "USD"}


def sign_in_in(client: FlaskClient, role: str, lang: str) -> None:
    """Sign in as ``role`` and read the pages in ``lang`` (the switch's cookie)."""
    sign_in(client, role)
    if lang == "fr":
        client.set_cookie("lang", "fr")


def held_by_the_buyer(client: FlaskClient) -> None:
    """P-0 bought by buyer-a (the exporter does not hold it)."""
    sign_in(client, "buyer")
    assert buy(client, parcel_id="P-0").status_code == 302


def on_hold(client: FlaskClient) -> None:
    """P-1 bought with a dig point in the risk area: open flags hold it."""
    sign_in(client, "buyer")
    lon, lat = SEGUELA
    assert buy(client, **{"dig_location.lon": str(lon),
                          "dig_location.lat": str(lat)}).status_code == 302


# id, what comes first, role, form, what is sent, input, English sentence, French sentence
RULES = [
    ("HOLDER", held_by_the_buyer, "exporter", "/exports/new", EXPORT, "parcel_ids",
     "parcel 'P-0' is held by 'buyer-a', not by 'exp-gh'.",
     "le lot 'P-0' est détenu par 'buyer-a', et non par 'exp-gh'."),
    ("HOLD", on_hold, "buyer", "/transfers/new", TRANSFER, "parcel_id",
     "parcel 'P-1' is on hold with open flags",
     "le lot 'P-1' est bloqué par les signalements ouverts"),
]


@pytest.mark.parametrize("first, role, path, data, input_id, english, french",
                         [r[1:] for r in RULES], ids=[r[0] for r in RULES])
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_a_custody_refusal_is_said_in_the_pages_language(
        world: Ledger, client: FlaskClient, lang: str, first: Any, role: str,  # noqa: F811
        path: str, data: dict[str, str], input_id: str, english: str, french: str) -> None:
    first(client)
    sign_in_in(client, role, lang)
    before = size(world)
    answer = send(client, path, data)
    assert answer.status_code == 422
    shown = refusal(answer.text, input_id)
    said, unsaid = (french, english) if lang == "fr" else (english, french)
    assert said in shown and unsaid not in shown
    assert size(world) == before


# form, what is sent, input, English sentence, French sentence
SCHEMA = [
    ("required", {**PURCHASE, "carats": ""}, "carats", "Carats is required.",
     "Carats : obligatoire."),
    ("decimals", {**PURCHASE, "carats": "12.345"}, "carats",
     "Carats must have at most two decimals.", "Carats : doit avoir au plus deux décimales."),
    ("two-findings", {**PURCHASE, "carats": "-0.001"}, "carats",
     "Carats must have at most two decimals and must be greater than 0.",
     "Carats : doit avoir au plus deux décimales et doit être supérieur à 0."),
]


@pytest.mark.parametrize("data, input_id, english, french", [s[1:] for s in SCHEMA],
                         ids=[s[0] for s in SCHEMA])
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_schemas_findings_are_one_sentence_per_input_in_the_pages_language(
        world: Ledger, client: FlaskClient, lang: str, data: dict[str, str],  # noqa: F811
        input_id: str, english: str, french: str) -> None:
    sign_in_in(client, "buyer", lang)
    answer = send(client, "/purchases/new", data)
    assert answer.status_code == 422
    assert shown_by(answer.text, input_id) == [french if lang == "fr" else english]


@pytest.mark.parametrize("lang, said", [
    ("en", "TOKEN_ID: there is no token 'T-404'; `alluvial tokens list` shows their ids."),
    ("fr", "TOKEN_ID: il n'y a pas de jeton 'T-404' ; `alluvial tokens list` affiche leurs "
           "identifiants.")])
def test_the_error_page_says_the_refusal_in_the_pages_language(
        world: Ledger, client: FlaskClient, lang: str, said: str) -> None:  # noqa: F811
    """A refusal shown on the error page, not by an input (webui.pages._ledger_error)."""
    sign_in_in(client, "admin", lang)
    answer = client.post("/admin/tokens/T-404/revoke",
                         data={"csrf_token": token_of(client, "/admin/users")})
    assert answer.status_code == 404
    assert said in unescape(answer.text)


def test_the_api_answers_in_english_whatever_the_language(world: Ledger,  # noqa: F811
                                                          client: FlaskClient) -> None:
    held_by_the_buyer(client)
    token = accounts.create_token(world.engine, "exporter")
    client.set_cookie("lang", "fr")
    payload = {**{k: v for k, v in EXPORT.items() if k != "parcel_ids"},
               "parcel_ids": ["P-0"], "carats": 12.5, "value_usd": 100, "exporter": "exp-gh"}
    answer = client.post("/api/v1/events", json={"kind": "export.declared", "payload": payload},
                         headers={"Authorization": f"Bearer {token}", "Accept-Language": "fr"})
    assert answer.status_code == 409 or answer.status_code == 422, answer.text
    assert answer.json["detail"] == "payload: parcel 'P-0' is held by 'buyer-a', not by 'exp-gh'."
    schema = client.post("/api/v1/events", json={"kind": "export.declared",
                                                  "payload": {**payload, "carats": 1.234}},
                         headers={"Authorization": f"Bearer {token}", "Accept-Language": "fr"})
    assert schema.json["errors"] == [{"field": "payload.carats",
                                      "message": "payload.carats: must have at most two decimals"}]


def test_a_refusal_from_the_ingest_helper_process_keeps_its_template() -> None:
    """The helper checks payloads in another process; its refusal crosses pickled."""
    from ledger.recorder.prepare import prepared_events
    from tests.test_ingest import purchase
    lines = [purchase("P1", carats=2.5), purchase("P2", carats=1.234)]
    got = list(prepared_events(enumerate(lines, 1), 1))  # line 2 by the helper process
    (_, _, _), (_, bad, _) = got
    assert bad is not None and isinstance(bad.checked, InputError)
    error = bad.checked
    assert error.template == "must have at most two decimals"
    assert str(error) == "payload.carats: must have at most two decimals"
    problem = error.data["errors"][0]
    assert isinstance(problem, Problem) and problem.template == error.template
    again = pickle.loads(pickle.dumps(error))
    assert (again.template, again.params, str(again)) == (error.template, error.params,
                                                           str(error))


def french() -> dict[str, str]:
    with PO.open("rb") as f:
        return {m.id: m.string for m in read_po(f) if m.id and isinstance(m.id, str)}


def refusals_of(book: Ledger) -> list[LedgerError]:
    """Refusals of several rules, raised by the real write path."""
    found = []
    for event in (
        Event("parcel.purchased", "buyer-a", {**_purchase("P-0"), "carats": 12.345}),
        Event("parcel.purchased", "buyer-a", {**_purchase("P-0"), "date": "2031-01-02"}),
        Event("parcel.transferred", "buyer-a", {"parcel_id": "P-9", "to_actor": "exp-gh",
                                                "date": "2008-04-01",
                                                "price": {"amount": 1, "currency": "USD"}}),
        Event("parcel.split", "buyer-a", {"parent_id": "P-0", "date": "2008-04-01",
                                          "children": [{"parcel_id": "P-0a", "carats": 20,
                                                        "stones": 1}]}),
        Event("parcel.purchased", "exp-gh", _purchase("P-7")),
        Event("site.registered", "off-gh", {"site_id": "S-AKW", "name": "x", "location": {
            "type": "Point", "coordinates": [-0.8, 6.04]}, "licence_no": "GH-ML-AKW-1",
            "operator": "x", "country": "GH", "date": "2004-01-07"}),
    ):
        with pytest.raises(LedgerError) as caught:
            book.write(event)
        found.append(caught.value)
    return found


def _purchase(parcel_id: str) -> dict[str, Any]:
    return {"parcel_id": parcel_id, "site_id": "S-AKW", "seller": "Kofi Boateng",
            "date": "2008-03-14", "carats": 12.5, "stones": 40,
            "price": {"amount": 900, "currency": "USD"}}


def test_the_french_of_real_refusals_fills_with_their_english_values(
        world: Ledger) -> None:  # noqa: F811
    world.write(Event("parcel.purchased", "buyer-a", _purchase("P-0")))
    catalogue = french()
    errors = refusals_of(world)
    assert {e.rule for e in errors} == {"SCHEMA", "LICENCE", "UNKNOWN_REFERENCE", "MASS",
                                        "ROLE", "DUPLICATE"}
    for error in errors:
        assert error.template, str(error)
        assert str(error).endswith(error.template % error.params)
        text = catalogue[error.template] % error.params
        assert text and text != error.template % error.params, error.template


def _n_strings(node: ast.AST) -> list[str]:
    """The N_("...") literals inside an expression (a conditional may hold two)."""
    return [call.args[0].value for call in ast.walk(node)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id == "N_" and isinstance(call.args[0], ast.Constant)]


def _names(source: ast.Module) -> dict[str, list[str]]:
    """Module-level names bound to N_ templates (a constant, or a dict of them)."""
    bound: dict[str, list[str]] = {}
    for node in source.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and node.value is not None:
                    bound[target.id] = _n_strings(node.value)
    return bound


def _raise_sites() -> list[tuple[str, list[str], set[str] | None]]:
    """(where, templates, names given) of each refuse(...) and X.said(...) in the core;
    None when the values are not written at the call (``**values``)."""
    sites = []
    for path in sorted((ROOT / "ledger").rglob("*.py")):
        source = ast.parse(path.read_text("utf-8"))
        module = _names(source)
        for call in ast.walk(source):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            if isinstance(func, ast.Name) and func.id == "refuse" and len(call.args) >= 3:
                template = call.args[2]
                given = None if any(k.arg is None for k in call.keywords) else {
                    k.arg for k in call.keywords if k.arg != "data"}
            elif isinstance(func, ast.Attribute) and func.attr == "said" and call.args:
                problem = isinstance(func.value, ast.Name) and func.value.id == "Problem"
                args = call.args[1:] if problem else call.args
                if not args:
                    continue
                template, values = args[0], args[1] if len(args) > 1 else None
                given = (set() if values is None else
                         {k.value for k in values.keys if isinstance(k, ast.Constant)}
                         if isinstance(values, ast.Dict) else None)
            else:
                continue
            templates = _n_strings(template)
            if not templates and isinstance(template, ast.Name | ast.Subscript):
                name = template.id if isinstance(template, ast.Name) else getattr(
                    template.value, "id", "")
                templates = module.get(name, [])
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            sites.append((where, templates, given))
    return sites


def test_every_templates_placeholders_are_filled_where_it_is_raised() -> None:
    sites = _raise_sites()
    checked = [(w, t, g) for w, t, g in sites if t and g is not None]
    assert len(checked) > 60, len(checked)  # refuse() and .said() of rules, schema, accounts
    unfilled = [f"{where}: {template!r} lacks {sorted(set(PLACEHOLDER.findall(template)) - given)}"
                for where, templates, given in checked for template in templates
                if not set(PLACEHOLDER.findall(template)) <= given]
    assert not unfilled, "\n".join(unfilled)


def test_every_core_template_has_french_with_the_same_placeholders() -> None:
    catalogue = french()
    templates = {t for _, ts, _ in _raise_sites() for t in ts}
    assert len(templates) > 70
    wrong = [t for t in templates if t not in catalogue or not catalogue[t]
             or set(PLACEHOLDER.findall(catalogue[t])) != set(PLACEHOLDER.findall(t))]
    assert not wrong, "\n".join(wrong)


# -- records that are not there, bad queries, the auditor's verification (H7) -------------

# role, page, English sentence, French sentence (ledger.reads, ledger.log.store)
MISSING = [
    ("auditor", "/parcels/NOPE", "parcel_id: there is no parcel 'NOPE'.",
     "parcel_id: il n'y a pas de lot 'NOPE'."),
    ("auditor", "/sites/NOPE", "site_id: there is no site 'NOPE'.",
     "site_id: il n'y a pas de site 'NOPE'."),
    ("auditor", "/zones/NOPE", "zone_id: there is no zone 'NOPE'.",
     "zone_id: il n'y a pas de zone 'NOPE'."),
    ("auditor", "/actors/NOPE", "actor_id: there is no actor 'NOPE'.",
     "actor_id: il n'y a pas d'acteur 'NOPE'."),
    ("auditor", "/exports/NOPE", "certificate_no: there is no export certificate 'NOPE'.",
     "certificate_no: il n'y a pas de certificat d'exportation 'NOPE'."),
    ("auditor", "/flags/NOPE/resolve", "flag_id: there is no flag 'NOPE'.",
     "flag_id: il n'y a pas de signalement 'NOPE'."),
    ("auditor", "/entries/999999", "entry 999999 does not exist.",
     "l'entrée 999999 n'existe pas."),
    ("buyer", "/parcels/NOPE", "parcel_id: 'NOPE' is not a parcel that 'buyer-a' holds or held.",
     "parcel_id: 'NOPE' n'est pas un lot que 'buyer-a' détient ou a détenu."),
    ("exporter", "/exports/NOPE", "certificate_no: 'NOPE' is not an export of 'exp-gh'.",
     "certificate_no: 'NOPE' n'est pas une exportation de 'exp-gh'."),
    # ledger.stats: the Statistics page's period, key and kind
    ("buyer", "/stats?period=2008-13", "period: '2008-13' is not a period: give YYYY, "
     "YYYY-H1, YYYY-H2 or YYYY-Q1..YYYY-Q4, or a range FROM..TO of those.",
     "period: '2008-13' n'est pas une période : donnez YYYY, YYYY-H1, YYYY-H2 ou "
     "YYYY-Q1..YYYY-Q4, ou un intervalle DEBUT..FIN de celles-ci."),
    ("buyer", "/stats?period=2008..2009-Q1", "period: '2008..2009-Q1' mixes a year and a "
     "quarter; give both ends of a range the same form.", "period: '2008..2009-Q1' mélange "
     "une année et un trimestre ; donnez la même forme aux deux bornes de l'intervalle."),
    ("auditor", "/stats?kind=trade&by=site", "by: 'site' does not apply to trade statistics (an "
     "export is counted by certificate, not by site, zone or buyer); use country, hs, partner.",
     "by: 'site' ne s'applique pas aux statistiques commerciales (une exportation est comptée "
     "par certificat, non par site, zone ou acheteur) ; utilisez country, hs, partner."),
    # ledger.paging: a list's sort
    ("auditor", "/flags?sort=zz", "sort: 'zz' is not one of raised, newest, code, subject.",
     "sort: 'zz' ne fait pas partie de : raised, newest, code, subject."),
]


def _shown(page: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.mark.parametrize("role, path, english, french", MISSING,
                         ids=[f"{m[0]}:{m[1]}" for m in MISSING])
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_an_unknown_record_or_a_bad_query_is_said_in_the_pages_language(
        world: Ledger, client: FlaskClient, lang: str, role: str, path: str,  # noqa: F811
        english: str, french: str) -> None:
    sign_in_in(client, role, lang)
    answer = client.get(path)
    assert answer.status_code in (400, 403, 404)
    said, unsaid = (french, english) if lang == "fr" else (english, french)
    shown = _shown(answer.text)
    assert said in shown and unsaid not in shown


@pytest.mark.parametrize("lang, said", [
    ("en", "cursor: the link is for the order 'code', not 'raised'; start again from the "
           "first page."),
    ("fr", "cursor: le lien est pour l'ordre 'code', et non 'raised' ; recommencez depuis la "
           "première page.")])
def test_a_page_link_of_another_order_is_refused_in_the_pages_language(
        world: Ledger, client: FlaskClient, lang: str, said: str) -> None:  # noqa: F811
    from ledger.paging import Position
    from webui.pages import paging
    with client.application.test_request_context():
        link = paging.token(Position("code", ("LATE_ENTRY", "F-1")))
    sign_in_in(client, "auditor", lang)
    answer = client.get("/flags", query_string={"after": link})
    assert answer.status_code == 400
    assert said in _shown(answer.text)


def _verified(client: FlaskClient, note: str) -> tuple[int, list[str]]:
    """The status and the lines the auditor's verification shows about ``note``."""
    answer = client.post("/audit/verify", data={"checkpoint": note,
                                                "csrf_token": token_of(client, "/audit")})
    card = answer.text.split('id="checkpoint"', 1)[1].split('id="open-flags"', 1)[0]
    return answer.status_code, [_shown(i) for i in re.findall(r"<li[^>]*>(.*?)</li>", card,
                                                              re.S)]


MALFORMED = "alluvial.local\n0012\nxyz\n"


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_a_pasted_checkpoints_lines_are_refused_in_the_pages_language(
        world: Ledger, client: FlaskClient, lang: str) -> None:  # noqa: F811
    sign_in_in(client, "auditor", lang)
    status, lines = _verified(client, MALFORMED)
    assert status == 422
    assert lines[:3] == ([
        "line 2 should be the number of entries, a whole number such as 3766; it reads '0012'.",
        "line 3 should be the root hash: 44 characters of base64 ending in '='; it reads 'xyz'.",
        "the text ends after line 3: line 4 should be 'time ' and the moment it was signed, "
        "e.g. time 2026-01-05T10:00:00Z."] if lang == "en" else [
        "à la ligne 2, on attend le nombre d'entrées, un nombre entier tel que 3766 ; on y lit "
        "'0012'.",
        "à la ligne 3, on attend le hachage racine : 44 caractères base64 se terminant par "
        "'=' ; on y lit 'xyz'.",
        "le texte s'arrête après la ligne 3 : à la ligne 4, on attend 'time ' suivi du moment "
        "de la signature, p. ex. time 2026-01-05T10:00:00Z."])


def _signed_beyond(book: Ledger, more: int) -> str:
    """A checkpoint signed by the log's own key that claims ``more`` entries than it holds."""
    from datetime import UTC, datetime

    from ledger.log.checkpoint import Checkpoint
    return Checkpoint(book.log.key.name, book.log.size() + more, bytes(32),
                      datetime.now(UTC)).sign(book.log.key)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_verification_report_is_said_in_the_pages_language(
        world: Ledger, client: FlaskClient, lang: str) -> None:  # noqa: F811
    sign_in_in(client, "auditor", lang)
    size = world.log.size()
    truncated = _verified(client, _signed_beyond(world, 5))
    note = world.log.latest_checkpoint()
    assert note
    forged = _verified(client, with_size(note, size + 1))  # its signature no longer verifies
    key = f"{world.log.key.name}+{world.log.key.verifier.key_id.hex()}"
    assert truncated[0] == forged[0] == 200
    if lang == "en":
        assert truncated[1] == [f"the checkpoint you pasted: it covers {size + 5} entries but "
                                f"the log holds only {size}: the log was truncated."]
        assert forged[1] == [f"the checkpoint you pasted: the note's signature by key {key} "
                             "does not verify."]
    else:
        assert truncated[1] == [f"le point de contrôle que vous avez collé : il couvre "
                                f"{size + 5} entrées mais le journal n'en contient que {size} : "
                                "le journal a été tronqué."]
        assert forged[1] == [f"le point de contrôle que vous avez collé : la signature de la "
                             f"note par la clé {key} n'est pas valide."]


def test_the_api_and_the_cli_keep_these_refusals_in_english(
        world: Ledger, client: FlaskClient, runner: Any, tmp_path: Path) -> None:  # noqa: F811
    from ledger.cli import cli
    token = accounts.create_token(world.engine, "auditor")
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": "fr"}
    client.set_cookie("lang", "fr")
    parcel = client.get("/api/v1/parcels/NOPE", headers=headers)
    assert parcel.status_code == 404
    assert parcel.json["detail"] == "parcel_id: there is no parcel 'NOPE'."
    stats = client.get("/api/v1/stats", query_string={"period": "2009..2008"}, headers=headers)
    assert stats.json["detail"] == "period: '2009..2008' ends before it starts."
    said = runner.invoke(cli, ["stats", "--period", "2009..2008"])
    assert said.exit_code == 2 and "'2009..2008' ends before it starts." in said.output
    (tmp_path / "later.txt").write_text(_signed_beyond(world, 5), encoding="utf-8")
    verified = runner.invoke(cli, ["verify", "--checkpoint", str(tmp_path / "later.txt")])
    size = world.log.size()
    assert (f"--checkpoint: it covers {size + 5} entries but the log holds only {size}: the "
            "log was truncated.") in verified.output


@pytest.mark.parametrize("lang, said, unsaid", [
    ("en", "only buyer or exporter may.", " ou "),
    ("fr", "seuls buyer ou exporter le peuvent", " or ")])
def test_a_roles_refusal_lists_the_roles_with_the_pages_or(
        world: Ledger, client: FlaskClient, lang: str, said: str, unsaid: str  # noqa: F811
        ) -> None:
    sign_in_in(client, "auditor", lang)
    answer = client.get("/transfers/new")
    assert answer.status_code == 403
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", answer.text.split("<main>", 1)[1])).split())
    assert said in text and unsaid not in text.split("only")[-1], text
