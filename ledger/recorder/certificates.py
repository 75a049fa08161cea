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

import sqlalchemy as sa

from ledger.custody.state import Row, State, confirmation_differences
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
    export = state.get("exports", certificate_no)
    assert export is not None
    state.flush()  # the custody edges of this transaction, the export's among them
    conn = state.conn
    weight = {r.from_id: Fraction(r.points) for r in conn.execute(
        sa.select(edges.c.from_id, edges.c.points).where(
            edges.c.to_type == "export", edges.c.to_id == certificate_no,
            edges.c.kind == "export.declared"))}
    origins: dict[str, Fraction] = {}
    while weight:
        into = _steps_into(conn, weight)
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


def _steps_into(conn: sa.Connection, parcel_ids: Iterable[str]
                ) -> dict[str, list[tuple[str, int]]]:
    """Split and merge edges into each parcel: its parents with their points (a merge
    edge carries the parent's carats; a split edge the child's)."""
    found: dict[str, list[tuple[str, int]]] = {}
    ids = sorted(parcel_ids)
    for k in range(0, len(ids), 500):
        for r in conn.execute(sa.select(edges.c.to_id, edges.c.from_id, edges.c.points).where(
                edges.c.to_type == "parcel", edges.c.to_id.in_(ids[k:k + 500]),
                edges.c.kind.in_(STEPS))):
            found.setdefault(r.to_id, []).append((r.from_id, r.points or 0))
    return found


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
