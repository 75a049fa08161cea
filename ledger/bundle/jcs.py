"""RFC 8785 (JCS) canonical JSON in the standard library alone, for the offline verifier.

:mod:`ledger.log.canonical` is what the log hashes with; it leans on the ``rfc8785`` package.
A verifier that others vendor or port should not, so this module writes the same bytes
with nothing but ``json``, ``decimal`` and ``math`` (the bundle tests check, over random
JSON values and RFC 8785's number cases, that both agree byte for byte).

It also reads JSON strictly (:func:`loads`: no duplicate keys, no NaN) and, while
reading, notes whether the value lies where Python's C encoder with sorted keys already
writes RFC 8785; such values can then be encoded at C speed
(:func:`fast_canonical_bytes`), as :mod:`ledger.log.canonical`'s own fast path argues.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

_MAX_INT = 2**53 - 1  # RFC 8785 3.2.2.3 via I-JSON (RFC 7493 2.2)


def _number(x: int | float) -> str:
    """RFC 8785 3.2.2.3: integers within I-JSON range, doubles as ECMAScript prints them."""
    if type(x) is int:
        if -_MAX_INT <= x <= _MAX_INT:
            return str(x)
        raise ValueError(f"the integer {x} is beyond 2**53 - 1 (I-JSON)")
    if not math.isfinite(x):
        raise ValueError(f"{x} is not a JSON number")
    if x == 0:
        return "0"
    sign, (_, digits_t, exp) = ("-" if x < 0 else ""), Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, digits_t)).rstrip("0")
    k = len(digits)
    n = len(digits_t) + int(exp)  # the value is 0.DIGITS * 10**n
    if k <= n <= 21:  # ECMAScript Number::toString, step by step
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits[0] + (f".{digits[1:]}" if k > 1 else "")
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


_quote: Callable[[str], str] = json.encoder.encode_basestring


def _jcs(value: Any, out: list[str]) -> None:
    t = type(value)
    if t is str:
        out.append(_quote(value))
    elif t is dict:
        out.append("{")
        # RFC 8785 3.2.3: properties sorted by their UTF-16 code units.
        for i, k in enumerate(sorted(value, key=lambda s: s.encode("utf-16-be", "surrogatepass"))):
            if type(k) is not str:
                raise ValueError("object keys must be strings")
            out.append("," if i else "")
            out.append(_quote(k))
            out.append(":")
            _jcs(value[k], out)
        out.append("}")
    elif t is list:
        out.append("[")
        for i, v in enumerate(value):
            out.append("," if i else "")
            _jcs(v, out)
        out.append("]")
    elif value is True or value is False or value is None:
        out.append({True: "true", False: "false", None: "null"}[value])
    elif t is int or t is float:
        out.append(_number(value))
    else:
        raise ValueError(f"{t.__name__} is not a JSON value")


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a parsed JSON value; ValueError for what JCS cannot represent."""
    out: list[str] = []
    _jcs(value, out)
    return "".join(out).encode("utf-8")  # RFC 8785 3.2.4; a lone surrogate raises


def loads(data: bytes | str) -> tuple[Any, bool]:
    """Strict JSON (UTF-8, no duplicate keys, no NaN/Infinity; ValueError otherwise).

    Also says whether every number and key lies where Python's C JSON encoder with
    sorted keys already writes RFC 8785 (ASCII keys; integers within 2**53; doubles in
    [1e-4, 1e16) that are not integral, which ``repr`` writes as ECMAScript does), so
    the value can go to :func:`fast_canonical_bytes` (as ledger.canonical's fast path
    argues).
    """
    fast = [True]

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            raise ValueError("an object has a key more than once.")
        if fast[0] and not "".join(obj).isascii():
            fast[0] = False
        return obj

    def number(text: str) -> float:
        value = float(text)
        if fast[0] and (value.is_integer() or not 1e-4 <= abs(value) < 1e16):
            fast[0] = False
        return value

    def integer(text: str) -> int:
        value = int(text)
        if fast[0] and not -_MAX_INT <= value <= _MAX_INT:
            fast[0] = False
        return value

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number.")

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        doc = json.loads(text, object_pairs_hook=pairs, parse_float=number, parse_int=integer,
                         parse_constant=constant)
    except RecursionError as exc:  # nesting too deep: one error type for what cannot be read
        raise ValueError(str(exc)) from exc
    return doc, fast[0]


_FAST = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         allow_nan=False, check_circular=False).encode


def fast_canonical_bytes(value: Any) -> bytes:
    """canonical_bytes for a value :func:`loads` found JCS-safe (one C encoder call).

    Only for such values: on any other it may write bytes that are not RFC 8785.
    """
    return _FAST(value).encode("utf-8")
