"""The red flags a KP certificate can raise when it is written (SPEC 5).

* ``VALUE_MISMATCH``: an export's ``value_usd``, or a validation's ``valuation_usd``, is
  below half or above three times what its carats cost at first sale: the purchases the
  exported parcels descend from, through splits and merges in proportion to carats, each
  at its own price per carat.
* ``CONFIRMATION_MISMATCH``: an import confirmation whose carats, parcel count or importer
  differ from the certificate's.

Both are recorded, never refused, with the export as their subject.

Purchases priced in another currency than USD: the ledger keeps no exchange rates, so
their carats count at the mean USD price per carat of the export's USD-priced origins;
when no origin is priced in USD (or they cost nothing) the value is not judged.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any
from weakref import WeakKeyDictionary

from ledger.custody.state import Row, State, confirmation_differences
from ledger.db import driver_rows
from ledger.geo.screening import Flag
from ledger.projections import cents, edges

LOW, HIGH = Fraction(1, 2), Fraction(3)  # SPEC 5: below half or above three times
STEPS = ("parcel.split", "parcel.merged")


def certificate_flags(kind: str, payload: dict[str, Any], seq: int, state: State) -> list[Flag]:
    """The flags an export, a validation or an import confirmation raises (none for other
    kinds)."""
    if kind == "export.declared":
        return value_mismatch(state, payload["certificate_no"], cents(payload["value_usd"]),
                              "declared value", seq)
    if kind == "certificate.validated":
        return value_mismatch(state, payload["certificate_no"],
                              cents(payload["valuation_usd"]),
                              f"valuation by {payload['officer']}", seq)
    if kind == "import.confirmed":
        return confirmation_mismatch(state, payload["certificate_no"], seq)
    return []


def value_mismatch(state: State, certificate_no: str, stated_cents: int, what: str, seq: int
                   ) -> list[Flag]:
    export = state.get("exports", certificate_no)
    assert export is not None, f"export {certificate_no} vanished inside a transaction"
    reference = first_sale_value(state, certificate_no)
    if reference is None:
        return []
    cost, unpriced = reference
    if LOW * cost <= stated_cents <= HIGH * cost:
        return []
    side = "below half" if stated_cents < LOW * cost else "above three times"
    carats = export["points"] / 100
    note = (f" ({unpriced / 100:.2f} ct bought in other currencies counted at the mean USD "
            "price per carat of the rest)" if unpriced else "")
    detail = (f"The {what}, USD {stated_cents / 100:,.2f} for {carats:,.2f} ct "
              f"(USD {stated_cents / export['points']:,.2f}/ct), is {side} the USD "
              f"{float(cost) / 100:,.2f} its carats cost at first sale "
              f"(USD {float(cost / export['points']):,.2f}/ct){note}.")
    return [Flag("VALUE_MISMATCH", "export", certificate_no, detail, {
        "seq": seq, "stated_usd": stated_cents / 100,
        "first_sale_usd": round(float(cost) / 100, 2)})]


def first_sale_value(state: State, certificate_no: str) -> tuple[Fraction, int] | None:
    """What the export's carats cost at first sale, in cents (exact), and the points of it
    bought in other currencies; None when nothing priced in USD can value it."""
    exported = _edges_into(state, "export", [certificate_no], ("export.declared",))
    weight = {pid: Fraction(pts) for pid, pts in exported.get(certificate_no, [])}
    origins: dict[str, Fraction] = {}
    while weight:
        into = _edges_into(state, "parcel", weight, STEPS)
        following: dict[str, Fraction] = {}
        for pid, w in weight.items():
            parents = into.get(pid)
            if not parents:
                origins[pid] = origins.get(pid, Fraction(0)) + w
                continue
            total = sum(pts for _, pts in parents)  # a split child: one parent, wholly
            for parent, pts in parents:
                share = w if len(parents) == 1 else w * pts / total
                following[parent] = following.get(parent, Fraction(0)) + share
        weight = following
    usd_cost, usd_points, other_points = Fraction(0), Fraction(0), Fraction(0)
    for pid, w in origins.items():
        row = state.get("parcels", pid)
        if row is None or row["price_cents"] is None or not row["points"]:
            other_points += w
        elif row["currency"] == "USD":
            usd_cost += w * row["price_cents"] / row["points"]
            usd_points += w
        else:
            other_points += w
    if not usd_points or not usd_cost:
        return None
    return usd_cost + other_points * usd_cost / usd_points, round(other_points)


def _edges_into(state: State, to_type: str, ids: Iterable[str], kinds: tuple[str, ...]
                ) -> dict[str, list[tuple[str, int]]]:
    """Custody edges of ``kinds`` into each of ``ids``: where they come from, with their
    points (a merge edge carries the parent's carats, a split edge the child's). Both the
    edges written already and those this transaction still holds, so nothing is flushed."""
    found: dict[str, list[tuple[str, int]]] = {}
    wanted = sorted(set(ids))
    for k in range(0, len(wanted), 500):
        part = wanted[k:k + 500]
        # Straight through the driver: an export's ancestry is a few short reads, and
        # SQLAlchemy's statement compilation cost more than them (an ingest reads many).
        sql = (f"SELECT to_id, from_id, points FROM {edges.name} WHERE to_type = ? AND "
               f"kind IN ({', '.join('?' * len(kinds))}) "
               f"AND to_id IN ({', '.join('?' * len(part))})")
        for to_id, from_id, pts in driver_rows(state.conn, sql, [to_type, *kinds, *part]):
            found.setdefault(to_id, []).append((from_id, pts or 0))
    pending = _pending(state)
    for key in wanted:
        for e in pending.get(key, ()):
            if e["to_type"] == to_type and e["kind"] in kinds:
                found.setdefault(key, []).append((e["from_id"], e["points"] or 0))
    return found


# The edges a transaction holds, by to_id, indexed as they are appended: (the state's list
# when indexed, how many of it are, the index). A flush gives the state a new list.
_PENDING: WeakKeyDictionary[State, tuple[list[Row], int, dict[str, list[Row]]]] = \
    WeakKeyDictionary()


def _pending(state: State) -> dict[str, list[Row]]:
    held, done, index = _PENDING.get(state, (None, 0, {}))
    if held is not state.edges:
        done, index = 0, {}
    for e in state.edges[done:]:
        index.setdefault(e["to_id"], []).append(e)
    _PENDING[state] = (state.edges, len(state.edges), index)
    return index


def confirmation_mismatch(state: State, certificate_no: str, seq: int) -> list[Flag]:
    export: Row | None = state.get("exports", certificate_no)
    assert export is not None, f"export {certificate_no} vanished inside a transaction"
    if not export["mismatched"]:
        return []
    found = confirmation_differences(export)
    detail = (f"The import under certificate {certificate_no}, confirmed on "
              f"{export['confirmed_on']}, differs from the certificate: "
              f"{'; '.join(found)}.")
    return [Flag("CONFIRMATION_MISMATCH", "export", certificate_no, detail, {
        "seq": seq, "carats_received": export["received_points"] / 100,
        "parcels_received": export["received_parcels"],
        "importer": export["received_importer"]})]
