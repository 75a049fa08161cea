"""`verify --projections` (SPEC 6): the projections made again from the log alone, aside,
and compared with the live ones, row by row.

The fold runs in a write transaction that is rolled back: the live tables are read first
(one digest a row, in key order), the projections are then dropped and folded again
inside the same transaction, read in the same order and compared, and nothing of it
commits. The first row that differs is read back from the live table to name the column.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from ledger import projections
from ledger.db import write_transaction
from ledger.recorder.events import fold_log


def _tables() -> list[str]:
    """Every projection table, in the order they are created."""
    return [t.name for t in projections.projection_metadata.sorted_tables]


class _Aside(Exception):
    """Leaves the transaction of the aside fold, which must not commit."""


def _layout(name: str) -> tuple[list[sa.Column[Any]], list[str]]:
    """The columns compared and the columns rows are ordered by. A table keyed by a
    surrogate ``id`` (rows only appended, their ids differ between two folds) leaves the
    id out and is ordered by all its other columns; any other by its primary key."""
    table = projections.projection_metadata.tables[name]
    key = [c.name for c in table.primary_key.columns]
    if key == ["id"]:
        cols = [c for c in table.columns if c.name != "id"]
        return cols, [c.name for c in cols]
    return list(table.columns), key


def _rows(conn: sa.Connection, name: str) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """(key, row) of a projection table, in the order of :func:`_layout`."""
    table = projections.projection_metadata.tables[name]
    cols, order = _layout(name)
    for row in conn.execute(sa.select(*cols).order_by(*(table.c[c] for c in order))):
        yield tuple(getattr(row, c) for c in order), tuple(row)


def _digest(values: tuple[Any, ...]) -> bytes:
    return hashlib.sha256(repr(values).encode()).digest()


def compare_projections(engine: sa.Engine) -> str | None:
    """None when the live projections are exactly what the log gives; else a sentence
    naming the first table and row that differ (and the column, when the row exists on
    both sides)."""
    live: dict[str, list[tuple[tuple[Any, ...], bytes]]] = {}
    found: tuple[str, tuple[Any, ...], tuple[Any, ...] | None, str] | None = None
    try:
        with write_transaction(engine, bulk=True) as conn:
            for name in _tables():
                live[name] = [(key, _digest(values)) for key, values in _rows(conn, name)]
            fold_log(conn)
            for name in _tables():
                found = _first_difference(name, live.pop(name), _rows(conn, name))
                if found is not None:
                    break
            raise _Aside
    except _Aside:
        pass
    if found is None:
        return None
    name, key, folded, why = found
    what = f"projections: table {name}, row {_key_text(name, key)}"
    if folded is None or why != "differs":
        return f"{what} {why}."
    with engine.connect() as conn:
        for live_key, values in _rows(conn, name):
            if live_key == key:
                cols = [c.name for c in _layout(name)[0]]
                for col, mine, theirs in zip(cols, values, folded, strict=True):
                    if mine != theirs:
                        return (f"{what}: {col} is {mine!r} but the log gives {theirs!r}.")
    return f"{what} differs from what the log gives."


def _first_difference(
    name: str, live: list[tuple[tuple[Any, ...], bytes]],
    folded: Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]],
) -> tuple[str, tuple[Any, ...], tuple[Any, ...] | None, str] | None:
    stored = iter(live)
    for key, values in folded:
        have = next(stored, None)
        if have is None:
            return name, key, values, "is missing: the log gives it"
        if have[0] != key:  # both in the database's own order: only equality is asked
            return name, have[0], None, (f"is not what the log gives in its place (it gives "
                                         f"{_key_text(name, key)})")
        if have[1] != _digest(values):
            return name, key, values, "differs"
    extra = next(stored, None)
    if extra is not None:
        return name, extra[0], None, "is not in what the log gives"
    return None


def _key_text(name: str, key: tuple[Any, ...]) -> str:
    cols = _layout(name)[1]
    if len(cols) > 3:  # a surrogate-keyed table: its first columns name the row
        cols, key = cols[:3], key[:3]
    return ", ".join(f"{c} {v!r}" for c, v in zip(cols, key, strict=True))
