"""Writing events: validate, check the rules, append, project, screen (SPEC 4).

Every write is one transaction: a refusal writes nothing and names its rule id.
:class:`Ledger` is the service the CLI and the web layer share.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import numpy as np
import sqlalchemy as sa

from ledger import projections
from ledger.config import DEFAULT_LATE_DAYS, Settings
from ledger.custody import rules
from ledger.custody.envelope import Event as Event  # re-exported: what a write takes
from ledger.custody.schema import KINDS, load_schema, validate_payload
from ledger.custody.state import State
from ledger.db import driver_rows, entries, forget_damaged_tables, is_sqlite, make_engine
from ledger.errors import Conflict, InputError, LedgerError
from ledger.geo.patterns import FOOTPRINT, PATTERN_RULES, note_flag
from ledger.geo.screening import (
    DEFAULT_RULES,
    Flag,
    Rule,
    late_entry,
    purchase_points,
    subject_for,
)
from ledger.geo.zones import ZoneSet
from ledger.i18n import N_
from ledger.log.canonical import canonical_text
from ledger.log.keys import SigningKey, load_or_create
from ledger.log.store import ADMIN, Appender, Entry, Log, admin_payload
from ledger.recorder.certificates import certificate_flags

# Entries that change the map: screening must see them at once.
MAP_KINDS = frozenset({"zone.registered", "zone.amended", "zone.retired", "licence.revoked",
                       "licence.renewed"})


@dataclass
class WriteResult:
    """An entry written (or found again for a repeated event_id) and the flags it raised."""

    entry: Entry
    flags: list[dict[str, Any]]
    created: bool = True
    checkpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.entry.seq,
            "entry_hash": self.entry.entry_hash.hex(),
            "flags": self.flags,
            "checkpoint": self.checkpoint,
        }


@dataclass
class Session:
    """Writes inside one transaction; everything commits together or not at all."""

    ledger: Ledger
    appender: Appender
    state: State
    _zones: ZoneSet | None = None
    _map_changed: bool = False
    # event_ids a prefetch found unused: a retry check needs no query for them.
    _fresh_ids: set[str] = field(default_factory=set)
    # `ingest --archive`: records kept elsewhere, which raise no LATE_ENTRY (SPEC 5).
    archive: bool = False
    # (year, month, day) of the clock's last reading, and that day in ISO: see today().
    _day: tuple[tuple[int, int, int], str] = ((0, 0, 0), "")
    # What screening rules keep between the writes of this session (footprint references).
    memory: dict[str, Any] = field(default_factory=dict)

    def write(self, event: Event) -> WriteResult:
        if event.event_id is not None:
            repeated = self._repeated(event)
            if repeated is not None:
                return repeated
        checked = event.checked
        if checked is None:
            validate_payload(event.kind, event.payload)
        elif isinstance(checked, LedgerError):
            raise checked
        rules.check(self.state, event.actor, event.kind, event.payload, self.today())
        entry = self._append(event.kind, event.actor, event.payload, event.event_id, checked)
        subject = subject_for(event.kind, event.payload, entry.seq, self.state, self.zones,
                              self.memory)
        flags = [] if subject is None else [
            flag for rule in self.ledger.screening for flag in rule.check(subject)]
        flags += certificate_flags(event.kind, event.payload, entry.seq, self.state)
        if not self.archive:
            late = late_entry(event.kind, event.payload, entry.seq, entry.ts[:10],
                              self.ledger.late_days)
            if late is not None:
                flags.append(late)
        if not flags:
            return WriteResult(entry, [])
        return WriteResult(entry, [self.raise_flag(flag, event.payload["date"]) for flag in flags])

    def today(self) -> str:
        """The ledger's current day (UTC): its clock, which also stamps each entry's ts.

        Asked on every write (SPEC 4 DATE_ORDER); the ISO text is made once a day."""
        moment = self.appender.clock()
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
        key = (moment.year, moment.month, moment.day)
        if key != self._day[0]:
            self._day = (key, moment.date().isoformat())
        return self._day[1]

    def zones(self) -> ZoneSet:
        """The map as this transaction sees it, indexed once and reused until it changes."""
        if self._zones is None:
            if self._map_changed:
                self.state.flush()
                self._zones = ZoneSet.load(self.appender.conn)
            else:
                self._zones = self.ledger.zoneset(self.appender.conn)
        return self._zones

    def _append(self, kind: str, actor: str, payload: dict[str, Any],
                event_id: str | None, payload_text: str | None = None) -> Entry:
        entry = self.appender.append(kind, actor, payload, event_id, keep=False,
                                     payload_text=payload_text)
        self._fresh_ids.discard(event_id or "")
        self.state.apply(entry.seq, kind, actor, payload)
        if kind == "flag.raised" and actor != rules.SYSTEM and payload["code"] == FOOTPRINT:
            note_flag(self.memory, payload["subject"]["id"])  # SPEC 5: out of the reference
        if kind in MAP_KINDS:
            self._zones, self._map_changed = None, True
        return entry

    def raise_flag(self, flag: Flag, day: str) -> dict[str, Any]:
        """Append a screening flag as `system` (SPEC 5: flags are entries too)."""
        flag_id = rules.system_flag_id(self.appender.size + 1, flag.code,
                                       lambda fid: self.state.get("flags", fid) is not None)
        payload = {
            "flag_id": flag_id, "subject": {"type": flag.subject_type, "id": flag.subject_id},
            "code": flag.code, "detail": flag.detail, "evidence": flag.evidence, "date": day,
        }
        validate_payload("flag.raised", payload)
        self._append("flag.raised", rules.SYSTEM, payload, None)
        return {k: payload[k] for k in ("flag_id", "code", "subject", "detail")}

    def _repeated(self, event: Event) -> WriteResult | None:
        """SPEC 4: a repeated event returns the entry already written; other content is refused."""
        assert event.event_id is not None
        entry = self.appender.pending_event(event.event_id)
        if entry is None and event.event_id not in self._fresh_ids:
            entry = self.ledger.log.by_event_id(self.appender.conn, event.event_id)
        if entry is None:
            return None
        try:
            text = event.checked if isinstance(event.checked, str) else canonical_text(
                event.payload)
            same_payload = text == entry.payload_text
        except (TypeError, ValueError):
            same_payload = False
        if (entry.kind, entry.actor) != (event.kind, event.actor) or not same_payload:
            raise Conflict.said(N_("'%(id)s' was already used by entry %(seq)s for other "
                                   "content."), {"id": event.event_id, "seq": entry.seq},
                                lead="event_id: ", field="event_id", seq=entry.seq)
        return WriteResult(entry, self.ledger.flags_caused(self.appender.conn, entry.seq),
                           created=False)

    def prefetch(self, events: Sequence[Event]) -> None:
        """Load what a chunk of events refers to in a few queries (ingest)."""
        wanted: dict[str, set[str]] = {t: set() for t in ("actors", "parcels", "sites", "zones",
                                                          "exports", "flags")}
        for ev in events:
            wanted["actors"].add(ev.actor)
            for table, key in _mentions(ev.kind, ev.payload):
                wanted[table].add(key)
        for table, keys in wanted.items():
            # No id holds NUL (schema), and PostgreSQL refuses one even in a lookup: a refused
            # event's names must not fail the group or chunk it is prefetched with (#15).
            self.state.prefetch(table, {k for k in keys if "\x00" not in k})
        sites = self.state.cache["sites"]
        points = purchase_points((ev.payload for ev in events if ev.kind == "parcel.purchased"),
                                 lambda site_id: (sites.get(site_id) or {}).get("location")
                                 if isinstance(site_id, str) else None)
        if points:
            self.zones().prime(np.array(points, dtype=float))
        ids = [ev.event_id for ev in events if ev.event_id is not None]
        for k in range(0, len(ids), 500):
            part = ids[k:k + 500]
            used = {event_id for event_id, in driver_rows(
                self.appender.conn, f"SELECT event_id FROM {entries.name} "
                                    f"WHERE event_id IN ({', '.join('?' * len(part))})", part)}
            self._fresh_ids.update(set(part) - used)


# Payload fields naming something the rules or screening look up (a seller may be an actor).
_MENTIONS = {"actor_id": "actors", "to_actor": "actors", "seller": "actors",
             "parcel_id": "parcels", "parent_id": "parcels", "site_id": "sites",
             "zone_id": "zones", "certificate_no": "exports", "flag_id": "flags"}


def _fields_of(kind: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The payload fields of ``kind`` that name something: (field, table) and lists of parcels."""
    properties = load_schema(kind)["properties"]
    return ([(f, t) for f, t in _MENTIONS.items() if f in properties],
            [f for f in ("parent_ids", "parcel_ids", "children", "child") if f in properties])


