"""Configuration read from the environment (SPEC 2)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB_FILE = "alluvial.db"
DEFAULT_KEY_FILE = "alluvial-log.key"
DEFAULT_ORIGIN = "alluvial.local"
DEFAULT_LATE_DAYS = 30  # SPEC 5 LATE_ENTRY


@dataclass(frozen=True)
class Settings:
    """Where the ledger lives and who signs for it.

    ``database_url`` defaults to a SQLite file in the working directory, the
    signing key to a file beside it; the log origin is also the key's name.
    """

    database_url: str
    log_key_path: Path
    origin: str = DEFAULT_ORIGIN
    secret_key: str | None = None
    late_days: int = DEFAULT_LATE_DAYS

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Settings:
        env = os.environ if env is None else env
        cwd = Path.cwd() if cwd is None else cwd
        url = env.get("ALLUVIAL_DATABASE_URL") or f"sqlite:///{cwd / DEFAULT_DB_FILE}"
        key = env.get("ALLUVIAL_LOG_KEY") or str(cwd / DEFAULT_KEY_FILE)
        return cls(
            database_url=url,
            log_key_path=Path(key),
            origin=env.get("ALLUVIAL_LOG_ORIGIN") or DEFAULT_ORIGIN,
            secret_key=env.get("ALLUVIAL_SECRET_KEY") or None,
            late_days=_late_days(env.get("ALLUVIAL_LATE_DAYS")),
        )


def _late_days(text: str | None) -> int:
    """ALLUVIAL_LATE_DAYS: days an event may be dated before it is recorded (SPEC 5)."""
    if not text:
        return DEFAULT_LATE_DAYS
    from ledger.errors import InputError

    try:
        days = int(text)
    except ValueError:
        days = -1
    if days < 0:
        raise InputError(f"ALLUVIAL_LATE_DAYS: {text!r} is not a whole number of days (0 or "
                         "more).", rule="CONFIG", field="ALLUVIAL_LATE_DAYS")
    return days
