"""Authorities hear of taint (issue 18): an Atom feed per destination country of the flags
that touch the KP certificates going there, raised before or after the export
(``ledger.reads.flag_feed``), built with feedgen."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from feedgen.feed import FeedGenerator
from flask import Blueprint, Response, request

from ledger import reads
from ledger.errors import InputError
from webui.auth import member
from webui.openapi import PREFIX, Param, operation
from webui.pages import links
from webui.services import ledger, reading

bp = Blueprint("feeds", __name__, url_prefix=PREFIX)
ATOM = "application/atom+xml"
_COUNTRY = re.compile(r"[A-Z]{2}")


def destination_arg() -> str:
    """The `destination` query parameter: an ISO 3166-1 alpha-2 code, required."""
    raw = request.args.get("destination")
    if raw is None:
        raise InputError("destination: the query parameter is required (the country the "
                         "certificates go to, e.g. BE).", rule="BAD_REQUEST", field="destination")
    if not _COUNTRY.fullmatch(raw):
        raise InputError(f"destination: {raw[:40]!r} is not a country code (two capital "
                         "letters, ISO 3166-1 alpha-2, e.g. BE).", rule="BAD_REQUEST",
                         field="destination")
    return raw


def _when(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def atom(destination: str, items: list[dict[str, Any]]) -> bytes:
    """The feed of ``items`` (``reads.flag_feed``): one entry per flag and certificate."""
    origin = ledger().log.origin
    feed = FeedGenerator()
    feed.id(f"urn:alluvial:{origin}:flags:destination:{destination}")
    feed.title(f"Flags on KP certificates going to {destination}")
    feed.author({"name": origin})
    feed.link(href=request.url, rel="self", type=ATOM)
    feed.subtitle("Flags on the exports to this country, and on every parcel and site on "
                  "their custody paths, raised before or after the export (Alluvial Ledger).")
    for item in reversed(items):  # feedgen puts each new entry first
        entry = feed.add_entry()
        cert, flag = item["certificate_no"], item["flag_id"]
        entry.id(f"urn:alluvial:{origin}:flag:{flag}:certificate:{cert}")
        entry.title(f"{cert}: {item['code']} on {item['subject_type']} "
                    f"{item['subject_id']} ({item['status']})")
        entry.published(_when(item["raised"]))
        entry.updated(_when(item["resolved"] or item["raised"]))
        entry.link(href=request.host_url.rstrip("/") + links.record("export", cert))
        entry.category(term=item["code"])
        resolution = (f" Resolved (entry {item['resolved_seq']}): {item['resolution']}"
                      if item["status"] == "resolved" else "")
        entry.summary(f"Flag {flag} (entry {item['seq']}) on {item['subject_type']} "
                      f"{item['subject_id']}, on the custody path of certificate {cert} "
                      f"({item['exporter']} to {item['importer']}, issued {item['date']}): "
                      f"{item['detail']}{resolution}")
    feed.updated(max((_when(i["resolved"] or i["raised"]) for i in items), default=None)
                 or datetime.now().astimezone())
    body: bytes = feed.atom_str(pretty=True)
    return body


@bp.get("/feeds/flags.atom")
@operation("Atom feed of the flags touching the KP certificates going to a country",
           area="feeds", ok={200: "AtomFeed"}, media=ATOM,
           query=(Param("destination", {"type": "string", "pattern": "^[A-Z]{2}$"},
                        "the destination country (ISO 3166-1 alpha-2)", required=True),))
def flags_feed() -> Response:
    principal = member("feeds")
    destination = destination_arg()
    with reading(principal) as scope:
        items = reads.flag_feed(scope, destination)
    return Response(atom(destination, items), mimetype=ATOM)
