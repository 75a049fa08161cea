"""Password hashes for web sign-in (SPEC 6 `users add --password-stdin`, `users passwd`).

A password is kept only as a salted, slow hash: scrypt (N=2^15, r=8, p=1, 64 bytes),
from the standard library, written as ``scrypt:N:r:p$SALT$HEX``. That is the text
Werkzeug's ``generate_password_hash(method="scrypt")`` wrote for the previous version,
so the hashes it stored verify unchanged, and the core needs no web library to set a
password from the command line. API tokens need no such hash (see ``ledger.accounts``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

from ledger.errors import InputError
from ledger.i18n import N_

MIN_LENGTH = 8
MAX_LENGTH = 1024  # scrypt reads all of it: a bound keeps one sign-in cheap
N, R, P = 2**15, 8, 1
SALT_CHARS = string.ascii_letters + string.digits
SALT_LENGTH = 16
# Stored parameters beyond these are refused rather than run: a hash that asks for
# gigabytes of memory is not one this program wrote.
MAX_N, MAX_RP = 2**20, 64


def check_new_password(password: str) -> None:
    """Refuse a password too short to resist guessing, or too long to hash cheaply."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InputError.said(N_("must be %(min)s to %(max)s characters long."),
                              {"min": MIN_LENGTH, "max": MAX_LENGTH}, lead="password: ",
                              field="password")


def _scrypt(password: str, salt: str, n: int, r: int, p: int) -> str:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt.encode(),
                          n=n, r=r, p=p, maxmem=132 * n * r * p, dklen=64).hex()


def hash_password(password: str) -> str:
    """A new salted scrypt hash of ``password`` (checked with :func:`check_new_password`)."""
    check_new_password(password)
    salt = "".join(secrets.choice(SALT_CHARS) for _ in range(SALT_LENGTH))
    return f"scrypt:{N}:{R}:{P}${salt}${_scrypt(password, salt, N, R, P)}"


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from; False for any hash this
    module cannot read (so a damaged row signs nobody in)."""
    method, _, rest = stored.partition("$")
    salt, _, digest = rest.partition("$")
    name, *params = method.split(":")
    if name != "scrypt" or not digest:
        return False
    try:
        n, r, p = (int(x) for x in params) if params else (N, R, P)
    except ValueError:
        return False
    if not (1 < n <= MAX_N and n & (n - 1) == 0 and 0 < r * p <= MAX_RP):
        return False
    return hmac.compare_digest(_scrypt(password[:MAX_LENGTH], salt, n, r, p), digest)
