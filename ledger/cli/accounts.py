"""Commands on accounts (SPEC 6): users add, passwd and disable; tokens create, list and
revoke."""

from __future__ import annotations

import sys

import click

from ledger.cli.app import Context, cli, pass_ctx
from ledger.errors import InputError

# The roles of SPEC 1 (ledger.accounts.ROLES; that module is imported only when used).
ROLES = ("officer", "buyer", "exporter", "auditor", "authority", "admin")


def _password_from_stdin() -> str:
    """The password on stdin: all of it, less one line ending (so `echo` and a file work)."""
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("password: stdin is not UTF-8 text.", field="password") from exc
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            text = text[: -len(ending)]
            break
    if "\n" in text or "\r" in text:
        raise InputError("password: stdin must hold the password on one line.",
                         field="password")
    return text


@cli.group()
def users() -> None:
    """Users: a role, the registered actor they write as, and a web password."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES),
              help="The user's role; the actor must be registered with it.")
@click.option("--actor", "actor_id", metavar="ACTOR_ID",
              help="The actor the user's writes are written as (admin users: `admin`).")
@click.option("--password-stdin", is_flag=True,
              help="Read a web sign-in password from stdin (one line).")
@pass_ctx
def users_add(ctx: Context, name: str, role: str, actor_id: str | None,
              password_stdin: bool) -> None:
    """Add the user NAME, who writes as ACTOR_ID."""
    from ledger import accounts

    password = _password_from_stdin() if password_stdin else None
    accounts.create_tables(ctx.engine)
    user = accounts.add_user(ctx.engine, name, role, actor_id, password=password)
    signs_in = "; it may sign in on the web" if password is not None else ""
    click.echo(f"User {user.user}: role {user.role}, writes as actor {user.actor_id}{signs_in}.")


@users.command("passwd")
@click.argument("name")
@pass_ctx
def users_passwd(ctx: Context, name: str) -> None:
    """Set the web password of NAME from stdin; its web sessions end."""
    from ledger import accounts

    password = _password_from_stdin()
    accounts.create_tables(ctx.engine)
    accounts.set_password(ctx.engine, name, password)
    click.echo(f"New password for {name}; its web sessions have ended.")


@users.command("disable")
@click.argument("name")
@pass_ctx
def users_disable(ctx: Context, name: str) -> None:
    """Disable NAME: its tokens and web sessions get 401 from their next request on."""
    from ledger import accounts

    accounts.create_tables(ctx.engine)
    done = accounts.disable_user(ctx.engine, name)
    click.echo(f"User {name} {'disabled' if done else 'was disabled already'}: its API tokens "
               "and web sessions no longer count.")


@cli.group()
def tokens() -> None:
    """API bearer tokens."""


@tokens.command("create")
@click.argument("name")
@click.option("--expires-days", type=click.IntRange(1, 3650), metavar="N",
              help="The token stops counting N days from now (default: never).")
@pass_ctx
def tokens_create(ctx: Context, name: str, expires_days: int | None) -> None:
    """Create a bearer token for the user NAME and print it once, on the last line."""
    from ledger import accounts

    accounts.create_tables(ctx.engine)
    made, token = accounts.issue_token(ctx.engine, name, expires_days)
    click.echo(f"New API token {made.id} for {name}, expires {made.expires or 'never'}. It is "
               "shown only this once and kept only as a hash: store it now.")
    click.echo(token)


@tokens.command("list")
@click.argument("name", required=False)
@pass_ctx
def tokens_list(ctx: Context, name: str | None) -> None:
    """List the tokens (of NAME): id, user, created, expires, revoked; never the token."""
    from ledger import accounts

    accounts.create_tables(ctx.engine)
    click.echo("id\tuser\tcreated\texpires\trevoked")
    for t in accounts.list_tokens(ctx.engine, name):
        click.echo(f"{t.id}\t{t.user}\t{t.created}\t{t.expires or 'never'}\t{t.revoked or '-'}")


@tokens.command("revoke")
@click.argument("token_id", metavar="TOKEN_ID")
@pass_ctx
def tokens_revoke(ctx: Context, token_id: str) -> None:
    """Revoke the token TOKEN_ID (see `tokens list`): its next request gets 401."""
    from ledger import accounts

    accounts.create_tables(ctx.engine)
    info = accounts.revoke_token(ctx.engine, token_id)
    click.echo(f"Token {info.id} of {info.user} revoked at {info.revoked}.")
