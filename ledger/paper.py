"""The printed KP certificate (issue 18): what the paper that travels with an export says
beside its KP fields, so that a customs officer can match it to the provenance bundle.

The bundle is the one `GET /api/v1/exports/{certificate_no}/bundle`, the export page's
download and `alluvial bundle` give at the same moment: the same bytes, built against the
latest checkpoint (a checkpoint follows every write, so the bytes change only when the
log grows; the paper names the checkpoint's size). Its origins are what `verify-bundle`
finds in those very bytes: the verifier runs on them, offline, as the importer's would.

The words the printed page takes from here are marked with ``N_`` (issue 19): the page
shows them in its language, the values as recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction

import sqlalchemy as sa

from ledger import projections as pj
from ledger.bundle.build import build_bundle, dumps
from ledger.bundle.verify import verify_bundle
from ledger.i18n import N_
from ledger.log.store import Log

NOT_REGISTERED = N_("(not registered)")  # the name of an origin site never registered
# The verifier's first line (``report[0]``), as templates filled by ``Paper.verdict_values``.
VERIFIED = N_("OK: provenance bundle of KP certificate %(certificate_no)s verified.")
FAILED = N_("FAILED: provenance bundle of KP certificate %(certificate_no)s: %(problems)s "
            "problem(s).")


@dataclass(frozen=True)
class Origin:
    """One origin site and the carats of the export traced back to it (SPEC 7 shares)."""

    site_id: str
    name: str
    country: str
    licence_no: str
    zones: tuple[str, ...]  # the licence zones of its mining licence
    points: Fraction  # exact: the shares of a split or merge are fractions of a point

    @property
    def carats(self) -> str:
        return f"{float(self.points) / 100:.2f}"

    @property
    def registered(self) -> bool:
        """False for a purchase at a site never registered (its name is ``NOT_REGISTERED``)."""
        return self.name != NOT_REGISTERED


@dataclass(frozen=True)
class Paper:
    certificate_no: str
    origin: str  # the log's origin (its key name)
    size: int  # the size of the checkpoint the bundle is against
    bundle_sha256: str  # of the bundle's exact bytes (UTF-8)
    verified: bool  # what `verify-bundle --key <the log's key>` says of those bytes
    report: tuple[str, ...]  # its lines
    origins: tuple[Origin, ...]
    export_points: int
    problems: int = 0  # how many the verifier found (its report's first line counts them)

    @property
    def verdict(self) -> str:
        """The verdict line, ``report[0]``, as its template (``N_``) for a page to translate."""
        return VERIFIED if self.verified else FAILED

    @property
    def verdict_values(self) -> dict[str, str | int]:
        return {"certificate_no": self.certificate_no, "problems": self.problems}

    @property
    def qr_text(self) -> str:
        """What the QR code holds: the certificate, the log and the bundle's digest."""
        return (f"KP certificate {self.certificate_no}\nlog {self.origin}\n"
                f"checkpoint size {self.size}\nbundle sha256 {self.bundle_sha256}\n")

    def share(self, origin: Origin) -> str:
        if not self.export_points:
            return ""
        return f"{float(origin.points / self.export_points) * 100:.1f}%"


def bundle_bytes(log: Log, certificate_no: str) -> tuple[bytes, int]:
    """The bundle as the API and `alluvial bundle` write it, and its checkpoint's size."""
    made = build_bundle(log, certificate_no)
    return dumps(made).encode("utf-8"), int(made.checkpoint.split("\n")[1])


def paper(log: Log, conn: sa.Connection, certificate_no: str) -> Paper:
    """The paper of KP certificate ``certificate_no`` (raises NotFound for an unknown one)."""
    data, size = bundle_bytes(log, certificate_no)
    report = verify_bundle(data, log.verifier)
    s, z = pj.sites, pj.zones
    rows = {r.site_id: r for r in conn.execute(sa.select(
        s.c.site_id, s.c.name, s.c.country, s.c.licence_no).where(
        s.c.site_id.in_(list(report.sites))))}
    zones: dict[str, list[str]] = {}
    for licence_no, zone_id in conn.execute(sa.select(z.c.licence_no, z.c.zone_id).where(
            z.c.zone_type == "licence", z.c.licence_no.in_({r.licence_no for r in rows.values()}))
            .order_by(z.c.zone_id)):
        zones.setdefault(licence_no, []).append(zone_id)
    origins = []
    for site_id, share in sorted(report.sites.items(), key=lambda kv: (-kv[1].points, kv[0])):
        row = rows.get(site_id)  # None: a purchase at a site never registered
        origins.append(Origin(site_id, row.name if row else NOT_REGISTERED,
                              row.country if row else "", row.licence_no if row else "",
                              tuple(zones.get(row.licence_no, ()) if row else ()),
                              share.points))
    return Paper(certificate_no, log.origin, size, hashlib.sha256(data).hexdigest(),
                 report.ok, tuple(report.lines()), tuple(origins), report.export_points,
                 len(report.problems))
