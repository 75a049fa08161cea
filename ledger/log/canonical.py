"""RFC 8785 (JCS) canonical JSON: the bytes every ledger hash is taken over.

``rfc8785.dumps`` is the reference, but it walks the value in Python and costs
about 30 µs per event; bulk appends need far less. :func:`canonical_bytes`
therefore takes a fast path: a short Python walk that checks the value lies in
the subset where Python's C JSON encoder already writes RFC 8785 bytes (and
rewrites the one thing it writes differently, integral floats), then the C
encoder of ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)`` and UTF-8: about 7 µs for a custody event instead of about 30
(``python -m benchmarks.canonical``).
Anything outside that subset goes to ``rfc8785.dumps`` unchanged, so the output
is byte-identical to the reference for every input, and every input the
reference refuses is refused.

Where Python's ``json`` and RFC 8785 differ, and what the fast path does:

* Integral floats (RFC 8785 3.2.2.3, ECMAScript Number::toString): JCS writes
  ``12.0`` as ``12`` and ``-0.0`` as ``0``; Python writes ``12.0``/``-0.0``.
  Normalised: such floats become ``int`` before encoding (exact, since they
  are below 1e16 in magnitude on the fast path).
* Exponent notation: Python's ``repr`` switches to ``1e+16`` at 1e16 and to
  ``1e-05`` below 1e-4; ECMAScript writes plain digits up to 1e21 and down to
  1e-6, and its exponents carry no leading zero (``1e-7``). Floats outside
  ``[1e-4, 1e16)`` go to the fallback. Inside it both print the shortest
  round-tripping digits in positional notation, so the bytes agree.
* NaN and ±Infinity (RFC 8785 3.2.2.3 forbids them): fallback, which raises
  ``rfc8785.FloatDomainError``.
* Integers beyond ±(2**53 - 1) (RFC 8785 3.2.2.3 via I-JSON, RFC 7493 2.2):
  fallback, which raises ``rfc8785.IntegerDomainError``.
* Property order (RFC 8785 3.2.3): JCS sorts by UTF-16 code units, Python by
  code points; they differ only between non-BMP characters and U+E000..U+FFFF.
  Objects with any non-ASCII key go to the fallback (ASCII keys sort the same
  either way).
* Non-``str`` keys: ``json`` would write ``{1: 2}`` as ``{"1":2}``; RFC 8785
  has only string keys and ``rfc8785`` refuses them. Fallback, which raises.
* Lone surrogates (RFC 8785 3.2.2.2 via I-JSON, RFC 7493 2.1): ``json`` lets
  them through and UTF-8 encoding fails; the fallback raises.
* ``bool`` is an ``int`` subclass and any subclass (``IntEnum``, ``str``
  enums, ``OrderedDict``) may print differently: the walk dispatches on exact
  types, so ``bool`` is handled as itself and subclasses go to the fallback.
* Other types (``Decimal``, ``datetime``, ``bytes``, sets...): ``json`` raises
  ``TypeError``; ``rfc8785`` raises ``CanonicalizationError``. Fallback, so the
  latter.
* Tuples: both write them as arrays; kept on the fast path.
* Cycles: both recurse without end; ``RecursionError``, as the reference.
* String escaping (RFC 8785 3.2.2.2) needs no work: with ``ensure_ascii=False``
  both escape exactly ``"``, ``\\``, the five short forms ``\\b \\t \\n \\f \\r``
  and the other C0 controls as lowercase ``\\u00xx``, and write everything else,
  U+007F and U+2028/U+2029 included, as raw UTF-8 (checked in the tests).

Errors: every value RFC 8785 cannot represent raises
:class:`CanonicalizationError` (``rfc8785.CanonicalizationError``, a
``ValueError``) or one of its subclasses ``IntegerDomainError`` and
``FloatDomainError``. The reference itself raises a bare ``UnicodeEncodeError``
for a lone surrogate in an object key; that is re-raised here as
``CanonicalizationError`` so callers catch one class.

:func:`parse` is the strict reader for ledger input: ``json.loads`` that
refuses duplicate keys, NaN/Infinity and text that is not UTF-8 / has lone
surrogates, raising :class:`ledger.errors.InputError`. The duplicate-key hook
costs about 1 µs per event (a Python call per object), kept as the price of
refusing ambiguous input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import rfc8785

from ledger.errors import InputError

__all__ = [
    "MAX_DEPTH",
    "CanonicalizationError",
    "FloatDomainError",
    "Inexact",
    "IntegerDomainError",
    "canonical_bytes",
    "canonical_text",
    "parse",
]

CanonicalizationError = rfc8785.CanonicalizationError
IntegerDomainError = rfc8785.IntegerDomainError
FloatDomainError = rfc8785.FloatDomainError

# The walk below writes its bounds as literals (folded to constants, cheaper than
# globals in the hot loop):
# * integers: -(2**53 - 1) <= n <= 2**53 - 1, RFC 8785 3.2.2.3 via I-JSON
#   (RFC 7493 2.2), the integers an IEEE 754 double holds exactly;
# * floats: 1e-4 <= |x| < 1e16, where Python's repr is positional (outside it
#   repr uses an exponent); ECMAScript's positional range, 1e-6 <= |x| < 1e21,
#   contains it, and inside both print the same shortest round-trip digits.


class _Fallback(Exception):
    """The value leaves the fast path; encode it with ``rfc8785`` instead."""


_FALLBACK = _Fallback()
_join = "".join


def _make_chunks() -> Callable[[Any, int], Sequence[str]]:
    """The C encoder behind ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)``, built once.

    ``json.dumps`` builds a ``JSONEncoder`` and its C encoder on every call; that
    costs about 1 µs of the 4 the encoding takes, so the C encoder is kept. If the
    private ``c_make_encoder`` is missing or its signature changes, the public
    encoder does the same work (slower). No circular check: the walk would already
    have recursed without end on a cycle (RecursionError, as ``rfc8785`` does).
    """
    encoder = json.JSONEncoder(
        sort_keys=True,  # RFC 8785 3.2.3 (ASCII keys only on the fast path)
        separators=(",", ":"),  # RFC 8785 3.2.1: no whitespace between tokens
        ensure_ascii=False,  # RFC 8785 3.2.2.2: non-ASCII as is, UTF-8 (3.2.4)
        allow_nan=False,  # RFC 8785 3.2.2.3 (the walk routes them away first)
        check_circular=False,
    )
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is not None:
        try:
            chunks: Callable[[Any, int], Sequence[str]] = c_make_encoder(
                None, encoder.default, json.encoder.encode_basestring, None,
                encoder.key_separator, encoder.item_separator, True, False, False,
            )
            probe = {"b": [1.5, None, True], "a": "\u00e9\n"}
            if _join(chunks(probe, 0)) == encoder.encode(probe):
                return chunks
        except TypeError:
            pass
    return lambda obj, _level: (encoder.encode(obj),)


_chunks = _make_chunks()


def _float(f: float) -> float | int:
    """A float ``json`` writes as JCS does: integral ones as ``int``; else fallback."""
    if 1e-4 <= f < 1e16 or -1e16 < f <= -1e-4:
        # RFC 8785 3.2.2.3 (ECMAScript Number::toString): 12.0 is written 12.
        # Exact: below 2**53 every integral double is an int, and above it the
        # double's exact value is what Number::toString prints below 1e21.
        return int(f) if f.is_integer() else f
    if f == 0.0:
        return 0  # RFC 8785 3.2.2.3: -0 is written as 0
    raise _FALLBACK  # exponent form in Python's repr, or NaN/Infinity


def _value(obj: Any) -> Any:
    """``obj`` itself if ``json`` writes it as JCS does, else a normalised copy.

    Dispatches on exact types (``bool`` is an ``int`` subclass, enums and dict
    subclasses may print differently); raises ``_Fallback`` for anything else.
    """
    t = type(obj)
    if t is str or t is bool or obj is None:
        return obj
    if t is int:
        if -(2**53 - 1) <= obj <= 2**53 - 1:
            return obj
        raise _FALLBACK
    if t is float:
        return _float(obj)
    if t is dict:
        return _dict(obj)
    if t is list or t is tuple:
        return _list(obj)
    raise _FALLBACK


# _dict and _list repeat _value's dispatch inline: a call per scalar would double
# the cost of the walk.


def _dict(d: dict[Any, Any]) -> dict[str, Any]:
    """Check the keys and values of an object; copy it only if a value changes."""
    out = None
    n: Any
    for k, v in d.items():
        # RFC 8785 3.2.3 sorts keys by UTF-16 code units; for ASCII keys that is
        # the code-point order json's sort_keys uses. Non-str keys: rfc8785 refuses.
        if type(k) is not str or not k.isascii():
            raise _FALLBACK
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if -(2**53 - 1) <= v <= 2**53 - 1:
                continue
            raise _FALLBACK
        if t is float:
            if (1e-4 <= v < 1e16 or -1e16 < v <= -1e-4) and not v.is_integer():
                continue
            n = _float(v)
        elif t is dict:
            n = _dict(v)
        elif t is list or t is tuple:
            n = _list(v)
        else:
            raise _FALLBACK
        if n is not v:
            if out is None:
                out = dict(d)
            out[k] = n
    return d if out is None else out


def _list(a: list[Any] | tuple[Any, ...]) -> list[Any] | tuple[Any, ...]:
    """Check the elements of an array; copy it only if an element changes."""
    out = None
    n: Any
    for i, v in enumerate(a):
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if -(2**53 - 1) <= v <= 2**53 - 1:
                continue
            raise _FALLBACK
        if t is float:
            if (1e-4 <= v < 1e16 or -1e16 < v <= -1e-4) and not v.is_integer():
                continue
            n = _float(v)
        elif t is dict:
            n = _dict(v)
        elif t is list or t is tuple:
            n = _list(v)
        else:
            raise _FALLBACK
        if n is not v:
            if out is None:
                out = list(a)
            out[i] = n
    return a if out is None else out


def _reference(obj: Any) -> bytes:
    """``rfc8785.dumps``, with its one stray error class folded into ours."""
    try:
        return rfc8785.dumps(obj)
    except CanonicalizationError:
        raise
    except UnicodeError as exc:  # a lone surrogate in a key, met while sorting keys
        raise CanonicalizationError("input contains non-UTF-8 codepoints") from exc


def canonical_bytes(obj: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON-like value.

    Byte-identical to ``rfc8785.dumps(obj)``; raises :class:`CanonicalizationError`
    (a ``ValueError``) for values RFC 8785 cannot represent.
    """
    try:
        text = _join(_chunks(_value(obj), 0))
    except _Fallback:
        return _reference(obj)
    try:
        return text.encode("utf-8")  # RFC 8785 3.2.4: UTF-8
    except UnicodeEncodeError:  # a lone surrogate in a string (RFC 8785 3.2.2.2)
        return _reference(obj)  # raises, as the reference refuses it


