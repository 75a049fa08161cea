"""Commands on API accounts: users add, tokens create (SPEC 6)."""

from __future__ import annotations

import click

from ledger.cli.app import Context, cli, pass_ctx

# The roles of SPEC 1 (ledger.accounts.ROLES; that module is imported only when used).
ROLES = ("officer", "buyer", "exporter", "auditor", "admin")


@cli.group()
def users() -> None:
    """API users: a role and the registered actor they write as."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES),
              help="The user's role; the actor must be registered with it.")
@click.option("--actor", "actor_id", metavar="ACTOR_ID",
              help="The actor the user's writes are written as (admin users: `admin`).")
@pass_ctx
def users_add(ctx: Context, name: str, role: str, actor_id: str | None) -> None:
    """Add the user NAME, who writes as ACTOR_ID."""
    from ledger import accounts

    accounts.create_tables(ctx.engine)
    user = accounts.add_user(ctx.engine, name, role, actor_id)
    click.echo(f"User {user.user}: role {user.role}, writes as actor {user.actor_id}.")


@cli.group()
def tokens() -> None:
    """API bearer tokens."""


@tokens.command("create")
@click.argument("name")
@pass_ctx
def tokens_create(ctx: Context, name: str) -> None:
    """Create a bearer token for the user NAME and print it once, on the last line."""
    from ledger import accounts

    accounts.create_tables(ctx.engine)
    token = accounts.create_token(ctx.engine, name)
    click.echo(f"New API token for {name}. It is shown only this once and kept only as a "
               "hash: store it now.")
    click.echo(token)