_MENTIONED_BY_KIND = {kind: _fields_of(kind) for kind in KINDS}


def _mentions(kind: str, payload: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """What a payload (not yet validated) names, by the fields its kind's schema has."""
    scalars, lists = _MENTIONED_BY_KIND.get(kind, (_MENTIONS.items(), ()))
    for key, table in scalars:
        value = payload.get(key)
        if isinstance(value, str):
            yield table, value
    for key in lists:
        value = payload.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                item = item.get("parcel_id")
            if isinstance(item, str):
                yield "parcels", item


class Ledger:
    """The log, its projections and the write path, over one database."""

    def __init__(self, engine: sa.Engine, key: SigningKey,
                 screening: Sequence[Rule] = DEFAULT_RULES + PATTERN_RULES,
                 late_days: int = DEFAULT_LATE_DAYS) -> None:
        self.engine = engine
        self.log = Log(engine, key)
        self.screening = tuple(screening)
        self.late_days = late_days  # SPEC 5 LATE_ENTRY: ALLUVIAL_LATE_DAYS
        self._zoneset: ZoneSet | None = None

    def zoneset(self, conn: sa.Connection) -> ZoneSet:
        """The committed map, rebuilt only when its version (the last map change) has moved."""
        cached = self._zoneset
        if cached is None or cached.version != ZoneSet.current_version(conn):
            cached = self._zoneset = ZoneSet.load(conn)
        return cached

    @classmethod
    def open(cls, settings: Settings, create_key: bool = False) -> Ledger:
        if not create_key and not settings.log_key_path.exists():
            raise InputError(f"ALLUVIAL_LOG_KEY: no log key at {settings.log_key_path}; "
                             "run `alluvial init` first.", rule="CONFIG")
        key = load_or_create(settings.log_key_path, settings.origin)
        ledger = cls(make_engine(settings.database_url), key, late_days=settings.late_days)
        try:
            ledger.log.check_store(f"ALLUVIAL_LOG_KEY ({settings.log_key_path})")
            ledger.check_projections()
        except LedgerError:
            ledger.engine.dispose()
            raise
        return ledger

    def check_projections(self) -> None:
        """Refuse projections that an earlier version made: `alluvial rebuild` remakes them
        from the log (SPEC 3: they are derived from the entries alone)."""
        with self.engine.connect() as conn:
            missing = projections.outdated(conn)
        if missing:
            raise InputError(
                "The projection tables were made by an earlier version of Alluvial Ledger "
                f"(missing {', '.join(missing)}): run `alluvial rebuild` to remake them "
                "from the log.", rule="CONFIG")

    def initialise(self) -> Entry:
        """`alluvial init`: the log, the projections and entry 1, the actor `admin`."""
        self.log.create()
        with self.engine.begin() as conn:
            projections.create(conn)
        with self.session() as s:
            # Entry 1 bootstraps the roles: nobody exists yet who could write it.
            payload = admin_payload(datetime.now(UTC))
            validate_payload("actor.registered", payload)
            return s._append("actor.registered", ADMIN, payload, None)

    @contextmanager
    def session(self, batch: int = 5000, bulk: bool = False) -> Iterator[Session]:
        """One write transaction; ``bulk``: a long one (ingest), given a larger page cache."""
        with self.log.writer(batch, bulk) as appender:
            session = Session(self, appender, State(appender.conn))
            yield session
            session.state.flush()

    def write(self, event: Event) -> WriteResult:
        """Write one event in its own transaction; the result carries the new checkpoint."""
        with self.log.writer() as appender:
            session = Session(self, appender, State(appender.conn))
            result = session.write(event)
            session.state.flush()
        result.checkpoint = appender.checkpoint if result.created else self.log.latest_checkpoint()
        return result

    def flags_caused(self, conn: sa.Connection, seq: int) -> list[dict[str, Any]]:
        f = projections.flags
        rows = conn.execute(sa.select(f).where(f.c.cause_seq == seq).order_by(f.c.seq))
        return [{"flag_id": r.flag_id, "code": r.code,
                 "subject": {"type": r.subject_type, "id": r.subject_id}, "detail": r.detail}
                for r in rows]

    def rebuild(self) -> str:
        """Drop the projections and fold every entry again; return the projection digest.

        On SQLite, projection tables (or indexes) whose pages are damaged cannot be dropped:
        they are forgotten and the file rewritten without them first (SPEC 3: the
        projections are derived from the entries alone)."""
        try:
            return self._rebuild()
        except sa.exc.DatabaseError:
            if not is_sqlite(self.engine):
                raise
        forget_damaged_tables(self.engine, list(projections.projection_metadata.tables))
        return self._rebuild()

    def _rebuild(self) -> str:
        with self.log.writer(bulk=True) as appender:
            fold_log(appender.conn)
            return projections.digest(appender.conn)

    def digest(self) -> str:
        with self.engine.connect() as conn:
            return projections.digest(conn)


def fold_log(conn: sa.Connection) -> None:
    """Drop the projections and make them again from the entries alone, in ``conn``'s
    transaction (`rebuild`, and `verify --projections`, which rolls it back)."""
    projections.drop(conn)
    projections.create(conn)
    state = State(conn)
    e = entries
    rows = conn.execute(
        sa.select(e.c.seq, e.c.kind, e.c.actor, e.c.payload).order_by(e.c.seq),
        execution_options={"yield_per": 5000})
    while batch := [(seq, kind, actor, json.loads(payload))
                    for seq, kind, actor, payload in islice(rows, 5000)]:
        # The projection of a purchase looks its seller up among the actors.
        state.prefetch("actors", {p["seller"] for _, kind, _, p in batch
                                  if kind == "parcel.purchased"})
        for seq, kind, actor, p in batch:
            state.apply(seq, kind, actor, p)
        state.flush()
