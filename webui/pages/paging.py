"""The web side of paged lists (issue 19): a page's position travels in its links as a
token signed with the app's secret key (itsdangerous, as Flask signs its sessions), so a
link changed by hand, or made by another server, is refused (400 ``BAD_CURSOR``) rather
than read; the filters and the sort travel as plain query parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, request, url_for
from itsdangerous import BadData, URLSafeSerializer

from ledger.i18n import N_
from ledger.lists import Paged
from ledger.paging import MAX_SIZE, SIZE, BadCursor, BadQuery, Listing, Page, Position
from ledger.reads import Scope

SALT = "alluvial.pages.position"
_REFUSED = N_("this page link was not made by this site, or was changed; start again from "
              "the first page.")


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key or "", salt=SALT)


def token(position: Position) -> str:
    return str(_signer().dumps([position.order, list(position.keys),
                                "after" if position.after else "before"]))


def position() -> Position | None:
    """The position the request's ``after`` or ``before`` names (None: the first page)."""
    after, before = request.args.get("after"), request.args.get("before")
    if after is not None and before is not None:
        raise BadCursor.said(N_("a page link gives after or before, not both; start again from "
                                "the first page."), lead="cursor: ", field="cursor")
    raw = after if after is not None else before
    if raw is None:
        return None
    try:
        order, keys, way = _signer().loads(raw[:2000])
    except (BadData, ValueError, TypeError) as exc:
        raise BadCursor.said(_REFUSED, lead="cursor: ", field="cursor") from exc
    if not isinstance(order, str) or not isinstance(keys, list) or way != (
            "after" if after is not None else "before"):
        raise BadCursor.said(_REFUSED, lead="cursor: ", field="cursor")
    return Position(order, tuple(keys), after=after is not None)


def size(default: int = SIZE) -> int:
    raw = request.args.get("size", "")
    if raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw[:6]) <= MAX_SIZE:
        raise BadQuery.said(N_("%(value)s is not a number of rows from 1 to %(most)s."),
                            {"value": repr(raw[:20]), "most": MAX_SIZE}, lead="size: ",
                            field="size")
    return int(raw)


@dataclass(frozen=True)
class Shown:
    """A page of a list and the links around it, for ``_paging.html``."""

    listing: Listing
    page: Page
    used: dict[str, str]  # the filters applied
    carried: dict[str, Any] = field(default_factory=dict)  # other parameters kept (group)

    def url(self, **changes: Any) -> str:
        """This list's URL with its filters, sort and size, and ``changes``."""
        args: dict[str, Any] = {**(request.view_args or {}), **self.used, **self.carried,
                                "sort": self.page.order}
        if request.args.get("size"):
            args["size"] = self.page.size
        args.update(changes)
        return url_for(str(request.endpoint), **{k: v for k, v in args.items()
                                                 if v is not None})

    @property
    def next_url(self) -> str | None:
        found = self.page.next
        return None if found is None else self.url(after=token(found))

    @property
    def previous_url(self) -> str | None:
        found = self.page.previous
        return None if found is None else self.url(before=token(found))

    @property
    def first_url(self) -> str:
        return self.url()


Read = Callable[..., Paged]  # a paged read of ledger.lists


def listed(listing: Listing, read: Read, scope: Scope,
           carried: dict[str, Any] | None = None, rows: int = SIZE, **options: Any) -> Shown:
    """The page of ``listing`` the request asks for, read by ``read`` (``ledger.lists``);
    ``rows``: the page size unless the request asks for another."""
    order = listing.order_of(request.args.get("sort"))
    page, used = read(scope, request.args, order, position(), size(rows), **options)
    return Shown(listing, page, used, carried or {})
