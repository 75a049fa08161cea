"""Signed checkpoints: known answers, roundtrips, strict parsing and tampering."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import InputError, VerificationError
from ledger.log.checkpoint import MAX_SIZE, Checkpoint
from ledger.log.keys import SigningKey, sign_note

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "rfc6962_vectors.json"
ORIGIN = "alluvial.test"
KEY = SigningKey(ORIGIN, bytes(range(32)))
ROOT = bytes(range(32))
ROOT_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
MOMENT = datetime(2026, 11, 24, 8, 30, 0, 123456, tzinfo=UTC)
CHECKPOINT = Checkpoint(ORIGIN, 3, ROOT, MOMENT)
TEXT = f"{ORIGIN}\n3\n{ROOT_B64}\ntime 2026-11-24T08:30:00.123456Z\n"


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    if not VECTORS.exists():
        pytest.skip(f"reference vectors not found at {VECTORS}")
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    return vectors["signed_note_vectors"]["checkpoint_for_reference_tree"]


# Known answers


def test_reference_tree_checkpoint_is_reproduced(reference: dict[str, Any]) -> None:
    key = SigningKey(reference["origin"], bytes.fromhex(reference["signer_seed_hex"]))
    assert key.verifier.to_vkey() == reference["vkey"]
    assert key.verifier.key_id.hex() == reference["key_id"]
    assert sign_note(reference["note_text"], key) == reference["signed_note"]
    root = bytes.fromhex(reference["root_hash_hex"])
    ours = Checkpoint(reference["origin"], reference["tree_size"], root, MOMENT)
    assert ours.to_text() == reference["note_text"] + "time 2026-11-24T08:30:00.123456Z\n"


def test_a_checkpoint_without_time_line_is_refused(reference: dict[str, Any]) -> None:
    """The reference vector has no time line; SPEC 3 checkpoints must carry one."""
    key = SigningKey(reference["origin"], bytes.fromhex(reference["signer_seed_hex"]))
    with pytest.raises(VerificationError, match="time line"):
        Checkpoint.from_signed(reference["signed_note"], key.verifier)


def test_text_form() -> None:
    assert CHECKPOINT.to_text() == TEXT
    assert Checkpoint.from_text(TEXT) == CHECKPOINT


def test_whole_seconds_have_no_fraction() -> None:
    checkpoint = Checkpoint(ORIGIN, 0, ROOT, MOMENT.replace(microsecond=0))
    assert checkpoint.to_text().endswith("\ntime 2026-11-24T08:30:00Z\n")


def test_other_timezones_are_stored_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    checkpoint = Checkpoint(ORIGIN, 3, ROOT, datetime(2026, 11, 24, 10, 30, tzinfo=plus_two))
    assert checkpoint.time.utcoffset() == timedelta(0)
    assert checkpoint.to_text().endswith("\ntime 2026-11-24T08:30:00Z\n")


# Roundtrips


@given(
    origin=st.text(st.characters(exclude_categories=("C", "Z")), min_size=1),
    size=st.integers(0, MAX_SIZE),
    root=st.binary(min_size=32, max_size=32),
    moment=st.datetimes(timezones=st.just(UTC)),
)
def test_text_roundtrips(origin: str, size: int, root: bytes, moment: datetime) -> None:
    checkpoint = Checkpoint(origin, size, root, moment)
    text = checkpoint.to_text()
    assert Checkpoint.from_text(text) == checkpoint
    assert Checkpoint.from_text(text).to_text() == text


def test_signed_roundtrip() -> None:
    note = CHECKPOINT.sign(KEY)
    assert note.startswith(TEXT + "\n\u2014 alluvial.test ")
    assert Checkpoint.from_signed(note, KEY.verifier) == CHECKPOINT


def test_witness_cosignatures_are_ignored() -> None:
    witness = SigningKey("witness.test", bytes(32))
    cosigned = CHECKPOINT.sign(KEY) + sign_note(TEXT, witness).removeprefix(TEXT + "\n")
    assert Checkpoint.from_signed(cosigned, KEY.verifier) == CHECKPOINT


# Tampering


@pytest.mark.parametrize("mask", [0x01, 0x20, 0x80], ids=["flip-bit-0", "flip-bit-5", "flip-bit-7"])
def test_every_single_byte_change_is_rejected(mask: int) -> None:
    note = CHECKPOINT.sign(KEY).encode()
    assert Checkpoint.from_signed(note.decode(), KEY.verifier) == CHECKPOINT
    accepted = []
    for position in range(len(note)):
        changed = bytearray(note)
        changed[position] ^= mask
        try:
            Checkpoint.from_signed(bytes(changed).decode(errors="surrogateescape"), KEY.verifier)
        except VerificationError:
            continue
        accepted.append(position)
    assert accepted == []


SIGNERS = {
    "same-name-other-key": SigningKey(ORIGIN, bytes(32)),
    "other-name-same-key": SigningKey("other.test", bytes(range(32))),
}


@pytest.mark.parametrize("signer", SIGNERS.values(), ids=SIGNERS.keys())
def test_a_checkpoint_signed_by_another_key_is_rejected(signer: SigningKey) -> None:
    note = sign_note(TEXT, signer)
    with pytest.raises(VerificationError, match="no signature by key alluvial"):
        Checkpoint.from_signed(note, KEY.verifier)


def test_a_checkpoint_of_another_origin_is_rejected() -> None:
    note = sign_note(TEXT.replace(ORIGIN, "elsewhere.test"), KEY)
    with pytest.raises(VerificationError, match=r"origin 'elsewhere\.test'"):
        Checkpoint.from_signed(note, KEY.verifier)


def test_a_signed_but_malformed_checkpoint_is_rejected() -> None:
    note = sign_note(TEXT.replace("\n3\n", "\n03\n"), KEY)
    with pytest.raises(VerificationError, match=r"malformed.*leading zeros"):
        Checkpoint.from_signed(note, KEY.verifier)


def test_only_the_log_key_signs() -> None:
    with pytest.raises(InputError, match="must be the log origin"):
        CHECKPOINT.sign(SigningKey("other.test", bytes(32)))


# Refusals


BAD_FIELDS = {
    "empty-origin": {"origin": ""},
    "newline-in-origin": {"origin": "a\nb"},
    "negative-size": {"size": -1},
    "bool-size": {"size": True},
    "float-size": {"size": 3.0},
    "huge-size": {"size": MAX_SIZE + 1},
    "short-root": {"root_hash": bytes(31)},
    "long-root": {"root_hash": bytes(33)},
    "text-root": {"root_hash": ROOT_B64},
    "naive-time": {"time": datetime(2026, 11, 24, 8, 30)},
    "date-not-datetime": {"time": MOMENT.date()},
}


@pytest.mark.parametrize("change", BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_invalid_checkpoints_cannot_be_built(change: dict[str, Any]) -> None:
    fields = {"origin": ORIGIN, "size": 3, "root_hash": ROOT, "time": MOMENT} | change
    with pytest.raises(InputError, match="checkpoint"):
        Checkpoint(**fields)


def edit(old: str, new: str) -> str:
    assert old in TEXT
    return TEXT.replace(old, new, 1)


TIME = "time 2026-11-24T08:30:00.123456Z"
BAD_TEXTS = {
    "no-final-newline": (TEXT[:-1], "end with a newline"),
    "only-origin": (f"{ORIGIN}\n", "origin, size and root"),
    "empty-origin": (TEXT.removeprefix(ORIGIN), "non-empty"),
    "size-leading-zero": (edit("\n3\n", "\n03\n"), "leading zeros"),
    "size-plus-sign": (edit("\n3\n", "\n+3\n"), "leading zeros"),
    "size-space": (edit("\n3\n", "\n 3\n"), "leading zeros"),
    "size-underscore": (edit("\n3\n", "\n1_0\n"), "leading zeros"),
    "size-arabic-digit": (edit("\n3\n", "\n\u0663\n"), "leading zeros"),
    "size-empty": (edit("\n3\n", "\n\n"), "leading zeros"),
    "size-too-big": (edit("\n3\n", f"\n{MAX_SIZE + 1}\n"), "outside"),
    "root-bad-base64": (edit(ROOT_B64, ROOT_B64[:-2] + "!="), "not valid base64"),
    "root-non-canonical": (edit(ROOT_B64, ROOT_B64[:-2] + "9="), "not canonical"),
    "root-short": (edit(ROOT_B64, base64.b64encode(bytes(31)).decode()), "32 bytes"),
    "no-time-line": (edit(TIME + "\n", ""), "time line"),
    "time-line-empty": (edit(TIME, ""), "time line"),
    "two-time-lines": (TEXT + TIME + "\n", "second time line"),
    "other-extension": (TEXT + "note hello\n", "'note hello' is not accepted"),
    "extension-before-time": (edit(TIME, "x\n" + TIME), "time line"),
    "blank-line-at-end": (TEXT + "\n", "is not accepted"),
    "time-zero-fraction": (edit(".123456Z", ".000000Z"), "RFC 3339"),
    "time-millis": (edit(".123456Z", ".123Z"), "RFC 3339"),
    "time-offset": (edit(".123456Z", ".123456+00:00"), "RFC 3339"),
    "time-lowercase-z": (edit(".123456Z", ".123456z"), "RFC 3339"),
    "time-space": (edit("24T08", "24 08"), "RFC 3339"),
    "time-impossible-date": (edit("11-24T", "02-30T"), "not a valid date"),
    "time-leap-second": (edit(":00.", ":60."), "not a valid date"),
    "time-two-spaces": (edit("time ", "time  "), "RFC 3339"),
}


@pytest.mark.parametrize(("text", "problem"), BAD_TEXTS.values(), ids=BAD_TEXTS.keys())
def test_malformed_text_is_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        Checkpoint.from_text(text)
