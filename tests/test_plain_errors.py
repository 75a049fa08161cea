"""Issue 19: what the pages say when something is wrong, and the verification's progress.

A form's inputs left empty or mistyped each show one plain sentence that names the
input, once (not "SCHEMA This is not in the form the ledger accepts: required field is
missing" under every input). A pasted checkpoint that is not one is the user's input
error, said line by line with no command-line flag in it, and nothing is verified; a
well-formed one that does not match is a failed verification that says "the checkpoint
you pasted". The verification page is streamed: it tells how many entries it has
checked out of how many before its result.

On SQLite and PostgreSQL (the db_url fixture).
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient

import ledger.log.verify
from ledger.recorder.events import Ledger
from tests.test_pages import PURCHASE, SITE, send, sign_in, size, token_of, with_size, world  # noqa: F401

EMPTY = [  # role, form, the inputs sent empty, the sentence each must show
    ("buyer", "/purchases/new", {"parcel_id": "New parcel id is required.",
                                 "site_id": "Site is required.", "seller": "Seller is required.",
                                 "date": "Date is required.", "carats": "Carats is required.",
                                 "stones": "Stones is required.",
                                 "price-amount": "Amount is required."}),
    ("officer", "/sites/new", {"site_id": "Site id is required.", "name": "Name is required.",
                               "location": "Location is required.",
                               "licence_no": "Mining licence number is required.",
                               "country": "Country is required."}),
    ("exporter", "/exports/new", {"certificate_no": "KP certificate number is required.",
                                  "importer": "Importer is required.",
                                  "parcel_ids": "Parcels is required.",
                                  "value_usd": "Value (USD) is required."}),
]
TYPED = [  # role, form, what is typed, the input at fault, its one sentence
    ("buyer", "/purchases/new", {**PURCHASE, "carats": "12.345"}, "carats",
     "Carats must have at most two decimals."),
    ("buyer", "/purchases/new", {**PURCHASE, "stones": "many"}, "stones",
     "Stones must be a whole number of stones."),
    ("officer", "/sites/new", {**SITE, "location.lon": "400"}, "location",
     "Location must be a longitude between -180 and 180 (WGS 84)."),
]


def shown_by(page: str, input_id: str) -> list[str]:
    """Every refusal shown by an input, as text."""
    found = re.findall(rf'<p class="refusal"[^>]*id="{re.escape(input_id)}-refusal"[^>]*>'
                       r"(.*?)</p>\s*((?:<p class=\"refusal\"[^>]*>.*?</p>\s*)*)", page, re.S)
    texts = [f for pair in found for f in pair if f]
    return [" ".join(unescape(re.sub(r"<[^>]+>", " ", t)).split()) for t in texts]


@pytest.mark.parametrize("role, path, expected", EMPTY, ids=[e[1] for e in EMPTY])
def test_each_empty_input_says_once_in_plain_words_what_is_missing(
        world: Ledger, client: FlaskClient, role: str, path: str,  # noqa: F811
        expected: dict[str, str]) -> None:
    sign_in(client, role)
    before = size(world)
    answer = send(client, path, {"action": "save", "date": "", "price.currency": ""})
    assert answer.status_code == 422
    for input_id, sentence in expected.items():
        assert shown_by(answer.text, input_id) == [sentence], input_id
    assert "This is not in the form" not in answer.text
    assert "required field is missing" not in answer.text
    assert size(world) == before


@pytest.mark.parametrize("role, path, typed, input_id, sentence", TYPED,
                         ids=[t[3] for t in TYPED])
def test_a_mistyped_input_says_what_is_wrong_in_one_sentence(
        world: Ledger, client: FlaskClient, role: str, path: str,  # noqa: F811
        typed: dict[str, str], input_id: str, sentence: str) -> None:
    sign_in(client, role)
    before = size(world)
    answer = send(client, path, typed)
    assert answer.status_code == 422
    assert shown_by(answer.text, input_id) == [sentence]
    assert f'value="{typed.get(input_id, typed.get(input_id + ".lon"))}"' in answer.text
    assert size(world) == before


MALFORMED = [  # id, pasted text, what the page must say about it
    ("size-and-root", "alluvial.local\nnot a size\nroot?\n",
     ["line 2 should be the number of entries", "it reads 'not a size'",
      "line 3 should be the root hash", "line 4 should be 'time '"]),
    ("no-signature", "alluvial.local\n5\n" + "A" * 43 + "=\ntime 2026-01-05T10:00:00Z\n",
     ["the text ends after line 4: line 5 should be empty"]),
    ("time-and-signature", "alluvial.local\n5\n" + "A" * 43 + "=\ntime yesterday\n\nsigned\n",
     ["line 4 should be 'time ' and the moment", "it reads 'time yesterday'",
      "line 6 should be a signature", "it reads 'signed'"]),
    ("a-public-key", "alluvial.local+1a2b3c4d+AQID\n",
     ["line 1 should be the name of the log", "the text ends after line 1"]),
]


def verify(client: FlaskClient, note: str) -> Any:
    return client.post("/audit/verify", data={"checkpoint": note,
                                              "csrf_token": token_of(client, "/audit")})


@pytest.mark.parametrize("note, said", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_pasted_checkpoint_is_the_users_input_error_line_by_line(
        world: Ledger, client: FlaskClient, note: str, said: list[str]) -> None:  # noqa: F811
    sign_in(client, "auditor")
    answer = verify(client, note)
    assert answer.status_code == 422
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", answer.text)).split())
    for words in said:
        assert words in text, words
    assert "nothing was verified" in text
    assert "FAILED" not in text and "--checkpoint" not in text
    assert "verify-result" not in answer.text
    assert f">{unescape(note).rstrip()}" in unescape(answer.text)  # the text is kept


def test_a_pasted_checkpoint_that_does_not_match_fails_in_the_users_words(
        world: Ledger, client: FlaskClient) -> None:  # noqa: F811
    sign_in(client, "auditor")
    note = world.log.latest_checkpoint()
    genuine = verify(client, note)  # type: ignore[arg-type]
    assert "FAILED" not in genuine.text and "consistent with the given checkpoint" in genuine.text
    answer = verify(client, with_size(note, 3))  # type: ignore[arg-type]
    assert answer.status_code == 200
    assert "FAILED" in answer.text and "the checkpoint you pasted: " in answer.text
    assert "--checkpoint" not in answer.text


def test_verification_shows_entries_checked_out_of_the_total_as_it_goes(
        world: Ledger, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(ledger.log.verify, "STREAM_BATCH", 2)  # progress every 2 entries
    sign_in(client, "auditor")
    total = size(world)
    answer = client.post("/audit/verify", data={"csrf_token": token_of(client, "/audit")},
                         buffered=False)
    assert answer.is_streamed
    chunks = [c.decode() for c in answer.iter_encoded()]
    page = "".join(chunks)
    lines = re.findall(r"Checked ([\d,]+) of ([\d,]+) entries \((\d+)%\)", page)
    assert lines[0] == ("2", f"{total:,}", str(200 // total))
    assert [int(c) for c, _, _ in lines] == list(range(2, total + 1, 2))
    assert page.index("Checked 2 of") < page.index(f"OK: {total} entries")
    assert len(chunks) > len(lines)  # sent as it was written, not as one body
