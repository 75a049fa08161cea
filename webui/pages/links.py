"""Where each record's page is, for drawings and lists, and file downloads."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, url_for

from ledger.custody.trace import Node

_PAGES = {"parcel": ("pages.records.parcel", "parcel_id"),
          "site": ("pages.records.site", "site_id"),
          "zone": ("pages.records.zone", "zone_id"),
          "export": ("pages.records.export", "certificate_no"),
          "actor": ("pages.records.actor", "actor_id")}
_LAYERS = {"licence_zone": "zone", "risk_area": "zone", "site": "site", "dig_point": "parcel",
           "flagged_purchase": "parcel"}


def record(kind: str, ident: str) -> str:
    endpoint, arg = _PAGES[kind]
    values: dict[str, Any] = {arg: ident}
    return url_for(endpoint, **values)


def node(n: Node) -> str:
    return record(*n)


def feature(layer: str, properties: dict[str, Any]) -> str:
    kind = _LAYERS[layer]
    return record(kind, properties[_PAGES[kind][1]])


def feature_or_none(layer: str, properties: dict[str, Any]) -> str | None:
    """A feature's page, or None for one not written yet (a preview)."""
    kind = _LAYERS[layer]
    ident = properties.get(_PAGES[kind][1])
    return record(kind, ident) if ident else None


def download(body: str, filename: str, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def safe(name: str) -> str:
    """A file name made of the id's harmless characters."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
