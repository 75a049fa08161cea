"""Log keys and C2SP signed notes: known answers, roundtrips, refusals."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import InputError, VerificationError
from ledger.log.keys import (
    MAX_NOTE_BYTES,
    SigningKey,
    VerifierKey,
    load_or_create,
    open_note,
    sign_note,
)

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "rfc6962_vectors.json"
SEED = bytes(range(32))
TEXT = "alluvial.test\nsome note text\n"


@pytest.fixture(scope="module")
def notes() -> dict[str, Any]:
    if not VECTORS.exists():
        pytest.skip(f"reference vectors not found at {VECTORS}")
    return json.loads(VECTORS.read_text(encoding="utf-8"))["signed_note_vectors"]


@pytest.fixture
def key() -> SigningKey:
    return SigningKey("alluvial.test", SEED)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# Known answers


def test_c2sp_example_vkey_parses_and_its_note_opens(notes: dict[str, Any]) -> None:
    example = notes["c2sp_spec_example"]
    verifier = VerifierKey.from_vkey(example["vkey"])
    assert verifier.name == "example.com/foo"
    assert verifier.public_key.hex() == example["public_key_hex"]
    assert verifier.key_id.hex() == example["key_id"]
    assert verifier.to_vkey() == example["vkey"]
    assert open_note(example["signed_note"], verifier) == "This is an example message.\n"


def test_go_example_keys_parse(notes: dict[str, Any]) -> None:
    example = notes["go_sumdb_note_example"]
    signer = SigningKey.from_skey(example["skey"])
    assert signer.seed.hex() == example["seed_hex"]
    assert signer.to_skey() == example["skey"]
    assert signer.verifier == VerifierKey.from_vkey(example["vkey"])
    assert signer.verifier.public_key.hex() == example["public_key_hex"]
    assert signer.verifier.key_id.hex() == example["key_id"]


def test_signing_with_go_example_seed_reproduces_its_note(notes: dict[str, Any]) -> None:
    example = notes["go_sumdb_note_example"]
    signer = SigningKey("PeterNeumann", bytes.fromhex(example["seed_hex"]))
    assert sign_note(example["text"], signer) == example["signed_note"]
    verifier = VerifierKey.from_vkey(example["vkey"])
    assert open_note(example["signed_note"], verifier) == example["text"]


# Roundtrips


def test_vkey_and_skey_roundtrip(key: SigningKey) -> None:
    assert SigningKey.from_skey(key.to_skey()) == key
    assert VerifierKey.from_vkey(key.verifier.to_vkey()) == key.verifier
    assert VerifierKey.from_vkey(key.verifier.to_vkey() + "\n") == key.verifier


def test_key_id_is_the_c2sp_hash(key: SigningKey) -> None:
    public = key.verifier.public_key
    digest = hashlib.sha256(b"alluvial.test\n\x01" + public).digest()
    assert key.verifier.key_id == digest[:4]
    assert key.verifier.to_vkey().split("+")[1] == digest[:4].hex()


def test_seed_is_not_shown_in_repr(key: SigningKey) -> None:
    assert SEED.hex() not in repr(key) and str(SEED) not in repr(key)


def test_generated_keys_differ() -> None:
    assert SigningKey.generate("a.test").seed != SigningKey.generate("a.test").seed


NOTE_TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs"), include_characters="\n"))


@given(NOTE_TEXT)
def test_any_text_roundtrips_through_a_signed_note(body: str) -> None:
    key = SigningKey("alluvial.test", SEED)
    assert open_note(sign_note(body + "\n", key), key.verifier) == body + "\n"


def test_text_with_blank_lines_roundtrips(key: SigningKey) -> None:
    for text in ["a\n\nb\n", "a\n\n", "\n", "a\n\n\n"]:
        assert open_note(sign_note(text, key), key.verifier) == text


# Notes with several signatures


def test_signatures_by_other_keys_are_ignored(key: SigningKey) -> None:
    witness = SigningKey("witness.test", bytes(32))
    note = sign_note(TEXT, key)
    cosigned = note + sign_note(TEXT, witness).removeprefix(TEXT + "\n")
    assert open_note(cosigned, key.verifier) == TEXT
    assert open_note(cosigned, witness.verifier) == TEXT


def test_a_bad_signature_by_the_key_rejects_despite_a_good_one(key: SigningKey) -> None:
    note = sign_note(TEXT, key)
    forged = sign_note("other text\n", key).removeprefix("other text\n\n")
    with pytest.raises(VerificationError, match="does not verify"):
        open_note(note + forged, key.verifier)


OTHER_SIGNERS = {
    "same-name-other-key": SigningKey("alluvial.test", bytes(32)),
    "same-key-other-name": SigningKey("other.test", SEED),
}


@pytest.mark.parametrize("signer", OTHER_SIGNERS.values(), ids=OTHER_SIGNERS.keys())
def test_a_note_signed_by_another_key_is_rejected(key: SigningKey, signer: SigningKey) -> None:
    with pytest.raises(VerificationError, match=r"no signature by key alluvial\.test\+"):
        open_note(sign_note(TEXT, signer), key.verifier)


def test_same_name_and_key_id_but_other_key_fails_verification(key: SigningKey) -> None:
    """A colliding key ID is only an identifier: the signature still has to verify."""
    note = sign_note(TEXT, SigningKey("alluvial.test", bytes(32)))
    line = note.removeprefix(TEXT + "\n")
    signature = base64.b64decode(line.split(" ")[2])
    forged = f"\u2014 alluvial.test {b64(key.verifier.key_id + signature[4:])}\n"
    with pytest.raises(VerificationError, match="does not verify"):
        open_note(TEXT + "\n" + forged, key.verifier)


# Malformed notes


def sig_line(key: SigningKey) -> str:
    return sign_note(TEXT, key).removeprefix(TEXT + "\n")


MALFORMED_NOTES = {
    "no-signatures": lambda k: TEXT,
    "no-blank-line": lambda k: TEXT + sig_line(k),
    "blank-line-but-no-signature": lambda k: TEXT + "\n",
    "no-final-newline": lambda k: sign_note(TEXT, k)[:-1],
    "hyphen-for-em-dash": lambda k: TEXT + "\n" + sig_line(k).replace("\u2014", "--"),
    "two-spaces": lambda k: TEXT + "\n" + sig_line(k).replace(" ", "  ", 1),
    "bad-base64": lambda k: TEXT + "\n" + sig_line(k)[:-3] + "!\n",
    "non-canonical-base64": lambda k: TEXT + "\n" + sig_line(k)[:-3] + "R=\n",
    "short-signature": lambda k: TEXT + "\n\u2014 alluvial.test AAAA\n",
    "trailing-junk-line": lambda k: sign_note(TEXT, k) + "junk\n",
    "control-character": lambda k: sign_note(TEXT, k).replace("some", "so\tme"),
    "carriage-return": lambda k: sign_note(TEXT, k).replace("\n", "\r\n"),
    "lone-surrogate": lambda k: sign_note(TEXT, k).replace("some", "so\udc80"),
    "too-many-signatures": lambda k: sign_note(TEXT, k) + sig_line(k) * 100,
    "too-large": lambda k: "x" * MAX_NOTE_BYTES + "\n\n" + sig_line(k),
}


@pytest.mark.parametrize("make", MALFORMED_NOTES.values(), ids=MALFORMED_NOTES.keys())
def test_malformed_notes_are_rejected(key: SigningKey, make: Any) -> None:
    with pytest.raises(VerificationError, match="malformed note"):
        open_note(make(key), key.verifier)


def test_a_second_spelling_of_the_same_signature_is_rejected(key: SigningKey) -> None:
    """The last base64 digit's padding bits carry nothing: flipping them keeps the bytes."""
    note = sign_note(TEXT, key)
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = note[:-3] + digits[digits.index(note[-3]) + 1] + note[-2:]
    signature, twin_signature = (n.split(" ")[-1] for n in (note, twin))
    assert base64.b64decode(twin_signature) == base64.b64decode(signature)
    with pytest.raises(VerificationError, match="not canonical"):
        open_note(twin, key.verifier)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("no newline", "end with a newline", id="no-final-newline"),
        pytest.param("", "end with a newline", id="empty"),
        pytest.param("tab\there\n", "control character", id="control-character"),
    ],
)
def test_sign_note_refuses_text_no_note_can_carry(key: SigningKey, text: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        sign_note(text, key)


# Malformed keys

GOOD_B64 = b64(b"\x01" + SigningKey("alluvial.test", SEED).verifier.public_key)


def vkey(name: str = "alluvial.test", key_id: str | None = None, raw: str = GOOD_B64) -> str:
    if key_id is None:
        key_id = SigningKey("alluvial.test", SEED).verifier.key_id.hex()
    return f"{name}+{key_id}+{raw}"


BAD_VKEYS = [
    pytest.param(vkey(raw=GOOD_B64[:-1] + "!"), "not valid base64", id="bad-base64"),
    pytest.param(vkey(raw=b64(b"\x02" + bytes(32))), "algorithm byte is 0x02", id="wrong-alg"),
    pytest.param(vkey(raw=""), "algorithm byte is missing", id="empty-key"),
    pytest.param(vkey(raw=b64(b"\x01" + bytes(31))), "31 bytes long", id="short-key"),
    pytest.param(vkey(raw=b64(b"\x01" + bytes(33))), "33 bytes long", id="long-key"),
    pytest.param(vkey(name=""), "non-empty", id="empty-name"),
    pytest.param(vkey(name="a b"), "spaces", id="space-in-name"),
    pytest.param(vkey(name="a\u00a0b"), "spaces", id="nbsp-in-name"),
    pytest.param(vkey(name="a\u2003b"), "spaces", id="em-space-in-name"),
    pytest.param(vkey(name="a\tb"), "spaces", id="tab-in-name"),
    pytest.param(vkey(key_id="c0ffee"), "not 8 hexadecimal digits", id="short-key-id"),
    pytest.param(vkey(key_id="xyz01234"), "not 8 hexadecimal digits", id="non-hex-key-id"),
    pytest.param(vkey(key_id="00000000"), "does not match", id="mismatched-key-id"),
    pytest.param(vkey(name="other.test"), "does not match", id="renamed"),
    pytest.param("alluvial.test", "form", id="no-plus"),
    pytest.param("alluvial.test+abcd0123", "form", id="one-plus"),
]


@pytest.mark.parametrize(("text", "problem"), BAD_VKEYS)
def test_malformed_vkeys_are_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        VerifierKey.from_vkey(text)


def test_a_plus_in_the_name_is_refused() -> None:
    with pytest.raises(InputError, match=r"must not contain '\+'"):
        VerifierKey("a+b", bytes(32))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("PUBLIC+KEY+a+00000000+AQ==", "form", id="not-private"),
        pytest.param(vkey(), "form", id="a-vkey"),
        pytest.param("PRIVATE+KEY+a+00000000+" + b64(b"\x01" + SEED), "does not match", id="id"),
        pytest.param("PRIVATE+KEY+a+00000000+" + b64(b"\x02" + SEED), "0x02", id="wrong-alg"),
    ],
)
def test_malformed_skeys_are_refused(text: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        SigningKey.from_skey(text)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_keys_must_be_32_bytes(size: int) -> None:
    with pytest.raises(InputError, match="32 bytes"):
        VerifierKey("a.test", bytes(size))
    with pytest.raises(InputError, match="32 bytes"):
        SigningKey("a.test", bytes(size))


# The key file


def test_load_or_create_creates_a_private_file_and_reloads_it(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "nested" / "log.skey"
    created = load_or_create(path, "alluvial.test")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == created.to_skey() + "\n"
    assert load_or_create(path, "alluvial.test") == created
    assert [p.name for p in path.parent.iterdir()] == ["log.skey"]


def test_load_or_create_refuses_a_changed_origin(tmp_path: Path) -> None:
    path = tmp_path / "log.skey"
    load_or_create(path, "alluvial.test")
    with pytest.raises(InputError, match="origin changed") as refused:
        load_or_create(path, "other.test")
    assert "'alluvial.test'" in str(refused.value) and "'other.test'" in str(refused.value)


def test_load_or_create_refuses_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "log.skey"
    path.write_text("not a key\n")
    with pytest.raises(InputError, match="malformed"):
        load_or_create(path, "alluvial.test")


def test_load_or_create_refuses_a_bad_name_without_writing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="spaces"):
        load_or_create(tmp_path / "log.skey", "bad name")
    assert not (tmp_path / "log.skey").exists()
