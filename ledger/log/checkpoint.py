"""Signed checkpoints of the log (SPEC 3) in the C2SP tlog-checkpoint format.

The note text is the origin, the tree size, the base64 root hash and one extension line
``time <RFC 3339 UTC>``, each ending in a newline, signed as a C2SP signed note by the
log key, whose name is the origin.

Parsing is strict and canonical, so exactly one text parses to a given checkpoint and
``from_text(text).to_text() == text``: the size has no leading zeros, the root is
canonical base64 of 32 bytes, the time is ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` with six
fraction digits or none (none when they would all be zero), and the ``time`` line is
the only extension line accepted. Other extension lines are rejected rather than
ignored: a signed line this module would drop is a statement nobody checks.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ledger.errors import InputError, Said, VerificationError
from ledger.i18n import N_
from ledger.log.keys import (
    SIG_PREFIX,
    SigningKey,
    VerifierKey,
    check_name,
    decode_base64,
    open_note,
    sign_note,
)

MAX_SIZE = 2**63 - 1  # an SQL BIGINT, and Go's tlog int64
_SIZE = re.compile(r"0|[1-9][0-9]*")
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{6}))?Z"
)
_TIME_PREFIX = "time "


def _format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: microseconds when there are any, else whole seconds."""
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _parse_time(text: str) -> datetime:
    """The inverse of _format_time, refusing any other spelling of the same moment."""
    match = _TIME.fullmatch(text)
    if not match or match[7] == "000000":
        raise InputError(
            f"checkpoint time {text!r} is not RFC 3339 UTC as YYYY-MM-DDTHH:MM:SS[.ffffff]Z."
        )
    year, month, day, hour, minute, second, micro = (int(g) for g in match.groups("0"))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError as exc:
        raise InputError(f"checkpoint time {text!r} is not a valid date and time.") from exc


@dataclass(frozen=True)
class Checkpoint:
    """The log's statement that, at ``time``, its first ``size`` entries have ``root_hash``.

    ``time`` must be timezone-aware; it is stored converted to UTC, at microsecond
    precision (the precision of the text form).
    """

    origin: str
    size: int
    root_hash: bytes
    time: datetime

    def __post_init__(self) -> None:
        origin = self.origin
        if not isinstance(origin, str) or not origin:
            raise InputError("checkpoint origin must be a non-empty string.")
        if not origin.isprintable():  # tlog-checkpoint: one line; signed-note: no controls
            raise InputError(f"checkpoint origin {origin!r} must not contain control characters.")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise InputError(f"checkpoint size must be an integer, not {self.size!r}.")
        if not 0 <= self.size <= MAX_SIZE:
            raise InputError(f"checkpoint size {self.size} is outside 0..{MAX_SIZE}.")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != 32:
            raise InputError("checkpoint root hash must be 32 bytes (SHA-256).")
        if not isinstance(self.time, datetime) or self.time.utcoffset() is None:
            raise InputError("checkpoint time must be a timezone-aware datetime.")
        object.__setattr__(self, "time", self.time.astimezone(UTC))

    def to_text(self) -> str:
        """The note text: origin, size, base64 root and ``time`` lines."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        return f"{self.origin}\n{self.size}\n{root}\n{_TIME_PREFIX}{_format_time(self.time)}\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse the note text of a checkpoint (not yet verified: see from_signed)."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise InputError("checkpoint text must end with a newline.")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise InputError("checkpoint text must have origin, size and root hash lines.")
        origin, size, root, *extensions = lines
        if not _SIZE.fullmatch(size):
            raise InputError(f"checkpoint size {size!r} is not a decimal without leading zeros.")
        try:
            root_hash = decode_base64(root, "checkpoint root hash")
        except InputError as exc:
            raise InputError(f"{exc} ({root!r})") from exc
        if not extensions or not extensions[0].startswith(_TIME_PREFIX):
            raise InputError("checkpoint must have a time line right after the root hash line.")
        if len(extensions) > 1:
            extra = extensions[1]
            what = "a second time line" if extra.startswith(_TIME_PREFIX) else repr(extra)
            raise InputError(f"checkpoint extension line {what} is not accepted (only time).")
        moment = _parse_time(extensions[0].removeprefix(_TIME_PREFIX))
        return cls(origin=origin, size=int(size), root_hash=root_hash, time=moment)

    def sign(self, key: SigningKey) -> str:
        """This checkpoint as a note signed by the log key, which must be named the origin."""
        if key.name != self.origin:
            raise InputError(
                f"key {key.name!r} cannot sign a checkpoint of {self.origin!r}: "
                "the log key's name must be the log origin."
            )
        return sign_note(self.to_text(), key)

    @classmethod
    def from_signed(cls, note: str, key: VerifierKey) -> Checkpoint:
        """The checkpoint in note, once key's signature verifies and key names its origin."""
        text = open_note(note, key)
        try:
            checkpoint = cls.from_text(text)
        except InputError as exc:
            raise VerificationError.said(N_("the signed checkpoint is malformed: %(why)s"),
                                         {"why": Said.of(exc)}) from exc
        if checkpoint.origin != key.name:
            raise VerificationError.said(
                N_("the checkpoint is for origin %(origin)s, not for the log %(log)s whose key "
                   "signed it."), {"origin": repr(checkpoint.origin), "log": repr(key.name)})
        return checkpoint


