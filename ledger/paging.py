"""Keyset pagination of the lists users read (issue 19): a page is the ``size`` rows after
(or before) a position in one sort order, found with ``WHERE (k1, k2, ...) > (:v1, :v2,
...) ORDER BY k1, k2, ... LIMIT size + 1``, never OFFSET, so the thousandth page costs
what the first does when an index leads with the order's keys.

An :class:`Order` names its key expressions, the last of which is unique in the list, so
a position (the keys of one row) splits the list in two without a gap or a repeat. The
filters users ask for (code, status, site, zone, actor, a date range, a word of an id)
are :class:`Filter` objects that read one query parameter each and refuse a bad value
naming it. What a position looks like on the wire (a signed token) is the web layer's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ledger.errors import InputError
from ledger.i18n import N_

SIZE = 50  # rows a page shows unless asked
MAX_SIZE = 200
MAX_TEXT = 64  # the longest filter value read
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
Key = int | str
_NO_POSITION = N_("the link does not hold a position in this list; start again from the first "
                  "page.")


class BadQuery(InputError):
    """A list's query parameter (filter, sort or page size) it does not answer."""

    rule = "BAD_QUERY"


class BadCursor(InputError):
    """A page link's position that is not one this list handed out."""

    rule = "BAD_CURSOR"


@dataclass(frozen=True)
class Order:
    """One way to sort a list: ``keys``, the last unique, all ascending or all descending."""

    label: str
    keys: tuple[sa.ColumnElement[Any], ...]
    descending: bool = False


@dataclass(frozen=True)
class Position:
    """Where a page starts: after (or before) the row whose order keys are ``keys``."""

    order: str
    keys: tuple[Key, ...]
    after: bool = True


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows, and the positions of the next and previous pages
    (None: there is none)."""

    rows: list[dict[str, Any]]
    order: str
    next: Position | None
    previous: Position | None
    size: int


@dataclass(frozen=True)
class Filter:
    """One query parameter narrowing a list: ``where(value)`` is the clause for a valid
    value; ``choices`` (if any) are the only values taken; ``day``: a YYYY-MM-DD date."""

    name: str
    label: str
    where: Callable[[str], sa.ColumnElement[bool]]
    choices: tuple[str, ...] = ()
    day: bool = False

    def clause(self, raw: str) -> sa.ColumnElement[bool]:
        value = raw.strip()
        if self.choices and value not in self.choices:
            raise BadQuery.said(N_("%(value)s is not one of %(choices)s."),
                                {"value": repr(value[:40]), "choices": ", ".join(self.choices)},
                                lead=f"{self.name}: ", field=self.name)
        if self.day and not _DAY.fullmatch(value):
            raise BadQuery.said(N_("%(value)s is not a date (YYYY-MM-DD)."),
                                {"value": repr(value[:40])}, lead=f"{self.name}: ",
                                field=self.name)
        if len(value) > MAX_TEXT or "\x00" in value:
            raise BadQuery.said(N_("the value is longer than %(max)s characters or holds a NUL "
                                   "character."), {"max": MAX_TEXT}, lead=f"{self.name}: ",
                                field=self.name)
        return self.where(value)


def contains(column: sa.ColumnElement[str]) -> Callable[[str], sa.ColumnElement[bool]]:
    """A filter's clause: the column holds the text, whatever the case."""
    def where(text: str) -> sa.ColumnElement[bool]:
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return sa.func.lower(column).like(f"%{escaped}%", escape="\\")
    return where


@dataclass(frozen=True)
class Listing:
    """A list users page through: its sort orders (the first is the default) and filters."""

    name: str
    orders: dict[str, Order]
    filters: tuple[Filter, ...] = ()
    default: str = field(default="")

    @property
    def first(self) -> str:
        return self.default or next(iter(self.orders))

    def order_of(self, name: str | None) -> str:
        if name is None or name == "":
            return self.first
        if name not in self.orders:
            raise BadQuery.said(N_("%(value)s is not one of %(choices)s."),
                                {"value": repr(name[:40]), "choices": ", ".join(self.orders)},
                                lead="sort: ", field="sort")
        return name

    def where(self, args: Mapping[str, str]) -> tuple[list[sa.ColumnElement[bool]],
                                                       dict[str, str]]:
        """The clauses of the filters given in ``args`` (empty values are no filter), and
        the filters used, to carry into the page links."""
        clauses, used = [], {}
        for f in self.filters:
            raw = args.get(f.name, "")
            if raw.strip():
                clauses.append(f.clause(raw))
                used[f.name] = raw.strip()
        return clauses, used

    def page(self, conn: sa.Connection, query: sa.Select[Any], order: str,
             position: Position | None, size: int = SIZE) -> Page:
        """The page of ``query`` (the list, scoped and filtered) at ``position``."""
        if not 1 <= size <= MAX_SIZE:
            raise BadQuery.said(N_("%(size)s must be from 1 to %(max)s."),
                                {"size": size, "max": MAX_SIZE}, lead="size: ", field="size")
        sort = self.orders[order]
        keys = sort.keys
        if position is not None:
            check(position, order, keys)
        # Walking backwards: the order reversed, then the rows put back in order.
        backwards = position is not None and not position.after
        descending = sort.descending != backwards
        labelled = [k.label(f"_key{i}") for i, k in enumerate(keys)]
        query = query.add_columns(*labelled)
        if position is not None:
            row = sa.tuple_(*keys)
            mark = sa.tuple_(*(sa.literal(v, k.type) for k, v in zip(keys, position.keys,
                                                                     strict=True)))
            query = query.where(row < mark if descending else row > mark)
        query = query.order_by(*(k.desc() if descending else k.asc() for k in keys))
        found = [dict(r._mapping) for r in conn.execute(query.limit(size + 1))]
        more = len(found) > size
        found = found[:size]
        if backwards:
            found.reverse()
        marks = [tuple(r.pop(f"_key{i}") for i in range(len(keys))) for r in found]
        first = Position(order, marks[0], after=False) if marks else None
        last = Position(order, marks[-1], after=True) if marks else None
        if position is None:
            return Page(found, order, last if more else None, None, size)
        if backwards:
            return Page(found, order, last or Position(order, position.keys, True),
                        first if more else None, size)
        return Page(found, order, last if more else None,
                    first or Position(order, position.keys, False), size)


def check(position: Position, order: str, keys: Sequence[sa.ColumnElement[Any]]) -> None:
    """A position must be of this order and hold one key of the right type per key."""
    if position.order != order:
        raise BadCursor.said(N_("the link is for the order %(given)s, not %(order)s; start "
                                "again from the first page."),
                             {"given": repr(position.order[:40]), "order": repr(order)},
                             lead="cursor: ", field="cursor")
    if len(position.keys) != len(keys):
        raise BadCursor.said(_NO_POSITION, lead="cursor: ", field="cursor")
    for key, value in zip(keys, position.keys, strict=True):
        numeric = isinstance(key.type, sa.Integer)
        if (isinstance(value, bool) or not isinstance(value, int if numeric else str)
                or (isinstance(value, str) and (len(value) > 256 or "\x00" in value))):
            raise BadCursor.said(_NO_POSITION, lead="cursor: ", field="cursor")
