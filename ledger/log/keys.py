"""The log's Ed25519 key pair and C2SP signed notes (c2sp.org/signed-note).

A key is named (the log origin, SPEC 3) and identified by a 4-byte key ID, so a note can
carry signatures by several keys (the log's, witnesses') and a verifier picks out its
own by name and ID. Text forms follow Go's golang.org/x/mod/sumdb/note, so the vkey
printed by `alluvial checkpoint --vkey` works with other tlog tools.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import InputError, Said, VerificationError
from ledger.i18n import N_

ED25519 = 0x01  # signed-note signature type byte for Ed25519
MAX_NOTE_BYTES = 1 << 20  # signed-note: verifiers SHOULD bound a note's size
MAX_SIGNATURES = 100  # ... and must accept at least 16 signatures
SIG_PREFIX = "\u2014 "  # em dash, space
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
# signed-note: no control character but newline (a regex: a byte loop cost 0.2 ms a note).
_CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f]")


def check_name(name: object) -> str:
    """Refuse a key name signed-note forbids: empty, '+', Unicode spaces (or controls)."""
    if not isinstance(name, str) or not name:
        raise InputError("key name must be a non-empty string.")
    if "+" in name:
        raise InputError(f"key name {name!r} must not contain '+'.")
    if " " in name or not name.isprintable():  # Unicode spaces, controls, surrogates
        raise InputError(f"key name {name!r} must not contain spaces or control characters.")
    return name


def decode_base64(text: str, what: str) -> bytes:
    """Standard base64, canonical only: one text per byte string, so no malleability."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise InputError(f"{what} is not valid base64.") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise InputError(f"{what} is not canonical base64.")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _key_id(name: str, public_key: bytes) -> bytes:
    # signed-note: key ID = SHA-256(key name || 0x0A || 0x01 || public key)[:4]
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def _public_of_seed(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def _parse_key(parts: list[str], what: str, public: Callable[[bytes], bytes]) -> tuple[str, bytes]:
    """Check name, 8-hex-digit key ID, base64(0x01 || 32 bytes) and that the ID matches."""
    name, key_id, key_b64 = parts
    check_name(name)
    if not _HEX8.fullmatch(key_id):
        raise InputError(f"{what}: key ID {key_id!r} is not 8 hexadecimal digits.")
    raw = decode_base64(key_b64, f"{what}: key")
    if not raw or raw[0] != ED25519:
        alg = f"0x{raw[0]:02x}" if raw else "missing"
        raise InputError(f"{what}: algorithm byte is {alg}, expected 0x01 (Ed25519).")
    if len(raw) != 33:
        raise InputError(f"{what}: key is {len(raw) - 1} bytes long, Ed25519 needs 32.")
    if _key_id(name, public(raw[1:])) != bytes.fromhex(key_id):
        raise InputError(f"{what}: key ID {key_id} does not match its name and key.")
    return name, raw[1:]


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key that checks signatures (the C2SP verifier key)."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        check_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise InputError("an Ed25519 public key must be 32 bytes.")

    @cached_property
    def key_id(self) -> bytes:
        """The 4-byte ID that, with the name, picks this key's signature line out of a note."""
        return _key_id(self.name, self.public_key)

    @cached_property
    def _public(self) -> Ed25519PublicKey:
        # Loaded once: verify checks every stored checkpoint with the same key.
        return Ed25519PublicKey.from_public_bytes(self.public_key)

    def __getstate__(self) -> dict[str, object]:
        # The fields only: the cached key object does not pickle.
        return {"name": self.name, "public_key": self.public_key}

    def to_vkey(self) -> str:
        """``<name>+<key id hex>+<base64(0x01 || public key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ED25519]) + self.public_key)}"

    @classmethod
    def from_vkey(cls, text: str) -> VerifierKey:
        """Parse a verifier key, refusing it unless its key ID matches its name and key."""
        parts = text.strip().split("+", 2)  # base64 may itself contain "+"
        if len(parts) != 3:
            raise InputError("verifier key must have the form <name>+<key id>+<base64 key>.")
        return cls(*_parse_key(parts, "verifier key", lambda public_key: public_key))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when signature is this key's Ed25519 signature of message."""
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A named Ed25519 private key, kept as its 32-byte seed (never shown in repr)."""

    name: str
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_name(self.name)
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise InputError("an Ed25519 seed must be 32 bytes.")

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        """A fresh key from the OS random source."""
        return cls(name, os.urandom(32))

    @cached_property
    def verifier(self) -> VerifierKey:
        """The public half, under the same name."""
        return VerifierKey(self.name, _public_of_seed(self.seed))

    @cached_property
    def _private(self) -> Ed25519PrivateKey:
        # Built once: every write signs a checkpoint.
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature (deterministic, RFC 8032)."""
        return self._private.sign(message)

    def to_skey(self) -> str:
        """Go note private key: ``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>``."""
        key_id = self.verifier.key_id.hex()
        return f"PRIVATE+KEY+{self.name}+{key_id}+{_b64(bytes([ED25519]) + self.seed)}"

    @classmethod
    def from_skey(cls, text: str) -> SigningKey:
        """Parse a Go note private key, refusing it unless its key ID matches."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise InputError("signing key must have the form PRIVATE+KEY+<name>+<id>+<key>.")
        return cls(*_parse_key(parts[2:], "signing key", _public_of_seed))


def _write_new_key(path: Path, name: str) -> None:
    """Write a fresh key to path (0600) unless another process has just written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(SigningKey.generate(name).to_skey() + "\n")
        os.link(tmp, path)  # atomic, and never replaces a key already there
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create(path: Path, name: str) -> SigningKey:
    """The log key stored at path, created (mode 0600, with its directories) on first use.

    A stored key under another name is refused: the key name is the log origin, and
    checkpoints signed under a new origin would not verify against the published vkey.
    """
    check_name(name)
    try:
        if not path.exists():
            _write_new_key(path, name)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read or create the log key file {path}: {exc}") from exc
    try:
        key = SigningKey.from_skey(text)
    except InputError as exc:
        raise InputError(f"the log key file {path} is malformed: {exc}") from exc
    if key.name != name:
        raise InputError(
            f"the log key at {path} is named {key.name!r} but the log origin is {name!r}: "
            "the origin changed, and it must not once the log exists (it names the log key)."
        )
    return key


def _check_note_chars(text: str) -> bytes:
    """signed-note: valid UTF-8, no control character but newline, bounded size."""
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError.said(N_("the note is not valid UTF-8.")) from exc
    if len(raw) > MAX_NOTE_BYTES:
        raise InputError.said(N_("the note is larger than %(max)s bytes."),
                              {"max": MAX_NOTE_BYTES})
    if _CONTROL.search(raw):
        raise InputError.said(N_("the note contains a control character other than newline."))
    return raw


def sign_note(text: str, key: SigningKey) -> str:
    """text, a blank line and key's signature line: ``— <name> base64(key ID || sig)``."""
    raw = _check_note_chars(text)
    if not text.endswith("\n"):
        raise InputError("note text must end with a newline.")
    signature = key.verifier.key_id + key.sign(raw)
    return f"{text}\n{SIG_PREFIX}{key.name} {_b64(signature)}\n"


def note_signers(note: str) -> list[str]:
    """``<name>+<key id hex>`` of each well-formed signature line of a note (unverified):
    what a message names when a note is signed by a key other than the one expected."""
    signers = []
    for line in note[note.rfind("\n\n") + 2:].splitlines():
        name, _, sig_b64 = line.removeprefix(SIG_PREFIX).partition(" ")
        try:
            signature = decode_base64(sig_b64, "signature")
        except InputError:
            continue
        if line.startswith(SIG_PREFIX) and len(signature) >= 4:
            signers.append(f"{name}+{signature[:4].hex()}")
    return signers


def open_note(note: str, key: VerifierKey) -> str:
    """The text of note, once a signature by key (same name and key ID) verifies.

    Signatures by other keys (witnesses, a rotated key) are ignored, as signed-note
    requires; a failing signature by key rejects the whole note.
    """
    try:
        _check_note_chars(note)
    except InputError as exc:
        raise VerificationError.said(N_("malformed note: %(why)s"), {"why": Said.of(exc)}
                                     ) from exc
    cut = note.rfind("\n\n")  # signed-note: the text ends at the last blank line
    if not note.endswith("\n") or cut < 0 or cut + 2 == len(note):
        raise VerificationError.said(
            N_("malformed note: no blank line followed by signature lines."))
    text, lines = note[: cut + 1], note[cut + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError.said(N_("malformed note: more than %(max)s signatures."),
                                     {"max": MAX_SIGNATURES})
    verdicts = []
    for number, line in enumerate(lines, 1):
        name, _, sig_b64 = line.removeprefix(SIG_PREFIX).partition(" ")
        try:
            if not line.startswith(SIG_PREFIX):
                raise InputError("it does not start with an em dash and a space.")
            check_name(name)
            signature = decode_base64(sig_b64, "its signature")
        except InputError as exc:
            raise VerificationError(f"malformed note: signature line {number}: {exc}") from exc
        if len(signature) < 5:
            raise VerificationError.said(
                N_("malformed note: signature line %(number)s is too short."),
                {"number": number})
        if name == key.name and hmac.compare_digest(signature[:4], key.key_id):
            verdicts.append(key.verify(text.encode("utf-8"), signature[4:]))
    who = f"{key.name}+{key.key_id.hex()}"
    if not verdicts:
        raise VerificationError.said(N_("the note carries no signature by key %(key)s."),
                                     {"key": who})
    if not all(verdicts):
        raise VerificationError.said(
            N_("the note's signature by key %(key)s does not verify."), {"key": who})
    return text
