"""Paged, sorted and filtered lists (issue 19): keyset pages (ledger.paging, ledger.lists)
and the pages that show them, on SQLite and PostgreSQL.

One small world per database (module scope): two buyers with parcels of repeated dates
and carats (ties the keyset's unique last key must break), a split (two parcels made by
one entry), flagged purchases. Pages of a list put together are the unpaged list in its
order, for every sort, with filters, forwards and backwards; no page is longer than its
size; a changed or made-up page link is a 400 page; a buyer's pages never show another's
rows, even with a link made for the auditor; the move forms pick parcels from a searched
page of the holder's parcels instead of listing them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer

from ledger import accounts, lists, signin
from ledger import projections as pj
from ledger.db import make_engine
from ledger.log.keys import load_or_create
from ledger.paging import MAX_SIZE, Listing, Position
from ledger.reads import Scope
from ledger.recorder.events import Event, Ledger
from tests import pg
from tests.conftest import HISTORY_LATE_DAYS, Auth
from webui import create_app, login

AKWATIA = {"type": "Polygon", "coordinates": [[[-0.9, 5.9], [-0.7, 5.9], [-0.7, 6.1],
                                               [-0.9, 6.1], [-0.9, 5.9]]]}
NORTH_CI = {"type": "Polygon", "coordinates": [[[-8.0, 7.5], [-4.0, 7.5], [-4.0, 10.0],
                                                [-8.0, 10.0], [-8.0, 7.5]]]}
SEGUELA = [-6.67, 7.96]
USERS = {"aud": ("auditor", "aud-1"), "buyer-a": ("buyer", "buyer-a"),
         "buyer-b": ("buyer", "buyer-b"), "off": ("officer", "off-gh")}
A_PARCELS = 22  # buyer-a's purchases; PA-03, PA-10, PA-17 dug in the risk area
B_PARCELS = 6  # buyer-b's; PB-02 and PB-05 in the risk area


def _seed(book: Ledger) -> None:
    auth = Auth(book)
    for role, actor in USERS.values():
        auth.register(role, actor)
    write = book.write
    write(Event("zone.registered", "off-gh", {
        "zone_id": "Z-AKW", "zone_type": "licence", "geometry": AKWATIA, "date": "2004-01-06",
        "valid_from": "2000-01-01", "valid_to": None, "licence_no": "GH-ML-AKW-1",
        "holder": "Akwatia Diggers Cooperative", "name": "Akwatia field"}))
    write(Event("zone.registered", "off-gh", {
        "zone_id": "RISK-CI-N", "zone_type": "risk", "geometry": NORTH_CI, "date": "2004-01-06",
        "valid_from": "2002-09-19", "valid_to": "2011-04-11", "category": "rebel_held",
        "source": "UN Panel of Experts", "name": "Northern Côte d'Ivoire"}))
    for site_id, lon in (("S-AKW", -0.8), ("S-BIR", -0.75)):
        write(Event("site.registered", "off-gh", {
            "site_id": site_id, "name": f"Pit {site_id}", "licence_no": "GH-ML-AKW-1",
            "location": {"type": "Point", "coordinates": [lon, 6.04]},
            "operator": "Akwatia Diggers Cooperative", "country": "GH", "date": "2004-01-07"}))

    def buy(buyer: str, pid: str, n: int, risky: bool) -> None:
        payload: dict[str, Any] = {
            "parcel_id": pid, "site_id": ("S-AKW", "S-BIR")[n % 2], "seller": "Kofi Boateng",
            "date": f"2008-03-{10 + n % 5:02d}", "carats": (1.5, 2.25, 3.0, 0.75)[n % 4],
            "stones": 3 + n % 3, "price": {"amount": 100, "currency": "USD"}}
        if risky:
            payload["dig_location"] = {"type": "Point", "coordinates": SEGUELA}
        write(Event("parcel.purchased", buyer, payload))

    for n in range(1, A_PARCELS + 1):
        buy("buyer-a", f"PA-{n:02d}", n, n in (3, 10, 17))
    for n in range(1, B_PARCELS + 1):
        buy("buyer-b", f"PB-{n:02d}", n, n in (2, 5))
    # One entry makes two parcels: equal seq, so the id must break the tie.
    write(Event("parcel.split", "buyer-a", {
        "parent_id": "PA-01", "date": "2008-03-20", "children": [
            {"parcel_id": "PA-01a", "carats": 0.75, "stones": 2},
            {"parcel_id": "PA-01b", "carats": 0.75, "stones": 2}]}))
    write(Event("parcel.transferred", "buyer-a", {
        "parcel_id": "PA-02", "to_actor": "buyer-b", "date": "2008-03-21",
        "price": {"amount": 120, "currency": "USD"}}))
    accounts.create_tables(book.engine)
    for name, (role, actor) in USERS.items():
        accounts.add_user(book.engine, name, role, actor)


def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           name: str, seed: Callable[[Ledger], None]) -> Iterator[Ledger]:
    """A module's own ledger on the database ``request.param`` names, written by ``seed``
    (also the certificates list's, tests/test_certificate_list.py)."""
    folder: Path = tmp_path_factory.mktemp(name)

    def made(url: str) -> Iterator[Ledger]:
        engine = make_engine(url)
        ledger = Ledger(engine, load_or_create(folder / "log.key", f"{name}.test"),
                        late_days=HISTORY_LATE_DAYS)
        ledger.initialise()
        seed(ledger)
        yield ledger
        engine.dispose()

    if request.param == "sqlite":
        yield from made(f"sqlite:///{folder / 'ledger.db'}")
        return
    with pg.fresh_database(request.getfixturevalue("pg_server")) as url:
        yield from made(url)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql",
                                                               marks=pytest.mark.postgresql)])