_SHAPE = tuple(Said.said(shape) for shape in (  # what each line of a signed checkpoint
    # holds, in plain words (SPEC 3): what "line N should be" names, said by the page
    N_("the name of the log (its origin, e.g. alluvial.local)"),
    N_("the number of entries, a whole number such as 3766"),
    N_("the root hash: 44 characters of base64 ending in '='"),
    N_("'time ' and the moment it was signed, e.g. time 2026-01-05T10:00:00Z"),
    N_("empty: a blank line comes before the signatures"),
))


def pasted_problems(note: str) -> list[tuple[int, Said]]:
    """What is wrong with the form of a signed checkpoint someone pasted, line by line
    (number, sentence), before any key is tried: an empty list when it is well formed.

    The sentences name no command or flag: they are for whoever typed the text. Each is a
    :class:`Said`, which the auditor's page says in its language (issue 19)."""
    lines = note.removesuffix("\n").split("\n")
    found: list[tuple[int, Said]] = []

    def wrong(number: int, why: Said) -> None:
        found.append((number, Said.said(N_("line %(number)s should be %(shape)s; %(why)s"),
                                        {"number": number, "shape": _SHAPE[number - 1],
                                         "why": why})))

    for number, line in enumerate(lines[:5], 1):
        shown = (Said.said(N_("it reads %(text)s."), {"text": repr(line[:60])}) if line
                 else Said.said(N_("it is empty.")))
        try:
            if number == 1:
                check_name(line)
            elif number == 2 and not (_SIZE.fullmatch(line) and int(line) <= MAX_SIZE):
                wrong(number, shown)
            elif number == 3 and len(decode_base64(line, "the root hash")) != 32:
                wrong(number, Said.said(N_("it holds %(bytes)s bytes, not 32."),
                                        {"bytes": len(decode_base64(line, "root"))}))
            elif number == 4:
                if not line.startswith(_TIME_PREFIX):
                    raise InputError(shown)
                _parse_time(line.removeprefix(_TIME_PREFIX))
            elif number == 5 and line:
                wrong(number, Said.said(N_("it reads %(text)s (only the time line follows "
                                           "the root)."), {"text": repr(line[:60])}))
        except InputError:
            wrong(number, shown)
    if len(lines) < 5:
        found.append((len(lines) + 1, Said.said(
            N_("the text ends after line %(last)s: line %(number)s should be %(shape)s."),
            {"last": len(lines), "number": len(lines) + 1, "shape": _SHAPE[len(lines)]})))
    elif len(lines) == 5:
        found.append((6, Said.said(N_(
            "the text ends before its signature: line 6 should be an em dash (\u2014), a "
            "space, the key name, a space and the signature in base64."))))
    for number, line in enumerate(lines[5:], 6):
        name, _, signature = line.removeprefix(SIG_PREFIX).partition(" ")
        try:
            if not line.startswith(SIG_PREFIX):
                raise InputError("no em dash")
            check_name(name)
            decode_base64(signature, "signature")
        except InputError:
            found.append((number, Said.said(N_(
                "line %(number)s should be a signature: an em dash (\u2014), a space, the key "
                "name, a space and the signature in base64; it reads %(text)s."),
                {"number": number, "text": repr(line[:60])})))
    return found
