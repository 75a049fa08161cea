"""HTML forms for event kinds: what each asks for, how its inputs become a payload,
and where a refusal is shown.

A form checks nothing itself: inputs become the payload as typed (a number that
reads as a JSON number becomes one, anything else stays text), and the ledger's
schema and rules judge it, as they judge an API body. A refusal names its rule
and the payload field at fault (``payload.price.amount``); :func:`refusals` puts
each message next to the input that field came from, and the form is shown again
with everything the user typed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask_babel import gettext, lazy_gettext
from flask_babel.speaklater import LazyString

from ledger.custody.rules import HS_CODES
from ledger.errors import InputError, LedgerError
from ledger.i18n import N_
from ledger.log.canonical import parse
from webui.i18n import say

# SPEC 4 (and the web layer's own refusals), in plain words: English, marked; the page
# that shows them says them in its language (macros.html, error.html). Rule ids are codes.
RULE_WORDS = {
    "SCHEMA": N_("This is not in the form the ledger accepts"),
    "ROLE": N_("Your role may not do this"),
    "LICENCE": N_("A buyer's or exporter's own licence must be valid on the event's date"),
    "UNKNOWN_REFERENCE": N_("Everything named here must already be registered"),
    "DUPLICATE": N_("This id is already taken"),
    "HOLDER": N_("Only the current holder may move a parcel"),
    "SPENT": N_("A parcel that was split, merged or exported can never move again"),
    "MASS": N_("Splits and merges may never add carats or stones"),
    "HOLD": N_("A parcel with an open flag does not move until an auditor resolves the flag"),
    "CERTIFICATE": N_("A KP certificate must match its exporter and the exact carats of its "
                      "parcels"),
    "EVENT_ID_CONFLICT": N_("This event id was already used for something else"),
    "NOT_FOUND": N_("There is no such record"),
    "UNAUTHENTICATED": N_("You must sign in first"),
    "BAD_REQUEST": N_("This request is not one the ledger understands"),
}
# The values a select, a filter or a status offers, marked for the catalogue (issue 19):
# a page shows their words (:func:`word_for`); the value sent and stored stays the code
# the ledger reads (``buyer``, ``open``).
CHOICE_WORDS = (
    N_("buyer"), N_("exporter"), N_("officer"), N_("auditor"), N_("authority"), N_("admin"),
    N_("open"), N_("resolved"), N_("yes"), N_("no"), N_("active"), N_("spent"),
    N_("suspended"), N_("licence"), N_("risk"), N_("parcel"), N_("site"), N_("actor"),
    N_("zone"), N_("export"))


def word_for(choice: str) -> str:
    """The word a page shows for ``choice`` (a role, a status, a yes/no...) in its language,
    when the catalogue has one (these and the statuses other pages mark); codes it does not
    hold (HS codes, flag codes, ids) are shown as they are."""
    return gettext(choice) if choice else choice


_INDEX = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Field:
    """One input (or a group of inputs for a point or a location).

    ``name`` is the payload path it fills (``price.amount``, ``children[0].carats``).
    """

    name: str
    label: str | LazyString  # shown words: lazy, in the page's language
    type: str = "text"  # text | number | date | select | ids | textarea | point | location
    optional: bool = False
    choices: tuple[str, ...] = ()
    hint: str | LazyString = ""
    today: bool = False  # filled with today's date when the form is first shown
    value: str = ""  # first shown value
    suggest: str = ""  # the list of known ids offered while typing (a <datalist>)
    group: str | LazyString = ""  # inputs of one group are shown together, in one row

    def __post_init__(self) -> None:
        # The words shown, marked with N_ where a form is written, are said in the language
        # of the page that shows them (and in a refusal's sentence that names the input).
        for name in ("label", "hint", "group"):
            words = getattr(self, name)
            if isinstance(words, str) and words:
                object.__setattr__(self, name, lazy_gettext(words))

    @property
    def input_id(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "-", self.name)


@dataclass(frozen=True)
class Form:
    """The inputs of one event kind; ``whole`` takes the refusals of the event as a whole."""

    kind: str
    fields: tuple[Field, ...]
    whole: str = ""
    own: tuple[str, ...] = ()  # payload fields that are the writing actor's id

    @property
    def sections(self) -> list[tuple[str, list[Field]]]:
        """Consecutive fields of one group together, in order ('' for ungrouped ones)."""
        out: list[tuple[str, list[Field]]] = []
        for f in self.fields:
            if out and f.group and out[-1][0] == f.group:
                out[-1][1].append(f)
            else:
                out.append((f.group, [f]))
        return out

    def initial(self) -> dict[str, str]:
        values = {f.name: f.value for f in self.fields if f.value}
        values.update({f.name: date.today().isoformat() for f in self.fields if f.today})
        return values

    def payload(self, form: Mapping[str, str], actor_id: str) -> dict[str, Any]:
        """The payload the inputs describe; InputError when pasted GeoJSON is not JSON."""
        payload: dict[str, Any] = {}
        for f in self.fields:
            value = READERS[f.type](form, f.name)
            if value is not None:
                _put(payload, f.name, value)
        for name in self.own:
            payload[name] = actor_id
        _empty_rows(payload)
        return payload


# -- reading inputs ------------------------------------------------------------------

def _text(form: Mapping[str, str], name: str) -> str | None:
    raw = (form.get(name) or "").strip()
    return raw or None


def _number(form: Mapping[str, str], name: str) -> Any:
    raw = _text(form, name)
    return None if raw is None else number(raw)


def number(raw: str) -> Any:
    """A JSON number when the text is one (as the API would read it), else the text itself,
    so that the schema names what is wrong with it."""
    try:
        value = parse(raw)
    except InputError:
        return raw
    return value if isinstance(value, int | float) and not isinstance(value, bool) else raw


def _ids(form: Mapping[str, str], name: str) -> list[str] | None:
    raw = _text(form, name)
    return None if raw is None else [p for p in re.split(r"[\s,;]+", raw) if p]


def _point(form: Mapping[str, str], name: str) -> dict[str, Any] | None:
    lon, lat = _number(form, f"{name}.lon"), _number(form, f"{name}.lat")
    if lon is None and lat is None:
        return None
    return {"type": "Point", "coordinates": [lon, lat]}


def _location(form: Mapping[str, str], name: str) -> Any:
    """Coordinates typed, or a GeoJSON geometry (or Feature) pasted; the paste wins."""
    pasted = _text(form, f"{name}.geojson")
    if pasted is None:
        return _point(form, name)
    try:
        value = parse(pasted)
    except InputError as exc:
        raise InputError.said(N_("the pasted text is not JSON: %(why)s"), {"why": str(exc)},
                              lead=f"payload.{name}: ", field=f"payload.{name}") from exc
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    return value


READERS = {"text": _text, "date": _text, "select": _text, "textarea": _text,
           "number": _number, "ids": _ids, "point": _point, "location": _location}


def _put(payload: dict[str, Any], path: str, value: Any) -> None:
    """Set ``children[1].carats`` style paths, making objects and lists on the way."""
    keys: list[str | int] = []
    for part in path.split("."):
        name, *indexes = _INDEX.split(part)
        keys.append(name)
        keys.extend(int(i) for i in indexes if i)
    node: Any = payload
    for key, nxt in itertools.pairwise(keys):
        if isinstance(key, int):
            while len(node) <= key:
                node.append(None)
            if node[key] is None:
                node[key] = [] if isinstance(nxt, int) else {}
            node = node[key]
        else:
            node = node.setdefault(key, [] if isinstance(nxt, int) else {})
    last = keys[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value


def _empty_rows(payload: dict[str, Any]) -> None:
    """Rows of a list (a split's children) left blank at the end are dropped; a blank row
    between typed ones stays, empty, so that refusals keep pointing at the right row."""
    for key, value in list(payload.items()):
        if isinstance(value, list) and any(v is None or isinstance(v, dict) for v in value):
            while value and value[-1] is None:
                value.pop()
            payload[key] = [{} if v is None else v for v in value]


# -- showing refusals -----------------------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    """One message shown by an input; ``words`` is empty for a plain sentence about the
    input itself (what is wrong with what was typed, without the rule's name)."""

    rule: str
    words: str
    message: str


def refusals(error: LedgerError, form: Form | None, known: tuple[str, ...] = ()
             ) -> dict[str, list[Refusal]]:
    """Each message of the refusal under the input it is about ('' for the form as a whole).

    Issue 19: what the schema finds wrong with one input is said once, in one plain
    sentence naming the input ("Carats must have at most two decimals."), not as the
    SCHEMA rule and its words repeated under every empty input."""
    names = known or (tuple(f.name for f in form.fields) if form else ())
    labels = {f.name: f.label for f in form.fields} if form else {}
    whole = form.whole if form else ""
    problems = error.data.get("errors") or [{"field": error.data.get("field") or "",
                                             "message": say(error)}]
    placed: dict[str, list[Refusal]] = {}
    plain: dict[str, list[str]] = {}
    for problem in problems:
        where = _nearest(str(problem.get("field") or ""), names, whole)
        message = say(problem)  # in the page's language (issue 19)
        prefix = f"{problem.get('field')}: "
        if message.startswith(prefix) and where:
            message = message[len(prefix):]
        about_input = str(problem.get("field") or "").removeprefix("payload.") not in (
            "", "payload", "actor")
        if error.rule == "SCHEMA" and where and about_input:
            plain.setdefault(where, []).append(message)
            continue
        placed.setdefault(where, []).append(
            Refusal(error.rule, RULE_WORDS.get(error.rule, N_("Refused")), message))
    for where, messages in plain.items():
        placed.setdefault(where, []).insert(
            0, Refusal(error.rule, "", sentence(labels.get(where) or where.capitalize(), messages)))
    return placed


def sentence(label: Any, messages: list[str]) -> str:
    """The schema's findings about one input as one sentence that starts with its label.

    ``messages`` are in the page's language (:func:`webui.i18n.say`). In English a finding
    that starts with a verb follows the label ("Carats must have at most two decimals."),
    others follow a colon; in French every finding follows the colon ("Carats : au plus
    deux décimales.")."""
    plain = {gettext(k): gettext(v) for k, v in PLAIN.items()}
    said = [plain.get(m, m).rstrip(".") for m in dict.fromkeys(messages)]
    text = said[0]
    for more in said[1:]:
        text = gettext("%(one)s and %(other)s", one=text, other=more)
    if text.startswith(VERBS):
        return gettext("%(label)s %(text)s.", label=label, text=text)
    return gettext("%(label)s: %(text)s.", label=label, text=text)


PLAIN = {N_("required field is missing"): N_("is required")}  # the schema's words, plainer
VERBS = ("must ", "is ", "lists ")  # English findings that read on from the label


def _nearest(path: str, names: tuple[str, ...], whole: str) -> str:
    """The input a payload path belongs to: the longest name it starts with, else the first
    input inside it (``price`` missing altogether: its amount)."""
    path = path.removeprefix("payload.").removeprefix("payload")
    best = ""
    for name in names:
        if (path == name or path.startswith((f"{name}.", f"{name}["))) and len(name) > len(best):
            best = name
    inside = [n for n in names if path and n.startswith((f"{path}.", f"{path}["))]
    return best or (inside[0] if inside else "") or (whole if path in ("", "actor") else "")


# -- the forms ------------------------------------------------------------------------

ID_HINT = N_("letters, digits and . _ : / - (up to 64)")
COUNTRY_HINT = N_("ISO 3166 alpha-2, e.g. GH")
DATE = Field("date", N_("Date"), "date", today=True)


def _children(rows: int) -> tuple[Field, ...]:
    return tuple(Field(f"children[{i}].{part}", label, kind,
                       group=lazy_gettext("New parcel %(n)s", n=i + 1))
                 for i in range(rows)
                 for part, label, kind in (("parcel_id", N_("Parcel id"), "text"),
                                           ("carats", N_("Carats"), "number"),
                                           ("stones", N_("Stones"), "number")))


PRICE = (Field("price.amount", N_("Amount"), "number", group=N_("Price")),
         Field("price.currency", N_("Currency (ISO 4217)"), value="USD", group=N_("Price")))

SITE = Form("site.registered", (
    Field("site_id", N_("Site id"), hint=ID_HINT), Field("name", N_("Name")),
    Field("location", N_("Location"), "location",
          hint=N_("longitude and latitude in degrees (WGS 84), or paste a GeoJSON Point or "
                  "Polygon")),
    Field("licence_no", N_("Mining licence number"),
          hint=N_("the licence_no of the licence zone the site works under")),
    Field("operator", N_("Operator")), Field("country", N_("Country"), hint=COUNTRY_HINT),
    DATE,
))

ACTOR = Form("actor.registered", (
    Field("actor_id", N_("Actor id"), hint=ID_HINT), Field("name", N_("Name")),
    Field("role", N_("Role"), "select", choices=("buyer", "exporter", "officer", "auditor")),
    Field("country", N_("Country"), hint=COUNTRY_HINT),
    Field("licence_no", N_("Licence number"), optional=True, hint=N_("buyers and exporters")),
    Field("licence_valid_from", N_("Licence valid from"), "date", optional=True),
    Field("licence_valid_to", N_("Licence valid to"), "date", optional=True),
    DATE,
))

PURCHASE = Form("parcel.purchased", (
    Field("parcel_id", N_("New parcel id"), hint=ID_HINT),
    Field("site_id", N_("Site"), suggest="sites", hint=N_("the registered site it was bought at")),
    Field("seller", N_("Seller"),
          hint=N_("the digger or licensed miner, or a registered actor id")),
    DATE, Field("carats", N_("Carats"), "number"), Field("stones", N_("Stones"), "number"),
    *PRICE,
    Field("dig_location", N_("Dig point"), "point", optional=True,
          hint=N_("where the stones were dug, if known: longitude and latitude")),
))

TRANSFER = Form("parcel.transferred", (
    Field("parcel_id", N_("Parcel"), hint=N_("a parcel you hold"), suggest="parcels"),
    Field("to_actor", N_("To actor"), hint=N_("the registered actor who takes it"),
          suggest="actors"),
    DATE, *PRICE,
), whole="parcel_id")

SPLIT = Form("parcel.split", (
    Field("parent_id", N_("Parcel to split"), hint=N_("a parcel you hold"), suggest="parcels"),
    DATE, *_children(4),
), whole="parent_id")

MERGE = Form("parcel.merged", (
    Field("parent_ids", N_("Parcels to merge"), "ids",
          hint=N_("two or more, separated by commas")),
    Field("child.parcel_id", N_("Parcel id"), group=N_("New parcel")),
    Field("child.carats", N_("Carats"), "number", group=N_("New parcel")),
    Field("child.stones", N_("Stones"), "number", group=N_("New parcel")), DATE,
), whole="parent_ids")

EXPORT = Form("export.declared", (
    Field("certificate_no", N_("KP certificate number"),
          hint=N_("your country's two-letter code, then the number, e.g. GH-2017-000003")),
    Field("importer", N_("Importer")),
    Field("destination", N_("Destination country"), hint=N_("ISO 3166 alpha-2, e.g. BE")),
    Field("hs_code", N_("HS code"), "select", choices=HS_CODES),
    Field("parcel_ids", N_("Parcels"), "ids",
          hint=N_("the parcels you export, separated by commas")),
    Field("carats", N_("Carats"), "number", hint=N_("exactly the sum of the parcels' carats")),
    Field("value_usd", N_("Value (USD)"), "number"),
    Field("date", N_("Issued"), "date", today=True), Field("expires", N_("Expires"), "date"),
), whole="parcel_ids", own=("exporter",))

RESOLVE = Form("flag.resolved", (
    Field("resolution", N_("Resolution"), "textarea"), DATE,
), whole="resolution")