def book(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Ledger]:
    yield from seeded(request, tmp_path_factory, "paging", _seed)


@pytest.fixture(scope="module")
def app(book: Ledger) -> Flask:
    return create_app({"TESTING": True, "LEDGER": book})


def client_of(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    with client.session_transaction() as session:
        session[login.SESSION_ID] = signin.open_session(app.extensions["alluvial"].ledger.engine,
                                                        name)
    return client


def scope_of(conn: sa.Connection, name: str) -> Scope:
    role, actor = USERS[name]
    return Scope(conn, accounts.Principal(user=name, role=role, actor_id=actor))


Read = Callable[..., tuple[Any, dict[str, str]]]


def walk(read: Read, scope: Scope, args: dict[str, str], order: str, size: int
         ) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Every row, following the next positions; and the pages walked back from the last."""
    rows: list[dict[str, Any]] = []
    position: Position | None = None
    while True:
        page, _ = read(scope, args, order, position, size)
        assert 0 < len(page.rows) <= size or (not rows and not page.rows)
        rows += page.rows
        if page.next is None:
            break
        position = page.next
    back = [page.rows]
    while page.previous is not None:
        page, _ = read(scope, args, order, page.previous, size)
        assert len(page.rows) == size  # every page before the last is full
        back.insert(0, page.rows)
    return rows, back


# (list, reader, filters, the key of a row in the unpaged list)
CASES: list[tuple[str, Listing, Read, dict[str, str]]] = [
    ("flags", lists.FLAG_LIST, lists.flag_page, {}),
    ("flags-open-parcels", lists.FLAG_LIST, lists.flag_page, {"status": "open", "type": "parcel"}),
    ("flags-site", lists.FLAG_LIST, lists.flag_page, {"site": "S-AKW"}),
    ("holdings", lists.HOLDING_LIST, lists.holding_page, {}),
    ("holdings-on-hold", lists.HOLDING_LIST, lists.holding_page, {"flagged": "yes"}),
    ("parcels", lists.PARCEL_LIST, lists.parcel_page, {}),
    ("parcels-filtered", lists.PARCEL_LIST, lists.parcel_page,
     {"site": "S-BIR", "from": "2008-03-11", "to": "2008-03-13", "status": "active"}),
    ("parcels-zone-q", lists.PARCEL_LIST, lists.parcel_page, {"zone": "Z-AKW", "q": "pa-1"}),
    ("sites", lists.SITE_LIST, lists.site_page, {}),
    ("zones", lists.ZONE_LIST, lists.zone_page, {}),
    ("actors", lists.ACTOR_LIST, lists.actor_page, {}),
    ("entries", lists.ENTRY_LIST, lists.entry_page, {}),
    ("entries-kind", lists.ENTRY_LIST, lists.entry_page, {"kind": "parcel.purchased",
                                                         "actor": "buyer-a"}),
]
WHO = {"holdings": "buyer-a"}  # a list of one's own; the others: the auditor's


@pytest.mark.parametrize(("name", "listing", "read", "args"), CASES, ids=[c[0] for c in CASES])
def test_pages_put_together_are_the_unpaged_list_in_order_for_every_sort(
        book: Ledger, name: str, listing: Listing, read: Read, args: dict[str, str]) -> None:
    with book.engine.connect() as conn:
        scope = scope_of(conn, WHO.get(name.split("-")[0], "aud"))
        for order in listing.orders:
            whole, _ = read(scope, args, order, None, MAX_SIZE)
            assert whole.next is None and len(whole.rows) >= 2, (order, whole.rows)
            for size in (1, 2, 5):
                rows, back = walk(read, scope, args, order, size)
                assert rows == whole.rows, (order, size)
                assert [r for page in back for r in page] == whole.rows, (order, size)


def _ids(rows: list[dict[str, Any]], key: str) -> list[str]:
    return [r[key] for r in rows]


def test_sorts_and_filters_mean_what_they_say(book: Ledger) -> None:
    """The unpaged lists checked against the projections read plainly (Python sorts)."""
    with book.engine.connect() as conn:
        scope = scope_of(conn, "aud")
        every = [dict(r._mapping) for r in conn.execute(sa.select(pj.parcels))]
        page, _ = lists.parcel_page(scope, {}, "carats", None, MAX_SIZE)
        assert _ids(page.rows, "parcel_id") == _ids(sorted(
            every, key=lambda r: (r["points"], r["parcel_id"]), reverse=True), "parcel_id")
        page, _ = lists.parcel_page(scope, {}, "date", None, MAX_SIZE)
        assert _ids(page.rows, "parcel_id") == _ids(sorted(
            every, key=lambda r: (r["date"], r["parcel_id"])), "parcel_id")
        args = {"site": "S-BIR", "from": "2008-03-11", "to": "2008-03-13", "flagged": "no"}
        page, used = lists.parcel_page(scope, args, "parcel", None, MAX_SIZE)
        assert used == args
        assert _ids(page.rows, "parcel_id") == sorted(
            r["parcel_id"] for r in every if r["site_id"] == "S-BIR" and r["open_flags"] == 0
            and "2008-03-11" <= r["date"] <= "2008-03-13")
        held, _ = lists.holding_page(scope_of(conn, "buyer-a"), {"flagged": "yes"}, None,
                                     None, MAX_SIZE)
        assert set(_ids(held.rows, "parcel_id")) == {"PA-03", "PA-10", "PA-17"}
        flags, _ = lists.flag_page(scope, {"code": "in_risk_area"}, "subject", None, MAX_SIZE)
        assert {f["subject_id"] for f in flags.rows} == {"PA-03", "PA-10", "PA-17", "PB-02",
                                                         "PB-05"}


def _next(text: str) -> str | None:
    found = re.search(r'<a rel="next" href="([^"]+)"', text)
    return unescape(found.group(1)) if found else None


def _listed(text: str, kind: str) -> list[str]:
    """The ids of the rows of a list page, in order (the links to their records)."""
    return re.findall(rf'<td class="mono"><a href="/{kind}/([^"]+)">', text)


def _crawl(client: FlaskClient, url: str, kind: str, size: int) -> list[str]:
    ids: list[str] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        answer = client.get(next_url)
        assert answer.status_code == 200, (next_url, answer.text[:300])
        shown = _listed(answer.text, kind)
        assert len(shown) <= size
        ids += shown
        pages += 1
        assert pages < 100
        next_url = _next(answer.text)
    return ids


@pytest.mark.parametrize("url", [
    "/parcels?sort=carats", "/parcels?sort=date&site=S-AKW", "/parcels?sort=newest&flagged=no",
    "/holdings?sort=held", "/holdings?sort=date&from=2008-03-11"])
def test_the_page_links_carry_sort_and_filters_and_walk_the_whole_list(
        app: Flask, url: str) -> None:
    client = client_of(app, "buyer-a")
    unpaged = _listed(client.get(f"{url}&size={MAX_SIZE}").text, "parcels")
    assert len(unpaged) >= 4
    assert _crawl(client, f"{url}&size=3", "parcels", 3) == unpaged


def test_flags_grouped_by_parcel(app: Flask) -> None:
    text = client_of(app, "aud").get("/flags?group=parcel&status=open").text
    groups = re.findall(r'<h2>Parcel <a class="mono" href="/parcels/([^"]+)">', text)
    assert groups == ["PA-03", "PA-10", "PA-17", "PB-02", "PB-05"]
    assert 'href="/flags?group=parcel&amp;status=open' not in text or "rel=\"next\"" not in text


def _token(app: Flask, value: Any) -> str:
    return str(URLSafeSerializer(app.secret_key or "", salt="alluvial.pages.position")
               .dumps(value))


def test_a_changed_or_made_up_page_link_is_a_400_page(app: Flask) -> None:
    client = client_of(app, "aud")
    first = client.get("/parcels?sort=carats&size=2").text
    link = _next(first)
    assert link is not None and "after=" in link
    cursor = link.split("after=")[1].split("&")[0]
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    foreign = str(URLSafeSerializer("another key", salt="alluvial.pages.position").dumps(
        ["carats", [150, "PA-01"], "after"]))
    cases = {
        "garbage": "/parcels?after=not-a-cursor",
        "flipped": f"/parcels?sort=carats&size=2&after={flipped}",
        "other order": f"/parcels?sort=date&size=2&after={cursor}",
        "before with an after token": f"/parcels?sort=carats&before={cursor}",
        "both ways": f"/parcels?sort=carats&after={cursor}&before={cursor}",
        "another site's key": f"/parcels?sort=carats&after={foreign}",
        "wrong key types": "/parcels?sort=carats&after=" + _token(
            app, ["carats", ["150", 7], "after"]),
        "too few keys": "/parcels?sort=carats&after=" + _token(app, ["carats", [150], "after"]),
        "not a list": "/parcels?sort=carats&after=" + _token(app, {"a": 1}),
        "NUL in a key": "/parcels?sort=parcel&after=" + _token(app, ["parcel", ["P\x00"],
                                                                     "after"]),
        "flags, garbage": "/flags?after=%00%ff",
        "entries, other list": "/entries?after=" + _token(app, ["carats", [1, "x"], "after"]),
    }
    for case, url in cases.items():
        answer = client.get(url)
        assert answer.status_code == 400, (case, answer.status_code, answer.text[:400])
        assert "BAD_CURSOR" in answer.text and "first page" in answer.text, case


@pytest.mark.parametrize(("url", "field"), [
    ("/parcels?sort=weight", "sort"), ("/parcels?size=0", "size"),
    ("/parcels?size=100000", "size"), ("/parcels?size=ten", "size"),
    ("/parcels?from=March", "from"), ("/flags?status=closed", "status"),
    ("/sites?q=" + "x" * 65, "q"), ("/zones?type=park", "type"),
    ("/actors?role=king", "role"), ("/entries?to=2008-3-1", "to"),
    ("/holdings?flagged=maybe", "flagged"), ("/transfers/new?sort=weight", "sort"),
])
def test_a_filter_sort_or_size_it_does_not_take_is_a_400_page_naming_it(
        app: Flask, url: str, field: str) -> None:
    name = "buyer-a" if url.startswith(("/holdings", "/transfers")) else "aud"
    answer = client_of(app, name).get(url)
    assert answer.status_code == 400, answer.text[:400]
    assert "BAD_QUERY" in answer.text and f"{field}:" in answer.text


@pytest.mark.parametrize("path", ["/parcels", "/holdings", "/flags", "/flags?group=parcel"])
def test_a_buyers_pages_never_show_another_buyers_rows(app: Flask, book: Ledger,
                                                       path: str) -> None:
    buyer = client_of(app, "buyer-a")
    sep = "&" if "?" in path else "?"
    seen: list[str] = []
    next_url: str | None = f"{path}{sep}size=2"
    while next_url is not None:
        text = buyer.get(next_url).text
        seen += re.findall(r"\bP[AB]-\d\d[ab]?\b", text)
        next_url = _next(text)
    # buyer-b bought PB-*, and took PA-02 from buyer-a: buyer-a saw PA-02, never a PB-.
    assert seen and not [i for i in seen if i.startswith("PB-")]
    # A link the auditor was given, positioned among buyer-b's parcels, shows buyer-a
    # only its own rows after that position.
    auditor = client_of(app, "aud").get("/parcels?sort=parcel&size=2&q=PB-").text
    link = _next(auditor)
    # the auditor's page is among buyer-b's parcels, and its next link goes on from there
    assert re.findall(r"\bPB-\d\d\b", auditor) and link is not None and "q=PB-" in link
    leaked = buyer.get(link.replace("q=PB-", "q=P"))
    assert leaked.status_code == 200
    assert not re.findall(r"\bPB-\d\d\b", leaked.text)


def test_move_forms_pick_parcels_from_a_searched_page_not_the_whole_holdings(
        app: Flask) -> None:
    client = client_of(app, "buyer-a")
    form = client.get("/transfers/new").text
    assert len(re.findall(r'name="pick" value="(PA-[^"]+)"', form)) == 10  # a page, not all
    assert "PA-01a" not in re.findall(r'<option value="([^"]+)">', form)  # no full datalist
    found = client.get("/merges/new?q=pa-1&size=50").text
    assert sorted(re.findall(r'name="pick" value="([^"]+)"', found)) == [
        f"PA-{n}" for n in range(10, 20)]
    # Two chosen (2.25 + 3.00 ct), one of another buyer's (ignored): the form is filled
    # with the chosen ones and shows their carats.
    chosen = client.get("/merges/new?pick=PA-05&pick=PA-06&pick=PB-01").text
    assert re.search(r'id="picked-carats">5\.25 ct<', chosen)
    assert re.search(r'<input[^>]*name="parent_ids"[^>]*value="PA-05, PA-06"', chosen)
    assert "PB-01" not in chosen.split("<main>", 1)[1]  # (the header's language links
    # carry the page's own address, as typed)
    # A form that takes one parcel keeps the first chosen.
    one = client.get("/transfers/new?pick=PA-05&pick=PA-06").text
    assert re.search(r'id="picked-carats">2\.25 ct<', one)


@pytest.mark.parametrize("name", ["buyer-a", "buyer-b", "off"])
def test_a_busy_actors_row_by_row_scope_is_the_same_set(book: Ledger, name: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Scope.sees_parcel (each row tested, for actors with many custody steps) keeps exactly
    the parcels and flags Scope.seen_parcels does."""
    with book.engine.connect() as conn:
        scope = scope_of(conn, name)
        p, f = pj.parcels, pj.flags
        seen = scope.seen_parcels()
        assert seen is not None  # None: every parcel
        gathered = set(conn.execute(sa.select(p.c.parcel_id).where(p.c.parcel_id.in_(seen)))
                       .scalars())
        tested = set(conn.execute(sa.select(p.c.parcel_id).where(
            scope.sees_parcel(p.c.parcel_id, p.c.holder))).scalars())
        assert tested == gathered
        every = set(conn.execute(sa.select(p.c.parcel_id)).scalars())
        assert gathered < every  # the scope leaves others' parcels out
        assert name == "off" or len(gathered) >= 6
        flags = [set(conn.execute(sa.select(f.c.flag_id).where(*scope.flags_seen(per_row=per)))
                     .scalars()) for per in (False, True)]
        assert flags[0] == flags[1]
        monkeypatch.setattr(lists, "BUSY", 1)  # every actor busy: the pages read row by row
        for read in (lists.parcel_page, lists.flag_page):
            rows, _ = walk(read, scope, {}, "newest", 3)
            whole, _ = read(scope, {}, "newest", None, MAX_SIZE)
            assert rows == whole.rows
        busy, _ = lists.parcel_page(scope, {}, "parcel", None, MAX_SIZE)
        assert {r["parcel_id"] for r in busy.rows} == gathered


@pytest.mark.parametrize("name", ["aud", "buyer-a", "buyer-b", "off"])
def test_a_dashboards_open_flags_are_the_first_of_those_it_may_read_and_their_count(
        book: Ledger, name: str) -> None:
    with book.engine.connect() as conn:
        scope = scope_of(conn, name)
        rows, count = lists.open_flags(scope, first=2)
        every = scope.flags("open")
        assert count == len(every)
        assert [r["flag_id"] for r in rows] == [f["flag_id"] for f in every][:2]
        assert name == "off" or count >= 2


@pytest.mark.parametrize("path", ["/parcels", "/sites", "/zones", "/actors", "/entries"])
def test_a_lists_column_headers_are_in_its_table_not_in_the_document_head(
        app: Flask, path: str) -> None:
    page = client_of(app, "aud").get(path).text
    head = page.split("<head>", 1)[1].split("</head>", 1)[0]
    assert "<th" not in head
    assert "<th" in page.split("<thead>", 1)[1].split("</thead>", 1)[0]
