"""The `alluvial` command line (SPEC 6).

Exit codes live in one table: 0 success, 1 a verification failed, 2 bad usage or
input. Results go to stdout, progress bars and errors to stderr.
"""

from __future__ import annotations

import json
import sys
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

import click

from ledger.config import Settings
from ledger.errors import LedgerError, VerificationError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ledger.log.keys import SigningKey
    from ledger.log.store import Log
    from ledger.recorder.events import Ledger

# Start-up (issue 19): `alluvial --help`, `--version` and every command's `--help` import
# click and this package's command modules only. The database, the log, the screening
# (numpy, shapely) and the web layer are imported by the command that uses them, when it runs.

# The one place errors become exit codes (SPEC 6).
EXIT_CODES: tuple[tuple[type[LedgerError], int], ...] = (
    (VerificationError, 1),
    (LedgerError, 2),
)


def exit_code(error: LedgerError) -> int:
    return next(code for cls, code in EXIT_CODES if isinstance(error, cls))


class Context:
    """Lazily opened engine, key and log for one command."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> sa.Engine:
        from ledger.db import make_engine

        return make_engine(self.settings.database_url)

    def key(self, create: bool = False) -> SigningKey:
        path = self.settings.log_key_path
        if not create and not path.exists():
            raise LedgerError(
                f"ALLUVIAL_LOG_KEY: no log key at {path}; run `alluvial init` first.",
                rule="CONFIG",
            )
        from ledger.log.keys import load_or_create

        return load_or_create(path, self.settings.origin)

    def close(self) -> None:
        """Return every pooled connection when the command ends."""
        if "engine" in self.__dict__:
            self.engine.dispose()

    @cached_property
    def ledger_as_stored(self) -> Ledger:
        """The ledger, whatever version made its projections (to rebuild them, or to read
        the log alone); refused when the log key is not the log's own (SPEC 3)."""
        from ledger.recorder.events import Ledger

        ledger = Ledger(self.engine, self.key(), late_days=self.settings.late_days)
        ledger.log.check_store(f"ALLUVIAL_LOG_KEY ({self.settings.log_key_path})")
        return ledger

    @cached_property
    def ledger(self) -> Ledger:
        """The ledger, refused when its projections are an earlier version's."""
        self.ledger_as_stored.check_projections()
        return self.ledger_as_stored

    @property
    def log(self) -> Log:
        return self.ledger_as_stored.log


pass_ctx = click.make_pass_decorator(Context)


# Commands of the layers above the core (`serve`, `demo` in webui.commands), declared in
# pyproject.toml; loaded only when one of them is run or the list is shown.
PLUGIN_GROUP = "alluvial.commands"


@cache  # one scan of the installed distributions per process (about 12 ms)
def _plugins() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}


class LedgerGroup(click.Group):
    """Turns the ledger's errors into a message on stderr and the exit code of EXIT_CODES,
    and adds the commands of the entry points in PLUGIN_GROUP."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and (plugin := _plugins().get(cmd_name)) is not None:
            found = plugin.load()
            self.add_command(found, cmd_name)
        return found

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LedgerError as exc:
            click.echo(terminal_safe(f"{exc.rule}: {exc}"), err=True)
            ctx.exit(exit_code(exc))
        except Exception as exc:
            if (message := _database_error(exc)) is None:
                raise
            click.echo(message, err=True)
            ctx.exit(2)


def _database_error(exc: Exception) -> str | None:
    """What to say of a database that cannot be used (locked, unreachable), or None for
    any other exception. Only a command that imported sqlalchemy can meet one, so this
    imports it only when it is loaded already."""
    if "sqlalchemy.exc" not in sys.modules:
        return None
    import sqlalchemy as sa

    from ledger.db import LOCKED_HINT, locked

    if not isinstance(exc, sa.exc.OperationalError):
        return None
    return f"database: {exc.orig}" + (f": {LOCKED_HINT}" if locked(exc) else "")


@click.group(cls=LedgerGroup)
@click.version_option(package_name="alluvial-ledger")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Alluvial Ledger: a tamper-evident custody ledger for rough diamonds."""
    ctx.obj = Context(Settings.from_env())
    ctx.call_on_close(ctx.obj.close)


# Escapes for the control characters a report line can hold; others are \xNN, \uNNNN.
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def terminal_safe(text: str) -> str:
    """Ledger text as one line a terminal shows as it is (issue 15): every character that
    is not printable (line breaks, escape sequences, bidi and zero-width marks, other
    control and format characters) is shown escaped, as ``\n``, ``\x1b`` or ``\u202e``.

    Every command that prints text from the ledger or a bundle (names, ids, details,
    reasons, refusals quoting input) prints it through this function, so such text can
    neither start a report line of its own nor drive the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _ESCAPES.get(ch) or repr(ch)[1:-1]
                   for ch in text)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def main() -> None:
    cli()
