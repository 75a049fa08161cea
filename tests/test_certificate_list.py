"""The KP certificates list paged, sorted and filtered (issue 19), as each role may read it,
and the buttons it offers, on SQLite and PostgreSQL (tests/test_paging.py's style).

One small world per database (module scope): two Ghanaian exporters ship 13 certificates
to Belgium and the Emirates on repeated dates with repeated carats (ties the keyset's
unique last key must break); Ghana's authority validates some, Belgium's and the Emirates'
confirm some (one with a mismatch), an auditor flags one (tainted). Pages put together are
the unpaged list in its order for every sort, forwards and backwards; filters mean what
they say (checked against ``certificate_list``, the CLI's plain read); a bad filter or page
link is a 400 page naming it; an exporter sees only its certificates, an authority those
leaving or reaching its country; Validate and Confirm import show only to whom the ledger
would let press them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from ledger import accounts, lists
from ledger.certificates import certificate_list
from ledger.paging import MAX_SIZE
from ledger.reads import Scope
from ledger.recorder.events import Event, Ledger
from tests.conftest import Auth, register_akwatia
from tests.test_paging import _next, _token, client_of, seeded, walk
from webui import create_app

USERS = {"aud": ("auditor", "aud-1"), "exp-gh": ("exporter", "exp-gh"),
         "exp-gh2": ("exporter", "exp-gh2"), "auth-gh": ("authority", "auth-gh"),
         "auth-be": ("authority", "auth-be"), "auth-ae": ("authority", "auth-ae"),
         "buyer": ("buyer", "buyer-a"), "off": ("officer", "off-gh")}
COUNTRY = {"auth-gh": "GH", "auth-be": "BE", "auth-ae": "AE"}
CERTS = 13
VALIDATED = {1, 2, 3, 4, 5, 6, 7}  # by Ghana's authority
CONFIRMED = {2, 3, 4, 10}  # by the destination's authority; 4 received short (mismatch)
TAINTED = 6  # an auditor's open flag on the export


def no(n: int) -> str:
    return f"GH-2008-{n:04d}"


def _seed(book: Ledger) -> None:
    auth = Auth(book)
    for role, actor in USERS.values():
        if role != "authority":
            auth.register(role, actor)
    for actor, country in COUNTRY.items():
        book.write(Event("actor.registered", "admin", {
            "actor_id": actor, "name": f"KP authority {country}", "role": "authority",
            "country": country, "date": "2004-01-05"}))
    register_akwatia(lambda kind, actor, **p: book.write(Event(kind, actor, p)))
    for n in range(1, CERTS + 1):
        pid, carats = f"P-{n:02d}", (1.5, 2.25, 3.0)[n % 3]
        exporter = ("exp-gh", "exp-gh2")[n % 2]
        book.write(Event("parcel.purchased", "buyer-a", {
            "parcel_id": pid, "site_id": "S-AKW", "seller": "Kofi Boateng", "date": "2008-03-14",
            "carats": carats, "stones": 3, "price": {"amount": 100, "currency": "USD"}}))
        book.write(Event("parcel.transferred", "buyer-a", {
            "parcel_id": pid, "to_actor": exporter, "date": "2008-04-01",
            "price": {"amount": 120, "currency": "USD"}}))
        book.write(Event("export.declared", exporter, {
            "certificate_no": no(n), "exporter": exporter, "importer": "Importer",
            "destination": ("BE", "AE")[n % 2 == 0 and n > 6], "hs_code": "7102.31",
            "parcel_ids": [pid], "carats": carats, "value_usd": 120,
            "date": f"2008-05-{1 + n % 4:02d}", "expires": "2008-07-01"}))
    with book.engine.connect() as conn:
        going = {r["certificate_no"]: r["destination"] for r in certificate_list(conn)}
    for n in sorted(VALIDATED):
        book.write(Event("certificate.validated", "auth-gh", {
            "certificate_no": no(n), "date": "2008-05-08", "valuation_usd": 120,
            "officer": "A. Mensah"}))
    for n in sorted(CONFIRMED):
        book.write(Event("import.confirmed", "auth-" + going[no(n)].lower(), {
            "certificate_no": no(n), "date": "2008-05-20", "parcels_received": 1,
            "carats_received": 0.5 if n == 4 else (1.5, 2.25, 3.0)[n % 3],
            "importer": "Importer"}))
    book.write(Event("flag.raised", "aud-1", {
        "flag_id": "FA-X", "subject": {"type": "export", "id": no(TAINTED)},
        "code": "FOOTPRINT_ANOMALY", "detail": "value per carat far above Akwatia's",
        "date": "2008-05-21"}))
    accounts.create_tables(book.engine)
    for name, (role, actor) in USERS.items():
        accounts.add_user(book.engine, name, role, actor)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql",
                                                               marks=pytest.mark.postgresql)])
def book(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Ledger]:
    yield from seeded(request, tmp_path_factory, "certificates", _seed)


@pytest.fixture(scope="module")
def app(book: Ledger) -> Flask:
    return create_app({"TESTING": True, "LEDGER": book})


def scope_of(conn: sa.Connection, name: str) -> Scope:
    role, actor = USERS[name]
    return Scope(conn, accounts.Principal(user=name, role=role, actor_id=actor))


def _nos(rows: list[dict[str, Any]]) -> list[str]:
    return [r["certificate_no"] for r in rows]


@pytest.mark.parametrize(("name", "args"), [
    ("aud", {}), ("aud", {"status": "validated"}), ("aud", {"from": "2008-05-02",
                                                            "to": "2008-05-03"}),
    ("auth-gh", {}), ("auth-be", {}), ("exp-gh", {}), ("exp-gh2", {"q": "-000"}),
])
def test_pages_put_together_are_the_unpaged_list_in_order_for_every_sort(
        book: Ledger, name: str, args: dict[str, str]) -> None:
    with book.engine.connect() as conn:
        scope = scope_of(conn, name)
        for order in lists.CERTIFICATE_LIST.orders:
            whole, _ = lists.certificate_page(scope, args, order, None, MAX_SIZE)
            assert whole.next is None and len(whole.rows) >= 3, (order, whole.rows)
            for size in (1, 2, 5):
                rows, back = walk(lists.certificate_page, scope, args, order, size)
                assert rows == whole.rows, (order, size)
                assert [r for page in back for r in page] == whole.rows, (order, size)


def test_sorts_and_filters_mean_what_they_say(book: Ledger) -> None:
    """The unpaged list checked against ``certificate_list`` read plainly (Python sorts)."""
    with book.engine.connect() as conn:
        every = certificate_list(conn)
        scope = scope_of(conn, "aud")

        def listed(args: dict[str, str], order: str = "certificate") -> list[str]:
            page, used = lists.certificate_page(scope, args, order, None, MAX_SIZE)
            assert used == args
            return _nos(page.rows)

        assert len(every) == CERTS and listed({}) == sorted(_nos(every))
        assert listed({}, "newest") == _nos(sorted(
            every, key=lambda r: (r["date"], r["certificate_no"]), reverse=True))
        assert listed({}, "carats") == _nos(sorted(
            every, key=lambda r: (r["carats"], r["certificate_no"]), reverse=True))
        assert listed({}, "status")[:3] == [no(n) for n in (8, 12, 9)]  # declared, oldest
        assert listed({}, "status")[-1] == no(4)  # the one mismatched
        for state in ("declared", "validated", "confirmed", "mismatched"):
            assert listed({"status": state}) == sorted(
                r["certificate_no"] for r in every if r["state"] == state), state
        assert listed({"status": "confirmed"}) == [no(2), no(3), no(10)]
        assert listed({"exporter": "exp-gh"}) == [no(n) for n in range(2, CERTS + 1, 2)]
        assert listed({"destination": "ae"}) == [no(n) for n in (8, 10, 12)]
        assert listed({"origin": "GH"}) == sorted(_nos(every))
        assert listed({"origin": "BE"}) == []
        assert listed({"from": "2008-05-02", "to": "2008-05-03"}) == sorted(
            r["certificate_no"] for r in every if "2008-05-02" <= r["date"] <= "2008-05-03")
        assert listed({"q": "08-001"}) == [no(10), no(11), no(12), no(13)]
        assert listed({"tainted": "yes"}) == [no(TAINTED)]
        assert len(listed({"tainted": "no"})) == CERTS - 1
        # Issued in 2008 and never confirmed: every unconfirmed one is overdue.
        assert listed({"overdue": "yes"}) == sorted(
            r["certificate_no"] for r in every if r["state"] in ("declared", "validated"))
        assert listed({"overdue": "no"}) == [no(2), no(3), no(4), no(10)]


SEES = {"aud": range(1, CERTS + 1), "auth-gh": range(1, CERTS + 1),  # all leave Ghana
        "auth-be": [n for n in range(1, CERTS + 1) if n not in (8, 10, 12)],
        "auth-ae": [8, 10, 12], "exp-gh": range(2, CERTS + 1, 2),
        "exp-gh2": range(1, CERTS + 1, 2)}


@pytest.mark.parametrize("name", sorted(SEES))
def test_each_role_pages_through_only_what_it_may_read(app: Flask, name: str) -> None:
    client = client_of(app, name)
    seen: list[str] = []
    next_url: str | None = "/certificates?sort=certificate&size=2"
    while next_url is not None:
        answer = client.get(next_url)
        assert answer.status_code == 200, answer.text[:300]
        shown = re.findall(r'data-certificate="([^"]+)"', answer.text)
        assert 0 < len(shown) <= 2
        seen += shown
        next_url = _next(answer.text)
    assert seen == [no(n) for n in SEES[name]]


def test_a_link_made_for_another_caller_shows_only_ones_own_rows(app: Flask) -> None:
    auditor = client_of(app, "aud").get("/certificates?sort=certificate&size=2&exporter=exp-gh2")
    link = _next(auditor.text)
    assert link is not None and "exporter=exp-gh2" in link
    answer = client_of(app, "exp-gh").get(link)
    assert answer.status_code == 200
    assert re.findall(r'data-certificate="([^"]+)"', answer.text) == []  # none of exp-gh2's
    answer = client_of(app, "exp-gh").get(link.replace("exporter=exp-gh2", "exporter="))
    # exp-gh's own, after the auditor's position (GH-2008-0003)
    assert re.findall(r'data-certificate="([^"]+)"', answer.text) == [no(4), no(6)]


@pytest.mark.parametrize("name", ["buyer", "off"])
def test_roles_that_hold_no_certificate_may_not_open_the_list(app: Flask, name: str) -> None:
    answer = client_of(app, name).get("/certificates")
    assert answer.status_code == 403 and "ROLE" in answer.text


@pytest.mark.parametrize(("query", "field", "rule"), [
    ("status=approved", "status", "BAD_QUERY"), ("sort=value", "sort", "BAD_QUERY"),
    ("from=May", "from", "BAD_QUERY"), ("to=2008-5-1", "to", "BAD_QUERY"),
    ("overdue=maybe", "overdue", "BAD_QUERY"), ("tainted=1", "tainted", "BAD_QUERY"),
    ("q=" + "x" * 65, "q", "BAD_QUERY"), ("size=0", "size", "BAD_QUERY"),
    ("after=not-a-cursor", "cursor", "BAD_CURSOR"),
    ("sort=carats&after=", "cursor", "BAD_CURSOR"),  # a date order's token, see below
    ("sort=certificate&after=", "cursor", "BAD_CURSOR"),  # wrong key types
])
def test_a_bad_filter_sort_or_page_link_is_a_400_page_naming_it(
        app: Flask, query: str, field: str, rule: str) -> None:
    if query == "sort=carats&after=":
        query += _token(app, ["newest", ["2008-05-01", no(1)], "after"])
    elif query == "sort=certificate&after=":
        query += _token(app, ["certificate", [7], "after"])
    answer = client_of(app, "aud").get(f"/certificates?{query}")
    assert answer.status_code == 400, answer.text[:400]
    assert rule in answer.text and f"{field}:" in answer.text


def _buttons(text: str, action: str) -> list[str]:
    return re.findall(rf'href="/exports/([^"/]+)/{action}"', text)


def test_validate_and_confirm_show_only_to_the_authority_the_ledger_lets_press_them(
        app: Flask) -> None:
    declared = [no(n) for n in range(1, CERTS + 1) if n not in VALIDATED]
    ghana = client_of(app, "auth-gh").get("/certificates?sort=certificate&size=50").text
    assert _buttons(ghana, "validate") == declared
    assert _buttons(ghana, "confirm") == []  # none goes to Ghana
    belgium = client_of(app, "auth-be").get("/certificates?sort=certificate&size=50").text
    assert _buttons(belgium, "validate") == []  # Ghana's exports: not Belgium's to validate
    assert _buttons(belgium, "confirm") == [
        no(n) for n in SEES["auth-be"] if n not in CONFIRMED]
    exporter = client_of(app, "exp-gh").get("/certificates?size=50").text
    assert _buttons(exporter, "validate") == _buttons(exporter, "confirm") == []

    # The export's own page: the same rule (a foreign authority saw Validate there).
    page = f"/exports/{no(9)}"  # declared, to Belgium
    assert _buttons(client_of(app, "auth-gh").get(page).text, "validate") == [no(9)]
    assert _buttons(client_of(app, "auth-gh").get(page).text, "confirm") == []
    assert _buttons(client_of(app, "auth-be").get(page).text, "validate") == []
    assert _buttons(client_of(app, "auth-be").get(page).text, "confirm") == [no(9)]
    done = f"/exports/{no(2)}"  # validated and confirmed: nothing left to press
    for name in ("auth-gh", "auth-be"):
        text = client_of(app, name).get(done).text
        assert _buttons(text, "validate") == _buttons(text, "confirm") == []
