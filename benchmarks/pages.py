"""Benchmark of the HTML pages (issue 19, acceptance 2): every page's server time and size,
for every role, on a generated ledger.

    python -m benchmarks.pages [--size N]      # N generated events (default 100,000)
    python -m benchmarks.pages --size 300000 --repeat 7

The ledger is ``sample_data.generate --events N`` ingested as an archive would be (its
history is dated 2004-2016 and written today: a century of late days, as
tests/conftest.py HISTORY_LATE_DAYS), into ``benchmarks/.cache/pages-N/`` (git-ignored)
and reused by later runs of the same size; a reused ledger gets the tables (a rebuild)
and indexes of this version of ``ledger.projections`` before it is measured.

Each page is requested ``--repeat`` times through Flask's test client in this process
(server time: routing, reads, rendering; no network), for a user of each role acting as
the generated actor with the most rows to show. The table gives each page's median time
and HTML size beside the baseline measured in the same run, ``GET /login`` (a page that
reads nothing), and the targets of issue 19 at 1,000,000 events: <= 300 ms median and
<= 200 KB. The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from benchmarks._common import Report, fmt_ms, machine, median_ms, progress, stage
from ledger import accounts, signin
from ledger import projections as pj
from ledger.custody.trace import trace
from ledger.db import entries, make_engine
from ledger.errors import LedgerError
from ledger.log.keys import load_or_create
from ledger.recorder.events import Event, Ledger
from ledger.recorder.ingest import ingest
from sample_data.generate import dump_line, events
from webui import login

CACHE = Path(__file__).parent / ".cache"
ORIGIN = "bench.alluvial.local"
LATE_DAYS = 100 * 366  # tests/conftest.py HISTORY_LATE_DAYS: a 2004-2016 history written today
TARGET_MS = 300.0
TARGET_KB = 200.0
ROLES = ("admin", "officer", "buyer", "exporter", "auditor", "authority")


def build(n: int, folder: Path) -> Ledger:
    """The ledger of ``n`` generated events in ``folder``, ingested unless a finished one is
    there already (``done`` is written last)."""
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'ledger.db'}"
    done = folder / "done"
    if not done.exists():
        for extra in ("", "-wal", "-shm"):
            (folder / f"ledger.db{extra}").unlink(missing_ok=True)
    book = Ledger(make_engine(url), load_or_create(folder / "log.key", ORIGIN),
                  late_days=LATE_DAYS)
    if done.exists():
        progress(f"reusing {folder} ({done.read_text().strip()})")
        with book.engine.connect() as conn:
            missing = pj.outdated(conn)
        if missing:  # tables this version adds: folded again from the log, as `alluvial rebuild`
            with stage(f"rebuilding the projections (missing {', '.join(missing)})"):
                book.rebuild()
        with book.engine.begin() as conn:  # indexes this version adds to existing tables
            for table in (*pj.projection_metadata.tables.values(), entries):
                for index in table.indexes:
                    index.create(conn, checkfirst=True)
        return book
    book.initialise()
    with stage(f"ingesting {n:,} generated events into {folder}"):
        start = time.perf_counter()
        written = ingest(book, (dump_line(e) for e in events(n)), batch=50_000).written
        seconds = time.perf_counter() - start
    done.write_text(f"{written:,} events ingested in {seconds:.0f} s\n")
    return book


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="generated events")
    parser.add_argument("--repeat", type=int, default=5, help="requests per page (median)")
    parser.add_argument("--build-only", action="store_true", help="build the ledger and stop")
    args = parser.parse_args(argv)
    book = build(args.size, CACHE / f"pages-{args.size}")
    if args.build_only:
        return
    measure(book, args.size, args.repeat)


# The pages each role opens: every page its navigation offers, its lists (and their second
# page), the forms (those that list parcels too), and the record pages it reaches from them.
# {parcel}, {site}, {zone}, {actor}, {export}, {entry}, {flag}: a record of the ledger;
# {traced}: the buyer's lot of the longest custody trace ({export} is the exporter's).
# The authority is measured twice: for the exporting country (every certificate leaving
# Ghana) and for an importing one (those reaching Belgium and the flags touching them).
PAGES = {
    "admin": ["/", "/map", "/sites/new", "/zones/import", "/actors/new", "/sites", "/zones",
              "/actors", "/stats", "/admin/users", "/sites/{site}", "/zones/{zone}",
              "/actors/{actor}"],
    "officer": ["/", "/map", "/sites/new", "/zones/import", "/actors/new", "/flags",
                "/flags?status=open", "/sites", "/zones", "/actors", "/stats",
                "/stats?by=site", "/sites/{site}", "/zones/{zone}", "/actors/{actor}"],
    "buyer": ["/", "/map", "/holdings", "/holdings?flagged=yes", "/purchases/new",
              "/transfers/new", "/transfers/new?q=P", "/splits/new", "/merges/new", "/flags",
              "/parcels", "/parcels?sort=carats", "/sites", "/zones", "/actors", "/stats",
              "/parcels/{parcel}", "/parcels/{traced}", "/sites/{site}", "/zones/{zone}",
              "/actors/{actor}"],
    "exporter": ["/", "/map", "/holdings", "/transfers/new", "/splits/new", "/merges/new",
                 "/exports/new", "/flags", "/parcels", "/sites", "/zones", "/actors", "/stats",
                 "/parcels/{parcel}", "/exports/{export}", "/exports/{export}/print",
                 "/sites/{site}", "/zones/{zone}", "/actors/{actor}"],
    "auditor": ["/", "/map", "/map?as_of=2008-01-01", "/audit", "/flags", "/flags?status=open",
                "/flags?group=parcel", "/flags?sort=code&code=IN_RISK_AREA", "/parcels",
                "/parcels?sort=date", "/parcels?site={site}", "/sites", "/zones", "/actors",
                "/entries", "/entries?kind=parcel.purchased", "/stats", "/stats?by=site",
                "/search?q=GH-P0001", "/parcels/{parcel}", "/parcels/{traced}", "/exports/{export}",
                "/exports/{export}/print", "/exports/{export}/confirm", "/entries/{entry}",
                "/flags/{flag}/resolve", "/sites/{site}", "/zones/{zone}", "/actors/{actor}"],
    "authority": ["/", "/map", "/certificates", "/sites", "/zones", "/actors", "/stats",
                  "/stats?by=site", "/exports/{export}", "/exports/{export}/print",
                  "/exports/{export}/validate", "/sites/{site}", "/zones/{zone}",
                  "/actors/{actor}"],
    "authority BE": ["/", "/certificates", "/exports/{export}", "/exports/{export}/confirm"],
}
AUTHORITIES = {"authority": "GH", "authority BE": "BE"}
_NEXT = re.compile(r'<a rel="next" href="([^"]+)"')


def _authorities(book: Ledger, exporting: str) -> None:
    """The generator registers no KP authority: one for the country the busiest exporter
    ships from and one for a destination (Belgium), written once by the admin (a repeated
    event_id finds the entry already written)."""
    with book.engine.connect() as conn:
        admin = conn.execute(sa.select(pj.actors.c.actor_id).where(
            pj.actors.c.role == "admin").limit(1)).scalar_one()
    for label, country in AUTHORITIES.items():
        country = exporting if label == "authority" else country
        book.write(Event("actor.registered", admin, {
            "actor_id": f"bench-authority-{country.lower()}", "name": f"KP authority {country}",
            "role": "authority", "country": country, "date": "2004-01-01"},
            f"bench-authority-{country.lower()}"))


def _longest(conn: sa.Connection, ids: sa.Select[Any], sample: int = 200) -> str | None:
    """Of the first ``sample`` ids, the parcel or certificate of the longest custody trace
    (the page that draws and lists the most)."""
    sizes = {i: len(trace(conn, i, "backward").edges)
             for i in conn.execute(ids.limit(sample)).scalars()}
    return max(sizes, key=lambda i: sizes[i], default=None)


def _actors(book: Ledger) -> dict[str, dict[str, str]]:
    """Per role, the generated actor with the most to show (the most parcels held, flags
    or registrations), and the records its pages open ({parcel}, {export}...)."""
    p, a, x, f = pj.parcels, pj.actors, pj.exports, pj.flags
    with book.engine.connect() as conn:
        def busiest(query: sa.Select[Any]) -> str | None:
            return conn.execute(query.limit(1)).scalar()

        found = {
            "buyer": busiest(sa.select(p.c.holder).join(a, a.c.actor_id == p.c.holder)
                             .where(a.c.role == "buyer", p.c.status == "active")
                             .group_by(p.c.holder).order_by(sa.func.count().desc())),
            "exporter": busiest(sa.select(x.c.exporter).group_by(x.c.exporter)
                                .order_by(sa.func.count().desc())),
        }
        if found["exporter"] is None:
            found["exporter"] = busiest(sa.select(a.c.actor_id).where(a.c.role == "exporter"))
        exporting = busiest(sa.select(a.c.country).where(a.c.actor_id == found["exporter"]))
    _authorities(book, exporting or "GH")
    with book.engine.connect() as conn:
        for role in ("officer", "auditor", "admin"):
            found[role] = busiest(sa.select(a.c.actor_id).where(a.c.role == role)
                                  .order_by(a.c.actor_id))
        for label, country in AUTHORITIES.items():
            found[label] = f"bench-authority-{(exporting if label == 'authority' else country)}"
            found[label] = found[label].lower()
        records = {
            "parcel": busiest(sa.select(p.c.parcel_id).where(p.c.holder == found["buyer"])
                              .order_by(p.c.seq.desc())),
            "site": busiest(sa.select(p.c.site_id).where(p.c.site_id.is_not(None))
                            .group_by(p.c.site_id).order_by(sa.func.count().desc())),
            "zone": busiest(sa.select(pj.zones.c.zone_id).where(
                pj.zones.c.zone_type == "licence").order_by(pj.zones.c.zone_id)),
            "actor": found["buyer"],
            "export": busiest(sa.select(x.c.certificate_no).where(
                x.c.exporter == found["exporter"]).order_by(x.c.seq.desc())),
            "flag": busiest(sa.select(f.c.flag_id).where(f.c.status == "open")
                            .order_by(f.c.seq.desc())),
        }
        records["entry"] = str(busiest(sa.select(p.c.seq).where(
            p.c.parcel_id == records["parcel"])))
        e = pj.edges  # the buyer's lots of many merges, the exporter's certificates
        records["traced"] = _longest(conn, sa.select(e.c.to_id).where(
            e.c.kind == "parcel.merged", e.c.actor == found["buyer"]).group_by(e.c.to_id)
            .order_by(sa.func.max(e.c.seq).desc()))
        records["export"] = _longest(conn, sa.select(x.c.certificate_no).where(
            x.c.exporter == found["exporter"]).order_by(x.c.seq.desc())) or records["export"]
        # The exporter's own pages open one of its parcels; the Belgian authority an
        # export reaching Belgium.
        mine = {"exporter": {"parcel": busiest(sa.select(p.c.parcel_id).where(
                    p.c.holder == found["exporter"]).order_by(p.c.seq.desc()))},
                "authority BE": {"export": busiest(sa.select(x.c.certificate_no).where(
                    x.c.destination == "BE").order_by(x.c.seq.desc()))}}
    return {label: {"actor_id": actor, **{f"{{{k}}}": v for k, v in
                                           {**records, **mine.get(label, {})}.items() if v}}
            for label, actor in found.items() if actor is not None}


def _client(app: Any, book: Ledger, role: str, actor: str, label: str) -> Any:
    name = f"bench-{label.replace(' ', '-')}"
    with contextlib.suppress(LedgerError):  # made by an earlier run on this ledger
        accounts.add_user(book.engine, name, role, actor)
    client = app.test_client()
    with client.session_transaction() as session:
        session[login.SESSION_ID] = signin.open_session(book.engine, name)
    return client


def _time(client: Any, url: str, repeat: int) -> tuple[list[float], int, int, str | None]:
    """Seconds of each request, the status and size of the last answer, its next link."""
    seconds, answer = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        answer = client.get(url)
        body = answer.get_data()
        seconds.append(time.perf_counter() - start)
    assert answer is not None
    found = _NEXT.search(body.decode("utf-8", "replace"))
    return seconds, answer.status_code, len(body), (
        html.unescape(found.group(1)) if found else None)


def measure(book: Ledger, size: int, repeat: int) -> None:
    from webui import create_app

    accounts.create_tables(book.engine)
    app = create_app({"TESTING": True, "LEDGER": book})
    who = _actors(book)
    with book.engine.connect() as conn:
        entries_n = conn.execute(sa.select(sa.func.max(entries.c.seq))).scalar_one()
    base = app.test_client()
    report = Report(f"benchmarks.pages: {entries_n:,} entries ({size:,} generated events), "
                    f"SQLite, median of {repeat}, load {os.getloadavg()[0]:.1f}, {machine()}")
    base_s, _, base_bytes, _ = _time(base, "/login", repeat)
    report.row("baseline GET /login (anonymous, reads nothing)", fmt_ms(median_ms(base_s)),
               f"{base_bytes / 1024:.1f} KB")
    report.put(entries=entries_n, baseline_ms=median_ms(base_s))
    worst_ms = worst_kb = 0.0
    for user, paths in PAGES.items():
        role, mine = user.split()[0], who.get(user)
        if mine is None:
            report.section(f"{user}: no actor of this role in the ledger")
            continue
        actor = mine["actor_id"]
        report.section(f"{user} ({actor})")
        client = _client(app, book, role, actor, user)
        todo = [(p, p) for p in paths]
        while todo:
            label, path = todo.pop(0)
            for key, value in mine.items():
                path = path.replace(key, quote(value)) if key.startswith("{") else path
            progress(f"{user} {path}")
            # Interleaved with the baseline, so both see the same load.
            seconds, status, length, following = _time(client, path, repeat)
            base_s = _time(base, "/login", repeat)[0]
            ms, kb = median_ms(seconds), length / 1024
            ok = status == 200 and ms <= TARGET_MS and kb <= TARGET_KB
            report.row(f"{label} [{status}]", f"{fmt_ms(ms)}, {kb:,.1f} KB",
                       fmt_ms(median_ms(base_s)), f"{ms / median_ms(base_s):,.0f}x",
                       f"<= {TARGET_MS:.0f} ms, <= {TARGET_KB:.0f} KB", ok)
            report.put(**{f"{user} {label} ms": ms, f"{user} {label} kb": kb})
            worst_ms, worst_kb = max(worst_ms, ms), max(worst_kb, kb)
            if following and not label.endswith("(next page)") and "?" not in label:
                todo.insert(0, (f"{label} (next page)", following))
    report.put(worst_ms=worst_ms, worst_kb=worst_kb)
    report.print()


if __name__ == "__main__":
    main()
