"""The log: checkpoint and proofs (public, cacheable), entries (auditors) (SPEC 3, 6)."""

from __future__ import annotations

import functools
import json
from typing import Any

from flask import Blueprint, Response, request

from ledger.errors import NotFound
from ledger.log.checkpoint import Checkpoint
from ledger.log.store import format_ts
from webui.auth import caller
from webui.http import cacheable, etag, int_arg, json_response
from webui.openapi import MAX_SEQ, PREFIX, integer, operation
from webui.services import ledger, services

bp = Blueprint("log", __name__, url_prefix=PREFIX)
PAGE = 1000


def _checkpoint_json(note: str, vkey: str | None = None) -> dict[str, Any]:
    # The note is the log's own, just signed: read its text part without re-verifying.
    text = note.split("\n\n", 1)[0] + "\n"
    cp = Checkpoint.from_text(text)
    return {"origin": cp.origin, "size": cp.size, "root": cp.root_hash.hex(),
            "time": format_ts(cp.time), "checkpoint": note,
            "vkey": services().vkey if vkey is None else vkey}


@functools.lru_cache(maxsize=8)
def _rendered(note: str, vkey: str, as_text: bool) -> tuple[bytes, str]:
    """The body and ETag of a checkpoint response, built once per note: the log is read
    far more often than it moves, and the latest note alone says whether it moved."""
    body = (note if as_text
            else json.dumps(_checkpoint_json(note, vkey), separators=(",", ":"))).encode()
    return body, etag(body)


@bp.get("/checkpoint")
@operation("The latest signed checkpoint", area="checkpoint", ok={200: "Checkpoint"},
           cacheable=True, text=True, refusals=(404,),
           description="JSON by default; the bare signed note (C2SP tlog-checkpoint) for "
                       "`Accept: text/plain`.")
def checkpoint() -> Response:
    caller("checkpoint")
    note = ledger().log.latest_checkpoint()
    if note is None:
        raise NotFound("The log has no checkpoint yet: run `alluvial init`.")
    wanted = request.accept_mimetypes.best_match(["application/json", "text/plain"])
    as_text = wanted == "text/plain"
    body, tag = _rendered(note, services().vkey, as_text)
    return cacheable(Response(body, mimetype="text/plain" if as_text else "application/json"),
                     tag=tag)


@bp.get("/proofs/inclusion")
@operation("RFC 9162 inclusion proof of entry `seq` in the tree of `size` entries",
           area="proofs", ok={200: "InclusionProof"}, cacheable=True,
           query=(integer("The entry.", required=True, name="seq"),
                  integer("Tree size (default: the log's size).", name="size")))
def inclusion() -> Response:
    caller("proofs")
    seq, size = int_arg("seq", required=True), int_arg("size")
    assert seq is not None
    return cacheable(json_response(ledger().log.inclusion_proof(seq, size)),
                     immutable=size is not None)


@bp.get("/proofs/consistency")
@operation("RFC 9162 consistency proof from the tree of `old` entries to `new`",
           area="proofs", ok={200: "ConsistencyProof"}, cacheable=True,
           query=(integer("The older tree size.", required=True, name="old"),
                  integer("The newer tree size (default: the log's size).", name="new")))
def consistency() -> Response:
    caller("proofs")
    old, new = int_arg("old", required=True), int_arg("new")
    assert old is not None
    return cacheable(json_response(ledger().log.consistency_proof(old, new)),
                     immutable=new is not None)


def _record(entry: Any) -> dict[str, Any]:
    return {"entry": entry.to_json(), "entry_hash": entry.entry_hash.hex()}


@bp.get("/entries")
@operation("Entries after `after`, at most `limit` of them", area="entries",
           ok={200: "EntryPage"},
           query=(integer("Return entries with seq above this.", minimum=0, name="after"),
                  integer("How many at most.", maximum=PAGE, name="limit")))
def entries() -> Response:
    caller("entries")
    after, limit = int_arg("after", default=0, low=0), int_arg("limit", default=100, high=PAGE)
    assert after is not None and limit is not None
    page = ledger().log.entries(after, limit)
    nxt = page[-1].seq if len(page) == limit else None
    return json_response({"entries": [_record(e) for e in page], "next": nxt})


@bp.get("/entries/<int:seq>")
@operation("One entry and its hash", area="entries", ok={200: "EntryRecord"})
def entry(seq: int) -> Response:
    caller("entries")
    if seq > MAX_SEQ:  # past any database integer: the ledger's query would overflow
        raise NotFound(f"entry {seq} does not exist.", seq=seq)
    return json_response(_record(ledger().log.entry(seq)))
