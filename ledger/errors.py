"""One error root for the ledger, split by what failed.

The CLI maps these to exit codes and the web layer to problem+json status codes,
each in one table; nothing else inspects error classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

from ledger.i18n import N_


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose.

    ``rule`` is the SPEC 4 rule id a refusal names (``SCHEMA``, ``HOLDER``...),
    or a short code for errors that are not custody rules.
    """

    rule: str = "ERROR"

    def __init__(self, message: str, *, rule: str | None = None, template: str | None = None,
                 params: dict[str, Any] | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        if rule is not None:
            self.rule = rule
        self.data: dict[str, Any] = data
        # Issue 19: the sentence a page shows, as a template marked with ledger.i18n.N_ and
        # its named values (``params``), so that the web layer can say it in the page's
        # language. The message ends with ``template % params``; whatever precedes it (a
        # field path) is not translated. None for messages no page shows.
        self.template = template
        self.params: dict[str, Any] = dict(params or {})

    @classmethod
    def said(cls, template: str, values: dict[str, Any] | None = None, *, lead: str = "",
             rule: str | None = None, **data: Any) -> Self:
        """The error whose message is ``lead`` then ``template % values`` (``template``
        marked with ``N_``), keeping both for a page to say it in another language."""
        values = values or {}
        return cls(lead + template % values, rule=rule, template=template, params=values,
                   **data)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword arguments, template and params survive pickling (ingest checks lines in
        # another process).
        return (_rebuild, (type(self), self.message, self.rule, self.data, self.template,
                           self.params))


def _rebuild(cls: type[LedgerError], message: str, rule: str, data: dict[str, Any],
             template: str | None = None, params: dict[str, Any] | None = None) -> LedgerError:
    error = cls.__new__(cls)
    LedgerError.__init__(error, message, rule=rule, template=template, params=params, **data)
    return error


class Problem(dict[str, str]):
    """One finding of a schema check, ``{field, message}`` as the API shows it in
    ``errors``, that also keeps its marked ``template`` and ``params`` (not in the dict, so
    the API's body is unchanged) for a page to say it in another language."""

    template: str | None = None
    params: dict[str, Any]  # not ``values``: that is dict's own method

    @classmethod
    def said(cls, field: str, template: str, values: dict[str, Any] | None = None,
             *, at: str | None = None) -> Problem:
        """``{field, message}`` whose message is ``<at or field>: template % values``."""
        values = values or {}
        problem = cls(field=field, message=f"{field if at is None else at}: "
                                           f"{template % values}")
        problem.template, problem.params = template, values
        return problem


class Said(str):
    """A sentence in English (this str, unchanged for the CLI, the API and the log's tools)
    that also keeps its ``template``, marked with ``N_``, and the named ``params`` that fill
    it, for a page to say it in another language: a line of a verification report, the
    problem with a line of a pasted checkpoint. A value that is itself a :class:`Said` (or
    a :class:`LedgerError` with a template) is said in the page's language too."""

    template: str | None = None
    params: dict[str, Any]

    @classmethod
    def said(cls, template: str, values: dict[str, Any] | None = None, *,
             lead: str = "") -> Said:
        """``lead`` then ``template % values``, keeping template and values."""
        values = values or {}
        sentence = cls(lead + template % values)
        sentence.template, sentence.params = template, values
        return sentence

    @classmethod
    def of(cls, error: LedgerError) -> Said:
        """An error's message, with its template and values when it has them."""
        sentence = cls(str(error))
        sentence.template, sentence.params = error.template, error.params
        return sentence

    def __reduce__(self) -> tuple[Any, ...]:
        return (_said, (str(self), self.template, getattr(self, "params", {})))


def _said(text: str, template: str | None, params: dict[str, Any]) -> Said:
    sentence = Said(text)
    sentence.template, sentence.params = template, params
    return sentence


def either(words: Iterable[str]) -> str:
    """``"a or b or c"``, said with the page's word for "or" (roles, event kinds)."""
    said: str = ""
    for word in words:
        said = Said.said(N_("%(first)s or %(then)s"), {"first": said, "then": word}) \
            if said else word
    return said


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
