"""Benchmark of the HTML pages (issue 19, acceptance 2): every page's server time and size,
for every role, on a generated ledger.

    python -m benchmarks.pages [--size N]      # N generated events (default 100,000)
    python -m benchmarks.pages --size 300000 --repeat 7

The ledger is ``sample_data.generate --events N`` ingested as an archive would be (its
history is dated 2004-2016 and written today: a century of late days, as
tests/conftest.py HISTORY_LATE_DAYS), into ``benchmarks/.cache/pages-N/`` (git-ignored)
and reused by later runs of the same size; a reused ledger gets the indexes of this
version of ``ledger.projections`` before it is measured.

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
from ledger.db import entries, make_engine
from ledger.errors import LedgerError
from ledger.log.keys import load_or_create
from ledger.recorder.events import Ledger
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


# The pages each role opens: its navigation, its lists (and their second page), the forms
# that list parcels. {parcel}, {site}, {zone}: a record of the ledger, for the record pages.
PAGES = {
    "admin": ["/", "/admin/users", "/actors", "/sites", "/zones"],
    "officer": ["/", "/flags", "/flags?status=open", "/sites", "/zones", "/actors",
                "/sites/new"],
    "buyer": ["/", "/holdings", "/holdings?flagged=yes", "/parcels", "/parcels?sort=carats",
              "/flags", "/transfers/new", "/merges/new", "/transfers/new?q=P", "/parcels/{parcel}"],
    "exporter": ["/", "/holdings", "/parcels", "/flags", "/exports/new", "/splits/new"],
    "auditor": ["/", "/audit", "/flags", "/flags?status=open", "/flags?group=parcel",
                "/flags?sort=code&code=IN_RISK_AREA", "/parcels", "/parcels?sort=date",
                "/parcels?site={site}", "/entries", "/entries?kind=parcel.purchased", "/sites",
                "/zones", "/actors", "/search?q=GH-P0001", "/sites/{site}", "/zones/{zone}",
                "/map"],
    "authority": ["/", "/actors", "/sites"],
}
_NEXT = re.compile(r'<a rel="next" href="([^"]+)"')


def _actors(book: Ledger) -> dict[str, str]:
    """Per role, the generated actor with the most to show (the most parcels held, flags
    or registrations)."""
    p, a, x = pj.parcels, pj.actors, pj.exports
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
        for role in ("officer", "auditor", "authority", "admin"):
            found[role] = busiest(sa.select(a.c.actor_id).where(a.c.role == role)
                                  .order_by(a.c.actor_id))
        if found["exporter"] is None:
            found["exporter"] = busiest(sa.select(a.c.actor_id).where(a.c.role == "exporter"))
        records = {
            "parcel": busiest(sa.select(p.c.parcel_id).where(p.c.holder == found["buyer"])
                              .order_by(p.c.seq.desc())),
            "site": busiest(sa.select(p.c.site_id).where(p.c.site_id.is_not(None))
                            .group_by(p.c.site_id).order_by(sa.func.count().desc())),
            "zone": busiest(sa.select(pj.zones.c.zone_id).where(
                pj.zones.c.zone_type == "licence").order_by(pj.zones.c.zone_id)),
        }
    return {**{k: v for k, v in found.items() if v is not None},
            **{f"{{{k}}}": v for k, v in records.items() if v is not None}}


def _client(app: Any, book: Ledger, role: str, actor: str) -> Any:
    name = f"bench-{role}"
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
    for role, paths in PAGES.items():
        actor = who.get(role)
        if actor is None:
            report.section(f"{role}: no actor of this role in the ledger")
            continue
        report.section(f"{role} ({actor})")
        client = _client(app, book, role, actor)
        todo = [(p, p) for p in paths]
        while todo:
            label, path = todo.pop(0)
            for key, value in who.items():
                path = path.replace(key, quote(value)) if key.startswith("{") else path
            progress(f"{role} {path}")
            # Interleaved with the baseline, so both see the same load.
            seconds, status, length, following = _time(client, path, repeat)
            base_s = _time(base, "/login", repeat)[0]
            ms, kb = median_ms(seconds), length / 1024
            ok = status == 200 and ms <= TARGET_MS and kb <= TARGET_KB
            report.row(f"{label} [{status}]", f"{fmt_ms(ms)}, {kb:,.1f} KB",
                       fmt_ms(median_ms(base_s)), f"{ms / median_ms(base_s):,.0f}x",
                       f"<= {TARGET_MS:.0f} ms, <= {TARGET_KB:.0f} KB", ok)
            report.put(**{f"{role} {label} ms": ms, f"{role} {label} kb": kb})
            worst_ms, worst_kb = max(worst_ms, ms), max(worst_kb, kb)
            if following and not label.endswith("(next page)") and "?" not in label:
                todo.insert(0, (f"{label} (next page)", following))
    report.put(worst_ms=worst_ms, worst_kb=worst_kb)
    report.print()


if __name__ == "__main__":
    main()
