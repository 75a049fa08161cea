"""`alluvial demo`: a fresh ledger with the West African scenario, a user per role, the server."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import click

from ledger.cli.app import Context, cli

# The user each role signs in as, and the scenario actor it writes as.
DEMO_USERS = (
    ("officer", "officer", "officer-gh"),
    ("buyer", "buyer", "buyer-gh-akwatia"),
    ("exporter", "exporter", "exporter-gh-accra"),
    ("auditor", "auditor", "auditor-kp"),
    ("admin", "admin", "admin"),
)
TOKENS_FILE = "demo-tokens.env"


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(url[len(prefix):]) if url.startswith(prefix) else None


def _fresh(ctx: Context, reset: bool) -> None:
    """Make room for a fresh demo ledger, or refuse to touch an existing one."""
    db = _sqlite_path(ctx.settings.database_url)
    existing = [p for p in ([db, Path(f"{db}-wal"), Path(f"{db}-shm")] if db else [])
                + [ctx.settings.log_key_path] if p.exists()]
    if existing and not reset:
        raise click.UsageError(
            f"{existing[0]} already exists: run the demo in an empty directory, or add --reset "
            "to replace the demo ledger here.")
    for path in existing:
        path.unlink()


@cli.command()
@click.option("--no-serve", is_flag=True, help="Load the demo and stop; do not start the server.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--reset", is_flag=True, help="Replace the ledger and key already in this folder.")
@click.pass_context
def demo(click_ctx: click.Context, no_serve: bool, port: int, reset: bool) -> None:
    """A fresh ledger with the West African scenario, one user per role, then the server."""
    from tqdm import tqdm

    from ledger import accounts
    from ledger.demo import load_scenario
    from ledger.events import Ledger

    ctx: Context = click_ctx.obj
    _fresh(ctx, reset)
    ledger = Ledger(ctx.engine, ctx.key(create=True))
    ctx.__dict__["ledger"] = ledger
    ledger.initialise()
    with tqdm(unit="line", file=sys.stderr, disable=None, leave=False) as bar:
        report = load_scenario(ledger, progress=bar.update)
    done = report.ingested
    click.echo(f"Scenario: {done.written} events written, {done.flags} flags raised "
               f"(the laundering ring's purchases are held). Log size {ledger.log.size()}.")
    rules = Counter(rule for _, rule, _ in report.refusals)
    click.echo(f"Laundering ring: {len(report.refusals)} of {report.attempts} attempts to move "
               f"its stones to an export refused ({', '.join(f'{n} {r}' for r, n in rules.items())}"
               "), for example:")
    for number, _rule, message in report.refusals[:2]:
        click.echo(f"  attempt {number}: {message}")
    from webui.login import set_password  # the web layer owns password hashing

    accounts.create_tables(ctx.engine)
    lines = []
    click.echo("Users (web sign-in with password demo-<name>; API tokens are shown only now):")
    for name, role, actor_id in DEMO_USERS:
        accounts.add_user(ctx.engine, name, role, actor_id)
        set_password(ctx.engine, name, f"demo-{name}")
        token = accounts.create_token(ctx.engine, name)
        click.echo(f"  {name:9} password demo-{name:9} actor {actor_id:18} token {token}")
        lines.append(f"export {name.upper()}_TOKEN={token}\n")
    env = Path(TOKENS_FILE)
    env.write_text("".join(lines), encoding="utf-8")
    os.chmod(env, 0o600)
    click.echo(f"The tokens are also in ./{TOKENS_FILE} (source it for the README's curl steps).")
    if no_serve:
        return
    from ledger.cli.serve import serve

    click_ctx.invoke(serve, host="127.0.0.1", port=port, threads=16)