def canonical_text(obj: Any) -> str:
    """:func:`canonical_bytes` as ``str`` (for storing canonical payload text).

    Raises exactly when :func:`canonical_bytes` does, lone surrogates included.
    """
    try:
        text = _join(_chunks(_value(obj), 0))
    except _Fallback:
        return _reference(obj).decode("utf-8")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _reference(obj).decode("utf-8")  # raises
    return text


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing duplicate names (RFC 8785 3.1, I-JSON 2.3)."""
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise InputError(f"The JSON object has the key {k!r} more than once.")
            seen.add(k)
    return d


def _constant(name: str) -> Any:
    """``parse_constant``: NaN and Infinity are not JSON (RFC 8259 6, RFC 8785 3.2.2.3)."""
    raise InputError(f"{name} is not a JSON number.")


def _lone_surrogate(exc: UnicodeEncodeError) -> InputError:
    """The refusal of text holding a lone surrogate, naming it (I-JSON 2.1)."""
    char = exc.object[exc.start]
    return InputError(
        f"The JSON text has a lone surrogate (\\u{ord(char):04x}), which is not Unicode text."
    )


# A \uD800..\uDFFF escape (paired or not; an escaped backslash before "u" may match
# too): only then is the parsed value checked for lone surrogates.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

# How deeply objects and arrays may nest in ledger input. The deepest event the schemas
# describe (a MultiPolygon inside a payload inside the event) nests 7 levels; free-form
# fields (a flag's evidence) get the rest. A bound keeps every value that reaches the
# writer small enough for recursive code (pickling for the writer process, the schema
# and encoder walks) that meets Python's recursion limit of 1,000 frames: a body 900
# levels deep parses, but failed in the writer process (issue #15).
MAX_DEPTH = 64
_TOO_DEEP = f"The JSON text is nested too deeply: more than {MAX_DEPTH} levels."


class Inexact(float):
    """A JSON number whose literal is not exactly the double it reads as, such as
    ``1.00000000000000000001``: the double (which RFC 8785 hashes, as it does every
    finite number), carrying the literal as its ``repr``.

    SPEC 4 "Numbers": carats and money with more than two decimals are refused, never
    rounded; the schemas' ``multipleOf: 0.01`` test divides ``Decimal(repr(x))``, so it
    sees the literal's digits and refuses it naming the field. Elsewhere the number is
    the double, written in JCS form. Not a plain ``float``, so the encoder's fast path
    leaves it to ``rfc8785``, which encodes ``float(x)``.
    """

    text: str

    def __new__(cls, text: str) -> Inexact:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __repr__(self) -> str:
        return self.text

    def __reduce__(self) -> tuple[Any, ...]:
        return (Inexact, (self.text,))


def _parse_float(text: str) -> float | Decimal:
    """``parse_float``: a float, an :class:`Inexact` when the literal is not exactly the
    double it reads as, or a ``Decimal`` when it reads as no finite double (``1e400``),
    which schema validation refuses naming the field.

    A literal of at most 15 significant digits without an exponent (16 characters or
    fewer, one of them the point) is always exact (DBL_DIG = 15), so the common case
    costs one ``float``.
    """
    if len(text) <= 16 and "e" not in text and "E" not in text:
        return float(text)
    value = float(text)
    if value - value != 0.0:  # infinity: the literal is beyond the largest double
        return Decimal(text)
    if Decimal(text) == Decimal(repr(value)):
        return value
    return Inexact(text)


def _too_deep(value: Any, room: int) -> bool:
    """Whether ``value`` nests objects and arrays more than ``room`` levels deep."""
    if room <= 0:
        return True
    if type(value) is dict:
        value = value.values()
    elif type(value) is not list:
        return False
    return any((type(v) is dict or type(v) is list) and _too_deep(v, room - 1) for v in value)


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant,
                            parse_float=_parse_float)
_decode = _DECODER.decode


def parse(text: str | bytes) -> Any:
    """Strict JSON for ledger input: ``json.loads`` less what RFC 8785 cannot hash.

    RFC 8785 3.1 takes its input as I-JSON (RFC 7493), so this refuses what I-JSON
    forbids and ``json.loads`` accepts: duplicate object keys (2.3), the constants
    NaN/Infinity/-Infinity (2.2; RFC 8259 6), bytes that are not UTF-8 and lone
    surrogates, raw or escaped (2.1); and malformed JSON. Each raises
    :class:`InputError` with a sentence naming the problem.

    Also refused: nesting deeper than :data:`MAX_DEPTH` levels.

    A number with a fraction or exponent that is not exactly the double it reads as is
    an :class:`Inexact` float (``1.00000000000000000001``), or a ``Decimal`` when it is
    beyond every double (``1e400``); integers of any size are ``int``. Schema
    validation refuses what SPEC 4 "Numbers" does not allow, naming the field, and
    :func:`canonical_bytes` raises on a ``Decimal`` or an integer beyond 2**53.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = text.decode("utf-8")  # I-JSON 2.1, RFC 8785 3.2.4: UTF-8 only
        except UnicodeDecodeError as exc:
            raise InputError(
                f"The JSON text is not UTF-8: {exc.reason} at byte {exc.start}."
            ) from exc
    elif not text.isascii():
        try:
            text.encode("utf-8")  # a str may carry raw lone surrogates
        except UnicodeEncodeError as exc:
            raise _lone_surrogate(exc) from None
    try:
        value = _decode(text)
    except InputError:
        raise
    except RecursionError as exc:
        raise InputError(_TOO_DEEP) from exc
    except ValueError as exc:  # json.JSONDecodeError, or an int too long to convert
        raise InputError(f"The text is not valid JSON: {exc}.") from exc
    # Counting brackets (strings included) is cheap; only text with many walks the value.
    if text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(value, MAX_DEPTH):
        raise InputError(_TOO_DEEP)
    if _SURROGATE_ESCAPE.search(text):  # rare: escapes may still make a lone surrogate
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _lone_surrogate(exc) from None
    return value
