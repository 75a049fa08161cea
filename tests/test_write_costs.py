"""What the rules of issue 16 cost on every write, and that their shortcuts stay right.

Issue 16 (Performance): ingest within 1.15x of its cost per event before DATE_ORDER,
JURISDICTION, licence windows and LATE_ENTRY. A cProfile of 100,000 generated events
found the LICENCE rule (SPEC 4) parsing the writing actor's renewals and revocations
(JSON text on its row) on every trade, and the ledger's day made afresh for every
DATE_ORDER check; both are now made once, and must still follow every change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.custody import licences
from ledger.errors import LedgerError
from ledger.recorder.events import Event, Ledger
from tests.test_custody import Write, buy
from tests.test_time import world  # noqa: F401  (fixture: a Ghanaian world)


class CountingJson:
    """Stands in for the ``json`` module inside ledger.custody.licences."""

    def __init__(self) -> None:
        self.loads_calls = 0

    def loads(self, text: str) -> Any:
        self.loads_calls += 1
        return json.loads(text)

    def dumps(self, value: Any, **options: Any) -> str:
        return json.dumps(value, **options)


def test_the_licence_rule_reads_a_licence_once_not_on_every_trade(
        world: Ledger, write: Write, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    counting = CountingJson()
    monkeypatch.setattr(licences, "json", counting)
    trades = 30
    for k in range(trades):
        buy(write, f"P-{k:03d}", date="2008-03-14")
    # Before: two json.loads a trade (renewals, revocations), 60 here.
    assert counting.loads_calls <= 2, counting.loads_calls


def test_a_licence_read_once_follows_its_revocation_and_renewal(
        world: Ledger, write: Write) -> None:  # noqa: F811
    assert buy(write, "P-A", date="2012-06-01").entry.kind == "parcel.purchased"
    write("licence.revoked", "off-gh", actor_id="buyer-a", reason="unpaid fees",
          date="2012-01-15")
    size = world.log.size()
    with pytest.raises(LedgerError) as caught:
        buy(write, "P-B", date="2012-07-01")
    assert caught.value.rule == "LICENCE" and "revoked on 2012-01-15" in str(caught.value)
    assert world.log.size() == size
    write("licence.renewed", "off-gh", actor_id="buyer-a", valid_from="2013-01-01",
          valid_to=None, reason="fees paid", date="2013-01-02")
    assert buy(write, "P-C", date="2013-06-01").entry.kind == "parcel.purchased"
    with pytest.raises(LedgerError) as caught:
        buy(write, "P-D", date="2012-08-01")
    assert caught.value.rule == "LICENCE"


def test_the_ledgers_day_turns_at_midnight_inside_one_session(world: Ledger) -> None:  # noqa: F811
    # A clock a few days ahead (entries' ts only grow), one second before midnight UTC.
    day = datetime.now(UTC).date() + timedelta(days=3)
    moment = [datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)]
    world.log.clock = lambda: moment[0]
    tomorrow = (day + timedelta(days=1)).isoformat()

    def purchase(pid: str, on: str) -> Event:
        return Event("parcel.purchased", "buyer-a", {
            "parcel_id": pid, "site_id": "S-AKW", "seller": "Kofi", "date": on,
            "carats": 1.0, "stones": 1, "price": {"amount": 10, "currency": "USD"}})

    with world.session() as session:
        assert session.today() == day.isoformat()
        with pytest.raises(LedgerError) as caught:  # SPEC 4 DATE_ORDER: not after today
            session.write(purchase("P-EARLY", tomorrow))
        assert caught.value.rule == "DATE_ORDER"
        moment[0] += timedelta(seconds=2)  # 00:00:01 the next day
        assert session.today() == tomorrow
        assert session.write(purchase("P-NEXT", tomorrow)).entry.kind == "parcel.purchased"
