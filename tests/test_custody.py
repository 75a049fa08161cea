"""Chain of custody (SPEC 4): every rule refuses with its id and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ledger.cli import cli
from ledger.config import Settings
from ledger.custody.trace import trace
from ledger.errors import LedgerError
from ledger.recorder.events import Ledger, WriteResult
from tests.conftest import SQUARE, register_akwatia
from webui import create_app

Write = Callable[..., WriteResult]



def licensed(actor_id: str, role: str, country: str = "GH", until: str | None = "2030-12-31",
             since: str = "2000-01-01") -> dict[str, Any]:
    return {"actor_id": actor_id, "name": actor_id.replace("-", " ").title(), "role": role,
            "country": country, "licence_no": f"LIC-{actor_id}", "licence_valid_from": since,
            "licence_valid_to": until, "date": "2004-01-05"}


@pytest.fixture
def world(ledger: Ledger, write: Write) -> Ledger:
    """An officer, two buyers, an exporter, an auditor, a buyer whose licence ran out, a site."""
    write("actor.registered", "admin", actor_id="off-gh", name="Minerals Commission",
          role="officer", country="GH", date="2004-01-02")
    for actor_id, role, extra in [("buyer-a", "buyer", {}), ("buyer-b", "buyer", {}),
                                  ("exp-gh", "exporter", {}),
                                  ("buyer-old", "buyer", {"until": "2005-12-31"})]:
        write("actor.registered", "off-gh", **licensed(actor_id, role, **extra))
    write("actor.registered", "admin", actor_id="aud-1", name="KP Review Mission",
          role="auditor", country="BE", date="2004-01-05")
    register_akwatia(write)
    return ledger


def buy(write: Write, pid: str, carats: float = 10.0, stones: int = 5, actor: str = "buyer-a",
        site: str = "S-AKW", date: str = "2008-03-14", **extra: Any) -> WriteResult:
    return write("parcel.purchased", actor, parcel_id=pid, site_id=site, seller="Kofi Boateng",
                 date=date, carats=carats, stones=stones,
                 price={"amount": 420.5, "currency": "USD"}, **extra)


def move(write: Write, pid: str, to: str, actor: str = "buyer-a",
         date: str = "2008-04-01") -> WriteResult:
    return write("parcel.transferred", actor, parcel_id=pid, to_actor=to, date=date,
                 price={"amount": 500, "currency": "USD"})


def split(write: Write, parent: str, children: list[tuple[str, float, int]],
          actor: str = "buyer-a", date: str = "2008-04-01") -> WriteResult:
    return write("parcel.split", actor, parent_id=parent, date=date,
                 children=[{"parcel_id": c, "carats": ct, "stones": n} for c, ct, n in children])


def merge(write: Write, parents: list[str], child: str, carats: float, stones: int,
          actor: str = "buyer-a", date: str = "2008-04-01") -> WriteResult:
    return write("parcel.merged", actor, parent_ids=parents, date=date,
                 child={"parcel_id": child, "carats": carats, "stones": stones})


def export(write: Write, parcels: list[str], carats: float, cert: str = "GH-2008-0001",
           hs: str = "7102.31", expires: str = "2008-07-01", actor: str = "exp-gh",
           exporter: str = "exp-gh", date: str = "2008-05-01") -> WriteResult:
    return write("export.declared", actor, certificate_no=cert, exporter=exporter,
                 importer="Antwerp Diamond Bank", destination="BE", hs_code=hs,
                 parcel_ids=parcels, carats=carats, value_usd=1234.5, date=date,
                 expires=expires)


def flag(write: Write, pid: str) -> WriteResult:
    return write("flag.raised", "aud-1", flag_id="FA-1", subject={"type": "parcel", "id": pid},
                 code="FOOTPRINT_ANOMALY", detail="value per carat far above Akwatia's",
                 date="2008-03-20")


def at_exporter(write: Write, pid: str = "P1", carats: float = 10.0) -> None:
    buy(write, pid, carats)
    move(write, pid, "exp-gh")


# (id, setup, refused write, rule)
REFUSALS: list[tuple[str, Callable[[Write], Any], Callable[[Write], Any], str]] = [
    ("move-parcel-you-do-not-hold", lambda w: buy(w, "P1"),
     lambda w: move(w, "P1", "exp-gh", actor="buyer-b"), "HOLDER"),
    ("move-parcel-consumed-by-split", lambda w: (buy(w, "P1"), split(w, "P1", [("P2", 5, 2)])),
     lambda w: move(w, "P1", "buyer-b"), "SPENT"),
    ("move-parcel-consumed-by-merge",
     lambda w: (buy(w, "P1"), buy(w, "P2"), merge(w, ["P1", "P2"], "P3", 20, 10)),
     lambda w: split(w, "P2", [("P4", 1, 1)]), "SPENT"),
    ("move-parcel-consumed-by-export", lambda w: (at_exporter(w), export(w, ["P1"], 10)),
     lambda w: move(w, "P1", "buyer-a", actor="exp-gh"), "SPENT"),
    ("transfer-to-yourself", lambda w: buy(w, "P1"), lambda w: move(w, "P1", "buyer-a"), "SPENT"),
    ("split-children-outweigh-parent-in-carats", lambda w: buy(w, "P1", 10, 5),
     lambda w: split(w, "P1", [("P2", 6, 2), ("P3", 4.01, 2)]), "MASS"),
    ("split-children-outnumber-parent-in-stones", lambda w: buy(w, "P1", 10, 5),
     lambda w: split(w, "P1", [("P2", 5, 3), ("P3", 5, 3)]), "MASS"),
    ("merge-grows-mass", lambda w: (buy(w, "P1", 1.1), buy(w, "P2", 2.2)),
     lambda w: merge(w, ["P1", "P2"], "P3", 3.31, 10), "MASS"),
    ("unknown-parcel", lambda w: None, lambda w: move(w, "NOPE", "buyer-b"), "UNKNOWN_REFERENCE"),
    ("unknown-actor", lambda w: buy(w, "P1"), lambda w: move(w, "P1", "nobody"),
     "UNKNOWN_REFERENCE"),
    ("unknown-certificate", lambda w: None,
     lambda w: w("import.confirmed", "aud-1", certificate_no="GH-2099-1", date="2008-06-01",
                 carats_received=10.0, parcels_received=1, importer="Antwerp Diamond Bank"),
     "UNKNOWN_REFERENCE"),
    ("licence-expired-on-event-date", lambda w: None, lambda w: buy(w, "P9", actor="buyer-old"),
     "LICENCE"),
    ("duplicate-parcel-id", lambda w: buy(w, "P1"), lambda w: buy(w, "P1"), "DUPLICATE"),
    ("duplicate-split-children", lambda w: buy(w, "P1"),
     lambda w: split(w, "P1", [("P2", 1, 1), ("P2", 1, 1)]), "DUPLICATE"),
    ("buyer-writes-zone", lambda w: None,
     lambda w: w("zone.registered", "buyer-a", zone_id="Z-X", zone_type="licence",
                 geometry=SQUARE, date="2008-01-01", valid_from="2008-01-01",
                 licence_no="GH-ML-X", holder="X"), "ROLE"),
    ("reserved-actor-system", lambda w: None, lambda w: buy(w, "P1", actor="system"), "ROLE"),
    ("unregistered-actor", lambda w: None, lambda w: buy(w, "P1", actor="ghost"), "ROLE"),
    ("actor-registered-as-system", lambda w: None,
     lambda w: w("actor.registered", "off-gh", **licensed("system", "buyer")), "ROLE"),
    ("transfer-to-system", lambda w: buy(w, "P1"), lambda w: move(w, "P1", "system"), "ROLE"),
    ("bought-from-system", lambda w: None,
     lambda w: w("parcel.purchased", "buyer-a", parcel_id="P1", site_id="S-AKW",
                 seller="system", date="2008-03-14", carats=1.0, stones=1,
                 price={"amount": 10, "currency": "USD"}), "ROLE"),
    ("move-parcel-on-hold", lambda w: (buy(w, "P1"), flag(w, "P1")),
     lambda w: move(w, "P1", "buyer-b"), "HOLD"),
    ("bad-hs-code", at_exporter, lambda w: export(w, ["P1"], 10, hs="7103.10"), "CERTIFICATE"),
    ("export-carats-differ", at_exporter, lambda w: export(w, ["P1"], 10.01), "CERTIFICATE"),
    ("certificate-not-exporters-country", at_exporter,
     lambda w: export(w, ["P1"], 10, cert="SL-2008-1"), "CERTIFICATE"),
    ("certificate-expires-before-issue", at_exporter,
     lambda w: export(w, ["P1"], 10, expires="2008-05-01"), "CERTIFICATE"),
    ("unknown-exporter", at_exporter, lambda w: export(w, ["P1"], 10, exporter="ghost"),
     "UNKNOWN_REFERENCE"),
    ("exporter-field-is-someone-else", at_exporter,
     lambda w: export(w, ["P1"], 10, exporter="buyer-a"), "CERTIFICATE"),
    ("duplicate-certificate", lambda w: (at_exporter(w), at_exporter(w, "P2"),
                                         export(w, ["P1"], 10)),
     lambda w: export(w, ["P2"], 10), "DUPLICATE"),
    ("negative-carats", lambda w: None, lambda w: buy(w, "P1", carats=-1), "SCHEMA"),
    ("event-id-reused-for-other-content", lambda w: buy(w, "P1", event_id="e-1"),
     lambda w: buy(w, "P2", event_id="e-1"), "EVENT_ID_CONFLICT"),
]


def snapshot(ledger: Ledger) -> tuple[int, str]:
    return ledger.log.size(), ledger.digest()


@pytest.mark.parametrize(("setup", "refused", "rule"), [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])
def test_refusal_names_rule_and_writes_nothing(
    world: Ledger, write: Write, setup: Callable[[Write], Any], refused: Callable[[Write], Any],
    rule: str,
) -> None:
    setup(write)
    before = snapshot(world)
    with pytest.raises(LedgerError) as caught:
        refused(write)
    assert caught.value.rule == rule, str(caught.value)
    assert snapshot(world) == before


def test_several_broken_rules_name_the_first_in_spec_order(world: Ledger, write: Write) -> None:
    buy(write, "P1")
    split(write, "P1", [("P2", 4, 2)])
    # buyer-b neither holds P1 (HOLDER) nor could move it (SPENT): HOLDER comes first.
    with pytest.raises(LedgerError) as caught:
        move(write, "P1", "exp-gh", actor="buyer-b")
    assert caught.value.rule == "HOLDER"


def test_purchase_at_unknown_site_is_recorded_flagged_and_held(world: Ledger, write: Write) -> None:
    result = buy(write, "P1", site="S-NOWHERE")
    assert result.created
    assert [f["code"] for f in result.flags] == ["UNREGISTERED_SITE"]
    assert result.flags[0]["subject"] == {"type": "parcel", "id": "P1"}
    flag_entry = world.log.entry(result.entry.seq + 1)
    assert (flag_entry.kind, flag_entry.actor) == ("flag.raised", "system")
    with pytest.raises(LedgerError) as caught:
        move(write, "P1", "buyer-b")
    assert caught.value.rule == "HOLD"
    write("flag.resolved", "aud-1", flag_id=result.flags[0]["flag_id"],
          resolution="Site registered late; cadastre confirmed the licence.", date="2008-03-30")
    assert move(write, "P1", "buyer-b").created


def test_purchase_at_suspended_site_is_flagged(world: Ledger, write: Write) -> None:
    write("site.suspended", "off-gh", site_id="S-AKW", reason="licence dispute",
          date="2008-01-01")
    assert [f["code"] for f in buy(write, "P1").flags] == ["UNREGISTERED_SITE"]
    assert buy(write, "P0", date="2007-12-31").flags == []


def test_same_event_id_twice_is_written_once(world: Ledger, write: Write) -> None:
    first = buy(write, "P1", event_id="3f1c-uuid", site="S-NOWHERE")
    size = world.log.size()
    again = buy(write, "P1", event_id="3f1c-uuid", site="S-NOWHERE")
    assert not again.created
    assert again.entry == first.entry
    assert again.flags == first.flags
    assert world.log.size() == size


def test_carats_add_up_exactly_as_decimals(world: Ledger, write: Write) -> None:
    buy(write, "P1", 0.1)
    buy(write, "P2", 0.2)
    merge(write, ["P1", "P2"], "P3", 0.3, 2)  # 0.1 + 0.2 != 0.3 in binary floats
    move(write, "P3", "exp-gh")
    assert export(write, ["P3"], 0.3).created


def custody_story(write: Write) -> None:
    """P1 and P2 merge into P3; P3 splits into P4 and P5; P4 is exported with P6."""
    buy(write, "P1", 3.3, 3)
    buy(write, "P2", 4.4, 4)
    buy(write, "P6", 1.0, 1)
    buy(write, "PX", 9.0, 9)  # unrelated
    merge(write, ["P1", "P2"], "P3", 7.7, 7)
    split(write, "P3", [("P4", 5.0, 5), ("P5", 2.7, 2)])
    move(write, "P4", "exp-gh")
    move(write, "P6", "exp-gh")
    export(write, ["P4", "P6"], 6.0, cert="GH-2008-0042")


def test_backward_trace_reaches_exactly_the_purchases_that_flowed_in(
    world: Ledger, write: Write
) -> None:
    custody_story(write)
    with world.engine.connect() as conn:
        graph = trace(conn, "GH-2008-0042", "backward").to_json()
    nodes = {(n["type"], n["id"]) for n in graph["nodes"]}
    assert {i for t, i in nodes if t == "parcel"} == {"P1", "P2", "P3", "P4", "P6"}
    assert {i for t, i in nodes if t == "site"} == {"S-AKW"}
    assert ("zone", "Z-AKW") in nodes and ("parcel", "P5") not in nodes
    kinds = {(e["from"], e["to"], e["kind"]) for e in graph["edges"]}
    assert ("P4", "P4", "parcel.transferred") in kinds
    assert ("Z-AKW", "S-AKW", "site.registered") in kinds
    assert ("P3", "P4", "parcel.split") in kinds and ("P3", "P5", "parcel.split") not in kinds
    assert set(graph) == {"id", "direction", "nodes", "edges"}
    assert all(set(e) == {"from", "to", "seq", "kind"} for e in graph["edges"])


def test_forward_trace_reaches_every_export_holding_any_of_it(
    world: Ledger, write: Write
) -> None:
    custody_story(write)
    with world.engine.connect() as conn:
        graph = trace(conn, "P1", "forward").to_json()
        unrelated = trace(conn, "PX", "forward").to_json()
    nodes = {(n["type"], n["id"]) for n in graph["nodes"]}
    assert ("export", "GH-2008-0042") in nodes
    assert {("parcel", "P3"), ("parcel", "P4"), ("parcel", "P5")} <= nodes
    assert ("parcel", "P6") not in nodes and ("parcel", "P2") not in nodes
    assert [n["id"] for n in unrelated["nodes"]] == ["PX"]


def test_rebuild_gives_the_identical_projection_digest(world: Ledger, write: Write) -> None:
    custody_story(write)
    buy(write, "P9", site="S-NOWHERE")
    before = world.digest()
    assert world.rebuild() == before
    with world.engine.connect() as conn:
        holders = dict(conn.execute(sa.text("SELECT parcel_id, holder FROM parcels")).all())
    assert holders["P4"] == "exp-gh" and holders["PX"] == "buyer-a"


def test_projections_of_an_earlier_version_are_refused_until_rebuilt(
        world: Ledger, write: Write, settings: Settings, runner: CliRunner) -> None:
    """A ledger whose projection tables an earlier version made (here: parcels before it kept
    the seller) is refused by the server and the CLI with a sentence naming `alluvial
    rebuild`; the log stays readable, and `rebuild` remakes the projections."""
    custody_story(write)
    before = world.digest()
    size = world.log.size()
    with world.engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_parcels_seller_id"))
        conn.execute(sa.text("ALTER TABLE parcels DROP COLUMN seller_id"))

    with pytest.raises(LedgerError) as refused:
        create_app({"DATABASE_URL": settings.database_url, "LOG_KEY": str(settings.log_key_path)})
    assert refused.value.rule == "CONFIG"
    assert "parcels.seller_id" in str(refused.value) and "alluvial rebuild" in str(refused.value)
    command = runner.invoke(cli, ["rescreen"])
    assert command.exit_code == 2
    assert command.stderr.startswith("CONFIG: ") and "`alluvial rebuild`" in command.stderr
    assert world.log.size() == size
    assert runner.invoke(cli, ["verify"]).exit_code == 0  # the log alone needs no projections

    rebuilt = runner.invoke(cli, ["rebuild"])
    assert rebuilt.exit_code == 0 and before in rebuilt.stdout
    assert runner.invoke(cli, ["rescreen"]).exit_code == 0
    app = create_app({"DATABASE_URL": settings.database_url,
                      "LOG_KEY": str(settings.log_key_path)})
    app.extensions["alluvial"].ledger.engine.dispose()


@pytest.mark.slow
def test_rebuild_of_100000_mixed_events_gives_the_identical_digest(ledger: Ledger) -> None:
    """Issue 3: `rebuild` over 100,000 generated purchases, transfers, splits, merges, exports."""
    import json

    from ledger.recorder.ingest import ingest
    from sample_data.generate import events

    report = ingest(ledger, (json.dumps(e) for e in events(100_000)))
    assert report.written == 100_000
    with ledger.engine.connect() as conn:
        kinds = set(conn.execute(sa.text("SELECT DISTINCT kind FROM entries")).scalars())
    assert {"parcel.purchased", "parcel.transferred", "parcel.split", "parcel.merged",
            "export.declared", "flag.raised"} <= kinds
    before = ledger.digest()
    assert ledger.rebuild() == before
