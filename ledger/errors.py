"""One error root for the ledger, split by what failed.

The CLI maps these to exit codes and the web layer to problem+json status codes,
each in one table; nothing else inspects error classes.
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose.

    ``rule`` is the SPEC 4 rule id a refusal names (``SCHEMA``, ``HOLDER``...),
    or a short code for errors that are not custody rules.
    """

    rule: str = "ERROR"

    def __init__(self, message: str, *, rule: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        if rule is not None:
            self.rule = rule
        self.data: dict[str, Any] = data

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword arguments survive pickling (ingest checks lines in another process).
        return (_rebuild, (type(self), self.message, self.rule, self.data))


def _rebuild(cls: type[LedgerError], message: str, rule: str,
             data: dict[str, Any]) -> LedgerError:
    error = cls.__new__(cls)
    LedgerError.__init__(error, message, rule=rule, **data)
    return error


class InputError(LedgerError):
    """Input that is malformed: schema, geometry, a file that cannot be read."""

    rule = "SCHEMA"


class RuleViolation(LedgerError):
    """A well-formed event that a custody rule of SPEC 4 refuses."""


class NotFound(LedgerError):
    """Something asked for does not exist (an entry, a parcel, a certificate)."""

    rule = "NOT_FOUND"


class Conflict(LedgerError):
    """An identifier or event_id already taken with other content."""

    rule = "EVENT_ID_CONFLICT"


class PermissionDenied(LedgerError):
    """The actor's role may not do this."""

    rule = "ROLE"


class VerificationError(LedgerError):
    """A proof, signature, checkpoint or the hash chain does not check out.

    ``seq`` names the first bad entry when an entry is to blame.
    """

    rule = "VERIFICATION"
