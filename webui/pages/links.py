"""Where each record's page is, for drawings and lists, and file downloads."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

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
    """The page of a record. The id is one path segment, quoted whole: ids are refused with
    / or \\ (schemas/defs.json), but one written before that (``Q/../../admin/users``) must
    still lead to its own page, never climb to another (issue #15)."""
    endpoint, arg = _PAGES[kind]
    values: dict[str, Any] = {arg: "_"}
    return url_for(endpoint, **values)[:-1] + _segment(ident)


def _segment(ident: str) -> str:
    """``ident`` as one path segment: / and \\ escaped, and an id of dots only too."""
    text = quote(ident, safe="!$&'()*+,:;=@")
    return text.replace(".", "%2E") if not ident.strip(".") else text


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


# OWASP "CSV Injection": a cell a spreadsheet would read as a formula (or whose leading
# tab or CR it would strip to find one) is written with a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: numbers as they are, text never a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_download(header: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> Response:
    """A CSV file to download, every text cell neutralised (:func:`csv_cell`)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([csv_cell(v) for v in row] for row in rows)
    return download(out.getvalue(), filename, "text/csv")


def safe(name: str) -> str:
    """A file name made of the id's harmless characters."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
